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
  # FOLDER/PATH. The folder holds those names and nothing else (a link
  # planted beside the files is a name too), and each file matches.
  jq -r '.subject[].name' payload.json | LC_ALL=C sort > want.txt
  (cd "$(dirname "$3")" && find "$(basename "$3")" ! -type d) | LC_ALL=C sort > got.txt
  cmp -s want.txt got.txt || { echo "$3 holds other names than the receipt's:"; diff want.txt got.txt || true; exit 3; }
  jq -r '.subject[] | "\(.digest.sha256)  \(.name)"' payload.json > sums.txt
  sums=$(pwd)/sums.txt
  (cd "$(dirname "$3")" && sha256sum --quiet --strict -c "$sums") || { echo "a file of $3 does not match the receipt"; exit 3; }
  echo "archive folder matches: $(wc -l < got.txt) files"
elif [ $# -ge 3 ]; then
  want=$(jq -r '.subject[0].digest.sha256' payload.json)
  got=$(sha256sum < "$3" | cut -d' ' -f1)
  [ "$want" = "$got" ] && echo "archive sha256 matches: $got" || { echo "archive sha256 $got, receipt says $want"; exit 3; }
fi
