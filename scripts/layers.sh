#!/usr/bin/env bash
# make layers: every #include "dir/file.h" must point down the layers of
# DESIGN.md:  common <- config <- model <- queue <- {adapters, dispatcher, cli}
# A folder may include itself and the folders below it; the dispatcher may
# include adapters/adapter.h only (what it knows of a provider comes from
# the adapter table); adapters, dispatcher and cli never include each other
# otherwise.  Prints each include that points the wrong way; exit 1 if any.
set -u
cd "$(dirname "$0")/.."

rank() {
    case "$1" in
    common) echo 0 ;;
    config) echo 1 ;;
    model) echo 2 ;;
    queue) echo 3 ;;
    adapters | dispatcher | cli) echo 4 ;;
    *) echo -1 ;;
    esac
}

bad=0
for dir in common config model queue adapters dispatcher cli; do
    [ -d "$dir" ] || continue
    r=$(rank "$dir")
    while IFS= read -r hit; do
        file=${hit%%:*}
        rest=${hit#*:}
        line=${rest%%:*}
        inc=$(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' <<<"${rest#*:}")
        [ -n "$inc" ] || continue
        case "$inc" in */*) ;; *) continue ;; esac # same folder
        idir=${inc%%/*}
        ir=$(rank "$idir")
        [ "$ir" -ge 0 ] || continue # a system or test header
        ok=0
        if [ "$idir" = "$dir" ]; then
            ok=1
        elif [ "$ir" -lt "$r" ]; then
            ok=1
        elif [ "$dir" = dispatcher ] && [ "$inc" = adapters/adapter.h ]; then
            ok=1
        fi
        if [ $ok = 0 ]; then
            echo "$file:$line: $dir includes $inc (layers: common <- config <- model <- queue <- {adapters, dispatcher, cli}; the dispatcher may include adapters/adapter.h only)"
            bad=$((bad + 1))
        fi
    done < <(grep -Hn '^[[:space:]]*#[[:space:]]*include[[:space:]]*"' "$dir"/*.[ch] "$dir"/*/*.[ch] 2>/dev/null)
done
if [ $bad -gt 0 ]; then
    echo "layers: $bad includes point the wrong way"
    exit 1
fi
echo "layers: ok"
