# kairan - one readable Makefile.
#   make            build kairand and kairanctl into build/
#   make test       every test; ends with "N passed, N failed"
#   make test SANITIZE=1   the same under ASan+UBSan (build-san/)
#   make demo       local demo: private redis-server, outbox adapter
#   make bench      benchmarks (figures printed, never asserted)

PKGS    := libuv hiredis jansson libcurl openssl inih libsystemd
# libargon2: staff passwords (Argon2id, model/password.c)
PKGS    += libargon2
# libqrencode: the QR code on the registration sheets (common/qrsvg.c)
PKGS    += libqrencode
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
# libunistring has no .pc file: NFKC of group and category names (model/label.c),
# grapheme cluster boundaries for the cuts of LINE and push texts (common/utf8.c)
LDLIBS  += -lunistring
LDFLAGS := $(SANFLAGS)

# The library: everything but the two programs' main files.
LIB_SRCS := \
	common/kn.c common/ipscope.c common/log.c common/seal.c common/signed.c common/argv.c common/text.c \
	common/utf8.c common/json.c common/buf.c common/codec.c common/file.c common/csvcell.c common/csv.c \
	config/config.c config/check.c config/cross.c \
	model/address.c model/message.c model/broadcast.c model/broadcast_store.c model/ack.c model/job.c model/directory.c model/token.c model/audit.c model/line_event.c \
	model/label.c model/password.c model/totp.c model/session.c model/device.c \
	model/child.c model/regsheet.c common/qrsvg.c \
	model/dsn.c model/gaiji.c \
	adapters/mime.c adapters/net.c adapters/http.c adapters/jwt.c adapters/adapter.c \
	adapters/outbox.c adapters/smtp_client.c adapters/smtp.c adapters/smtp_connect.c adapters/line.c adapters/sendgrid.c adapters/push.c adapters/fcm.c adapters/apns.c adapters/apns_token.c \
	queue/redis_uv.c queue/queue.c queue/scripts.c queue/keys.c queue/poison.c queue/retention.c \
	queue/submit.c queue/sentinel.c queue/staff.c queue/roster.c queue/roster_store.c queue/rstates.c queue/registration.c \
	dispatcher/expand.c dispatcher/expand_raw.c dispatcher/expand_audience.c dispatcher/expand_page.c dispatcher/expand_read.c dispatcher/expand_flat.c dispatcher/expand_fair.c \
	dispatcher/worker.c dispatcher/worker_retry.c dispatcher/worker_read.c dispatcher/worker_finish.c \
	dispatcher/route.c dispatcher/rate.c \
	dispatcher/daemon.c dispatcher/module.c dispatcher/notify.c dispatcher/http/server.c dispatcher/http/parser.c dispatcher/http/framing.c dispatcher/http/limits.c \
	dispatcher/http/respond.c dispatcher/http/util.c dispatcher/http/batch.c dispatcher/http/routes.c \
	dispatcher/http/auth.c dispatcher/http/metrics.c dispatcher/http/queues.c dispatcher/http/broadcasts.c dispatcher/http/bc_submit.c \
	dispatcher/http/confirm.c dispatcher/http/recipients.c dispatcher/http/line_webhook.c dispatcher/http/page.c dispatcher/ack.c dispatcher/purge.c dispatcher/escalate.c \
	dispatcher/bounce.c dispatcher/http/sendgrid_events.c \
	dispatcher/http/session.c dispatcher/http/session_password.c dispatcher/http/session_totp.c dispatcher/http/session_auth.c \
	dispatcher/http/console.c dispatcher/http/resend.c \
	dispatcher/http/roster.c dispatcher/http/staff_admin.c dispatcher/http/directory_edit.c \
	dispatcher/http/register.c dispatcher/http/register_link.c
# The console's compose page (issue 14): groups, directory search, templates,
# preview, send to me.
LIB_SRCS += adapters/preview.c dispatcher/http/compose.c \
	dispatcher/http/templates.c dispatcher/http/preview.c
