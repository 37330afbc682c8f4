"""Loads an X.509-SVID with the SPIFFE Python library and prints its SPIFFE ID.

Usage: spiffe_load_svid.py <svid.pem> <svid.key>
"""

import sys

from cryptography.hazmat.primitives.serialization import Encoding
from spiffe import X509Svid

svid = X509Svid.load(sys.argv[1], sys.argv[2], Encoding.PEM)
print(svid.spiffe_id)
