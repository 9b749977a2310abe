#!/usr/bin/env python3
"""An independent verifier of PATKit's documents, written from FORMATS.md alone: the signed key
set, the revocation list (version 3) and the revocation list delta. It proves the specification
is enough for an edge in another language. Ed25519 comes from `cryptography` (a dependency of
pyseto), BLAKE2b from the standard library.

usage:
  scripts/patkit_formats.py vectors FILE
      Checks every case of a test-vector file (vectors/patkit-formats.json): valid documents
      must verify and give the expected results, invalid ones must be refused. Exit 1 on any
      disagreement.
  scripts/patkit_formats.py published DIR ANCHORS
      Verifies what `pat publish` wrote in DIR (keys.json, revocations.bin and, when present,
      revocations.delta) against the trust anchors file ANCHORS; applies the delta to nothing
      (its base is gone) but checks its signature and that it leads to the list. Exit 1 when
      anything does not verify.
"""
import base64
import hashlib
import json
import re
import struct
import sys

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

MAX_SEQUENCE = 2**53 - 1
MAX_PRUNE_MARGIN = 604_800
U64_MAX = 2**64 - 1


class Refused(Exception):
    """The document is not acceptable; the message says why."""


# ---------------------------------------------------------------- conventions (FORMATS.md §1)

def b64url_decode(text):
    if not re.fullmatch(r"[A-Za-z0-9_-]*", text) or len(text) % 4 == 1:
        raise Refused("not canonical base64url")
    raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if b64url_encode(raw) != text:
        raise Refused("not canonical base64url")
    return raw


def b64url_encode(raw):
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def pae(*pieces):
    out = struct.pack("<Q", len(pieces) & (2**63 - 1))
    for piece in pieces:
        out += struct.pack("<Q", len(piece) & (2**63 - 1)) + piece
    return out


def blake2b(data, size):
    return hashlib.blake2b(data, digest_size=size).digest()


def verify(public_key, signature, message):
    try:
        Ed25519PublicKey.from_public_bytes(public_key).verify(signature, message)
        return True
    except InvalidSignature:
        return False


def public_key(paserk):
    if not paserk.startswith("k4.public."):
        raise Refused("not a k4.public key")
    raw = b64url_decode(paserk[len("k4.public."):])
    if len(raw) != 32:
        raise Refused("a k4.public key is 32 bytes")
    return raw


def key_id(paserk):
    return "k4.pid." + b64url_encode(blake2b(b"k4.pid." + paserk.encode(), 33))


TIME = re.compile(r"(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})Z")


def parse_time(text):
    import calendar
    m = TIME.fullmatch(text) if isinstance(text, str) else None
    if not m:
        raise Refused(f"not a time: {text!r}")
    y, mo, d, h, mi, s = map(int, m.groups())
    if not (1 <= y <= 9999 and 1 <= mo <= 12 and 1 <= d <= 31 and h < 24 and mi < 60 and s < 60):
        raise Refused(f"not a time: {text!r}")
    return calendar.timegm((y, mo, d, h, mi, s))


def strict_json(raw):
    def no_duplicates(pairs):
        names = [name for name, _ in pairs]
        if len(names) != len(set(names)):
            raise Refused("duplicated JSON member")
        return dict(pairs)
    try:
        return json.loads(raw.decode("utf-8"), object_pairs_hook=no_duplicates)
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise Refused(f"not JSON: {error}")


# ---------------------------------------------------------------- trust anchors (§2)

def read_anchors(text):
    anchors = {}
    for line in text.split("\n"):
        line = line.strip(" \t\r")
        if not line or line.startswith("#"):
            continue
        anchors[key_id(line)] = public_key(line)
    if not 1 <= len(anchors) <= 64:
        raise Refused("1 to 64 trust anchors")
    return anchors


# ---------------------------------------------------------------- signed key set (§3)

