#!/usr/bin/env python3
"""Self-test of verify_log.py's rules on the numbers a log issues, the persons its
events name and what each event requires of their status (LOG-FORMAT.md, sections 5
and 6): tiny logs built and signed here, from the spec, each breaking one rule, must
be refused naming the record and the rule; the well-formed ones must pass.

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


def unmerged(survivor: int, duplicate: int) -> tuple[int, bytes]:
    return 26, ACTOR + varint(survivor) + varint(duplicate) + string(b"two persons")


def corrected(person: int) -> tuple[int, bytes]:
    return 18, ACTOR + varint(person) + SEALED


def linked(person: int) -> tuple[int, bytes]:
    # Version 1: the record id in clear.
    return 19, ACTOR + varint(person) + string(b"KRA") + string(b"A001")


def unlinked(person: int) -> tuple[int, bytes]:
    return 20, ACTOR + varint(person) + string(b"KRA") + string(b"A001")


def died(person: int) -> tuple[int, bytes]:
    # Version 1: the date in clear.
    return 21, ACTOR + varint(person) + string(b"2020-01-31")


def reinstated(person: int) -> tuple[int, bytes]:
    return 23, ACTOR + varint(person) + string(b"cleared")


def erased(person: int) -> tuple[int, bytes]:
    return 25, ACTOR + varint(person) + string(b"DPA 2019 s.40")


def retracted(person: int) -> tuple[int, bytes]:
    return 27, ACTOR + varint(person) + string(b"recorded in error")


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
    # What each event requires of a person's status (section 6, "A person's status").
    two = [initialized(), registered(GOOD_A, 0), registered(GOOD_B, 1)]
    three = two + [registered(GOOD_C, 2)]
    cases += [
        (
            "every status change allowed",
            two
            + [
                linked(1),
                revoked(1),
                died(1),
                retracted(1),  # revoked again, as before the death
                reinstated(1),
                corrected(1),
                merged(1, 2),
                unmerged(1, 2),
                died(2),
                erased(2),
                unlinked(1),
                erased(1),
                unlinked(1),  # an unlink requires nothing of the status
            ],
            "ok: 16 records",
        ),
        ("a revoked person revoked", two + [revoked(1), revoked(1)], "record 4: revokes person 1, who is revoked"),
        ("an active person reinstated", two + [reinstated(1)], "record 3: reinstates person 1, who is active"),
        (
            "a living person's death retracted",
            two + [retracted(2)],
            "record 3: retracts the death of person 2, who is active",
        ),
        (
            "a retraction restores the status before the death",
            two + [revoked(1), died(1), retracted(1), linked(1)],
            "record 6: links a record to person 1, who is revoked",
        ),
        (
            "a deceased person's number replaced",
            two + [died(1), replaced(1, GOOD_A, GOOD_C, 2)],
            "record 4: replaces the number of person 1, who is deceased",
        ),
        ("a dead person dying again", two + [died(1), died(1)], "record 4: records the death of person 1, who is deceased"),
        ("an erased person erased", two + [erased(1), erased(1)], "record 4: erases person 1, who is erased"),
        (
            "an erased person corrected",
            two + [erased(1), corrected(1)],
            "record 4: corrects the demographics of person 1, who is erased",
        ),
        ("a merge into a revoked survivor", two + [revoked(1), merged(1, 2)], "record 4: merges into person 1, who is revoked"),
        ("a merged person merged", three + [merged(1, 2), merged(3, 2)], "record 5: merges person 2, who is merged"),
        (
            "an unmerge of a person never merged",
            two + [unmerged(1, 2)],
            "record 3: unmerges person 2, who is not merged into person 1",
        ),
        (
            "an unmerge from another survivor",
            three + [merged(1, 3), unmerged(2, 3)],
            "record 5: unmerges person 3, who is not merged into person 2",
        ),
        (
            "an unmerge from a survivor merged since",
            three + [merged(1, 2), merged(3, 1), unmerged(1, 2)],
            "record 6: unmerges person 2 from person 1, who is merged",
        ),
        (
            "an unmerge undone twice",
            two + [merged(1, 2), unmerged(1, 2), unmerged(1, 2)],
            "record 5: unmerges person 2, who is not merged into person 1",
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
