"""The issuer's EK trust store: the shipped manufacturer CAs plus the operator's directory.

Two sources, both read certificate by certificate (:mod:`ecash_tpm.attest.ek_anchors`):

- the **shipped store** -- the TPM manufacturers' public root and intermediate CAs that come
  with the package (docs/real-tpm.md, "Default EK trust store"); on unless ``[issuer]
  trust_shipped = false``;
- the **operator directory** (``[issuer] trust_dir``, default ``<data>/ek-trust``): PEM or DER
  files (``*.pem``, ``*.crt``, ``*.cer``, ``*.der``) the operator adds, e.g. a swtpm CA for a
  demo or a manufacturer missing from the shipped store. ``ecash-tpm issuer trust add|remove``
  manage it.

Every usable certificate of either source is a trust anchor: an EK is accepted when its chain
reaches one of them (an intermediate need not come with its root -- Keylime's semantics, which
the shipped set relies on). A certificate that cannot be used is logged and listed with its
reason (``ecash-tpm issuer trust list``) and never disables the others. Trust stays explicit
(Keylime lesson: never bypass EK checks for emulators, give the emulator its own CA).
Verification is the pure :func:`ecash_tpm.attest.ek.verify_ek_chain` plus the EK-public binding.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecash_tpm.attest import EkUnknownRootError, PublicArea, ek_public_matches_certificate
from ecash_tpm.attest.certparse import ParsedCertificate, parse_input
from ecash_tpm.attest.ek import (
    CertificateInput,
    EkChain,
    parse_ek_certificate,
    verify_ek_chain,
)
from ecash_tpm.attest.ek_anchors import (
    CERT_SUFFIXES,
    AnchorStatus,
    read_anchor_file,
    shipped_ek_anchors,
)
from ecash_tpm.errors import InputError
from ecash_tpm.issuer.errors import (
    EkTrustCertShippedError,
    EkTrustCertUnknownError,
    EkTrustCertUnusableError,
    EkTrustStoreConfigError,
)

if TYPE_CHECKING:
    from ecash_tpm.issuer.settings import IssuerSettings

logger = logging.getLogger(__name__)

SHIPPED = "shipped"
OPERATOR = "operator"
MIN_SELECTOR_HEX = 8
"""Shortest fingerprint prefix ``trust remove`` accepts."""


@dataclass(frozen=True)
class TrustEntry:
    """One certificate of the store, where it came from, and whether it is used."""

    origin: str
    status: AnchorStatus

    @property
    def usable(self) -> bool:
        return self.status.usable

    def to_dict(self) -> dict[str, object]:
        return {"origin": self.origin, **self.status.to_dict()}


def _read_directory(path: Path, now: dt.datetime) -> list[TrustEntry]:
    out: list[TrustEntry] = []
    for f in sorted(path.iterdir()):
        if not (f.is_file() and f.suffix.lower() in CERT_SUFFIXES):
            continue
        try:
            data = f.read_bytes()
        except OSError as exc:
            out.append(TrustEntry(OPERATOR, AnchorStatus(str(f), 0, None, f"cannot read: {exc}")))
            continue
        out.extend(TrustEntry(OPERATOR, s) for s in read_anchor_file(data, str(f), now))
    return out


def _split_anchors(entries: Iterable[TrustEntry]) -> tuple[ParsedCertificate, ...]:
    """The usable certificates, each once (the shipped set holds six twice under two names)."""
    seen: dict[bytes, ParsedCertificate] = {}
    for e in entries:
        if e.usable and e.status.cert is not None:
            seen.setdefault(e.status.cert.der, e.status.cert)
    return tuple(seen.values())


@dataclass(frozen=True)
class EkTrustStore:
    """Trusted EK anchors, helper intermediates, and the report of every certificate read.

    Built directly (``EkTrustStore((root,))``, tests and the swtpm demo) every entry of
    ``roots`` is an anchor and ``intermediates`` only help build chains; :meth:`load` and
    :meth:`from_settings` fill ``roots`` with every usable certificate and ``entries`` with
    the whole report.
    """

    roots: tuple[CertificateInput, ...]
    intermediates: tuple[CertificateInput, ...] = ()
    entries: tuple[TrustEntry, ...] = ()

    @classmethod
    def load(
        cls,
        directory: str | os.PathLike[str] | None,
        *,
        include_shipped: bool = False,
        now: dt.datetime | None = None,
        missing_ok: bool = False,
    ) -> EkTrustStore:
        """The operator directory (and the shipped store), each certificate assessed at ``now``.

        A missing directory is a config error unless ``missing_ok``; certificates that cannot
        be used are logged and reported in ``entries``. A store without any usable anchor
        refuses every EK (``ek.trust_store_invalid``) instead of accepting any.
        """
        when = now or dt.datetime.now(dt.UTC)
        entries: list[TrustEntry] = []
        if include_shipped:
            entries += [TrustEntry(SHIPPED, s) for s in shipped_ek_anchors(when)]
        if directory is not None:
            path = Path(directory)
            if path.is_dir():
                entries += _read_directory(path, when)
            elif not missing_ok:
                raise EkTrustStoreConfigError(
                    f"EK trust store {path} is not a directory", detail={"path": str(path)}
                )
        for e in entries:
            if not e.usable:
                level = logging.WARNING if e.origin == OPERATOR else logging.INFO
                logger.log(
                    level, "EK trust store: not using %s: %s", e.status.source, e.status.reason
                )
        return cls(_split_anchors(entries), (), tuple(entries))

    @classmethod
    def from_settings(
        cls, settings: IssuerSettings, *, now: dt.datetime | None = None, missing_ok: bool = False
    ) -> EkTrustStore:
        """What the issuer trusts: ``trust_dir`` plus, unless ``trust_shipped`` is off, the
        shipped manufacturer store."""
        return cls.load(
            settings.resolved_trust_dir(),
            include_shipped=settings.trust_shipped,
            now=now,
            missing_ok=missing_ok,
        )

    @staticmethod
    def install(
        directory: str | os.PathLike[str],
        certs: Iterable[CertificateInput],
        *,
        prefix: str = "ca",
    ) -> list[Path]:
        """Copy certificates into a trust store directory as PEM files (named by fingerprint).

        The original encoding is written, so the signatures of non-canonical certificates
        keep verifying.
        """
        path = Path(directory)
        path.mkdir(mode=0o755, parents=True, exist_ok=True)
        written = []
        for item in certs:
            for c in parse_input(item):
                target = path / f"{prefix}-{c.fingerprint[:16]}.pem"
                target.write_bytes(c.pem())
                written.append(target)
        return written

    # -- verification -----------------------------------------------------------------------

    def check(self, ek_cert: CertificateInput, *, now: dt.datetime | None = None) -> EkChain:
        """Verify the EK certificate's chain; which anchor it reached is in the result.

        When no anchor issued it but a certificate the store could not use would have, the
        error detail says which and why (``unusable_issuer``).
        """
        try:
            return verify_ek_chain(ek_cert, self.roots, self.intermediates, now=now)
        except EkUnknownRootError as exc:
            leaf = parse_ek_certificate(ek_cert)
            for e in self.entries:
                cert = e.status.cert
                if e.usable or cert is None:
                    continue
                if cert.certificate.subject == leaf.certificate.issuer:
                    exc.detail["unusable_issuer"] = {
                        "source": e.status.source,
                        "reason": e.status.reason,
                    }
                    break
            raise

    def verify(
        self, ek_cert: bytes, ek_public: bytes | PublicArea, *, now: dt.datetime | None = None
    ) -> tuple[ParsedCertificate, PublicArea]:
        """Check the EK certificate's chain and that its key is ``ek_public``.

        Returns the certificate as signed (its ``fingerprint`` is over the original DER, what
        manufacturers publish, also for certificates read through a re-encoded copy) and the EK
        public area. Raises the attest codes (``ek.unknown_root``, ``ek.cert_expired``,
        ``ek.public_mismatch`` ...).
        """
        chain = self.check(ek_cert, now=now)
        area = ek_public_matches_certificate(chain.leaf, ek_public)
        return chain.leaf, area

    def entry_for(self, cert: ParsedCertificate) -> TrustEntry | None:
        """The (first) store entry holding ``cert``: which file an anchor came from."""
        for e in self.entries:
            if e.status.cert == cert:
                return e
        return None


# -- the operator directory (ecash-tpm issuer trust add|remove) ---------------------------------


def _prefix_for(source: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]+", "_", Path(source).stem).strip("._-")
    return stem[:40] or "ca"


def add_certificates(
    directory: str | os.PathLike[str],
    files: Sequence[tuple[str, bytes]],
    *,
    now: dt.datetime | None = None,
    force: bool = False,
) -> list[tuple[AnchorStatus, Path]]:
    """Copy the certificates of ``files`` ((source, PEM bundle or DER) pairs) into ``directory``.

    All or nothing: if one of them cannot be used as an anchor (its reason is in the error)
    nothing is written; ``force`` lets through certificates that parse but are not usable
    today (e.g. a CA that becomes valid next week).
    """
    when = now or dt.datetime.now(dt.UTC)
    statuses = [s for source, data in files for s in read_anchor_file(data, source, when)]
    bad = [s for s in statuses if s.cert is None or (s.reason is not None and not force)]
    if bad:
        raise EkTrustCertUnusableError(
            f"{bad[0].source}: certificate #{bad[0].index} cannot be used: {bad[0].reason}",
            detail={"unusable": [s.to_dict() for s in bad]},
        )
    written: list[tuple[AnchorStatus, Path]] = []
    for s in statuses:
        if s.cert is not None:
            (path,) = EkTrustStore.install(directory, [s.cert], prefix=_prefix_for(s.source))
            written.append((s, path))
    return written


def _normalise_selector(selector: str) -> str:
    return selector.strip().lower().replace(":", "")


def remove_certificates(
    store: EkTrustStore, directory: str | os.PathLike[str], selector: str
) -> list[TrustEntry]:
    """Remove operator certificates chosen by file name or SHA-256 fingerprint (prefix).

    A file holding only chosen certificates is deleted; a bundle is rewritten without them.
    Shipped certificates cannot be removed (``issuer.trust_cert_shipped``: turn the shipped
    store off with ``trust_shipped = false`` instead).
    """
    folder = Path(directory)
    wanted = _normalise_selector(selector)
    by_name = [
        e for e in store.entries if e.origin == OPERATOR and Path(e.status.source).name == selector
    ]
    if by_name:
        chosen = by_name
    else:
        if len(wanted) < MIN_SELECTOR_HEX or not re.fullmatch(r"[0-9a-f]+", wanted):
            raise InputError(
                f"give a file name in {folder} or at least {MIN_SELECTOR_HEX} hex digits of a "
                f"SHA-256 fingerprint, not {selector!r}",
                detail={"selector": selector},
            )
        matches = [e for e in store.entries if (e.status.fingerprint or "").startswith(wanted)]
        if len({e.status.fingerprint for e in matches}) > 1:
            raise InputError(
                f"{selector!r} matches several certificates; give more digits",
                detail={"matches": [e.status.fingerprint for e in matches]},
            )
        chosen = [e for e in matches if e.origin == OPERATOR]
        if not chosen and matches:
            raise EkTrustCertShippedError(
                f"{matches[0].status.source} is part of the shipped store and cannot be removed; "
                "set [issuer] trust_shipped = false to use only the operator directory",
                detail={
                    "source": matches[0].status.source,
                    "sha256": matches[0].status.fingerprint,
                },
            )
    if not chosen:
        raise EkTrustCertUnknownError(
            f"no certificate in {folder} matches {selector!r}", detail={"selector": selector}
        )
    drop = {e.status.cert.der for e in chosen if e.status.cert is not None}
    for source in sorted({e.status.source for e in chosen}):
        keep = [
            e.status.cert
            for e in store.entries
            if e.origin == OPERATOR
            and e.status.source == source
            and e.status.cert is not None
            and e.status.cert.der not in drop
        ]
        file = Path(source)
        if keep:
            file.write_bytes(b"".join(c.pem() for c in keep))
        else:
            file.unlink()
    return chosen


def ek_fingerprint(ek_cert: bytes) -> str:
    """Fingerprint of the EK certificate as presented (NV framing removed, original DER)."""
    return parse_ek_certificate(ek_cert).fingerprint