def verify_key_set(raw, anchors):
    """anchors: kid → 32-byte key. Returns {sequence, issuedAt, nextUpdate, active: kid → key}."""
    if len(raw) > 350_549:
        raise Refused("key set too large")
    envelope = strict_json(raw)
    if not isinstance(envelope, dict) or set(envelope) != {"payload", "signer", "signature"}:
        raise Refused("a signed key set has exactly payload, signer and signature")
    signer = envelope["signer"]
    if signer not in anchors:
        raise Refused("the key set is not signed by a pinned anchor")
    payload = b64url_decode(envelope["payload"])
    signature = b64url_decode(envelope["signature"])
    if len(payload) > 262_144 or len(signature) != 64:
        raise Refused("bad payload or signature size")
    if not verify(anchors[signer], signature, pae(b"patkit.key-set.v1", signer.encode(), payload)):
        raise Refused("key set signature does not verify")
    body = strict_json(payload)
    if not isinstance(body, dict) or set(body) != {"sequence", "issuedAt", "nextUpdate", "keys"}:
        raise Refused("the payload has exactly sequence, issuedAt, nextUpdate and keys")
    sequence = body["sequence"]
    if type(sequence) is not int or not 1 <= sequence <= MAX_SEQUENCE:
        raise Refused("sequence out of range")
    issued, next_update = parse_time(body["issuedAt"]), parse_time(body["nextUpdate"])
    if not issued < next_update:
        raise Refused("issuedAt must be before nextUpdate")
    keys = body["keys"]
    if not isinstance(keys, list) or len(keys) > 256:
        raise Refused("keys: an array of at most 256")
    active, seen = {}, set()
    for entry in keys:
        if not isinstance(entry, dict) or not isinstance(entry.get("kid"), str) or not isinstance(entry.get("key"), str):
            raise Refused("a key needs kid and key")
        if key_id(entry["key"]) != entry["kid"] or entry["kid"] in seen:
            raise Refused("kid does not match its key, or repeats")
        seen.add(entry["kid"])
        status = entry.get("status", "active")
        if status not in ("active", "retired"):
            raise Refused("status is active or retired")
        if "created" in entry:
            parse_time(entry["created"])
        if status == "active":
            active[entry["kid"]] = public_key(entry["key"])
    if not active:
        raise Refused("no active key")
    return {"sequence": sequence, "issuedAt": issued, "nextUpdate": next_update, "active": active}


# ---------------------------------------------------------------- revocation list v3 (§4)

class Reader:
    def __init__(self, data, offset=0):
        self.data, self.offset = data, offset

    def take(self, n):
        if n < 0 or len(self.data) - self.offset < n:
            raise Refused("truncated")
        piece = self.data[self.offset:self.offset + n]
        self.offset += n
        return piece

    def u8(self):
        return self.take(1)[0]

    def u32(self):
        return struct.unpack("<I", self.take(4))[0]

    def u64(self):
        return struct.unpack("<Q", self.take(8))[0]

    def i64(self):
        return struct.unpack("<q", self.take(8))[0]


def read_signer(reader, keys):
    kid = reader.take(reader.u8())
    try:
        kid = kid.decode("ascii")
    except UnicodeDecodeError:
        raise Refused("signer kid is not ASCII")
    if kid not in keys:
        raise Refused(f"signed by {kid}, not an active key of the key set")
    return kid


def read_entries(reader, count, size=32):
    entries, previous = [], None
    for _ in range(count):
        entry = reader.take(size)
        if previous is not None and not previous < entry[:16]:
            raise Refused("entries are not strictly ascending")
        previous = entry[:16]
        entries.append(entry)
    return entries


def verify_list(raw, keys, leeway=60):
    """keys: kid → key (the active keys). Returns the list as a dict."""
    if len(raw) > 268_435_456:
        raise Refused("list too large")
    reader = Reader(raw)
    magic = reader.take(8)
    if magic != b"PATKRL03":
        raise Refused(f"not a version 3 revocation list (magic {magic!r})")
    kid = read_signer(reader, keys)
    sequence, issued, next_update, margin = reader.u64(), reader.i64(), reader.i64(), reader.u32()
    counts = (reader.u32(), reader.u32(), reader.u32())
    if len(raw) != reader.offset + 32 * sum(counts) + 64:
        raise Refused("length does not match the counts")
    body = raw[:-64]
    if not verify(keys[kid], raw[-64:], pae(b"patkit.revocation-list.v3", blake2b(body, 64))):
        raise Refused("list signature does not verify")
    if not 1 <= sequence <= MAX_SEQUENCE or not issued < next_update or margin > MAX_PRUNE_MARGIN:
        raise Refused("header out of range")
    if leeway > margin:
        raise Refused("the verifier's leeway exceeds the prune margin")
    tables = [read_entries(reader, n) for n in counts]
    return {"signer": kid, "sequence": sequence, "issuedAt": issued, "nextUpdate": next_update, "pruneMargin": margin,
            "tables": [{e[:16]: e[16:] for e in table} for table in tables], "signature": raw[-64:], "bytes": raw}


