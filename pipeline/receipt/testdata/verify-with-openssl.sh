#!/bin/sh
# Checks a pgattest receipt with openssl, jq and coreutils alone: the
# commands README ("Signed receipts") shows. Usage:
#   verify-with-openssl.sh RECEIPT.json PUBLIC.pem [ARCHIVE]
set -eu
R=$1 PUB=$2
T=$(jq -r .payloadType "$R")
jq -r .payload "$R" | base64 -d > payload.json
jq -r '.signatures[0].sig' "$R" | base64 -d > sig.bin
# DSSE signs PAE: "DSSEv1" SP len(type) SP type SP len(payload) SP payload
printf 'DSSEv1 %d %s %d ' "${#T}" "$T" "$(wc -c < payload.json)" > pae.bin
cat payload.json >> pae.bin
openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in pae.bin -sigfile sig.bin
if [ $# -ge 3 ]; then
  want=$(jq -r '.subject[0].digest.sha256' payload.json)
  got=$(sha256sum < "$3" | cut -d' ' -f1)
  [ "$want" = "$got" ] && echo "archive sha256 matches: $got" || { echo "archive sha256 $got, receipt says $want"; exit 3; }
fi
