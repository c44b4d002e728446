#!/usr/bin/env bash
# tests/tls/mkca.sh OUTDIR - private test PKI for the integration tests.
# Creates in OUTDIR (EC P-256 keys, SHA-256):
#   ca.pem ca.key                 test CA
#   server.pem server.key         SAN IP:127.0.0.1, DNS:localhost, valid 365 days
#   expired.pem expired.key       same SANs, same CA, validity entirely in the past
#   wronghost.pem wronghost.key   same CA, SAN DNS:wrong.example only
#   selfsigned.pem selfsigned.key self-signed, SANs of the server (not from the CA)
# Idempotent: does nothing if OUTDIR/ca.pem exists. Quiet unless something fails.
set -eu
if [ $# -ne 1 ]; then
    echo "usage: $0 OUTDIR" >&2
    exit 2
fi
out=$1
[ -f "$out/ca.pem" ] && exit 0
mkdir -p "$out"
# Concurrent callers on the same OUTDIR: one creates, the others wait.
exec 9>"$out/.mkca.lock"
flock 9
[ -f "$out/ca.pem" ] && exit 0
work=$(mktemp -d "$out/.mkca.XXXXXX")
trap 'rm -rf "$work"' EXIT
log=$work/log

run() { # run quietly, show the output only on failure
    if ! "$@" >>"$log" 2>&1; then
        echo "mkca.sh: failed: $*" >&2
        cat "$log" >&2
        exit 1
    fi
}

newkey() { # file
    run openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"
    chmod 600 "$1"
}

# --- CA ---------------------------------------------------------------------
newkey "$work/ca.key"
run openssl req -new -x509 -key "$work/ca.key" -out "$work/ca.pem" -days 3650 -sha256 \
    -subj "/CN=kairan test CA" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -addext "subjectKeyIdentifier=hash"

# Minimal `openssl ca` setup (the only way in openssl 3.0 to set arbitrary
# start/end dates, needed for the expired certificate).
mkdir -p "$work/db/new"
: >"$work/db/index.txt"
echo 1000 >"$work/db/serial"
cat >"$work/ca.cnf" <<CNF
[ ca ]
default_ca = testca
[ testca ]
dir           = $work/db
database      = \$dir/index.txt
new_certs_dir = \$dir/new
serial        = \$dir/serial
certificate   = $work/ca.pem
private_key   = $work/ca.key
default_md    = sha256
policy        = anything
unique_subject = no
copy_extensions = none
email_in_dn   = no
[ anything ]
commonName = supplied
[ ext_server ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = IP:127.0.0.1,DNS:localhost
[ ext_wrong ]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature,keyEncipherment
extendedKeyUsage = serverAuth
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
subjectAltName = DNS:wrong.example
CNF

sign() { # name cn ext [ca date options...]
    local name=$1 cn=$2 ext=$3
    shift 3
    newkey "$work/$name.key"
    run openssl req -new -key "$work/$name.key" -out "$work/$name.csr" -subj "/CN=$cn"
    run openssl ca -batch -notext -config "$work/ca.cnf" -extensions "$ext" \
        -in "$work/$name.csr" -out "$work/$name.pem" "$@"
}

sign server localhost ext_server -days 365
sign wronghost wrong.example ext_wrong -days 365
# Valid from 2020-01-01 to 2021-01-01: long expired.
sign expired localhost ext_server -startdate 20200101000000Z -enddate 20210101000000Z

# --- self-signed (not from the CA) -------------------------------------------
newkey "$work/selfsigned.key"
run openssl req -new -x509 -key "$work/selfsigned.key" -out "$work/selfsigned.pem" -days 365 \
    -sha256 -subj "/CN=localhost" \
    -addext "basicConstraints=critical,CA:FALSE" \
    -addext "subjectAltName=IP:127.0.0.1,DNS:localhost"

for n in server expired wronghost selfsigned; do
    mv "$work/$n.pem" "$work/$n.key" "$out/"
done
mv "$work/ca.key" "$out/"
# ca.pem last: its presence marks a complete directory.
mv "$work/ca.pem" "$out/"
