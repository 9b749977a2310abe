#!/usr/bin/env python3
"""Verifies one PASETO v4.public token (standard input) with pyseto, a stock PASETO library, and
signs its exact claims and footer again with pyseto.

PATKit-specific claims such as `par` (lineage) are ordinary claims to a stock verifier: pyseto
must verify the token and hand every claim back unchanged. Prints one JSON object: the claims and
footer as pyseto parsed them, the verified payload bytes (base64url), and the token pyseto signs
from them (Ed25519 is deterministic: the same bytes as the input when nothing was lost).

usage: pyseto_resign.py K4_PUBLIC_PASERK K4_SECRET_FILE < token   (needs `pip install pyseto`)
"""
import base64
import json
import sys

import pyseto
from pyseto import Key


def main():
    public_key = Key.from_paserk(sys.argv[1])
    with open(sys.argv[2]) as f:
        secret_key = Key.from_paserk(f.read().strip())
    token = sys.stdin.read().strip()
    decoded = pyseto.decode(public_key, token)  # raises on a bad signature
    resigned = pyseto.encode(secret_key, decoded.payload, footer=decoded.footer).decode()
    print(json.dumps({
        "claims": json.loads(decoded.payload),
        "footer": json.loads(decoded.footer),
        "payload": base64.urlsafe_b64encode(decoded.payload).rstrip(b"=").decode(),
        "resigned": resigned,
    }))


if __name__ == "__main__":
    main()