LIB_SRCS += dispatcher/http/phones.c
LIB_SRCS += model/gtoken.c
# Registration sheets, 未登録 and the reminder, for kairanctl and the
# console alike (issue 15).
LIB_SRCS += queue/sheets.c dispatcher/http/sheets.c
# The next guardian (issue 16): a child's guardians in order.
LIB_SRCS += model/guardian.c
# One APNs provider token per team and key, shared by every kairand through
# Redis (adapters/adapter.h, struct kn_adapter_host).
LIB_SRCS += model/cred.c dispatcher/cred.c
# One-click unsubscribe (issue 16): /u/{token} and its page (web/unsub/).
LIB_SRCS += dispatcher/http/unsub.c
# The guardian's my page (issue 16).
LIB_SRCS += dispatcher/http/mypage.c dispatcher/http/mypage_link.c dispatcher/http/guardian_mail.c
LIB_SRCS := $(wildcard $(LIB_SRCS))
LIB_OBJS := $(LIB_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/web_status.o \
            $(BUILD)/gen/web_console.o $(BUILD)/gen/web_register.o \
            $(BUILD)/gen/web_register_strings.o \
            $(BUILD)/gen/lua.o $(BUILD)/gen/pwlist.o
LIB_OBJS += $(BUILD)/gen/web_unsub.o $(BUILD)/gen/web_unsub_strings.o
LIB_OBJS += $(BUILD)/gen/web_mypage.o

# The Redis scripts are files, queue/lua/<name>.lua (README, "A new Redis
# step").  Each is assembled into $(BUILD)/lua/<name>.lua, its
# "--#include NAME" lines replaced by queue/lua/lib/NAME.lua
# (mk/lua-include.awk); scripts/embed.c turns those into $(BUILD)/gen/lua.c,
# one array kn_lua_<name> each (declared in queue/lua.h).
LUA_SRCS := $(wildcard queue/lua/*.lua)
LUA_LIBS := $(wildcard queue/lua/lib/*.lua)
LUA_OUT  := $(LUA_SRCS:queue/lua/%=$(BUILD)/lua/%)

UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:tests/unit/%.c=$(BUILD)/tests/%)

# kairand and kairanctl link their own objects directly; their modules
# (dispatcher/module.c) and commands (cli/kairanctl.c) are rows of tables.
DAEMON_OBJS := $(patsubst %.c,$(BUILD)/%.o,$(filter dispatcher/%,$(LIB_SRCS)))
CLI_SRCS := $(filter-out cli/kairanctl.c,$(wildcard cli/*.c))
CLI_OBJS := $(CLI_SRCS:%.c=$(BUILD)/%.o)

# The layers below the front ends (DESIGN.md): kairanctl links cli/ and
# this archive only, so a command that reaches into the daemon or an
# adapter fails to link instead of pulling them in.
CORE_SRCS := $(filter common/% config/% model/% queue/%,$(LIB_SRCS))
CORE_OBJS := $(CORE_SRCS:%.c=$(BUILD)/%.o) $(BUILD)/gen/lua.o \
	$(BUILD)/gen/pwlist.o

PROGS := $(BUILD)/kairand $(BUILD)/kairanctl

.PHONY: all test check unit demo bench clean fmt-check fmt deps
all: $(PROGS) $(UNIT_BINS) $(BUILD)/bench/curl_loop

$(BUILD)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -c $< -o $@

# Pages are real files, embedded at build time (STYLE.md 1): scripts/embed.c,
# built first with the same compiler, turns each file into a byte array
# kn__web_<name> (and its length kn__web_<name>_len) in $(BUILD)/gen/.
# Editing a page rebuilds the generated source, its object and kairand.
WEB_STATUS := status_html=web/status/index.html \
	status_css=web/status/status.css status_js=web/status/status.js

$(BUILD)/scripts/embed: scripts/embed.c
	@mkdir -p $(dir $@)
	$(CC) -std=c11 -O2 -Wall -Wextra -Werror -o $@ $<

$(BUILD)/gen/web_status.c: $(BUILD)/scripts/embed $(foreach f,$(WEB_STATUS),$(word 2,$(subst =, ,$(f))))
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ $(addprefix kn__web_,$(WEB_STATUS))

# The console (web/console/): every file of the folder, by a glob, so a
# new page needs no edit here; served by dispatcher/http/console.c from
# the table kn__web_console (scripts/embed.c -t).
WEB_CONSOLE := $(sort $(wildcard web/console/*))

$(BUILD)/gen/web_console.c: $(BUILD)/scripts/embed $(WEB_CONSOLE) web/console
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ -t kn__web_console $(foreach f,$(WEB_CONSOLE),kn__webc_$(subst .,_,$(subst -,_,$(notdir $(f))))=$(f))

# The guardians' registration page (dispatcher/http/register.c), the same way.
WEB_REGISTER := register_html=web/register/index.html \
	register_css=web/register/register.css \
	register_js=web/register/register.js

$(BUILD)/gen/web_register.c: $(BUILD)/scripts/embed $(foreach f,$(WEB_REGISTER),$(word 2,$(subst =, ,$(f))))
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ $(addprefix kn__web_,$(WEB_REGISTER))

# The one-click unsubscribe page (dispatcher/http/unsub.c), the same way.
WEB_UNSUB := unsub_html=web/unsub/page.html unsub_css=web/unsub/unsub.css

$(BUILD)/gen/web_unsub.c: $(BUILD)/scripts/embed $(foreach f,$(WEB_UNSUB),$(word 2,$(subst =, ,$(f))))
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ $(addprefix kn__web_,$(WEB_UNSUB))
# Its strings, one file per language, by a glob as the registration
# page's (below); table kn__web_unsub_strings.
WEB_UNSUB_STRINGS := $(sort $(wildcard web/unsub/strings-*.json))

$(BUILD)/gen/web_unsub_strings.c: $(BUILD)/scripts/embed $(WEB_UNSUB_STRINGS) web/unsub
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ -t kn__web_unsub_strings $(foreach f,$(WEB_UNSUB_STRINGS),kn__webu_$(subst .,_,$(subst -,_,$(notdir $(f))))=$(f))
# The guardian's my page (dispatcher/http/mypage.c), the same way.
WEB_MYPAGE := mypage_html=web/mypage/index.html \
	mypage_css=web/mypage/mypage.css \
	mypage_js=web/mypage/mypage.js \
	mypage_ja=web/mypage/strings-ja.json \
	mypage_en=web/mypage/strings-en.json \
	mypage_pt=web/mypage/strings-pt.json \
	mypage_zh=web/mypage/strings-zh.json \
	mypage_vi=web/mypage/strings-vi.json \
	mypage_fil=web/mypage/strings-fil.json

$(BUILD)/gen/web_mypage.c: $(BUILD)/scripts/embed $(foreach f,$(WEB_MYPAGE),$(word 2,$(subst =, ,$(f))))
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ $(addprefix kn__web_,$(WEB_MYPAGE))
# Its strings, one file per language, by a glob: a language is a file
# (docs/registration.md); table kn__web_register_strings.
WEB_REGISTER_STRINGS := $(sort $(wildcard web/register/strings-*.json))

$(BUILD)/gen/web_register_strings.c: $(BUILD)/scripts/embed $(WEB_REGISTER_STRINGS) web/register
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ -t kn__web_register_strings $(foreach f,$(WEB_REGISTER_STRINGS),kn__webr_$(subst .,_,$(subst -,_,$(notdir $(f))))=$(f))

# The common-password list of the staff password policy (model/password.c).
$(BUILD)/gen/pwlist.c: $(BUILD)/scripts/embed model/common-passwords.txt
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ kn__common_passwords=model/common-passwords.txt

# The Redis scripts, the same way (LUA_SRCS above).
$(BUILD)/lua/%.lua: queue/lua/%.lua $(LUA_LIBS) mk/lua-include.awk
	@mkdir -p $(dir $@)
	awk -v lib=queue/lua/lib -f mk/lua-include.awk $< >$@.tmp && mv $@.tmp $@

$(BUILD)/gen/lua.c: $(BUILD)/scripts/embed $(LUA_OUT) queue/lua
	@mkdir -p $(dir $@)
	$(BUILD)/scripts/embed $@ $(foreach f,$(LUA_OUT),kn_lua_$(basename $(notdir $(f)))=$(f))

$(BUILD)/gen/%.o: $(BUILD)/gen/%.c
	$(CC) $(CFLAGS) -c $< -o $@

$(BUILD)/libkairan.a: $(LIB_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kairand: $(BUILD)/dispatcher/main.o $(DAEMON_OBJS) $(BUILD)/libkairan.a
	$(CC) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(BUILD)/libkairan-core.a: $(CORE_OBJS)
	@rm -f $@
	ar rcs $@ $^

$(BUILD)/kairanctl: $(BUILD)/cli/kairanctl.o $(CLI_OBJS) $(BUILD)/libkairan-core.a
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
FMT_SRCS := $(LIB_SRCS) dispatcher/main.c cli/kairanctl.c scripts/embed.c \
	$(wildcard */*.h) $(wildcard dispatcher/http/*.h)
fmt-check:
	@clang-format --dry-run --Werror $(FMT_SRCS) && echo "fmt-check: ok"

fmt:
	clang-format -i $(FMT_SRCS)

clean:
	rm -rf build build-san

-include $(shell find $(BUILD) -type f -name '*.d' 2>/dev/null)
-include mk/install.mk
-include mk/fuzz.mk
-include mk/faults.mk

# Includes point down only (DESIGN.md); see scripts/layers.sh.
.PHONY: layers
layers:
	@scripts/layers.sh
