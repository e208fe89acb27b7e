#!/usr/bin/env bash
# Runs the independent Python verifier on the golden logs and on a fresh log written by
# the registry (with a key rotation) and on logs of random commands of every kind, and
# checks that it rejects a tampered copy and the tiny logs of test_rules.py, each of
# which breaks one rule of LOG-FORMAT.md section 6.
set -euo pipefail
cd "$(dirname "$0")/../.."
here=tools/log-verifier-py
for golden in registry-core/tests/golden/v*/; do
  golden=${golden%/}
  python3 "$here/verify_log.py" "$golden/log.bin" "$(cat "$golden/genesis.vkey")"
done
# Its rules on the numbers, persons and statuses a log names, on tiny logs built and
# signed from the spec.
python3 "$here/test_rules.py"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
# The workspace's binaries and examples, as `cargo test --workspace` built them (the
# same targets and features, so after the tests this builds nothing).
cargo build --quiet --workspace --bins --examples
bin=target/debug/huduma-registry
genesis=$("$bin" init --dir "$work/dev" | sed -n 3p | tr -d ' ')
"$bin" load --config "$work/dev/config.toml" --count 3000 --run a 2>/dev/null
"$bin" rotate-key --config "$work/dev/config.toml" >/dev/null
# Persons 3000-3999: the same persons again would be refused as likely duplicates.
"$bin" load --config "$work/dev/config.toml" --count 1000 --run b --start 3000 2>/dev/null
"$bin" export --config "$work/dev/config.toml" --out "$work/log.bin" >/dev/null
out=$(python3 "$here/verify_log.py" "$work/log.bin" "$genesis")
echo "$out"
# Record 0, 3,000 registrations, the rotation, 1,000 more.
case "$out" in
  "ok: 4002 records,"*) ;;
  *) echo "expected 4,002 records in the fresh log" >&2; exit 1 ;;
esac

# Logs of random commands of every kind, many refused, as the writer wrote them: every
# event it wrote must be one the rules of section 6 allow (the numbers, the persons
# named, what each event requires of their status).
for seed in 1 2 3; do
  key=$(target/debug/examples/mixed_log "$work/mixed.bin" "$seed" 4000 2>"$work/mixed.err") \
    || { cat "$work/mixed.err" >&2; exit 1; }
  out=$(python3 "$here/verify_log.py" "$work/mixed.bin" "$key") || { echo "mixed log $seed: $out" >&2; exit 1; }
  echo "mixed log $seed: $out ($(cat "$work/mixed.err"))"
done

# One flipped byte in record 1000 must be named.
python3 - "$work/log.bin" "$work/bad.bin" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
at = 0
for _ in range(1000):
    at += 4 + struct.unpack(">I", data[at:at + 4])[0]
data[at + 4 + 80] ^= 0x01
open(sys.argv[2], "wb").write(data)
PY
if out=$(python3 "$here/verify_log.py" "$work/bad.bin" "$genesis"); then
  echo "the tampered log was accepted: $out" >&2
  exit 1
fi
case "$out" in
  "record 1000:"*) echo "tampered copy rejected: $out" ;;
  *) echo "wrong record blamed: $out" >&2; exit 1 ;;
esac

# The access log, from the fixture Go's check uses too: 40 look-ups, their checkpoint
# and the verifier key under the access origin.
target/debug/examples/tlog_fixture "$work/fx" >/dev/null
access="$work/fx/access"
out=$(python3 "$here/verify_access_log.py" "$access/log.bin" "$access/checkpoint.note" "$(cat "$access/verifier.key")")
echo "$out"
case "$out" in
  "ok: 40 access records, the first 40 producing"*) ;;
  *) echo "expected 40 access records" >&2; exit 1 ;;
esac
# A changed prev hash in record 5 is named by the chain; a changed body in the last
# record (no record after it names it) by the checkpoint's root.
while IFS='|' read -r record byte blamed; do
  python3 - "$access/log.bin" "$work/bad-access.bin" "$record" "$byte" <<'PY'
import struct, sys
data = bytearray(open(sys.argv[1], "rb").read())
at = 0
for _ in range(int(sys.argv[3])):
    at += 4 + struct.unpack(">I", data[at:at + 4])[0]
data[at + 4 + int(sys.argv[4])] ^= 0x01
open(sys.argv[2], "wb").write(data)
PY
  if out=$(python3 "$here/verify_access_log.py" "$work/bad-access.bin" "$access/checkpoint.note" "$(cat "$access/verifier.key")"); then
    echo "the tampered access log was accepted: $out" >&2
    exit 1
  fi
  case "$out" in
    "$blamed"*) echo "tampered access log rejected: $out" ;;
    *) echo "wrong record blamed (wanted $blamed): $out" >&2; exit 1 ;;
  esac
done <<'CASES'
5|17|access record 5:
39|120|checkpoint 40:
CASES
