#!/usr/bin/env bash
# Go's standard implementations (golang.org/x/mod/sumdb/note and .../tlog, from
# Debian's packages) check the registry's checkpoints and proofs, of the identity log
# and of the access log; then a tampered checkpoint and a tampered record of each
# must be refused.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$here/../.."
gopath=/usr/share/gocode
if ! command -v go >/dev/null || [ ! -d "$gopath/src/golang.org/x/mod/sumdb/tlog" ]; then
  echo "installing Go and golang.org/x/mod from Debian's packages"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >/dev/null
  apt-get install -y -qq golang-go golang-golang-x-mod-dev >/dev/null
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# Built as `cargo test --workspace` built it (same targets and features: no rebuild).
(cd "$root" && cargo build --quiet --workspace --bins --examples && target/debug/examples/tlog_fixture "$work/fx")
cd "$here"


GO111MODULE=off GOPATH="$gopath" go run main.go "$work/fx"
# The citizens' access log: the same tree and checkpoints, over its own records.
GO111MODULE=off GOPATH="$gopath" go run main.go "$work/fx/access"

# A checkpoint with another root must not open (the signature covers the body).
cp -r "$work/fx" "$work/bad-note"
python3 - "$work/bad-note/checkpoint.note" <<'PY'
import sys
path = sys.argv[1]
lines = open(path).read().split("\n")
lines[1] = str(int(lines[1]) - 1)
open(path, "w").write("\n".join(lines))
PY
if GO111MODULE=off GOPATH="$gopath" go run main.go "$work/bad-note" 2>/dev/null; then
  echo "a tampered checkpoint was accepted" >&2
  exit 1
fi
# A record changed after signing must not produce the signed root: one byte of the
# export in FIXTURE flipped at OFFSET, and Go's check must then fail.
refused_when_flipped() {
  local fixture=$1 offset=$2 what=$3
  rm -rf "$work/bad"
  cp -r "$fixture" "$work/bad"
  python3 - "$work/bad/log.bin" "$offset" <<'PY'
import sys
path, offset = sys.argv[1], int(sys.argv[2])
data = bytearray(open(path, "rb").read())
data[offset] ^= 1
open(path, "wb").write(data)
PY
  if GO111MODULE=off GOPATH="$gopath" go run main.go "$work/bad" 2>/dev/null; then
    echo "a tampered $what was accepted" >&2
    exit 1
  fi
}
refused_when_flipped "$work/fx" 200 "log"
refused_when_flipped "$work/fx/access" 150 "access log"
echo "tampered checkpoint, tampered log and tampered access log refused by Go's tlog and note"
