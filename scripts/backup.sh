#!/usr/bin/env bash
# backup.sh (installed as kairan-backup) - backups of kairan's Redis data
# and key file, kept in N dated generations (the white papers promise daily
# backups, 30 kept), and their restore.
#
#   backup.sh [--redis-cli-args ARGS] [--dir DIR] [--keep N] [--key FILE]
#             [--sentinels HOST:PORT,... [--master-name NAME]]
#       BGSAVE, wait for it (LASTSAVE), copy the RDB file (and the AOF
#       directory, if AOF is on) and the key file into DIR/<date>-<time>,
#       with SHA256SUMS; then keep only the N newest generations.
#   backup.sh --list [--dir DIR]
#   backup.sh --restore GEN [--dir DIR] [--redis-dir D] [--key-dest F]
#                           [--apply [--force]]
#       Check generation GEN (a name, "latest" or a path) and print the
#       restore steps; with --apply, do the file steps too.  The files a
#       restore replaces go into DIR/replaced-<date>-<time>, which the
#       backup runs delete once it is N days old (N = --keep: one
#       generation a day), as the generations themselves: they hold the
#       same data and must not outlive retention (retention.backup_days).
#
# It must run on the Redis host (it copies Redis' files) as a user who may
# read them (root, or redis with read access to the key file).  The Redis
# password goes in the environment (REDISCLI_AUTH), never in ARGS.  The
# generations hold sealed addresses and the key that opens them: the
# backup directory is mode 0700; keep its copies as safe as the key.
set -euo pipefail

VERSION=0.5.0
PROG=kairan-backup

# Defaults; the environment may change them (kairan-backup.service reads
# /etc/default/kairan-backup), the options override both.
dir=${KAIRAN_BACKUP_DIR:-/var/backups/kairan}
keep=${KAIRAN_BACKUP_KEEP:-30}
key=${KAIRAN_BACKUP_KEY:-/etc/kairan/key}
with_key=1
cli_args=${KAIRAN_BACKUP_REDIS_CLI_ARGS:-}
sentinels=${KAIRAN_BACKUP_SENTINELS:-}
master_name=${KAIRAN_BACKUP_MASTER_NAME:-kairan}
timeout=600
mode=backup
gen=
redis_dir=
dbfilename=dump.rdb
appenddirname=appendonlydir
key_dest=
apply=0
force=0

usage() {
    cat <<EOF
usage: $PROG [--redis-cli-args ARGS] [--dir DIR] [--keep N] [--key FILE]
       $PROG --list [--dir DIR]
       $PROG --restore GEN [--dir DIR] [--redis-dir DIR] [--key-dest FILE]
                          [--apply [--force]]

Takes a backup: BGSAVE, then copies Redis' RDB file (and AOF directory) and
the kairan key file into DIR/<date>-<time>, keeping the N newest.

  --redis-cli-args ARGS  arguments for redis-cli, e.g. "-h 127.0.0.1 -p 6379"
                         (the password in REDISCLI_AUTH, not here)
  --sentinels LIST       Redis Sentinel: host:port of each sentinel, comma
                         separated; the primary they name (ROLE checked) is
                         backed up, and it must be on this host
  --master-name NAME     the sentinels' name of the primary (default kairan)
  --dir DIR              where generations are kept (default $dir)
  --keep N               generations to keep, 1 or more (default $keep)
  --key FILE             key file to save (default $key)
  --no-key               do not save a key file
  --timeout SEC          longest wait for BGSAVE (default $timeout)
  --list                 list the generations, oldest first
  --restore GEN          check generation GEN (name, "latest" or path) and
                         print the restore steps
  --redis-dir DIR        restore: Redis' data directory (default: CONFIG GET
                         dir while Redis runs, else /var/lib/redis)
  --dbfilename NAME      restore: Redis' dbfilename (default dump.rdb)
  --key-dest FILE        restore: where the key file goes (default $key)
  --apply                restore: do the file steps (Redis must be stopped);
                         the files replaced go into DIR/replaced-<time>,
                         deleted by the backup run once N days old
  --force                restore: even though Redis answers PING
  -h, --help             this help
  -V, --version          print the version
