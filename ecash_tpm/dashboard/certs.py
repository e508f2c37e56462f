"""What the page says about each party's certificate: chain to the central-bank root, validity
period, revocation on the central bank's CRL. Checked here with :mod:`ecash_tpm.pki`, the same
checks every party runs on its peers."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.dashboard.view import Cell, bad, cell, mono, muted, ok, warn
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import (
    certificate_fingerprint,
    common_name,
    load_certificate,
    load_crl,
    verify_party_certificate,
)


@dataclass(frozen=True)
class Revocations:
    """The central bank's CRL once its signature and freshness were checked, or why not."""

    crl: x509.CertificateRevocationList | None
    status: str

    def revoked(self, serial: int) -> bool | None:
        """True/False from a checked CRL; None when revocation cannot be told."""
        if self.crl is None:
            return None
        return self.crl.get_revoked_certificate_by_serial_number(serial) is not None


def check_crl(
    data: x509.CertificateRevocationList | bytes | None, root: x509.Certificate, now: dt.datetime
) -> Revocations:
    """Parse the CRL and check that the root signed it and that it is current."""
    if data is None:
        return Revocations(None, "no CRL fetched")
    try:
        crl = load_crl(data)
    except EcashError as exc:
        return Revocations(None, f"CRL unreadable ({exc.code})")
    key = root.public_key()
    if crl.issuer != root.subject or not isinstance(key, ec.EllipticCurvePublicKey):
        return Revocations(None, "CRL not issued by the root")
    if not crl.is_signature_valid(key):
        return Revocations(None, "CRL signature invalid")
    next_update = crl.next_update_utc
    if next_update is None or next_update < now:
        return Revocations(None, "CRL stale: revocation unknown")
    count = len(list(crl))
    status = f"CRL signed by the root, next update {_day(next_update)}, {count} revoked"
    return Revocations(crl, status)


def _day(when: dt.datetime) -> str:
    return when.strftime("%Y-%m-%d %H:%M UTC")


def root_rows(root: x509.Certificate, now: dt.datetime) -> list[tuple[str, Cell]]:
    """The trust anchor: subject, fingerprint, validity, CA."""
    valid = root.not_valid_before_utc <= now <= root.not_valid_after_utc
    try:
        bc = root.extensions.get_extension_for_class(x509.BasicConstraints).value
        is_ca = bc.ca
    except (x509.ExtensionNotFound, ValueError):
        is_ca = False
    return [
        ("root", cell(root.subject.rfc4514_string())),
        ("fingerprint", mono(f"SHA-256 {certificate_fingerprint(root)}", 40)),
        (
            "valid",
            cell(
                f"{_day(root.not_valid_before_utc)} – {_day(root.not_valid_after_utc)}",
                "ok" if valid else "bad",
            ),
        ),
        ("CA", ok("self-signed CA") if is_ca else bad("not a CA")),
    ]


def party_row(
    name: str,
    role: str,
    pem: str | bytes | None,
    root: x509.Certificate,
    revocations: Revocations,
    now: dt.datetime,
    *,
    url: str | None = None,
    up: bool | None = None,
    why_missing: str = "not served over HTTP",
) -> list[Cell]:
    """One row of the parties table: party, role, URL, serial, validity, chain, revocation."""
    where = cell(url or "—", mono=True)
    health: Cell = muted("?") if up is None else ok("up") if up else bad("down")
    if pem is None:
        return [cell(name), cell(role), where, health, muted(why_missing), muted("—"), muted("—")]
    try:
        cert = load_certificate(pem)
    except EcashError as exc:
        return [cell(name), cell(role), where, health, bad(exc.code), muted("—"), muted("—")]
    return [
        cell(common_name(cert) or name),
        cell(role),
        where,
        health,
        _validity(cert, now),
        _chain(cert, root, role, now),
        _revocation(cert, revocations),
    ]


def _validity(cert: x509.Certificate, now: dt.datetime) -> Cell:
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    span = f"until {end:%Y-%m-%d}"
    full = f"{_day(start)} – {_day(end)}"
    if now < start:
        return cell("not yet valid", "bad", full=full)
    if now > end:
        return cell("expired", "bad", full=full)
    if end - now < dt.timedelta(days=14):
        return cell(span, "warn", full=full)
    return cell(span, "ok", full=full)


def _chain(cert: x509.Certificate, root: x509.Certificate, role: str, now: dt.datetime) -> Cell:
    """Signed by the root, a leaf for ``role``: what :func:`verify_party_certificate` checks."""
    serial = format(cert.serial_number, "x")
    try:
        verify_party_certificate(cert, root, role=role, now=now)
    except EcashError as exc:
        return cell(exc.code, "bad", full=exc.message)
    return cell("→ root", "ok", full=f"serial {serial}, signed by {root.subject.rfc4514_string()}")


def _revocation(cert: x509.Certificate, revocations: Revocations) -> Cell:
    revoked = revocations.revoked(cert.serial_number)
    if revoked is None:
        return warn("unknown")
    return cell("REVOKED", "bad") if revoked else cell("not revoked", "ok", full=revocations.status)


def describe(pem: str | bytes) -> dict[str, Any]:
    """Serial and fingerprint of a certificate, for captions."""
    cert = load_certificate(pem)
    return {"serial": format(cert.serial_number, "x"), "fingerprint": certificate_fingerprint(cert)}
