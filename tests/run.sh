#!/usr/bin/env bash
# Runs every test and ends with one line "N passed, N failed".
#  - unit tests: each cmocka binary under `timeout`, TAP output, and (in the
#    plain build) under valgrind with leak checking: a leak fails the binary.
#  - integration tests: tests/integration/test_*.py, each starting its own
#    redis-server on a free port and the fakes it needs; TAP output.
# Environment: BUILD (build dir), SANITIZE=1, KAIRAN_ONLY=unit|integration,
# KAIRAN_TEST_SCALE (shrinks big counts), KAIRAN_TEST_FILTER (substring),
# KAIRAN_TEST_DIR (where the integration test_*.py are; default
# tests/integration; make test-faults uses tests/faults).
# An argument is taken as KAIRAN_TEST_FILTER: `tests/run.sh test_bounces`.
set -u
if [ $# -gt 1 ]; then
    echo "usage: tests/run.sh [NAME-SUBSTRING]" >&2
    exit 2
fi
if [ $# -eq 1 ]; then
    export KAIRAN_TEST_FILTER=$1
fi
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
export BUILD
OUT=${KAIRAN_TEST_OUT:-$BUILD/test-out}
mkdir -p "$OUT"
passed=0
failed=0
failed_names=()

count_tap() { # file name [started, in $SECONDS]
    local p f took=""
    p=$(grep -cE '^ok ' "$1" || true)
    f=$(grep -cE '^not ok ' "$1" || true)
    passed=$((passed + p))
    failed=$((failed + f))
    if [ "$f" -gt 0 ]; then
        failed_names+=("$2: $(grep -E '^not ok ' "$1" | head -3 | tr '\n' ';')")
    fi
    [ -n "${3:-}" ] && took=" ($((SECONDS - $3)) s)"
    echo "$2: $p passed, $f failed$took"
    if [ "$f" -gt 0 ]; then
        # The reason, in the log CI keeps: each failure's line and the
        # diagnostics after it (TAP's "#" lines), at most 40 lines each.
        awk '/^not ok /{n=40; print; next}
             n>0 && /^(ok |not ok |1\.\.)/{n=0}
             n>0{print "    " $0; n--}' "$1" | head -120
    fi
}

use_valgrind=0
if [ "${SANITIZE:-}" != 1 ] && command -v valgrind >/dev/null && [ "${KAIRAN_NO_VALGRIND:-}" != 1 ]; then
    use_valgrind=1
fi

if [ "${KAIRAN_ONLY:-unit}" = unit ] || [ -z "${KAIRAN_ONLY:-}" ]; then
    for t in "$BUILD"/tests/test_*; do
        [ -x "$t" ] || continue
        name=$(basename "$t")
        case "$name" in *"${KAIRAN_TEST_FILTER:-}"*) ;; *) continue ;; esac
        log="$OUT/$name.log"
        t0=$SECONDS
        if [ $use_valgrind = 1 ]; then
            CMOCKA_MESSAGE_OUTPUT=TAP timeout 300 valgrind -q --leak-check=full \
                --show-leak-kinds=definite,indirect --errors-for-leak-kinds=definite,indirect \
                --error-exitcode=99 "$t" >"$log" 2>&1
        else
            CMOCKA_MESSAGE_OUTPUT=TAP timeout 120 "$t" >"$log" 2>&1
        fi
        rc=$?
        count_tap "$log" "$name" "$t0"
        if [ $rc -ne 0 ] && ! grep -qE '^not ok ' "$log"; then
            # Crashed, timed out, or valgrind found errors/leaks.
            failed=$((failed + 1))
            failed_names+=("$name: exit $rc (see $log)")
            echo "$name: exit status $rc"
            tail -20 "$log"
        fi
    done
fi

if [ "${KAIRAN_ONLY:-integration}" = integration ] || [ -z "${KAIRAN_ONLY:-}" ]; then
    for t in "${KAIRAN_TEST_DIR:-tests/integration}"/test_*.py; do
        [ -f "$t" ] || continue
        name=$(basename "$t" .py)
        case "$name" in *"${KAIRAN_TEST_FILTER:-}"*) ;; *) continue ;; esac
        log="$OUT/$name.log"
        t0=$SECONDS
        timeout 900 /usr/bin/python3 "$t" >"$log" 2>&1
        rc=$?
        count_tap "$log" "$name" "$t0"
        if [ $rc -ne 0 ] && ! grep -qE '^not ok ' "$log"; then
            failed=$((failed + 1))
            failed_names+=("$name: exit $rc (see $log)")
            echo "$name: exit status $rc"
            tail -30 "$log"
        fi
    done
fi

if [ ${#failed_names[@]} -gt 0 ]; then
    echo "failures:"
    printf '  %s\n' "${failed_names[@]}"
fi
echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
