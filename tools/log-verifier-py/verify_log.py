#!/usr/bin/env python3
"""An independent verifier of an exported Huduma Registry log, written from
docs/LOG-FORMAT.md alone (it shares no code with the registry).

    python3 verify_log.py LOG.bin GENESIS_VERIFIER_KEY

Exit 0 and "ok: N records" when the log verifies; exit 1 and the first bad record's
sequence number and the rule it broke otherwise.
"""
import base64
import hashlib
import struct
import sys

import blake3
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

RECORD_DOMAIN = b"huduma.registry.v1.record\x00"
ROTATION_DOMAIN = b"huduma.registry.v1.key-rotation\x00"
KEY_ID_DOMAIN = b"huduma.registry.v1.key-id\x00"
MAX_PAYLOAD = 1 << 20
KNOWN = {(1, 1), (2, 1), (16, 2), (18, 2), (19, 2), (20, 2), (21, 2)} | {(k, 1) for k in range(16, 28)}


class Bad(Exception):
    pass


def key_id(public: bytes) -> bytes:
    return blake3.blake3(KEY_ID_DOMAIN + public).digest()[:8]


def parse_verifier_key(text: str) -> tuple[str, bytes]:
    name, hash_hex, body = text.strip().split("+", 2)
    raw = base64.b64decode(body)
    if len(raw) != 33 or raw[0] != 1:
        raise ValueError("not an Ed25519 verifier key")
    public = raw[1:]
    want = hashlib.sha256(name.encode() + b"\n" + b"\x01" + public).digest()[:4]
    if want.hex() != hash_hex:
        raise ValueError("verifier key hash does not match")
    return name, public


def varint(buf: bytes, at: int) -> tuple[int, int]:
    value, shift = 0, 0
    while True:
        if at >= len(buf) or shift > 63:
            raise Bad("truncated or overlong varint")
        byte = buf[at]
        at += 1
        value |= (byte & 0x7F) << shift
        shift += 7
        if byte < 0x80:
            return value, at


def string(buf: bytes, at: int) -> tuple[bytes, int]:
    n, at = varint(buf, at)
    if at + n > len(buf):
        raise Bad("truncated string")
    return buf[at:at + n], at + n


def fixed(buf: bytes, at: int, n: int) -> tuple[bytes, int]:
    if at + n > len(buf):
        raise Bad("truncated array")
    return buf[at:at + n], at + n


def actor(buf, at):
    _, at = string(buf, at)
    _, at = string(buf, at)
    return at


def sealed(buf, at):
    _, at = fixed(buf, at, 24)
    _, at = string(buf, at)
    return at


def duplicate_override(buf, at):
    """The justification, then (number, score_centi) pairs."""
    _, at = string(buf, at)
    count, at = varint(buf, at)
    for _ in range(count):
        _, at = varint(buf, at)
        _, at = varint(buf, at)
    return at


def decode(kind: int, version: int, payload: bytes):
    """Decodes the payload strictly; returns the fields a verifier needs."""
    at, out = 0, {}
    if kind == 1:
        out["origin"], at = string(payload, at)
        out["public_key"], at = fixed(payload, at, 32)
    elif kind == 2:
        at = actor(payload, at)
        out["new_public_key"], at = fixed(payload, at, 32)
        out["new_key_signature"], at = string(payload, at)
    elif kind == 16:
        at = actor(payload, at)
        out["number"], at = varint(payload, at)
        _, at = varint(payload, at)
        at = sealed(payload, at)
        if version == 2:
            at = duplicate_override(payload, at)
    elif kind in (17, 18, 19, 20, 21, 22, 23, 25, 27):
        # Every event about one person: the actor, then the person.
        at = actor(payload, at)
        person, at = varint(payload, at)
        out["persons"] = [person]
        if kind == 17:
            out["old_number"], at = varint(payload, at)
            out["number"], at = varint(payload, at)
            _, at = varint(payload, at)
            reason, at = varint(payload, at)
            if reason > 3:
                raise Bad("unknown replacement reason")
        elif kind == 18:
            at = sealed(payload, at)
            if version == 2:
                at = duplicate_override(payload, at)
        elif kind in (19, 20):
            _, at = string(payload, at)
            # record_id: in clear at version 1, sealed at version 2.
            at = string(payload, at)[1] if version == 1 else sealed(payload, at)
        elif kind == 21 and version == 2:
            at = sealed(payload, at)
        else:
            # DeathRecorded v1, NumberRevoked, NumberReinstated, PersonalDataErased,
            # DeathRetracted: a string.
            _, at = string(payload, at)
    elif kind in (24, 26):
        # RecordsMerged and RecordsUnmerged: survivor, duplicate, justification.
        at = actor(payload, at)
        survivor, at = varint(payload, at)
        duplicate, at = varint(payload, at)
        if survivor == duplicate:
            raise Bad(f"names person {survivor} as both survivor and duplicate")
        out["persons"] = [survivor, duplicate]
        _, at = string(payload, at)
    if at != len(payload):
        raise Bad(f"{len(payload) - at} bytes left over after the event")
    return out


