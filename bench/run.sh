#!/usr/bin/env bash
# make bench: figures printed, never asserted.  Needs postfix's smtp-sink and
# smtp-source (installed here from Debian, the service never started).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/deps.sh bench
/usr/bin/python3 bench/run.py "$@"
/usr/bin/python3 bench/push_bench.py
/usr/bin/python3 bench/line_bench.py
/usr/bin/python3 bench/script_bench.py
/usr/bin/python3 bench/resolve_bench.py
/usr/bin/python3 bench/fair_design.py
/usr/bin/python3 bench/scale_bench.py
/usr/bin/python3 bench/ack_bench.py
/usr/bin/python3 bench/recipients_bench.py
