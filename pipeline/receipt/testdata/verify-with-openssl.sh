#!/bin/sh
# Checks a pgattest receipt with openssl, jq and coreutils alone: the
# commands README ("Signed receipts") shows. Usage:
#   verify-with-openssl.sh RECEIPT.json PUBLIC.pem [ARCHIVE]
# ARCHIVE is the archive file, or a directory-format archive's folder
# under the name the receipt gives it (NAME-STAMP.dir).
set -eu
R=$1 PUB=$2
T=$(jq -r .payloadType "$R")
jq -r .payload "$R" | base64 -d > payload.json
jq -r '.signatures[0].sig' "$R" | base64 -d > sig.bin
# DSSE signs PAE: "DSSEv1" SP len(type) SP type SP len(payload) SP payload
printf 'DSSEv1 %d %s %d ' "${#T}" "$T" "$(wc -c < payload.json)" > pae.bin
cat payload.json >> pae.bin
openssl pkeyutl -verify -pubin -inkey "$PUB" -rawin -in pae.bin -sigfile sig.bin
if [ $# -ge 3 ] && [ -d "$3" ]; then
  # A directory-format archive (backup --jobs): a subject per file, named
  # FOLDER/PATH; every one must match, and the folder hold no other file.
  jq -r '.subject[] | "\(.digest.sha256)  \(.name)"' payload.json > sums.txt
  sums=$(pwd)/sums.txt
  (cd "$(dirname "$3")" && sha256sum --quiet --strict -c "$sums") || { echo "a file of $3 does not match the receipt"; exit 3; }
  want=$(jq '.subject | length' payload.json)
  got=$(find "$3" -type f | wc -l)
  [ "$want" = "$got" ] && echo "archive folder matches: $got files" || { echo "$3 holds $got files, the receipt names $want"; exit 3; }
elif [ $# -ge 3 ]; then
  want=$(jq -r '.subject[0].digest.sha256' payload.json)
  got=$(sha256sum < "$3" | cut -d' ' -f1)
  [ "$want" = "$got" ] && echo "archive sha256 matches: $got" || { echo "archive sha256 $got, receipt says $want"; exit 3; }
fi
