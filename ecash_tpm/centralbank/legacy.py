"""Import of a CA's pre-database JSON state (``state.json``) into its database, once.

Kept apart from :mod:`ecash_tpm.centralbank.ca` because it only runs for data directories from
before the move to a database, and :meth:`CentralBankCA.load` calls it lazily.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
from pathlib import Path
from typing import Any

from cryptography import x509

from ecash_tpm.centralbank.ca import (
    STATE_FILE,
    STATE_VERSION,
    CaStateError,
    _fingerprint,
    _reason,
    _ts,
)
from ecash_tpm.centralbank.store import CentralBankStore
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.errors import EcashError

__all__ = ["import_legacy_state"]


def import_legacy_state(directory: Path, store: CentralBankStore, root: x509.Certificate) -> None:
    """Move a ``state.json`` CA log into an empty database, then rename the file.

    Without a ``state.json`` an empty database next to an existing key is an error: starting
    over would forget revocations and restart the CRL numbers.
    """
    path = directory / STATE_FILE
    if not path.exists():
        raise CaStateError(
            "the CA database has no record of this root (wrong database_url, or the log was "
            "lost); refusing to start with an empty issuance log",
            detail={"database": store.db.url, "data_dir": os.fspath(directory)},
        )
    try:
        state = _load_state(path.read_bytes())
    except OSError as exc:
        raise CaStateError(f"cannot read {STATE_FILE}: {exc}") from exc
    certificates = []
    for serial_hex, entry in state["issued"].items():
        try:
            der = b64u_decode(entry["cert"])
            certificates.append(
                {
                    "serial_hex": format(int(serial_hex, 16), "x"),
                    "role": str(entry["role"]),
                    "name": str(entry["name"]),
                    "not_before": _ts(dt.datetime.fromisoformat(entry["not_before"])),
                    "not_after": _ts(dt.datetime.fromisoformat(entry["not_after"])),
                    "fingerprint": hashlib.sha256(der).hexdigest(),
                    "cert_der": der,
                }
            )
        except (KeyError, ValueError, TypeError, EcashError) as exc:
            raise CaStateError(f"issuance record {serial_hex} in {STATE_FILE} is corrupt") from exc
    revocations = []
    for serial_hex, entry in state["revoked"].items():
        try:
            revocations.append(
                (
                    format(int(serial_hex, 16), "x"),
                    _reason(entry["reason"]).value,
                    _ts(dt.datetime.fromisoformat(entry["revoked_at"])),
                )
            )
        except (KeyError, ValueError, TypeError, EcashError) as exc:
            raise CaStateError(f"revocation {serial_hex} in {STATE_FILE} is corrupt") from exc
    store.import_state(
        fingerprint=_fingerprint(root),
        subject=root.subject.rfc4514_string(),
        crl_number=state["crl_number"],
        certificates=certificates,
        revocations=revocations,
    )
    try:
        os.replace(path, directory / (STATE_FILE + ".imported"))
    except OSError as exc:
        raise CaStateError(f"imported {STATE_FILE} but cannot rename it: {exc}") from exc


def _load_state(data: bytes) -> dict[str, Any]:
    try:
        state = json.loads(data)
    except ValueError as exc:
        raise CaStateError(f"{STATE_FILE} is not JSON") from exc
    if (
        not isinstance(state, dict)
        or state.get("version") != STATE_VERSION
        or not isinstance(state.get("crl_number"), int)
        or not isinstance(state.get("issued"), dict)
        or not isinstance(state.get("revoked"), dict)
    ):
        raise CaStateError(f"{STATE_FILE} has an unknown layout")
    return state