def entry_key(domain, text):
    return blake2b(domain + b"\x00" + text.encode(), 16)


def check(lst, jti, sub, gen, iat, now):
    """None when the list lets the token pass, else why not (the lineage is checked like jti)."""
    tokens, owners, overlaps = lst["tables"]
    key = entry_key(b"patkit.jti", jti)
    if key in tokens:
        floor, _ = struct.unpack("<Qq", tokens[key])
        if gen < floor:
            kept = False
            if floor != U64_MAX and key in overlaps:
                generation, until = struct.unpack("<Qq", overlaps[key])
                kept = generation == gen and now <= until
            if not kept:
                return "deleted" if floor == U64_MAX else "superseded"
    owner = entry_key(b"patkit.sub", sub)
    if owner in owners:
        before, _ = struct.unpack("<qq", owners[owner])
        if iat < before:
            return "owner-revoked"
    return None


# ---------------------------------------------------------------- deltas (§6)

def split_chain(raw):
    pieces, offset = [], 0
    while offset < len(raw):
        reader = Reader(raw, offset)
        if reader.take(8) != b"PATKRD01":
            raise Refused("not a revocation list delta (magic)")
        reader.take(reader.u8() + 8 + 64 + 8 + 8 + 8 + 4 + 12)
        sections = [reader.u32() for _ in range(6)]
        length = reader.offset - offset + 32 * (sections[0] + sections[2] + sections[4]) \
            + 16 * (sections[1] + sections[3] + sections[5]) + 128
        if length > len(raw) - offset:
            raise Refused("truncated delta")
        pieces.append(raw[offset:offset + length])
        offset += length
    if not pieces:
        raise Refused("an empty delta chain")
    return pieces


def verify_delta(raw, keys):
    reader = Reader(raw)
    if reader.take(8) != b"PATKRD01":
        raise Refused("not a revocation list delta (magic)")
    kid = read_signer(reader, keys)
    base_sequence, base_signature = reader.u64(), reader.take(64)
    sequence, issued, next_update, margin = reader.u64(), reader.i64(), reader.i64(), reader.u32()
    counts = (reader.u32(), reader.u32(), reader.u32())
    sections = [reader.u32() for _ in range(6)]
    expected = reader.offset + 32 * (sections[0] + sections[2] + sections[4]) + 16 * (sections[1] + sections[3] + sections[5]) + 128
    if len(raw) != expected:
        raise Refused("length does not match the section counts")
    if not verify(keys[kid], raw[-64:], pae(b"patkit.revocation-delta.v1", blake2b(raw[:-64], 64))):
        raise Refused("delta signature does not verify")
    if base_sequence < 1 or sequence > MAX_SEQUENCE or not sequence > base_sequence:
        raise Refused("sequences must increase within 1 … 2^53 − 1")
    if not issued < next_update or margin > MAX_PRUNE_MARGIN:
        raise Refused("header out of range")
    changes = []
    for table in range(3):
        upserts = read_entries(reader, sections[2 * table])
        removals = read_entries(reader, sections[2 * table + 1], 16)
        if {e[:16] for e in upserts} & set(removals):
            raise Refused("a key both changed and removed")
        changes.append((upserts, removals))
    list_signature = reader.take(64)
    return {"signer": kid, "baseSequence": base_sequence, "baseSignature": base_signature, "sequence": sequence,
            "issuedAt": issued, "nextUpdate": next_update, "pruneMargin": margin, "counts": counts,
            "changes": changes, "listSignature": list_signature}


