# kairan - one readable Makefile.
#   make            build kairand and kairanctl into build/
#   make test       every test; ends with "N passed, N failed"
#   make test SANITIZE=1   the same under ASan+UBSan (build-san/)
#   make demo       local demo: private redis-server, outbox adapter
#   make bench      benchmarks (figures printed, never asserted)

PKGS    := libuv hiredis jansson libcurl openssl inih libsystemd
CC      ?= cc
ifeq ($(SANITIZE),1)
BUILD   ?= build-san
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else
BUILD   ?= build
SANFLAGS :=
endif
OPT     ?= -O2 -g
CFLAGS  := -std=c11 -D_GNU_SOURCE $(OPT) -Wall -Wextra -Werror -Wshadow \
           -Wno-unused-parameter -MMD -MP $(SANFLAGS) \
           -I. $(shell pkg-config --cflags $(PKGS))
LDLIBS  := $(shell pkg-config --libs $(PKGS)) -lhttp_parser -lm
LDFLAGS := $(SANFLAGS)

# The library: everything but the two programs' main files.
LIB_SRCS := \
	common/kn.c common/log.c common/seal.c common/argv.c common/text.c \
	common/utf8.c \
	config/config.c \
	model/address.c model/message.c \
	adapters/mime.c adapters/net.c adapters/http.c adapters/jwt.c adapters/adapter.c \
	adapters/outbox.c adapters/smtp.c adapters/line.c adapters/sendgrid.c adapters/push.c adapters/fcm.c adapters/apns.c \
	queue/redis_uv.c queue/queue.c queue/scripts.c queue/keys.c queue/poison.c \
	dispatcher/broadcast.c dispatcher/expand.c dispatcher/expand_raw.c dispatcher/expand_audience.c dispatcher/expand_page.c dispatcher/worker.c dispatcher/worker_read.c dispatcher/route.c dispatcher/rate.c \
	dispatcher/daemon.c dispatcher/module.c dispatcher/notify.c dispatcher/http.c dispatcher/ack.c dispatcher/purge.c dispatcher/escalate.c
LIB_SRCS := $(wildcard $(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

# kairand and kairanctl link their own objects directly; their modules
# (dispatcher/module.c) and commands (cli/kairanctl.c) are rows of tables.
DAEMON_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter dispatcher/%,$(LIB_SRCS)))
CLI_SRCS := $(filter-out cli/kairanctl.c,$(wildcard cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)

PROGS := $(BUILD)/kairand $(BUILD)/kairanctl

.PHONY: all test check unit demo bench clean fmt-check fmt deps
all: $(PROGS) $(UNIT_BINS) $(BUILD)/bench/curl_loop

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libkairan.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kairand: $(BUILD)/dispatcher/main.o $(DAEMON_OBJS) $(BUILD)/libkairan.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/kairanctl: $(BUILD)/cli/kairanctl.o $(CLI_OBJS) $(BUILD)/libkairan.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/bench/curl_loop: $(BUILD)/bench/curl_loop.o $(BUILD)/libkairan.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/tests/%: $(BUILD)/tests/unit/%.o $(BUILD)/libkairan.a
	@mkdir -p $(dir $@)
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS) $(shell pkg-config --libs cmocka)

$(BUILD)/tests/unit/%.o: tests/unit/%.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(shell pkg-config --cflags cmocka) -Wno-shadow -c $< -o $@

test: all
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) tests/run.sh

unit: $(UNIT_BINS)
	@BUILD=$(BUILD) SANITIZE=$(SANITIZE) KAIRAN_ONLY=unit tests/run.sh

check: test

demo: deps
	@$(MAKE) --no-print-directory all
	@BUILD=$(BUILD) scripts/demo.sh

deps:
	@scripts/deps.sh

bench: all
	@BUILD=$(BUILD) bench/run.sh

# .clang-format: 4 spaces, 80 columns, function braces on their own line
# (STYLE.md 12).  `make fmt` rewrites the files in place.
FMT_SRCS := $(LIB_SRCS) dispatcher/main.c cli/kairanctl.c $(wildcard */*.h)
fmt-check:
	@clang-format --dry-run --Werror $(FMT_SRCS) && echo "fmt-check: ok"

fmt:
	clang-format -i $(FMT_SRCS)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -name '*.d' 2>/dev/null)
-include mk/install.mk
-include mk/fuzz.mk
-include mk/faults.mk

# Includes point down only (DESIGN.md); see scripts/layers.sh.
.PHONY: layers
layers:
	@scripts/layers.sh