environment: REDISCLI_AUTH (the Redis password), KAIRAN_BACKUP_SENTINEL_AUTH
  (the sentinels' password), KAIRAN_BACKUP_DIR, KAIRAN_BACKUP_KEEP,
  KAIRAN_BACKUP_KEY, KAIRAN_BACKUP_REDIS_CLI_ARGS, KAIRAN_BACKUP_SENTINELS,
  KAIRAN_BACKUP_MASTER_NAME (defaults of --dir, --keep, --key,
  --redis-cli-args, --sentinels, --master-name)
exit: 0 ok, 1 failed, 2 usage
EOF
}

die() {
    echo "$PROG: $*" >&2
    exit 1
}

usage_error() {
    echo "$PROG: $*" >&2
    echo "try '$PROG --help'" >&2
    exit 2
}

need_arg() {
    [ "$#" -ge 2 ] || usage_error "$1 needs a value"
}

while [ "$#" -gt 0 ]; do
    case "$1" in
    --redis-cli-args) need_arg "$@"; cli_args=$2; shift 2 ;;
    --sentinels) need_arg "$@"; sentinels=$2; shift 2 ;;
    --master-name) need_arg "$@"; master_name=$2; shift 2 ;;
    --dir) need_arg "$@"; dir=$2; shift 2 ;;
    --keep) need_arg "$@"; keep=$2; shift 2 ;;
    --key) need_arg "$@"; key=$2; with_key=1; shift 2 ;;
    --no-key) with_key=0; shift ;;
    --timeout) need_arg "$@"; timeout=$2; shift 2 ;;
    --list) mode=list; shift ;;
    --restore) need_arg "$@"; mode=restore; gen=$2; shift 2 ;;
    --redis-dir) need_arg "$@"; redis_dir=$2; shift 2 ;;
    --dbfilename) need_arg "$@"; dbfilename=$2; shift 2 ;;
    --key-dest) need_arg "$@"; key_dest=$2; shift 2 ;;
    --apply) apply=1; shift ;;
    --force) force=1; shift ;;
    -h | --help) usage; exit 0 ;;
    -V | --version) echo "$PROG $VERSION"; exit 0 ;;
    *) usage_error "unknown argument '$1'" ;;
    esac
done

case "$keep" in
'' | *[!0-9]* | 0) usage_error "--keep must be a number of generations, 1 or more (got '$keep')" ;;
esac
case "$timeout" in
'' | *[!0-9]* | 0) usage_error "--timeout must be a number of seconds, 1 or more (got '$timeout')" ;;
esac
case "$dbfilename" in
*/*) usage_error "--dbfilename is a file name, not a path" ;;
esac
[ -n "$key_dest" ] || key_dest=$key

# redis-cli with the given arguments (word-split on purpose: "-p 6379").
rcli() {
    # shellcheck disable=SC2086
    redis-cli $cli_args "$@" 2>&1 | tr -d '\r'
}

# One field of INFO persistence.
info_field() {
    # shellcheck disable=SC2086
    redis-cli $cli_args INFO persistence 2>/dev/null | tr -d '\r' |
        sed -n "s/^$1://p"
}

# CONFIG GET NAME: the value (second line).
config_get() {
    # shellcheck disable=SC2086
    redis-cli $cli_args CONFIG GET "$1" 2>/dev/null | sed -n 2p
}

is_generation() {
    [[ "$1" =~ ^[0-9]{8}-[0-9]{6}(-[0-9]+)?$ ]]
}

# What a restore replaced (Redis' files, the key) holds the same data as a
# generation, so it is kept as long as one: N days, N = --keep (one
# generation a day; retention.backup_days says so).  Deleted by the
# backup run, which holds the lock; the name says when it was moved.
prune_replaced() {
    local d name when now
    now=$(date +%s)
    for d in "$dir"/replaced-*/; do
        [ -d "$d" ] || continue
        d=${d%/}
        name=${d##*/replaced-}
        [[ "$name" =~ ^([0-9]{4})([0-9]{2})([0-9]{2})-([0-9]{2})([0-9]{2})([0-9]{2})(-[0-9]+)?$ ]] || continue
        when=$(date -d "${BASH_REMATCH[1]}-${BASH_REMATCH[2]}-${BASH_REMATCH[3]} ${BASH_REMATCH[4]}:${BASH_REMATCH[5]}:${BASH_REMATCH[6]}" +%s 2>/dev/null) || continue
        if [ $((now - when)) -ge $((keep * 86400)) ]; then
            rm -rf "${d:?}"
            echo "pruned: $d (replaced by a restore $(((now - when) / 86400)) days ago; kept $keep)"
        fi
    done
}

