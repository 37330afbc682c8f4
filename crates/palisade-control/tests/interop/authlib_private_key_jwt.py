"""Fetches a client-credentials token with authlib's OAuth2Session and private_key_jwt.

Usage: authlib_private_key_jwt.py <token_url> <client_id> <key.pem> <bundle.pem> <audience>
Prints the token response as JSON on stdout.
"""

import json
import sys
import time

from authlib.integrations.requests_client import OAuth2Session
from authlib.oauth2.rfc7523 import PrivateKeyJWT
from joserfc.jwk import ECKey
from requests.adapters import HTTPAdapter


class NoHostnameAdapter(HTTPAdapter):
    """The control plane's certificate has only a URI SAN (its SPIFFE ID): the chain is
    still verified against the bundle, only the hostname check is off."""

    def init_poolmanager(self, *args, **kwargs):
        kwargs["assert_hostname"] = False
        return super().init_poolmanager(*args, **kwargs)


token_url, client_id, key_path, bundle, audience = sys.argv[1:6]
with open(key_path, encoding="ascii") as f:
    key = ECKey.import_key(f.read())

# authlib's default assertion lifetime is an hour; Palisade accepts at most 5 minutes.
auth = PrivateKeyJWT(token_url, claims={"exp": int(time.time()) + 120}, alg="ES256")
session = OAuth2Session(client_id, key, token_endpoint_auth_method=auth)
session.mount("https://", NoHostnameAdapter())
token = session.fetch_token(
    token_url,
    grant_type="client_credentials",
    audience=audience,
    verify=bundle,
    timeout=10,
)
print(json.dumps(dict(token)))