# Verhoeff's tables: the dihedral group D5's multiplication, the position's permutation.
VERHOEFF_D = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 2, 3, 4, 0, 6, 7, 8, 9, 5],
    [2, 3, 4, 0, 1, 7, 8, 9, 5, 6], [3, 4, 0, 1, 2, 8, 9, 5, 6, 7],
    [4, 0, 1, 2, 3, 9, 5, 6, 7, 8], [5, 9, 8, 7, 6, 0, 4, 3, 2, 1],
    [6, 5, 9, 8, 7, 1, 0, 4, 3, 2], [7, 6, 5, 9, 8, 2, 1, 0, 4, 3],
    [8, 7, 6, 5, 9, 3, 2, 1, 0, 4], [9, 8, 7, 6, 5, 4, 3, 2, 1, 0],
]
VERHOEFF_P = [
    [0, 1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 5, 7, 6, 2, 8, 3, 0, 9, 4],
    [5, 8, 0, 3, 7, 9, 6, 1, 4, 2], [8, 9, 1, 6, 0, 4, 3, 5, 2, 7],
    [9, 4, 5, 3, 1, 2, 6, 8, 7, 0], [4, 2, 8, 6, 5, 7, 3, 9, 0, 1],
    [2, 7, 9, 3, 8, 0, 6, 4, 1, 5], [7, 0, 4, 6, 9, 1, 3, 2, 5, 8],
]


def check_number(number: int) -> None:
    """A Huduma number: 12 digits (no leading zero), the last the Verhoeff check digit
    of the first 11 (section 5)."""
    if not 10**11 <= number < 10**12:
        raise Bad(f"number {number} is not 12 digits")
    c = 0
    for i, digit in enumerate(reversed(str(number))):
        c = VERHOEFF_D[c][VERHOEFF_P[i % 8][int(digit)]]
    if c != 0:
        raise Bad(f"number {number:012d} fails its Verhoeff check digit")


class Statuses:
    """Each registered person's status as the log so far leaves it, and what each event
    requires of the status of the persons it names (section 6, "A person's status")."""

    def __init__(self) -> None:
        self.status: dict[int, str] = {}
        self.before_death: dict[int, str] = {}
        self.merged_into: dict[int, int] = {}

    def require(self, person: int, allowed: set[str], action: str) -> None:
        if self.status[person] not in allowed:
            raise Bad(f"{action} person {person}, who is {self.status[person]}")

    def apply(self, seq: int, kind: int, persons: list[int]) -> None:
        """Checks the event's requirement, then applies it. `persons` were registered."""
        if kind == 16:
            self.status[seq] = "active"
        elif kind in (24, 26):
            survivor, duplicate = persons
            if kind == 24:
                self.require(survivor, {"active"}, "merges into")
                self.require(duplicate, {"active"}, "merges")
                self.status[duplicate] = "merged"
                self.merged_into[duplicate] = survivor
            else:
                if self.merged_into.get(duplicate) != survivor or self.status[duplicate] != "merged":
                    raise Bad(f"unmerges person {duplicate}, who is not merged into person {survivor}")
                if self.status[survivor] == "merged":
                    raise Bad(f"unmerges person {duplicate} from person {survivor}, who is merged")
                self.status[duplicate] = "active"
                del self.merged_into[duplicate]
        elif kind in RESTRICTED:
            (person,) = persons
            action, allowed, after = RESTRICTED[kind]
            self.require(person, allowed, action)
            if kind == 21:
                self.before_death[person] = self.status[person]
            if kind == 27:
                after = self.before_death.pop(person)
            if kind == 25:
                self.before_death.pop(person, None)
                self.merged_into.pop(person, None)
            if after is not None:
                self.status[person] = after


