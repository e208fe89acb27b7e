#!/usr/bin/env python3
"""An independent verifier of an exported Huduma Registry access log (the citizens'
record of who looked them up), written from docs/LOG-FORMAT.md, sections 8, 9 and 12,
alone (it shares no code with the registry).

    python3 verify_access_log.py LOG.bin CHECKPOINT.note VERIFIER_KEY

LOG.bin is the access records in the export format; CHECKPOINT.note a signed checkpoint
of the access log; VERIFIER_KEY the log key's verifier key under the access origin.
Exit 0 and "ok: N access records" when the chain rules hold and the first `size` records
produce the root the checkpoint signs; exit 1 and the first bad record's sequence number
and the rule it broke, or what is wrong with the checkpoint, otherwise.
"""
import base64
import hashlib
import struct
import sys

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from verify_log import Bad, parse_verifier_key, records

HEADER_LEN = 106  # version, seq, time, prev, subject, sealed_under, nonce
TAG_LEN = 16


def check_chain(path: str) -> list[bytes]:
    """The records of the export, each checked against the chain rules of section 12."""
    out = []
    prev = bytes(32)
    last_time = 0
    for seq, record in enumerate(records(path)):
        def bad(rule):
            return Bad(f"access record {seq}: {rule}")
        if len(record) < HEADER_LEN + TAG_LEN:
            raise bad("shorter than an envelope and a tag")
        if record[0] != 1:
            raise bad("unknown version")
        (named_seq, time_ms) = struct.unpack(">QQ", record[1:17])
        if named_seq != seq:
            raise bad(f"names sequence number {named_seq}")
        if record[17:49] != prev:
            raise bad("does not name the previous record's hash")
        if time_ms < last_time:
            raise bad("its time is before the previous record's")
        if record[81] not in (0, 1):
            raise bad("unknown sealed_under")
        prev = blake3.blake3(record).digest()
        last_time = time_ms
        out.append(record)
    return out


def root(leaves: list[bytes]) -> bytes:
    """The RFC 6962 tree hash of the leaves (section 8)."""
    if not leaves:
        return hashlib.sha256(b"").digest()
    if len(leaves) == 1:
        return hashlib.sha256(b"\x00" + leaves[0]).digest()
    split = 1
    while split * 2 < len(leaves):
        split *= 2
    return hashlib.sha256(b"\x01" + root(leaves[:split]) + root(leaves[split:])).digest()


def open_checkpoint(note: str, name: str, public: bytes) -> tuple[int, bytes]:
    """The size and root a C2SP signed note signs, its signature by `name` checked."""
    body, sep, signatures = note.partition("\n\n")
    if not sep:
        raise Bad("checkpoint: no blank line before the signatures")
    body += "\n"
    lines = body.split("\n")
    if len(lines) < 4 or lines[0] != name:
        raise Bad(f"checkpoint: its origin is not {name}")
    want = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    key = Ed25519PublicKey.from_public_bytes(public)
    for line in signatures.splitlines():
        if not line.startswith("\u2014 "):
            continue
        signer, _, blob = line[2:].partition(" ")
        raw = base64.b64decode(blob)
        if signer != name or len(raw) != 68 or raw[:4] != want:
            continue
        try:
            key.verify(raw[4:], body.encode())
        except InvalidSignature:
            raise Bad("checkpoint: the signature does not verify")
        return int(lines[1]), base64.b64decode(lines[2])
    raise Bad("checkpoint: no signature by the given key")


def main() -> int:
    if len(sys.argv) != 4:
        print(__doc__, file=sys.stderr)
        return 2
    log, note_path, verifier_key = sys.argv[1:]
    try:
        name, public = parse_verifier_key(verifier_key)
        size, signed_root = open_checkpoint(open(note_path).read(), name, public)
        chain = check_chain(log)
        if len(chain) < size:
            raise Bad(f"access record {len(chain)}: missing (the checkpoint covers {size})")
        if root(chain[:size]) != signed_root:
            raise Bad(f"checkpoint {size}: the records do not produce the root it signs")
    except (Bad, ValueError) as e:
        print(e)
        return 1
    print(f"ok: {len(chain)} access records, the first {size} producing the checkpoint's root")
    return 0


if __name__ == "__main__":
    sys.exit(main())
