#!/usr/bin/env python3
"""Interop check: PyJWT validates a Palisade access token with the issuer's JWKS.

Usage: verify_with_pyjwt.py FIXTURE.json

FIXTURE.json holds {"token", "jwks", "issuer", "audience", "cert_der_b64url"?}, as
written by the ignored Rust test `pyjwt_validates_palisade_tokens_with_the_jwks`
(tests/interop.rs). Needs `pip install pyjwt cryptography`. Exits 0 when the token
validates (signature, typ at+jwt, iss, aud, exp, and the cnf x5t#S256 certificate
binding when a certificate is given), 1 otherwise.
"""

import base64
import hashlib
import json
import sys

import jwt  # PyJWT


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> int:
    with open(sys.argv[1], encoding="utf-8") as f:
        fixture = json.load(f)
    token = fixture["token"]
    header = jwt.get_unverified_header(token)
    if header.get("typ", "").lower() not in ("at+jwt", "application/at+jwt"):
        print(f"FAIL: typ is {header.get('typ')!r}, expected at+jwt")
        return 1
    jwks = jwt.PyJWKSet.from_dict(fixture["jwks"])
    key = next((k for k in jwks.keys if k.key_id == header.get("kid")), None)
    if key is None:
        print(f"FAIL: kid {header.get('kid')!r} not in the JWKS")
        return 1
    claims = jwt.decode(
        token,
        key=key.key,
        algorithms=["ES256"],
        audience=fixture["audience"],
        issuer=fixture["issuer"],
        options={"require": ["exp", "iat", "iss", "aud", "sub", "jti"]},
    )
    for name in ("client_id", "scope"):
        if name not in claims:
            print(f"FAIL: claim {name} missing")
            return 1
    cert = fixture.get("cert_der_b64url")
    if cert is not None:
        der = base64.urlsafe_b64decode(cert + "=" * (-len(cert) % 4))
        expected = b64url(hashlib.sha256(der).digest())
        if claims.get("cnf", {}).get("x5t#S256") != expected:
            print("FAIL: cnf x5t#S256 does not match the certificate")
            return 1
    print(f"OK: {claims['client_id']} -> {claims['aud']} scope={claims['scope']!r}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except jwt.PyJWTError as e:
        print(f"FAIL: {type(e).__name__}: {e}")
        sys.exit(1)