# Generation names, oldest first.
generations() {
    local d
    [ -d "$dir" ] || return 0
    for d in "$dir"/*/; do
        d=${d%/}
        d=${d##*/}
        if is_generation "$d"; then
            echo "$d"
        fi
    done | sort -V
}

# --------------------------------------------------------------- list

if [ "$mode" = list ]; then
    generations | while read -r g; do
        size=$(du -sh "$dir/$g" 2>/dev/null | cut -f1)
        echo "$g  $size  $(sed -n 's/^saved_at=//p' "$dir/$g/INFO" 2>/dev/null)"
    done
    exit 0
fi

# --------------------------------------------------------------- restore

if [ "$mode" = restore ]; then
    case "$gen" in
    latest) gen=$(generations | tail -n 1)
        [ -n "$gen" ] || die "no generation in $dir" ;;
    esac
    if [ -d "$gen" ] && [[ "$gen" == */* ]]; then
        src=$gen
    else
        src=$dir/$gen
    fi
    [ -d "$src" ] || die "no generation '$gen' in $dir (see $PROG --list)"
    [ -f "$src/dump.rdb" ] || die "$src has no dump.rdb: not a complete generation"
    (cd "$src" && sha256sum --quiet -c SHA256SUMS) ||
        die "$src: checksums do not match (SHA256SUMS): this copy is damaged"
    echo "checked: $src (SHA256SUMS ok)"
    if command -v redis-check-rdb >/dev/null; then
        redis-check-rdb "$src/dump.rdb" >/dev/null 2>&1 ||
            die "$src/dump.rdb: redis-check-rdb finds it damaged"
        echo "checked: $src/dump.rdb (redis-check-rdb ok)"
    fi
    running=0
    # shellcheck disable=SC2086
    if [ "$(redis-cli $cli_args PING 2>/dev/null)" = PONG ]; then
        running=1
        if [ -z "$redis_dir" ]; then
            redis_dir=$(config_get dir)
            dbfilename=$(config_get dbfilename)
        fi
    fi
    [ -n "$redis_dir" ] || redis_dir=/var/lib/redis
    stamp=$(date +%Y%m%d-%H%M%S)
    replaced=$dir/replaced-$stamp
    n=1
    while [ -e "$replaced" ]; do
        n=$((n + 1))
        replaced=$dir/replaced-$stamp-$n
    done
    has_key=0
    [ -f "$src/key" ] && has_key=1

    if [ "$apply" = 0 ]; then
        cat <<EOF
Restore of $src into Redis' data directory $redis_dir:
  1. Stop every kairand, then Redis:
       systemctl stop 'kairand*' redis-server
  2. Put the snapshot in place, the current files aside into the backup
     directory (they hold the same data as a backup: kairan-backup deletes
     them after $keep days, as it does the generations):
       mkdir -m 0700 $replaced
       mv $redis_dir/$dbfilename $replaced/$dbfilename
       mv $redis_dir/$appenddirname $replaced/$appenddirname
       install -m 0640 -o redis -g redis $src/dump.rdb $redis_dir/$dbfilename
EOF
        if [ "$has_key" = 1 ]; then
            cat <<EOF
  3. The key file, if $key_dest is lost or differs:
       mv $key_dest $replaced/key
       install -m 0600 -o kairan -g kairan $src/key $key_dest
EOF
        fi
        cat <<EOF
  4. Start Redis once with AOF off, so that it loads the snapshot (with AOF
     on and no AOF files it would start empty), then turn AOF on again,
     which writes a new AOF from memory:
       set "appendonly no" in redis.conf; systemctl start redis-server
       redis-cli CONFIG SET appendonly yes
       wait until "redis-cli INFO persistence" shows aof_rewrite_in_progress:0
       set "appendonly yes" in redis.conf again
  5. Check: redis-cli DBSIZE; kairanctl status; then start kairand.
Or let $PROG do steps 2 and 3: add --apply (Redis must be stopped).
EOF
        exit 0
    fi

    if [ "$running" = 1 ] && [ "$force" = 0 ]; then
        die "Redis answers PING: stop it before --apply (or add --force if that Redis is another one)"
    fi
    [ -d "$redis_dir" ] || die "--redis-dir $redis_dir is not a directory"
    owner=$(stat -c %u:%g "$redis_dir")
    # What the restore replaces goes where the backups' retention deletes
    # it (prune_replaced), never to stay beside Redis' files for good.
    aside() { # path name-in-$replaced
        if [ ! -d "$replaced" ]; then
            (umask 077 && mkdir -p "$dir" && mkdir "$replaced")
            chmod 0700 "$dir" "$replaced"
            {
                echo "replaced_at=$(date -Iseconds)"
                echo "restored=$src"
                echo "deleted_after_days=$keep"
            } >"$replaced/INFO"
        fi
        mv "$1" "$replaced/$2"
        echo "$2=$1" >>"$replaced/INFO"
        echo "moved aside: $1 -> $replaced/$2"
    }
    if [ -e "$redis_dir/$dbfilename" ]; then
        aside "$redis_dir/$dbfilename" "$dbfilename"
    fi
    if [ -e "$redis_dir/$appenddirname" ]; then
        aside "$redis_dir/$appenddirname" "$appenddirname"
    fi
    cp "$src/dump.rdb" "$redis_dir/$dbfilename.restoring"
    chmod 0640 "$redis_dir/$dbfilename.restoring"
    [ "$(id -u)" != 0 ] || chown "$owner" "$redis_dir/$dbfilename.restoring"
    mv "$redis_dir/$dbfilename.restoring" "$redis_dir/$dbfilename"
    echo "restored: $redis_dir/$dbfilename"
    if [ "$has_key" = 1 ] && [ "$with_key" = 1 ]; then
        if [ -f "$key_dest" ] && cmp -s "$src/key" "$key_dest"; then
            echo "key: $key_dest is the same as the backup's"
        else
            kowner=
            if [ -e "$key_dest" ]; then
                kowner=$(stat -c %u:%g "$key_dest")
                aside "$key_dest" key
            elif getent passwd kairan >/dev/null; then
                kowner=kairan:kairan
            fi
            (umask 077 && cp "$src/key" "$key_dest.restoring")
            chmod 0600 "$key_dest.restoring"
            if [ -n "$kowner" ] && [ "$(id -u)" = 0 ]; then
                chown "$kowner" "$key_dest.restoring"
            fi
            mv "$key_dest.restoring" "$key_dest"
            echo "restored: $key_dest (mode 0600)"
        fi
    fi
    if [ -d "$replaced" ]; then
        echo "the replaced files are in $replaced: the daily backup deletes them after $keep days (--keep; delete them sooner once the restore is checked)"
    fi
    cat <<EOF
next: start Redis once with "appendonly no" so that it loads the snapshot,
      then: redis-cli CONFIG SET appendonly yes  (writes a new AOF), wait for
      aof_rewrite_in_progress:0, set "appendonly yes" in redis.conf again,
      check with "kairanctl status", and start kairand.
EOF
    exit 0
fi

# --------------------------------------------------------------- backup

command -v redis-cli >/dev/null || die "redis-cli not found (Debian package redis-tools)"

# Redis Sentinel (the Sentinel client guidelines, as kairand does): ask
# each sentinel in turn with a short timeout for the primary, check that
# ROLE says master there, and back that up.  It must be on this host:
# the backup copies Redis' files.
if [ -n "$sentinels" ]; then
    case "$master_name" in
    '' | *[!A-Za-z0-9._-]*) usage_error "--master-name: letters, digits, '.', '_', '-' only" ;;
    esac
    primary=
    for s in ${sentinels//,/ }; do
        sh=${s%:*}
        sp=${s##*:}
        case "$sp" in '' | *[!0-9]*) usage_error "--sentinels: '$s' is not host:port" ;; esac
        addr=$(REDISCLI_AUTH=${KAIRAN_BACKUP_SENTINEL_AUTH:-} timeout 2 \
            redis-cli --no-auth-warning -h "$sh" -p "$sp" \
            SENTINEL get-master-addr-by-name "$master_name" 2>/dev/null | tr -d '\r' || true)
        ph=$(printf '%s\n' "$addr" | sed -n 1p)
        pp=$(printf '%s\n' "$addr" | sed -n 2p)
        case "$ph:$pp" in
        *[!A-Za-z0-9.:_-]* | :* | *:) continue ;;
        esac
        case "$pp" in '' | *[!0-9]*) continue ;; esac
        # shellcheck disable=SC2086
        role=$(timeout 5 redis-cli $cli_args -h "$ph" -p "$pp" ROLE 2>/dev/null | tr -d '\r' | sed -n 1p || true)
        if [ "$role" != master ]; then
            echo "$PROG: sentinel $s names $ph:$pp, which is not a primary (ROLE ${role:-no answer}); asking the next" >&2
            continue
        fi
        primary="$ph $pp"
        break
    done
    [ -n "$primary" ] || die "no sentinel of $sentinels names a primary '$master_name' that says ROLE master (is KAIRAN_BACKUP_SENTINEL_AUTH set? a failover going on? try again)"
    # shellcheck disable=SC2086
    set -- $primary
    cli_args="$cli_args -h $1 -p $2"
    if ! { [ "${1#127.}" != "$1" ] || [ "$1" = localhost ] || [ "$1" = ::1 ] ||
        ip -o addr 2>/dev/null | grep -qwF "$1"; }; then
        die "the primary is $1:$2, not on this host: run $PROG on the primary's host (it copies Redis' files)"
    fi
    echo "primary (from the sentinels): $1:$2"
fi

# shellcheck disable=SC2086
pong=$(redis-cli $cli_args PING 2>&1 || true)
[ "$pong" = PONG ] || die "cannot reach Redis with redis-cli $cli_args: $pong"

if [ "$with_key" = 1 ]; then
    [ -f "$key" ] || die "key file $key not found: without it the backup cannot be read (give --key FILE, or --no-key on purpose)"
    [ -r "$key" ] || die "cannot read the key file $key: run as root or as its owner"
fi

umask 077
mkdir -p "$dir"
chmod 0700 "$dir"
exec 9>"$dir/.lock"
flock -n 9 || die "another $PROG is running on $dir"
# Leftovers of an interrupted run are never generations.
rm -rf "$dir"/.incomplete-*

rdb_dir=$(config_get dir)
rdb_name=$(config_get dbfilename)
if [ -z "$rdb_dir" ] || [ -z "$rdb_name" ]; then
    die "CONFIG GET dir/dbfilename gave nothing: the Redis user needs +config|get (see redis-kairan.conf)"
fi
[ -d "$rdb_dir" ] || die "Redis' data directory $rdb_dir is not here: run $PROG on the Redis host"

# A new save must be told apart from the last one: LASTSAVE counts seconds,
# so wait until the clock has passed it, and also watch rdb_saves.
before=$(rcli LASTSAVE)
case "$before" in
'' | *[!0-9]*) die "LASTSAVE failed: $before" ;;
esac
saves_before=$(info_field rdb_saves)
for _ in 1 2 3 4 5 6 7 8 9 10; do
    [ "$(date +%s)" -le "$before" ] || break
    sleep 0.2
done
deadline=$(($(date +%s) + timeout))
while :; do
    # SCHEDULE: during an AOF rewrite the save starts right after it.
    reply=$(rcli BGSAVE SCHEDULE)
    case "$reply" in
    *"Background saving started"* | *"Background saving scheduled"*) break ;;
    *"already in progress"*) ;; # wait and ask again
    *) die "BGSAVE failed: $reply" ;;
    esac
    [ "$(date +%s)" -lt "$deadline" ] || die "BGSAVE did not start within ${timeout}s"
    sleep 0.5
done
while :; do
    now_save=$(rcli LASTSAVE)
    saves=$(info_field rdb_saves)
    if [ "$(info_field rdb_bgsave_in_progress)" = 0 ]; then
        if [ "$now_save" -gt "$before" ] 2>/dev/null ||
            { [ -n "$saves_before" ] && [ "${saves:-0}" -gt "$saves_before" ]; }; then
            break
        fi
        if [ "$(info_field rdb_last_bgsave_status)" = err ]; then
            die "BGSAVE failed (rdb_last_bgsave_status:err): see Redis' log"
        fi
    fi
    [ "$(date +%s)" -lt "$deadline" ] || die "BGSAVE not finished after ${timeout}s"
    sleep 0.2
done
[ "$(info_field rdb_last_bgsave_status)" = ok ] || die "BGSAVE failed: see Redis' log"

tmp=$(mktemp -d "$dir/.incomplete-XXXXXX")
trap 'rm -rf "$tmp" "$tmp.sums"' EXIT
cp "$rdb_dir/$rdb_name" "$tmp/dump.rdb"
aof=no
if [ "$(config_get appendonly)" = yes ]; then
    adir=$(config_get appenddirname)
    if [ -n "$adir" ] && [ -d "$rdb_dir/$adir" ]; then
        # Not during an AOF rewrite: its manifest would name files that
        # are being replaced.
        while [ "$(info_field aof_rewrite_in_progress)" = 1 ]; do
            [ "$(date +%s)" -lt "$deadline" ] || die "AOF rewrite still running after ${timeout}s"
            sleep 0.2
        done
        cp -a "$rdb_dir/$adir" "$tmp/appendonlydir"
        aof=yes
    fi
fi
if [ "$with_key" = 1 ]; then
    cp "$key" "$tmp/key"
    chmod 0600 "$tmp/key"
fi
{
    echo "saved_at=$(date -Iseconds)"
    echo "lastsave=$(rcli LASTSAVE)"
    echo "redis_version=$(rcli INFO server | sed -n 's/^redis_version://p')"
    echo "dbsize=$(rcli DBSIZE)"
    echo "source=$rdb_dir/$rdb_name"
    echo "aof=$aof"
    echo "key=$([ "$with_key" = 1 ] && echo "$key" || echo none)"
    echo "tool=$PROG $VERSION"
} >"$tmp/INFO"
(cd "$tmp" && find . -type f -printf '%P\n' | sort |
    xargs -d '\n' sha256sum >"$tmp.sums")
mv "$tmp.sums" "$tmp/SHA256SUMS"

name=$(date +%Y%m%d-%H%M%S)
final=$name
n=1
while [ -e "$dir/$final" ]; do
    n=$((n + 1))
    final=$name-$n
done
mv "$tmp" "$dir/$final"
trap - EXIT
echo "saved: $dir/$final (aof: $aof, key: $([ "$with_key" = 1 ] && echo yes || echo no))"

# Keep the newest $keep, and what restores replaced for $keep days.
prune_replaced
mapfile -t all < <(generations)
excess=$((${#all[@]} - keep))
for ((i = 0; i < excess; i++)); do
    rm -rf "${dir:?}/${all[$i]}"
    echo "pruned: $dir/${all[$i]}"
done
