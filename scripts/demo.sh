#!/usr/bin/env bash
# The local demo: a private redis-server (temp dir, free port; or the one in
# KAIRAN_REDIS_URL, or the primary the sentinels in KAIRAN_REDIS_SENTINELS
# name: KAIRAN_DEMO_MASTER_NAME, KAIRAN_DEMO_SENTINEL_PASSWORD_FILE), kairand
# with the outbox adapter, a sample Japanese
# broadcast to a few hundred sample recipients, its progress, and where the
# delivered .eml files are.  Then, on a terminal (or KAIRAN_DEMO_CONSOLE=1;
# KAIRAN_DEMO_CONSOLE=0 never), the staff console: a demo school with a
# class list and a staff login, kairand running until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
N=${KAIRAN_DEMO_RECIPIENTS:-300}
DIR=$(mktemp -d "${TMPDIR:-/tmp}/kairan-demo.XXXXXX")
REDIS_PID=
KAIRAND_PID=

cleanup() {
    [ -n "$KAIRAND_PID" ] && kill "$KAIRAND_PID" 2>/dev/null && wait "$KAIRAND_PID" 2>/dev/null || true
    [ -n "$REDIS_PID" ] && kill "$REDIS_PID" 2>/dev/null && wait "$REDIS_PID" 2>/dev/null || true
}
trap cleanup EXIT

free_port() {
    python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'
}

