#!/usr/bin/env bash
# Installs what kairan needs to build, test and run its demo, from Debian's
# archive, and only what is missing (apt-get update runs only then).
#   scripts/deps.sh          build + test + demo dependencies
#   scripts/deps.sh bench    also wrk for bench (postfix is always in)
set -euo pipefail

pkgs=(build-essential pkg-config
      libuv1-dev libhiredis-dev libjansson-dev libcurl4-openssl-dev
      libssl-dev libinih-dev libcmocka-dev libhttp-parser-dev libsystemd-dev
      libunistring-dev libargon2-dev libqrencode-dev
      redis-server redis-sentinel python3 openssl valgrind curl
      chromium fonts-noto-cjk debhelper mandoc systemd prometheus
      bash-completion clang libclang-rt-14-dev clang-format nginx)
# The SMTP client's tests: a private Postfix smtpd, smtp-sink, aiosmtpd.
pkgs+=(postfix python3-aiosmtpd)
# A relay's name with several addresses (test_smtp_addresses): a hosts
# file of the test's own, given to kairand alone by LD_PRELOAD.
pkgs+=(libnss-wrapper)
if [ "${1:-}" = bench ]; then
    pkgs+=(postfix wrk)
fi

missing=()
for p in "${pkgs[@]}"; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing+=("$p")
    fi
done
[ ${#missing[@]} -eq 0 ] && exit 0

echo "installing: ${missing[*]}"
SUDO=
if [ "$(id -u)" -ne 0 ]; then
    SUDO=sudo
fi
export DEBIAN_FRONTEND=noninteractive
# postfix asks questions on install; answer them and never start it.
if printf '%s\n' "${missing[@]}" | grep -qx postfix; then
    echo "postfix postfix/main_mailer_type select No configuration" | $SUDO debconf-set-selections
fi
# Services installed here (redis-server, prometheus) must not be started:
# the tests start private servers.  policy-rc.d says so to invoke-rc.d.
made_policy=
if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' | $SUDO tee /usr/sbin/policy-rc.d >/dev/null
    $SUDO chmod 755 /usr/sbin/policy-rc.d
    made_policy=1
fi
$SUDO apt-get update -qq
$SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
if [ -n "$made_policy" ]; then
    $SUDO rm -f /usr/sbin/policy-rc.d
fi
# Debian starts redis-server's own service on install: kairan's tests and
# demo start private servers on free ports and do not need it.
