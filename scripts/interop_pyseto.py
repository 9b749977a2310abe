#!/usr/bin/env python3
"""Interoperability check of PATKit against pyseto, a stock PASETO/PASERK implementation.

Both directions, with the real `pat` binary:
  1. a token from `pat issue` verifies in pyseto with the key from `pat keys export`;
  2. a token signed by pyseto with the k4.secret from HOME/keys verifies with `pat verify`.
Also checks that pyseto computes the same PASERK id (k4.pid) for the key, and that it refuses
PATKit tokens whose claims, signature or footer were tampered with (a signature failure, nothing else).

usage: interop_pyseto.py PAT_BINARY   (needs `pip install pyseto`)
"""
import base64
import json
import os
import subprocess
import sys
import tempfile
from datetime import datetime, timedelta, timezone

import pyseto
from pyseto import Key


def run(*args, stdin=None, check=True):
    result = subprocess.run(args, input=stdin, capture_output=True, text=True)
    if check and result.returncode != 0:
        sys.exit(f"FAIL: {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}")
    return result


def b64decode(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def b64encode(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def tampered(token, part):
    """The token with one bit flipped in its claims, its signature or its footer, re-encoded
    canonically so that only the signature check can refuse it."""
    version, purpose, payload, footer = token.split(".")
    body = bytearray(b64decode(payload))
    if part == "claims":
        body[body.index(b'"alice"') + 1] ^= 0x01  # "alice" becomes "`lice"
    elif part == "signature":
        body[-10] ^= 0x01  # the last 64 bytes are the Ed25519 signature
    raw_footer = bytearray(b64decode(footer))
    if part == "footer":
        raw_footer[raw_footer.index(b'"kid"') + 1] ^= 0x20  # "kid" becomes "Kid"
    return ".".join([version, purpose, b64encode(bytes(body)), b64encode(bytes(raw_footer))])


def main():
    pat = os.path.abspath(sys.argv[1])
    passed = failed = 0
    with tempfile.TemporaryDirectory() as home:
        kid = run(pat, "keys", "generate", "--home", home).stdout.strip()
        run(pat, "publish", "--home", home)  # a revocation list: `pat verify` refuses to decide without one
        keyset = json.loads(run(pat, "keys", "export", "--home", home).stdout)
        public_paserk = keyset["keys"][0]["key"]
        public_key = Key.from_paserk(public_paserk)

        def check(name, ok, detail=""):
            nonlocal passed, failed
            if ok:
                passed += 1
                print(f"ok   {name}")
            else:
                failed += 1
                print(f"FAIL {name} {detail}")

        check("pyseto computes the same k4.pid", public_key.to_paserk_id() == kid, f"{public_key.to_paserk_id()} != {kid}")

        # 1. PATKit -> pyseto
        token = run(pat, "issue", "--home", home, "--subject", "alice", "--scope", "clients:view",
                    "--scope", "channels:connect_client:ch-42", "--expires-in", "1h", "--domain", "d1").stdout.strip()
        decoded = pyseto.decode(public_key, token, deserializer=json)
        claims = decoded.payload
        check("pyseto verifies a PATKit token", claims["sub"] == "alice" and claims["dom"] == "d1", str(claims))
        footer = decoded.footer if isinstance(decoded.footer, dict) else json.loads(decoded.footer)
        check("footer names the key by k4.pid", footer["kid"] == kid, str(decoded.footer))
        # Tampered tokens: each must fail signature verification (pyseto.VerifyError), not
        # parsing or anything else, and the tampering must keep the token well-formed.
        for part in ("claims", "signature", "footer"):
            forged = tampered(token, part)
            name = f"pyseto rejects a PATKit token with tampered {part}"
            try:
                pyseto.decode(public_key, forged, deserializer=json)
                check(name, False, "it was accepted")
            except pyseto.VerifyError:
                check(name, forged != token)
            except Exception as error:  # anything else means the test tampered wrongly, or pyseto broke
                check(name, False, f"unexpected {type(error).__name__}: {error}")

        # 2. pyseto -> PATKit, signed with the k4.secret from HOME/keys
        with open(os.path.join(home, "keys", f"{kid}.secret")) as f:
            secret_key = Key.from_paserk(f.read().strip())
        now = datetime.now(timezone.utc).replace(microsecond=0)
        fmt = "%Y-%m-%dT%H:%M:%SZ"
        payload = {
            "jti": "pyseto-interop-0123456789ab",
            "sub": "bob",
            "gen": 1,
            "iat": now.strftime(fmt),
            "exp": (now + timedelta(hours=1)).strftime(fmt),
            "scope": "clients:view:*",
            "ignore_2fa": True,
        }
        foreign = pyseto.encode(secret_key, json.dumps(payload, separators=(",", ":")).encode(),
                                footer=json.dumps({"kid": kid}, separators=(",", ":")).encode()).decode()
        verified = run(pat, "verify", "--home", home, "--json", "--require", "clients:view:x1", stdin=foreign + "\n", check=False)
        out = json.loads(verified.stdout or "{}")
        check("pat verify accepts a pyseto token", verified.returncode == 0 and out.get("valid") is True
              and out["claims"]["ignore_2fa"] is True, verified.stdout + verified.stderr)

        expired = {**payload, "iat": (now - timedelta(hours=2)).strftime(fmt), "exp": (now - timedelta(hours=1)).strftime(fmt)}
        bad = pyseto.encode(secret_key, json.dumps(expired).encode(),
                            footer=json.dumps({"kid": kid}).encode()).decode()
        refused = run(pat, "verify", "--home", home, "--json", bad, check=False)
        check("pat verify rejects an expired pyseto token", refused.returncode == 1
              and json.loads(refused.stdout).get("code") == "expired", refused.stdout)

    print(f"{passed} passed, {failed} failed")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
