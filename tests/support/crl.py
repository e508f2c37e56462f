"""The central bank's CRL as the test system publishes it (docs/protocol.md, "Revocation")."""

from __future__ import annotations

import datetime as dt
import time
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from ecash_tpm.centralbank.ca import CentralBankCA

#: CRLs published by the test system are valid this long (tests move the clock by days).
CRL_VALID_S = 10 * 365 * 86400


def publish_crl(ca: CentralBankCA, path: Path, now: int, valid_for_s: int = CRL_VALID_S) -> Path:
    """Write the CA's current CRL (PEM) to ``path``: issued at ``now`` (never after the real
    time: OpenSSL checks the same file in TLS handshakes), valid until ``now + valid_for_s``."""
    issued = min(now, int(time.time()))
    crl = ca.crl(
        now=dt.datetime.fromtimestamp(issued, dt.UTC),
        valid_for=dt.timedelta(seconds=valid_for_s + now - issued),
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(crl.public_bytes(serialization.Encoding.PEM))
    return path
