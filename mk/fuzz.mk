# mk/fuzz.mk - libFuzzer targets (docs/fuzzing.md).  Included from the
# Makefile.
#   make fuzz                  build, replay the regressions, then run every
#                              target for FUZZ_SECONDS (default 60) each
#   make fuzz FUZZ_TARGETS="fuzz_mime fuzz_seal" FUZZ_SECONDS=20
#   make fuzz FUZZ_MERGE=1     also merge new interesting inputs into
#                              tests/fuzz/corpus/<target>/ (else they stay in
#                              build-fuzz/work/ and the tree is not touched)
#   make fuzz-regress          replay tests/fuzz/regress/ and the corpora
#                              once (a few seconds; CI runs it before fuzz)
#   make fuzz-build            only build build-fuzz/<target>
# Needs clang 14 and its compiler-rt (Debian: clang, libclang-rt-14-dev).

FUZZ_CC      ?= clang
FUZZ_BUILD   ?= build-fuzz
FUZZ_SECONDS ?= 60
FUZZ_MERGE   ?= 0
FUZZ_RSS_MB  ?= 2048
FUZZ_ALL     := $(patsubst tests/fuzz/%.c,%,$(wildcard tests/fuzz/fuzz_*.c))
FUZZ_TARGETS ?= $(FUZZ_ALL)
FUZZ_SAN     := -fsanitize=address,undefined -fno-sanitize-recover=undefined \
                -fno-omit-frame-pointer
# The library is instrumented for coverage (fuzzer-no-link) and built
# without -Werror: a warning that only clang gives must not stop fuzzing.
FUZZ_CFLAGS  := -std=c11 -D_GNU_SOURCE -O1 -g -Wall -Wextra \
                -Wno-unused-parameter -MMD -MP $(FUZZ_SAN) \
                -I. $(shell pkg-config --cflags $(PKGS))
FUZZ_LIB_OBJS := $(LIB_SRCS:%.c=$(FUZZ_BUILD)/%.o)
FUZZ_LIB_OBJS += $(FUZZ_BUILD)/gen/web_status.o $(FUZZ_BUILD)/gen/lua.o

# The embedded pages and Redis scripts (Makefile, WEB_STATUS, LUA_SRCS):
# generated once in $(BUILD).
$(FUZZ_BUILD)/gen/%.o: $(BUILD)/gen/%.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -c $< -o $@

.PHONY: fuzz fuzz-build fuzz-regress fuzz-clean
.SECONDARY: $(FUZZ_ALL:%=$(FUZZ_BUILD)/tests/fuzz/%.o)

$(FUZZ_BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -c $< -o $@

$(FUZZ_BUILD)/libkairan.a: $(FUZZ_LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(FUZZ_BUILD)/fuzz_%: $(FUZZ_BUILD)/tests/fuzz/fuzz_%.o $(FUZZ_BUILD)/libkairan.a
	$(FUZZ_CC) $(FUZZ_SAN) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

fuzz-build: $(FUZZ_TARGETS:%=$(FUZZ_BUILD)/%)

# Replay every saved crash (tests/fuzz/regress/<target>/) and the corpus
# once: no fuzzing, fails on the first input that still crashes.
fuzz-regress: fuzz-build
	@failed=""; for t in $(FUZZ_TARGETS); do \
	    files=$$(find tests/fuzz/regress/$$t tests/fuzz/corpus/$$t \
	             -type f 2>/dev/null | sort); \
	    [ -n "$$files" ] || continue; \
	    n=$$(echo "$$files" | wc -l); \
	    if $(FUZZ_BUILD)/$$t -rss_limit_mb=$(FUZZ_RSS_MB) -timeout=10 $$files \
	        >$(FUZZ_BUILD)/$$t.regress.log 2>&1; then \
	        printf '%-16s ok      %s saved inputs\n' $$t $$n; \
	    else \
	        grep -a -m1 -B1 -A2 'runtime error\|ERROR: \|property failed' \
	            $(FUZZ_BUILD)/$$t.regress.log; \
	        printf '%-16s FAILED  (%s)\n' $$t $(FUZZ_BUILD)/$$t.regress.log; \
	        failed="$$failed $$t"; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "fuzz-regress: saved inputs still crash:$$failed"; exit 1; fi; \
	echo "fuzz-regress: ok"

# Each target fuzzes a copy of its corpus (new inputs go to the copy, and
# crashes to $(FUZZ_BUILD)/crashes/<target>/); every target runs even if
# one fails, and the summary names those that crashed.
fuzz: fuzz-regress
	@failed=""; for t in $(FUZZ_TARGETS); do \
	    work=$(FUZZ_BUILD)/work/$$t; crash=$(FUZZ_BUILD)/crashes/$$t; \
	    rm -rf $$work; mkdir -p $$work $$crash; \
	    if [ -d tests/fuzz/corpus/$$t ]; then cp -r tests/fuzz/corpus/$$t/. $$work/; fi; \
	    t0=$$(date +%s); \
	    if $(FUZZ_BUILD)/$$t -max_total_time=$(FUZZ_SECONDS) \
	        -rss_limit_mb=$(FUZZ_RSS_MB) -timeout=10 -print_final_stats=1 \
	        -artifact_prefix=$$crash/ $$work >$(FUZZ_BUILD)/$$t.log 2>&1; \
	    then st=ok; else st=FAILED; failed="$$failed $$t"; \
	        tail -n 40 $(FUZZ_BUILD)/$$t.log; fi; \
	    runs=$$(sed -n 's/^stat::number_of_executed_units: *//p' $(FUZZ_BUILD)/$$t.log); \
	    printf '%-16s %-6s %3s s  %s runs  corpus %s -> %s\n' $$t $$st \
	        $$(( $$(date +%s) - t0 )) "$${runs:-?}" \
	        $$(ls tests/fuzz/corpus/$$t 2>/dev/null | wc -l) $$(ls $$work | wc -l); \
	    if [ "$(FUZZ_MERGE)" = 1 ]; then \
	        mkdir -p tests/fuzz/corpus/$$t; \
	        $(FUZZ_BUILD)/$$t -merge=1 -rss_limit_mb=$(FUZZ_RSS_MB) -timeout=10 \
	            tests/fuzz/corpus/$$t $$work >>$(FUZZ_BUILD)/$$t.log 2>&1; \
	    fi; \
	done; \
	if [ -n "$$failed" ]; then \
	    echo "fuzz: crashes in:$$failed (inputs in $(FUZZ_BUILD)/crashes/; add each to tests/fuzz/regress/<target>/)"; \
	    exit 1; fi; echo "fuzz: no crash"

fuzz-clean:
	rm -rf $(FUZZ_BUILD)

-include $(shell find $(FUZZ_BUILD) -name '*.d' 2>/dev/null)
