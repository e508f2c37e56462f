"""What every area of one audit run shares: its inputs, what earlier areas learned, the findings.

Like GNU Taler's auditor helpers, each area (keysets, ledger, withdrawals, deposits, ...) is a
separate analysis over this one context: the keyset area fills :attr:`AuditContext.keysets`,
the ledger area the ledger maps, withdrawals and serials the issued and spent coins that the
money-supply area counts. Findings are collected, never raised.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import IssuerPublic, IssuerSecret
from ecash_tpm.crypto.signing import load_public_key
from ecash_tpm.errors import EcashError, NotFoundError
from ecash_tpm.pki import common_name, verify_party_certificate
from ecash_tpm.protocol.evidence import Transcript
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Fees, Keyset
from ecash_tpm.supervision.audit_report import Violation

__all__ = [
    "COINS_OUTSTANDING",
    "CUSTOMER",
    "FEE_ACCOUNT",
    "MERCHANT",
    "AuditContext",
    "AuditKeyset",
    "EpochSecrets",
    "MappingSecrets",
    "blob",
    "entries_map",
    "utc",
]

COINS_OUTSTANDING = "coins-outstanding:"
CUSTOMER = "customer:"
MERCHANT = "merchant:"


class EpochSecrets(Protocol):
    """The issuer's per-epoch designated-verifier secrets (e.g. ``IssuerKeyStore``).

    Must raise :class:`~ecash_tpm.errors.NotFoundError` for an unknown epoch.
    """

    def secret_for_epoch(self, epoch: int) -> IssuerSecret: ...


class MappingSecrets:
    """Explicit secrets ``{epoch: IssuerSecret}`` behind the :class:`EpochSecrets` protocol."""

    def __init__(self, secrets: Mapping[int, IssuerSecret]) -> None:
        self._secrets = dict(secrets)

    def secret_for_epoch(self, epoch: int) -> IssuerSecret:
        try:
            return self._secrets[epoch]
        except KeyError:
            raise NotFoundError(
                "no issuer secret for this epoch", detail={"epoch": epoch}
            ) from None


@dataclass(frozen=True, slots=True)
class AuditKeyset:
    """A keyset as the audit knows it (from its row; ``trusted`` if the descriptor verified).

    Unlike :class:`~ecash_tpm.protocol.keysets.Keyset` its key may be unusable (a forged row):
    the audit still counts the keyset's coins and checks what it can.
    """

    keyset_id: bytes
    value: int
    currency: str
    withdraw_from: int
    withdraw_until: int
    deposit_until: int
    public_key: rsa.RSAPublicKey | None
    variant: blindrsa.Variant | None
    trusted: bool
    #: from the signed descriptor (docs/protocol.md 4.2); a row alone has none
    fees: Fees = Fees()

    @property
    def b64(self) -> str:
        return b64u_encode(self.keyset_id)

    @property
    def account(self) -> str:
        return COINS_OUTSTANDING + self.keyset_id.hex()

    def can_deposit(self, at: int) -> bool:
        return self.withdraw_from <= at < self.deposit_until

    def spec(self) -> Keyset | None:
        """The protocol keyset for :func:`~ecash_tpm.protocol.spend.verify_spend`, if the key
        and variant are usable."""
        if self.public_key is None or self.variant is None:
            return None
        return Keyset(
            keyset_id=self.keyset_id,
            value=self.value,
            currency=self.currency,
            withdraw_from=self.withdraw_from,
            withdraw_until=self.withdraw_until,
            deposit_until=self.deposit_until,
            public_key=self.public_key,
            variant=self.variant,
            fees=self.fees,
        )


def blob(value: Any) -> bytes:
    """BLOB column -> bytes (SQLite gives bytes, PostgreSQL memoryview)."""
    return bytes(value) if value is not None else b""


def utc(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def entries_map(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    """Ledger entries merged per account, zero sums dropped: what a transaction books."""
    merged: dict[str, int] = defaultdict(int)
    for e in entries:
        merged[str(e["account"])] += int(e["amount"])
    return {k: v for k, v in sorted(merged.items()) if v != 0}


class AuditContext:
    """One audit run over one read snapshot; collects violations instead of raising."""

    def __init__(
        self,
        *,
        bank_cert: x509.Certificate,
        root: x509.Certificate,
        hop: Point,
        secrets: EpochSecrets | None,
        issuer_public: Mapping[int, IssuerPublic] | None,
        now: int,
    ) -> None:
        self.bank_cert = bank_cert
        self.root = root
        self.hop = hop.fixed_base()  # in every spend proof checked: precomputed table
        self.secrets = secrets
        self.issuer_public = issuer_public
        self.now = now
        self.bank_id = common_name(bank_cert)
        self.violations: list[Violation] = []
        self.skipped: list[dict[str, str]] = []
        self.counts: Counter[str] = Counter()
        self.keysets: dict[bytes, AuditKeyset] = {}
        self.entries_by_txn: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.txns: dict[int, dict[str, Any]] = {}
        self.account_sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # [in, out]
        self.linked_txns: set[int] = set()
        self.issued: list[tuple[bytes, int]] = []  # (keyset_id, withdrawal time) per signature
        self.spent: list[tuple[bytes, bytes, int]] = []  # (keyset_id, sigma, spent_at)
        self.transcripts: dict[int, dict[str, Any]] = {}
        self.parsed: dict[int, Transcript] = {}
        self.epochs_checked: set[int] = set()
        #: fees the coin tables and descriptors imply (4.2): per kind, dated, per merchant
        self.fees: dict[str, int] = {"withdraw": 0, "deposit": 0, "refresh": 0, "refund": 0}
        self.fee_events: list[tuple[int, int]] = []  # (booked at, fee)
        self.deposit_fees: dict[str, int] = defaultdict(int)  # merchant account -> fees
        self._reported: set[tuple[str, str]] = set()
        self.bank_key = self._bank_key()

    # --- helpers -------------------------------------------------------------------------------

    def flag(
        self,
        kind: str,
        message: str,
        *,
        table: str | None = None,
        row_id: int | str | None = None,
        serial: bytes | str | None = None,
        expected: Any = None,
        found: Any = None,
        **detail: Any,
    ) -> None:
        """Record one finding (``kind`` from ``audit_report.VIOLATION_KINDS``)."""
        if isinstance(serial, bytes):
            serial = b64u_encode(serial)
        self.violations.append(
            Violation(kind, message, table, row_id, serial, expected, found, detail)
        )

    def add_fee(self, kind: str, fee: int, at: int) -> None:
        """A fee the bank should have booked (docs/protocol.md 4.2), recomputed by the audit."""
        self.fees[kind] += fee
        if fee:
            self.fee_events.append((at, fee))

    def flag_once(self, key: str, kind: str, message: str, **kwargs: Any) -> None:
        """Flag a problem of a shared thing (a merchant's certificate) only once."""
        if (kind, key) not in self._reported:
            self._reported.add((kind, key))
            self.flag(kind, message, **kwargs)

    def _bank_key(self) -> ec.EllipticCurvePublicKey:
        """The certified bank key; an invalid certificate is a finding, its key still used."""
        try:
            return verify_party_certificate(
                self.bank_cert, self.root, role="bank", now=utc(self.now)
            )
        except EcashError as exc:
            self.flag(
                "bank.certificate_invalid",
                f"bank certificate: {exc.message}",
                table=None,
                found=exc.code,
                bank_id=self.bank_id,
            )
            return load_public_key(self.bank_cert)
