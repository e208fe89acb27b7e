#!/usr/bin/env python3
"""Self-test of verify_log.py's rules on the numbers a log issues and the persons its
events name (LOG-FORMAT.md, sections 5 and 6): tiny logs built and signed here, from
the spec, each breaking one rule, must be refused naming the record and the rule; the
well-formed one must pass.

    python3 test_rules.py
"""
import contextlib
import io
import os
import struct
import sys
import tempfile

import blake3
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import verify_log  # noqa: E402

KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
PUBLIC = KEY.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
# Numbers the registry issued (golden log v1): well formed.
GOOD_A, GOOD_B, GOOD_C = 280150736193, 621749650190, 764834914721


def varint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def string(text: bytes) -> bytes:
    return varint(len(text)) + text


ACTOR = string(b"registrar-1") + string(b"GPO-NAIROBI")
SEALED = bytes(24) + string(b"\x00" * 20)


def initialized() -> tuple[int, bytes]:
    return 1, string(b"test.huduma.example/log") + PUBLIC


def registered(number: int, counter: int) -> tuple[int, bytes]:
    return 16, ACTOR + varint(number) + varint(counter) + SEALED


def replaced(person: int, old: int, new: int, counter: int) -> tuple[int, bytes]:
    return 17, ACTOR + varint(person) + varint(old) + varint(new) + varint(counter) + varint(0)


def revoked(person: int) -> tuple[int, bytes]:
    return 22, ACTOR + varint(person) + string(b"fraud")


def merged(survivor: int, duplicate: int) -> tuple[int, bytes]:
    return 24, ACTOR + varint(survivor) + varint(duplicate) + string(b"one person")


def write_log(path: str, events) -> None:
    prev, frames = bytes(32), bytearray()
    key_id = verify_log.key_id(PUBLIC)
    for seq, (kind, payload) in enumerate(events):
        head = struct.pack(">BQq", 1, seq, 1_700_000_000_000_000 + seq) + prev + key_id
        head += struct.pack(">HHI", kind, 1, len(payload))
        body = head + payload
        record = body + KEY.sign(verify_log.RECORD_DOMAIN + body)
        frames += struct.pack(">I", len(record)) + record
        prev = blake3.blake3(record).digest()
    with open(path, "wb") as f:
        f.write(frames)


def verdict(events) -> tuple[int, str]:
    with tempfile.TemporaryDirectory() as work:
        path = os.path.join(work, "log.bin")
        write_log(path, events)
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = verify_log.verify(path, PUBLIC)
        return code, out.getvalue().strip()


def main() -> int:
    cases = [
        (
            "well formed",
            [
                initialized(),
                registered(GOOD_A, 0),
                replaced(1, GOOD_A, GOOD_B, 1),
                registered(GOOD_C, 2),
                merged(1, 3),
                revoked(1),
            ],
            "ok: 6 records",
        ),
        ("a wrong check digit", [initialized(), registered(GOOD_A + 1, 0)], "record 1: number 280150736194 fails"),
        ("eleven digits", [initialized(), registered(28015073619, 0)], "record 1: number 28015073619 is not 12 digits"),
        ("issued twice", [initialized(), registered(GOOD_A, 0), registered(GOOD_A, 1)], "record 2: number 280150736193 issued twice"),
        (
            "a replaced number never issued",
            [initialized(), registered(GOOD_A, 0), replaced(1, GOOD_B, GOOD_C, 1)],
            "record 2: replaces number 621749650190, not the number in force of person 1",
        ),
        (
            "a replaced number already replaced",
            [initialized(), registered(GOOD_A, 0), replaced(1, GOOD_A, GOOD_B, 1), replaced(1, GOOD_A, GOOD_C, 2)],
            "record 3: replaces number 280150736193, not the number in force of person 1",
        ),
        (
            "another person's number replaced",
            [initialized(), registered(GOOD_A, 0), registered(GOOD_B, 1), replaced(1, GOOD_B, GOOD_C, 2)],
            "record 3: replaces number 621749650190, not the number in force of person 1",
        ),
        (
            "a person never registered",
            [initialized(), registered(GOOD_A, 0), revoked(7)],
            "record 2: names person 7, whom no earlier record registered",
        ),
        (
            "a person named before their registration",
            [initialized(), revoked(2), registered(GOOD_A, 0)],
            "record 1: names person 2, whom no earlier record registered",
        ),
        (
            "a merge of a person with themselves",
            [initialized(), registered(GOOD_A, 0), merged(1, 1)],
            "record 2: names person 1 as both survivor and duplicate",
        ),
    ]
    failed = 0
    for name, events, expected in cases:
        code, out = verdict(events)
        want_code = 0 if expected.startswith("ok") else 1
        if code != want_code or not out.startswith(expected):
            print(f"FAIL {name}: exit {code}, {out!r}; expected exit {want_code}, {expected!r}")
            failed += 1
        else:
            print(f"ok   {name}: {out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
