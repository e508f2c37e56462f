"""The central bank's current revocation list as one verifier holds it (docs/protocol.md,
"Revocation").

Every verifier (bank, merchant, wallet, TTP, supervision) passes a :class:`CrlSource` as
``crl=`` to :func:`~ecash_tpm.pki.verify_party_certificate` / :func:`~ecash_tpm.pki.
verify_tls_peer`. The source gets the CRL bytes from ``fetch`` (a file the deployment keeps
fresh, or the central bank's ``GET /v1/crl``), checks that the root signed them, and hands out
the parsed list. It fetches again when its copy is older than ``refresh_s`` (so a revocation
reaches every verifier within that time) and whenever its copy is past ``next_update``. If no
current list can be had, the verifier refuses to act: ``crl.stale`` (a list past its
``next_update``) or ``crl.unavailable`` (never got one), both 503, never "not revoked".

Pure except for the ``fetch`` callable, which the caller supplies (``ecash_tpm.clients`` has
the file and HTTP fetchers); thread-safe.
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable

from cryptography import x509

from ecash_tpm.errors import EcashError
from ecash_tpm.pki.certificates import (
    CrlInvalidError,
    CrlStaleError,
    _verified_crl,
    load_certificate,
)

__all__ = ["CrlSource", "CrlUnavailableError"]


class CrlUnavailableError(CrlInvalidError):
    """No revocation list could be fetched yet: revocation status unknown, nothing is accepted
    (HTTP 503)."""

    code = "crl.unavailable"
    http_status = 503


class CrlSource:
    """The current, root-signed CRL for one verifier (see the module docstring)."""

    def __init__(
        self,
        root: x509.Certificate | bytes | str,
        fetch: Callable[[], bytes],
        *,
        refresh_s: int = 60,
        label: str = "crl",
    ) -> None:
        self.root = load_certificate(root)
        self._fetch = fetch
        self.refresh_s = max(0, refresh_s)
        self.label = label
        self._lock = threading.Lock()
        self._raw: bytes | None = None
        self._crl: x509.CertificateRevocationList | None = None
        self._fetched_at: dt.datetime | None = None

    def current_crl(self, now: dt.datetime) -> x509.CertificateRevocationList:
        """The verified, current CRL at ``now``; ``crl.stale`` / ``crl.unavailable`` when there
        is none, ``crl.invalid`` when what was fetched is not the root's."""
        with self._lock:
            due = (
                self._crl is None
                or self._fetched_at is None
                # abs(): callers with another clock (TLS checks use the wall clock) never
                # make a copy look fresher than it is
                or abs(now - self._fetched_at) >= dt.timedelta(seconds=self.refresh_s)
                or _past_next_update(self._crl, now)
            )
            failure: EcashError | None = None
            if due:
                try:
                    raw = self._fetch()
                except EcashError as exc:
                    failure = exc  # keep a current copy if there is one
                else:
                    if raw != self._raw or self._crl is None:
                        parsed = _verified_crl(raw, self.root, now, allow_stale=True)
                        self._raw, self._crl = raw, parsed
                    self._fetched_at = now
            crl = self._crl
        if crl is None:
            raise CrlUnavailableError(
                "no revocation list from the central bank: refusing to accept certificates",
                detail={"source": self.label, **({} if failure is None else failure.to_dict())},
            )
        if _past_next_update(crl, now):
            next_update = crl.next_update_utc
            raise CrlStaleError(
                "the revocation list is past its next update: refusing to accept certificates",
                detail={
                    "source": self.label,
                    "next_update": None if next_update is None else next_update.isoformat(),
                },
            )
        return crl


def _past_next_update(crl: x509.CertificateRevocationList, now: dt.datetime) -> bool:
    next_update = crl.next_update_utc
    return next_update is None or next_update < now