# Per kind of event about one person: what it does to them (for the message), the
# statuses it requires of them, and their status after it (None: unchanged; for
# DeathRetracted, the status before the death). AgencyRecordUnlinked (20) requires
# nothing of the status.
ANY_BUT_ERASED = {"active", "revoked", "deceased", "merged"}
RESTRICTED = {
    17: ("replaces the number of", {"active"}, None),
    18: ("corrects the demographics of", {"active"}, None),
    19: ("links a record to", {"active"}, None),
    21: ("records the death of", {"active", "revoked"}, "deceased"),
    22: ("revokes", {"active"}, "revoked"),
    23: ("reinstates", {"revoked"}, "active"),
    25: ("erases", ANY_BUT_ERASED, "erased"),
    27: ("retracts the death of", {"deceased"}, None),
}


def verify_signature(public: bytes, signature: bytes, message: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(public).verify(signature, message)
        return True
    except InvalidSignature:
        return False


def records(path: str):
    with open(path, "rb") as f:
        data = f.read()
    at = 0
    while at < len(data):
        if at + 4 > len(data):
            raise Bad("truncated frame length")
        (n,) = struct.unpack(">I", data[at:at + 4])
        if at + 4 + n > len(data):
            raise Bad("truncated record")
        yield data[at + 4:at + 4 + n]
        at += 4 + n


def verify(path: str, genesis: bytes) -> int:
    prev_hash, last_time, key, issued = b"\x00" * 32, None, None, set()
    statuses = Statuses()
    # Each registered person (the sequence number of their registration) and the
    # number in force for them.
    in_force: dict[int, int] = {}
    count = 0
    for seq, rec in enumerate(records(path)):
        try:
            if len(rec) < 65 + 64:
                raise Bad("shorter than a header and a signature")
            if rec[0] != 1:
                raise Bad(f"format version {rec[0]}")
            (n,) = struct.unpack(">I", rec[61:65])
            if n > MAX_PAYLOAD or len(rec) != 65 + n + 64:
                raise Bad("length does not match the declared payload length")
            (field_seq,) = struct.unpack(">Q", rec[1:9])
            (time,) = struct.unpack(">q", rec[9:17])
            kind, version = struct.unpack(">HH", rec[57:61])
            payload, signature = rec[65:65 + n], rec[65 + n:]
            if field_seq != seq:
                raise Bad(f"carries sequence number {field_seq}")
            if rec[17:49] != prev_hash:
                raise Bad("prev_hash is not the previous record's hash")
            if last_time is not None and time < last_time:
                raise Bad("time goes backwards")
            if (kind, version) not in KNOWN:
                raise Bad(f"unknown event kind {kind} version {version}")
            event = decode(kind, version, payload)
            if seq == 0:
                if kind != 1:
                    raise Bad("record 0 is not LogInitialized")
                if event["public_key"] != genesis:
                    raise Bad("names a genesis key other than the published one")
                key = genesis
            elif kind == 1:
                raise Bad("LogInitialized after record 0")
            if rec[49:57] != key_id(key):
                raise Bad("key_id is not the key in force")
            if not verify_signature(key, signature, RECORD_DOMAIN + rec[:65 + n]):
                raise Bad("signature does not verify")
            if kind == 2:
                new = event["new_public_key"]
                if not verify_signature(new, event["new_key_signature"], ROTATION_DOMAIN + key + new):
                    raise Bad("the new key's consent does not verify")
                key = new
            for person in event.get("persons", []):
                if person not in in_force:
                    raise Bad(f"names person {person}, whom no earlier record registered")
            if "old_number" in event and event["old_number"] != in_force[event["persons"][0]]:
                raise Bad(
                    f"replaces number {event['old_number']:012d}, not the number in force of person "
                    f"{event['persons'][0]}"
                )
            if kind >= 16:
                statuses.apply(seq, kind, event.get("persons", []))
            if "number" in event:
                check_number(event["number"])
                if event["number"] in issued:
                    raise Bad(f"number {event['number']:012d} issued twice")
                issued.add(event["number"])
                # A registration's person is its own sequence number (section 5).
                in_force[event["persons"][0] if kind == 17 else seq] = event["number"]
        except Bad as e:
            print(f"record {seq}: {e}")
            return 1
        prev_hash = blake3.blake3(rec).digest()
        last_time = time
        count += 1
    print(f"ok: {count} records, head {prev_hash.hex()}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__)
        sys.exit(2)
    try:
        _, genesis_key = parse_verifier_key(sys.argv[2])
        sys.exit(verify(sys.argv[1], genesis_key))
    except (Bad, ValueError, OSError) as e:
        print(f"error: {e}")
        sys.exit(1)