SENTINEL_CONF=
if [ -n "${KAIRAN_REDIS_SENTINELS:-}" ]; then
    # kairand and kairanctl read KAIRAN_REDIS_SENTINELS themselves.
    REDIS_URL=${KAIRAN_REDIS_URL:-redis://127.0.0.1:6379/0}
    SENTINEL_CONF="master_name = ${KAIRAN_DEMO_MASTER_NAME:-kairan}"
    if [ -z "${KAIRAN_DEMO_SENTINEL_PASSWORD_FILE:-}" ]; then
        echo "demo: set KAIRAN_DEMO_SENTINEL_PASSWORD_FILE to a file holding the sentinels' password" >&2
        exit 2
    fi
    SENTINEL_CONF="$SENTINEL_CONF
sentinel_password_file = $KAIRAN_DEMO_SENTINEL_PASSWORD_FILE"
    echo "demo: using the primary the sentinels $KAIRAN_REDIS_SENTINELS name"
elif [ -n "${KAIRAN_REDIS_URL:-}" ]; then
    REDIS_URL=$KAIRAN_REDIS_URL
    echo "demo: using Redis at $REDIS_URL"
else
    PORT=$(free_port)
    redis-server --port "$PORT" --bind 127.0.0.1 --dir "$DIR" \
        --save '' --appendonly no --maxmemory-policy noeviction \
        >"$DIR/redis.log" 2>&1 &
    REDIS_PID=$!
    for _ in $(seq 100); do
        redis-cli -p "$PORT" ping >/dev/null 2>&1 && break
        sleep 0.05
    done
    REDIS_URL="redis://127.0.0.1:$PORT/0"
    echo "demo: private redis-server on 127.0.0.1:$PORT (data in $DIR)"
fi

"$BUILD/kairanctl" keygen "$DIR/key"
HTTP_PORT=$(free_port)
cat >"$DIR/kairan.conf" <<CONF
[redis]
url = $REDIS_URL
$SENTINEL_CONF
[routes]
email = outbox
line = outbox
push = outbox
[outbox]
dir = $DIR/outbox
[security]
key_file = $DIR/key
[smtp]
from = さくら高等学校 <renraku@sakura-hs.example.jp>
[dispatcher]
log_file = $DIR/kairand.log
[http]
listen = 127.0.0.1:$HTTP_PORT
public_url = http://127.0.0.1:$HTTP_PORT
[retention]
audit_dir = $DIR/audit
CONF

"$BUILD/kairand" -c "$DIR/kairan.conf" --check >/dev/null
"$BUILD/kairand" -c "$DIR/kairan.conf" &
KAIRAND_PID=$!

# A few hundred sample guardians, some with carrier addresses that break
# RFC 5322 (they are real and must be delivered).
python3 - "$N" >"$DIR/broadcast.json" <<'PY'
import json, sys
n = int(sys.argv[1])
family = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤"]
rcpts = []
for i in range(n):
    if i % 10 == 0:
        addr = "guardian.%03d.@docomo.ne.jp" % i          # dot before @
    elif i % 10 == 1:
        addr = "hogosha..%03d@ezweb.ne.jp" % i            # two dots
    else:
        addr = "guardian%03d@example.jp" % i
    rcpts.append({"id": "r-%04d" % i, "name": family[i % 10] + " 保護者", "email": addr})
print(json.dumps({
    "tenant": "sakura-hs", "category": "emergency", "priority": "urgent",
    "subject": "【緊急】台風接近に伴う臨時休校のお知らせ",
    "body": "保護者各位\n\n台風の接近に伴い、明日は臨時休校とします。\n"
            "児童生徒は自宅で安全に過ごしてください。\n\nさくら高等学校",
    "channels": ["email"], "recipients": rcpts}, ensure_ascii=False))
PY

ID=$("$BUILD/kairanctl" -c "$DIR/kairan.conf" submit "$DIR/broadcast.json")
echo "demo: submitted broadcast $ID to $N recipients"
rc=0
"$BUILD/kairanctl" -c "$DIR/kairan.conf" watch "$ID" || rc=$?
"$BUILD/kairanctl" -c "$DIR/kairan.conf" status
kill "$KAIRAND_PID"
wait "$KAIRAND_PID" || true
KAIRAND_PID=
count=$(find "$DIR/outbox" -name '*.eml' | wc -l)
echo
echo "demo: $count messages delivered as .eml files in $DIR/outbox/$ID/"
echo "demo: one of them: $(find "$DIR/outbox" -name '*.eml' | sort | head -1)"
echo "demo: kairand's log (JSON lines): $DIR/kairand.log"
# Registration sheets (issue 15): a class of three, its printed sheets, and
# one sheet's URL, ID and passcode to type at /r while kairand runs.
printf 'ID,氏名,クラス,グループ,電話番号\r\nd-1,佐藤 一郎,A,1年A組,090-0000-0001\r\nd-2,鈴木 二郎,A,1年A組,090-0000-0002\r\nd-3,高橋 三子,A,1年A組,090-0000-0003\r\n' >"$DIR/1A.csv"
"$BUILD/kairanctl" -c "$DIR/kairan.conf" recipients import --tenant sakura-hs "$DIR/1A.csv" >/dev/null
"$BUILD/kairanctl" -c "$DIR/kairan.conf" recipients sheets --tenant sakura-hs --group 1年A組 2>/dev/null >"$DIR/sheets.html"
SHEET=$(python3 -c 'import re,sys; m=re.search(r"<dt>ID</dt><dd>([^<]+)</dd><dt>パスコード</dt><dd>([^<]+)</dd><dt>登録ページ</dt><dd class=\"url\">([^<]+)</dd>", open(sys.argv[1]).read()); print("demo: registration sheet: %s  ID %s  passcode %s (printable sheets: %s)" % (m.group(3), m.group(1), m.group(2), sys.argv[1]))' "$DIR/sheets.html" || true)
echo "$SHEET"
CONSOLE=${KAIRAN_DEMO_CONSOLE:-}
if [ -z "$CONSOLE" ]; then
    if [ -t 0 ] && [ -t 1 ]; then CONSOLE=1; else CONSOLE=0; fi
fi
if [ $rc -ne 0 ] || [ "$CONSOLE" != 1 ]; then
    exit $rc
fi

# The console: a demo school (tenant sakura-hs) with two classes and a
# staff login; kairand runs until Ctrl-C.
python3 >"$DIR/class.csv" <<'PY'
family = ["佐藤", "鈴木", "高橋", "田中", "伊藤", "渡辺", "山本", "中村", "小林", "加藤", "吉田", "山田"]
given = ["一郎", "花子", "翔太", "美咲", "大輔", "陽菜", "蓮", "結衣", "悠真", "さくら", "颯太", "葵"]
print("ID,氏名,学年,クラス,グループ,保護者氏名,電話番号,メール\r")
n = 0
for k, klass in enumerate(("1組", "2組")):
    for i in range(12):
        n += 1
        f = family[(i + 5 * k) % 12]
        mail = "" if i == 11 else "hogosha%03d@example.jp" % n
        print("s-%03d,%s %s,1年,%s,1年%s,%s 保護者,090-0000-%04d,%s\r"
              % (n, f, given[(i + 7 * k) % 12], klass, klass, f, n, mail))
PY
"$BUILD/kairanctl" -c "$DIR/kairan.conf" recipients import --tenant sakura-hs "$DIR/class.csv" >/dev/null
PW=$("$BUILD/kairanctl" -c "$DIR/kairan.conf" staff add --tenant sakura-hs --login demo \
    --name "デモ 先生" --role admin | tail -1)
"$BUILD/kairand" -c "$DIR/kairan.conf" &
KAIRAND_PID=$!
for _ in $(seq 100); do
    python3 -c 'import socket,sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 1)' \
        "$HTTP_PORT" 2>/dev/null && break
    sleep 0.1
done
cat <<EOF

demo: the staff console of the demo school (sakura-hs, classes 1年1組 and 1年2組):

    http://127.0.0.1:$HTTP_PORT/c/sakura-hs/

demo: log in with  ログインID  demo
demo:              パスワード  $PW   (the initial password: you choose a new one)
$SHEET
demo: (a guardian signs up there; 名簿 prints the other sheets and lists 未登録)
demo: then 新規連絡 sends a first message; each one becomes .eml files in
demo: $DIR/outbox/<broadcast>/ (the outbox adapter: nothing leaves this machine).
demo: Ctrl-C stops kairand and redis-server.
EOF
# Ctrl-C (or a TERM) ends the demo normally: the EXIT trap stops kairand
# and redis-server.
trap 'exit 0' INT TERM
wait "$KAIRAND_PID" || true
KAIRAND_PID=
exit 0