def apply_delta(lst, delta):
    if delta["baseSequence"] != lst["sequence"] or delta["baseSignature"] != lst["signature"]:
        raise Refused("the delta applies to another list")
    tables = []
    for table, (upserts, removals) in zip(lst["tables"], delta["changes"]):
        table = dict(table)
        for key in removals:
            if key not in table:
                raise Refused("the delta removes an entry the list does not hold")
            del table[key]
        for entry in upserts:
            if table.get(entry[:16]) == entry[16:]:
                raise Refused("the delta re-states an entry unchanged")
            table[entry[:16]] = entry[16:]
        tables.append(table)
    if tuple(len(t) for t in tables) != delta["counts"]:
        raise Refused("the entry counts differ from the delta's")
    kid = delta["signer"].encode()
    out = b"PATKRL03" + bytes([len(kid)]) + kid
    out += struct.pack("<QqqI", delta["sequence"], delta["issuedAt"], delta["nextUpdate"], delta["pruneMargin"])
    out += struct.pack("<III", *delta["counts"])
    for table in tables:
        for key in sorted(table):
            out += key + table[key]
    out += delta["listSignature"]
    return {"signer": delta["signer"], "sequence": delta["sequence"], "issuedAt": delta["issuedAt"],
            "nextUpdate": delta["nextUpdate"], "pruneMargin": delta["pruneMargin"], "tables": tables,
            "signature": delta["listSignature"], "bytes": out}


def apply_chain(lst, raw, keys):
    for piece in split_chain(raw):
        lst = apply_delta(lst, verify_delta(piece, keys))
    return lst


# ---------------------------------------------------------------- commands

def run_case(case):
    kind, doc = case["kind"], bytes.fromhex(case["document"])
    anchors = {key_id(k): public_key(k) for k in case.get("anchors", [])}
    keys = {key_id(k): public_key(k) for k in case.get("keys", [])}
    if kind == "key-set":
        result = verify_key_set(doc, anchors)
        return {"sequence": result["sequence"], "activeKids": sorted(result["active"])}
    if kind == "list":
        lst = verify_list(doc, keys)
        return {"sequence": lst["sequence"], "checks": [check(lst, c["jti"], c["sub"], c["gen"], c["iat"], c["now"])
                                                        for c in case.get("checks", [])]}
    if kind == "delta":
        base = verify_list(bytes.fromhex(case["base"]), keys)
        applied = apply_chain(base, doc, keys)
        # The issuer signed exactly these bytes: the list's own signature verifies too.
        verify_list(applied["bytes"], keys)
        return {"sequence": applied["sequence"], "list": applied["bytes"].hex()}
    raise Refused(f"unknown kind {kind}")


def vectors(path):
    with open(path, "rb") as f:
        suite = strict_json(f.read())
    failures = 0
    for case in suite["cases"]:
        expected = case["expected"]
        try:
            got = run_case(case)
            outcome = "valid"
        except Refused as why:
            got, outcome = str(why), "invalid"
        if outcome != ("valid" if expected["valid"] else "invalid"):
            print(f"FAIL {case['name']}: expected {'valid' if expected['valid'] else 'invalid'}, got {outcome}: {got}")
            failures += 1
            continue
        if outcome == "valid":
            for field in ("sequence", "activeKids", "checks", "list"):
                if field in expected and expected[field] != got.get(field):
                    print(f"FAIL {case['name']}: {field} expected {expected[field]!r}, got {got.get(field)!r}")
                    failures += 1
        print(f"ok   {case['name']}: {outcome}")
    print(f"{len(suite['cases']) - failures} of {len(suite['cases'])} cases agree")
    return 1 if failures else 0


def published(directory, anchors_path):
    with open(anchors_path) as f:
        anchors = read_anchors(f.read())
    with open(f"{directory}/keys.json", "rb") as f:
        key_set = verify_key_set(f.read(), anchors)
    with open(f"{directory}/revocations.bin", "rb") as f:
        lst = verify_list(f.read(), key_set["active"])
    print(f"key set {key_set['sequence']}: {len(key_set['active'])} active key(s); "
          f"list {lst['sequence']}: {[len(t) for t in lst['tables']]} token/owner/overlap entries")
    try:
        with open(f"{directory}/revocations.delta", "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        return 0
    pieces = split_chain(raw)
    last = verify_delta(pieces[-1], key_set["active"])
    if last["sequence"] != lst["sequence"] or last["listSignature"] != lst["signature"]:
        raise Refused("the published delta does not lead to the published list")
    print(f"delta {last['baseSequence']} → {last['sequence']}: {len(raw)} bytes, verified")
    return 0


def main(argv):
    try:
        if len(argv) == 3 and argv[1] == "vectors":
            return vectors(argv[2])
        if len(argv) == 4 and argv[1] == "published":
            return published(argv[2], argv[3])
    except Refused as why:
        print(f"refused: {why}")
        return 1
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
