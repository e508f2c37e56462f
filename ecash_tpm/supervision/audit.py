"""The supervision department's audit of a bank, from outside the bank's code (DESIGN §1, §8).

GNU Taler's lesson: the exchange is checked by an auditor that reads the exchange's database
with its *own* queries and re-verifies every signature with the *pure* cryptography, so a bug
(or a lie) in the exchange's code cannot hide in the auditor too. This module therefore imports
nothing from :mod:`ecash_tpm.bank`: it opens the bank's database read-only (one snapshot), reads
the tables of the bank's schema (``ecash_tpm/bank/store.py``, migration 1) with SQL of its own,
and checks them with :mod:`ecash_tpm.crypto` (blind RSA, group signatures, signed objects) and
the central bank's certificate checks.

Checks (each failure is a :class:`~ecash_tpm.supervision.audit_report.Violation` naming the
table, row, serial, and expected vs found; kinds in ``audit_report.VIOLATION_KINDS``):

- keysets: signed by the bank's certified key, ``keyset_id`` commits to key and windows, rows
  agree with their descriptors;
- withdrawals: every stored blind signature verifies (s^e = blinded mod n), items were signed
  inside the withdraw window, amounts match the items, the ledger transaction books exactly
  the customer debit and the keysets' credit;
- deposits: every transcript verifies — coin signature under its keyset, keyset open for
  deposit at the deposit time, the designated credential check with the issuer secret of the
  coin's epoch (skipped, and said so, without the secrets), the spend proof over the recorded
  preq with the opener key, the merchant's signature on the payment request (certificate from
  the central bank), the bank's signature on the receipt and the receipt's content; amounts
  and ledger transaction match the coins;
- serials: none spent or transcribed twice; spent rows agree with transcripts;
- ledger: every transaction sums to zero, all entries sum to zero, no withdraw/deposit
  transaction without its record, customers never negative, merchants hold their deposits;
- money supply, per keyset: withdrawn - deposited = outstanding in the ledger, withdrawn =
  value x signatures issued, deposited = value x serials spent (counts and values);
- blacklist: every entry names at least ``threshold`` recorded failures of that subject within
  ``window_s`` before ``listed_at`` (the policy recorded with the entry), none used up by an
  earlier lifted entry; every lifted entry says who lifted it and why;
- double-spend reports: the refused attempt and the first transcript are two valid spends of
  one serial for different requests (else the bank accused a customer wrongly);
- optionally the bank's latest money-supply report (central bank): signature and certificate,
  and :func:`~ecash_tpm.protocol.supply.check_supply_report` against the audit's own
  outstanding values *as of the report's time*.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    KEYSET_ID_LEN,
    IssuerPublic,
    IssuerSecret,
    coin_message,
    verify_credential,
    verify_spend_proof,
)
from ecash_tpm.crypto.signing import (
    canonical_digest,
    canonical_encode,
    load_public_key,
    verify_object,
)
from ecash_tpm.errors import EcashError, NotFoundError
from ecash_tpm.pki import common_name, load_certificate, verify_party_certificate
from ecash_tpm.protocol.evidence import Transcript, parse_transcript
from ecash_tpm.protocol.keysets import KEYSET_DESCRIPTOR_KIND
from ecash_tpm.storage import Database, Transaction
from ecash_tpm.supervision.audit_report import (
    AuditInputError,
    AuditReport,
    BankDatabaseError,
    KeysetSupplyAudit,
    Violation,
)

__all__ = ["BANK_SCHEMA_COMPONENT", "EpochSecrets", "open_bank_database", "run_audit"]

BANK_SCHEMA_COMPONENT = "bank"
#: The bank's signed-object kinds the audit re-verifies (docs/api.md); spelled out here, not
#: imported from the bank, on purpose.
RECEIPT_KIND = "deposit-receipt"
PAYMENT_REQUEST_KIND = "payment-request"
SUPPLY_REPORT_KIND = "supply-report"
COINS_OUTSTANDING = "coins-outstanding:"
CUSTOMER = "customer:"
MERCHANT = "merchant:"
MSG_PREFIX_LEN = 32

_DESCRIPTOR_FIELDS = frozenset(
    {
        "keyset_id",
        "value",
        "currency",
        "withdraw_from",
        "withdraw_until",
        "deposit_until",
        "public_key",
        "variant",
    }
)
_RECEIPT_FIELDS = (
    "deposit_id",
    "merchant_id",
    "preq",
    "amount",
    "currency",
    "serials",
    "transcript_ids",
    "deposited_at",
)

# --- the bank's tables, read with our own SQL (schema: ecash_tpm/bank/store.py) -----------------

SQL_SCHEMA_VERSION = "SELECT MAX(version) AS v FROM schema_migrations WHERE component = :c"
SQL_KEYSETS = (
    "SELECT keyset_id, value, currency, withdraw_from, withdraw_until, deposit_until,"
    " public_key, variant, descriptor FROM keyset ORDER BY withdraw_from, value"
)
SQL_WITHDRAWALS = (
    "SELECT request_id, account_id, amount, txn_id, created_at FROM withdrawal"
    " ORDER BY created_at, request_id"
)
SQL_WITHDRAWAL_ITEMS = (
    "SELECT request_id, idx, keyset_id, blinded_msg, blind_sig FROM withdrawal_item"
    " ORDER BY request_id, idx"
)
SQL_LEDGER_TXNS = "SELECT txn_id, kind, ref, created_at FROM ledger_txn ORDER BY txn_id"
SQL_LEDGER_ENTRIES = (
    "SELECT entry_id, txn_id, account, amount, currency FROM ledger_entry ORDER BY entry_id"
)
SQL_DEPOSITS = (
    "SELECT deposit_id, merchant_id, preq, amount, currency, receipt, txn_id, created_at"
    " FROM deposit ORDER BY created_at, deposit_id"
)
SQL_TRANSCRIPTS = (
    "SELECT transcript_id, deposit_id, sigma, merchant_id, keyset_id, preq, body, created_at"
    " FROM spend_transcript ORDER BY transcript_id"
)
SQL_SPENT = "SELECT sigma, keyset_id, transcript_id, deposit_id, spent_at FROM spent_coin"
SQL_MERCHANTS = "SELECT merchant_id, cert_pem FROM merchant"
SQL_BLACKLIST = (
    "SELECT entry_id, subject, listed_at, reason, failure_ids, threshold, window_s, lifted_at,"
    " lifted_by, lift_reason, lift_failure_id FROM blacklist ORDER BY entry_id"
)
SQL_FAILURES = "SELECT failure_id, subject, at FROM verification_failure"
SQL_DOUBLE_SPEND_REPORTS = (
    "SELECT report_id, sigma, first_transcript_id, second_preq, second_transcript, status"
    " FROM double_spend_report ORDER BY report_id"
)


class EpochSecrets(Protocol):
    """The issuer's per-epoch designated-verifier secrets (e.g. ``IssuerKeyStore``).

    Must raise :class:`~ecash_tpm.errors.NotFoundError` for an unknown epoch.
    """

    def secret_for_epoch(self, epoch: int) -> IssuerSecret: ...


class _MappingSecrets:
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
class _Keyset:
    """A keyset as the audit knows it (from its row; ``trusted`` if the descriptor verified)."""

    keyset_id: bytes
    value: int
    currency: str
    withdraw_from: int
    withdraw_until: int
    deposit_until: int
    public_key: rsa.RSAPublicKey | None
    salt_length: int
    trusted: bool

    @property
    def b64(self) -> str:
        return b64u_encode(self.keyset_id)

    @property
    def account(self) -> str:
        return COINS_OUTSTANDING + self.keyset_id.hex()


def _b(value: Any) -> bytes:
    """BLOB column -> bytes (SQLite gives bytes, PostgreSQL memoryview)."""
    return bytes(value) if value is not None else b""


def _utc(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


def _entries_map(entries: Sequence[Mapping[str, Any]]) -> dict[str, int]:
    merged: dict[str, int] = defaultdict(int)
    for e in entries:
        merged[str(e["account"])] += int(e["amount"])
    return {k: v for k, v in sorted(merged.items()) if v != 0}


def open_bank_database(url: str) -> Database:
    """Open the bank's database for reading; refuses a SQLite path that does not exist
    (``Database.open`` would create an empty file and the audit would find nothing)."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.is_file():
            raise BankDatabaseError("the bank database does not exist", detail={"path": str(path)})
    return Database.open(url, pool_size=1)


def _schema_version(db: Database) -> int:
    try:
        with db.read() as tx:
            value = tx.fetchval(SQL_SCHEMA_VERSION, {"c": BANK_SCHEMA_COMPONENT})
    except EcashError as exc:
        raise BankDatabaseError(
            "the database has no migration table: not a bank database",
            detail={"database": db.url, "cause": exc.code},
        ) from exc
    version = int(value or 0)
    if version < 1:
        raise BankDatabaseError("the database holds no bank schema", detail={"database": db.url})
    return version


class _Auditor:
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
        self.hop = hop
        self.secrets = secrets
        self.issuer_public = issuer_public
        self.now = now
        self.bank_id = common_name(bank_cert)
        self.violations: list[Violation] = []
        self.skipped: list[dict[str, str]] = []
        self.counts: Counter[str] = Counter()
        self.keysets: dict[bytes, _Keyset] = {}
        self.entries_by_txn: dict[int, list[dict[str, Any]]] = defaultdict(list)
        self.txns: dict[int, dict[str, Any]] = {}
        self.account_sums: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # [in, out]
        self.linked_txns: set[int] = set()
        self.issued: list[tuple[bytes, int]] = []  # (keyset_id, withdrawal time) per signature
        self.spent: list[tuple[bytes, bytes, int]] = []  # (keyset_id, sigma, spent_at)
        self.transcripts: dict[int, dict[str, Any]] = {}
        self.parsed: dict[int, Transcript] = {}
        self._reported: set[tuple[str, str]] = set()
        self._epochs_checked: set[int] = set()
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
        if isinstance(serial, bytes):
            serial = b64u_encode(serial)
        self.violations.append(
            Violation(kind, message, table, row_id, serial, expected, found, detail)
        )

    def flag_once(self, key: str, kind: str, message: str, **kwargs: Any) -> None:
        """Flag a problem of a shared thing (a merchant's certificate) only once."""
        if (kind, key) not in self._reported:
            self._reported.add((kind, key))
            self.flag(kind, message, **kwargs)

    def _bank_key(self) -> ec.EllipticCurvePublicKey:
        try:
            return verify_party_certificate(
                self.bank_cert, self.root, role="bank", now=_utc(self.now)
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

    # --- keysets -------------------------------------------------------------------------------

    def load_keysets(self, tx: Transaction) -> None:
        for row in tx.fetchall(SQL_KEYSETS):
            self.counts["keysets"] += 1
            kid = _b(row["keyset_id"])
            keyset = self._keyset_from_row(row)
            try:
                body = self._descriptor_body(json.loads(row["descriptor"]))
            except (EcashError, ValueError, TypeError) as exc:
                message = exc.message if isinstance(exc, EcashError) else str(exc)
                self.flag(
                    "keyset.descriptor_invalid",
                    f"keyset descriptor: {message}",
                    table="keyset",
                    row_id=kid.hex(),
                )
                self.keysets[kid] = keyset
                continue
            columns = {
                "keyset_id": b64u_encode(kid),
                "value": keyset.value,
                "currency": keyset.currency,
                "withdraw_from": keyset.withdraw_from,
                "withdraw_until": keyset.withdraw_until,
                "deposit_until": keyset.deposit_until,
                "public_key": b64u_encode(_b(row["public_key"])),
                "variant": str(row["variant"]),
            }
            for name, value in columns.items():
                if body[name] != value:
                    self.flag(
                        "keyset.row_mismatch",
                        f"keyset column {name} differs from the signed descriptor",
                        table="keyset",
                        row_id=kid.hex(),
                        expected=body[name],
                        found=value,
                        field=name,
                    )
            # From here on the signed descriptor is what counts, not the columns.
            self.keysets[kid] = self._keyset_from_descriptor(body)

    def _keyset_from_row(self, row: Mapping[str, Any]) -> _Keyset:
        public_key: rsa.RSAPublicKey | None
        try:
            loaded = serialization.load_der_public_key(_b(row["public_key"]))
            public_key = loaded if isinstance(loaded, rsa.RSAPublicKey) else None
            salt = blindrsa.get_variant(str(row["variant"])).salt_length
        except (ValueError, UnsupportedAlgorithm, EcashError):
            public_key, salt = None, blindrsa.HASH_LEN
        return _Keyset(
            _b(row["keyset_id"]),
            int(row["value"]),
            str(row["currency"]),
            int(row["withdraw_from"]),
            int(row["withdraw_until"]),
            int(row["deposit_until"]),
            public_key,
            salt,
            False,
        )

    def _descriptor_body(self, doc: Any) -> dict[str, Any]:
        """Verify a signed keyset descriptor with the bank key; return its checked body."""
        body = verify_object(doc, self.bank_key, KEYSET_DESCRIPTOR_KIND)
        if set(body) != _DESCRIPTOR_FIELDS:
            raise AuditInputError("descriptor has the wrong fields")
        for name in ("value", "withdraw_from", "withdraw_until", "deposit_until"):
            v = body[name]
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                raise AuditInputError(f"descriptor {name} is not a non-negative integer")
        if body["value"] <= 0 or not (
            body["withdraw_from"] < body["withdraw_until"] <= body["deposit_until"]
        ):
            raise AuditInputError("descriptor value or windows are inconsistent")
        without_id = {k: v for k, v in body.items() if k != "keyset_id"}
        commitment = hashlib.sha256(canonical_encode(without_id)).digest()[:KEYSET_ID_LEN]
        if b64u_decode(body["keyset_id"]) != commitment:
            raise AuditInputError("keyset_id does not commit to the descriptor")
        key = serialization.load_der_public_key(b64u_decode(body["public_key"]))
        if not isinstance(key, rsa.RSAPublicKey) or key.key_size < blindrsa.MIN_KEY_BITS:
            raise AuditInputError("descriptor key is not RSA of at least 2048 bits")
        if not blindrsa.get_variant(body["variant"]).randomized:
            raise AuditInputError("descriptor variant is not randomized")
        return body

    def _keyset_from_descriptor(self, body: Mapping[str, Any]) -> _Keyset:
        key = serialization.load_der_public_key(b64u_decode(body["public_key"]))
        if not isinstance(key, rsa.RSAPublicKey):  # checked in _descriptor_body
            raise AuditInputError("descriptor key is not RSA")
        return _Keyset(
            b64u_decode(body["keyset_id"]),
            int(body["value"]),
            str(body["currency"]),
            int(body["withdraw_from"]),
            int(body["withdraw_until"]),
            int(body["deposit_until"]),
            key,
            blindrsa.get_variant(body["variant"]).salt_length,
            True,
        )

    def check_published(self, descriptors: Sequence[Mapping[str, Any]]) -> None:
        """Descriptors the bank published (``GET /v1/keysets``) must all be in its database."""
        for index, doc in enumerate(descriptors):
            try:
                body = self._descriptor_body(doc)
            except (EcashError, ValueError, TypeError) as exc:
                message = exc.message if isinstance(exc, EcashError) else str(exc)
                self.flag(
                    "keyset.descriptor_invalid",
                    f"published descriptor #{index}: {message}",
                    row_id=index,
                )
                continue
            kid = b64u_decode(body["keyset_id"])
            known = self.keysets.get(kid)
            if known is None or not known.trusted:
                self.flag(
                    "keyset.not_in_database",
                    "a published keyset is not (validly) recorded in the bank's database",
                    table="keyset",
                    row_id=kid.hex(),
                )

    # --- ledger --------------------------------------------------------------------------------

    def load_ledger(self, tx: Transaction) -> None:
        for row in tx.fetchall(SQL_LEDGER_TXNS):
            self.txns[int(row["txn_id"])] = dict(row)
        for row in tx.fetchall(SQL_LEDGER_ENTRIES):
            self.entries_by_txn[int(row["txn_id"])].append(dict(row))
        self.counts["ledger_txns"] = len(self.txns)
        self.counts["ledger_entries"] = sum(len(v) for v in self.entries_by_txn.values())
        for entries in self.entries_by_txn.values():
            for e in entries:
                amount = int(e["amount"])
                sums = self.account_sums[str(e["account"])]
                sums[0 if amount > 0 else 1] += abs(amount)

    def _check_booking(
        self,
        *,
        kind: str,
        violation: str,
        table: str,
        row_id: str,
        txn_id: int,
        expected: dict[str, int],
    ) -> None:
        """A withdrawal/deposit row's ledger transaction: right kind/ref, exactly ``expected``."""
        self.linked_txns.add(txn_id)
        txn = self.txns.get(txn_id)
        if txn is None:
            self.flag(
                violation,
                f"the {table}'s ledger transaction does not exist",
                table=table,
                row_id=row_id,
                expected=expected,
                found=None,
                txn_id=txn_id,
            )
            return
        if txn["kind"] != kind or txn["ref"] != row_id:
            self.flag(
                violation,
                f"the {table} points to another ledger transaction",
                table=table,
                row_id=row_id,
                expected={"kind": kind, "ref": row_id},
                found={"kind": txn["kind"], "ref": txn["ref"]},
                txn_id=txn_id,
            )
        found = _entries_map(self.entries_by_txn.get(txn_id, []))
        if found != {k: v for k, v in sorted(expected.items()) if v != 0}:
            self.flag(
                violation,
                f"the {table}'s ledger entries differ from what it records",
                table=table,
                row_id=row_id,
                expected=expected,
                found=found,
                txn_id=txn_id,
            )

    def check_ledger(self, tx: Transaction) -> None:
        total = 0
        for txn_id, txn in self.txns.items():
            entries = self.entries_by_txn.get(txn_id, [])
            if not entries:
                self.flag(
                    "ledger.txn_empty",
                    "ledger transaction without entries",
                    table="ledger_txn",
                    row_id=txn_id,
                    txn_kind=txn["kind"],
                    ref=txn["ref"],
                )
                continue
            s = sum(int(e["amount"]) for e in entries)
            total += s
            if s != 0 or len(entries) < 2:
                self.flag(
                    "ledger.txn_unbalanced",
                    "ledger transaction entries do not sum to zero",
                    table="ledger_entry",
                    row_id=txn_id,
                    expected=0,
                    found=s,
                    entries=[
                        {
                            "entry_id": int(e["entry_id"]),
                            "account": e["account"],
                            "amount": int(e["amount"]),
                        }
                        for e in entries
                    ],
                    txn_kind=txn["kind"],
                    ref=txn["ref"],
                )
            touches_coins = any(str(e["account"]).startswith(COINS_OUTSTANDING) for e in entries)
            if txn_id not in self.linked_txns and (
                txn["kind"] in ("withdraw", "deposit") or touches_coins
            ):
                self.flag(
                    "ledger.orphan_txn",
                    f"{txn['kind']} transaction {txn['ref']!r} has no withdrawal/deposit record",
                    table="ledger_txn",
                    row_id=txn_id,
                    found={"kind": txn["kind"], "ref": txn["ref"]},
                    entries=_entries_map(entries),
                )
        orphan_entries = [t for t in self.entries_by_txn if t not in self.txns]
        for txn_id in orphan_entries:
            entries = self.entries_by_txn[txn_id]
            total += sum(int(e["amount"]) for e in entries)
            self.flag(
                "ledger.orphan_txn",
                "ledger entries of a transaction that does not exist",
                table="ledger_entry",
                row_id=txn_id,
                entries=_entries_map(entries),
            )
        if total != 0:
            self.flag(
                "ledger.total_nonzero",
                "all ledger entries together do not sum to zero",
                table="ledger_entry",
                expected=0,
                found=total,
            )
        balances: dict[str, int] = defaultdict(int)
        for entries in self.entries_by_txn.values():
            for e in entries:
                balances[str(e["account"])] += int(e["amount"])
        for account, bal in sorted(balances.items()):
            if account.startswith(CUSTOMER) and bal < 0:
                self.flag(
                    "ledger.negative_balance",
                    "customer balance is negative",
                    table="ledger_entry",
                    row_id=account,
                    expected=">= 0",
                    found=bal,
                )
        deposits: dict[str, int] = defaultdict(int)
        for row in tx.fetchall(SQL_DEPOSITS):
            deposits[MERCHANT + str(row["merchant_id"])] += int(row["amount"])
        merchants = {a for a in balances if a.startswith(MERCHANT)} | set(deposits)
        for account in sorted(merchants):
            if balances.get(account, 0) != deposits.get(account, 0):
                self.flag(
                    "ledger.merchant_balance_mismatch",
                    "merchant balance differs from the sum of its deposits",
                    table="ledger_entry",
                    row_id=account,
                    expected=deposits.get(account, 0),
                    found=balances.get(account, 0),
                )
        known_accounts = {k.account for k in self.keysets.values()}
        for account in sorted(balances):
            if account.startswith(COINS_OUTSTANDING) and account not in known_accounts:
                self.flag(
                    "ledger.unknown_keyset_account",
                    "coins booked to a keyset the bank does not have",
                    table="ledger_entry",
                    row_id=account,
                    found=balances[account],
                )

    # --- withdrawals ---------------------------------------------------------------------------

    def check_withdrawals(self, tx: Transaction) -> None:
        items: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in tx.fetchall(SQL_WITHDRAWAL_ITEMS):
            items[str(row["request_id"])].append(dict(row))
        withdrawals = tx.fetchall(SQL_WITHDRAWALS)
        self.counts["withdrawals"] = len(withdrawals)
        self.counts["withdrawal_items"] = sum(len(v) for v in items.values())
        known = {str(w["request_id"]) for w in withdrawals}
        for request_id in sorted(set(items) - known):
            for item in items[request_id]:
                kid = _b(item["keyset_id"])
                self.issued.append((kid, self.now))  # a signature is out there all the same
                self.flag(
                    "withdrawal.orphan_item",
                    "a signed item belongs to no withdrawal",
                    table="withdrawal_item",
                    row_id=f"{request_id}/{int(item['idx'])}",
                    keyset_id=kid.hex(),
                )
        for w in withdrawals:
            self._check_withdrawal(w, items.get(str(w["request_id"]), []))

    def _check_withdrawal(self, w: Mapping[str, Any], items: Sequence[Mapping[str, Any]]) -> None:
        request_id = str(w["request_id"])
        created = int(w["created_at"])
        value = 0
        expected: dict[str, int] = defaultdict(int)
        for item in items:
            where = f"{request_id}/{int(item['idx'])}"
            kid = _b(item["keyset_id"])
            self.issued.append((kid, created))
            keyset = self.keysets.get(kid)
            if keyset is None:
                self.flag(
                    "withdrawal.unknown_keyset",
                    "withdrawal item under an unknown keyset",
                    table="withdrawal_item",
                    row_id=where,
                    found=kid.hex(),
                )
                continue
            value += keyset.value
            expected[keyset.account] += keyset.value
            if not keyset.withdraw_from <= created < keyset.withdraw_until:
                self.flag(
                    "withdrawal.keyset_not_withdrawable",
                    "coin signed outside its keyset's withdraw window",
                    table="withdrawal_item",
                    row_id=where,
                    expected=[keyset.withdraw_from, keyset.withdraw_until],
                    found=created,
                )
            if keyset.public_key is not None and not _blind_signature_ok(
                keyset.public_key, _b(item["blinded_msg"]), _b(item["blind_sig"])
            ):
                self.flag(
                    "withdrawal.bad_blind_signature",
                    "stored blind signature does not verify under the keyset key",
                    table="withdrawal_item",
                    row_id=where,
                    keyset_id=kid.hex(),
                )
        amount = int(w["amount"])
        if amount != value or not items:
            self.flag(
                "withdrawal.amount_mismatch",
                "withdrawal amount differs from the value of its signed items",
                table="withdrawal",
                row_id=request_id,
                expected=value,
                found=amount,
                items=len(items),
            )
        expected[CUSTOMER + str(w["account_id"])] -= amount
        self._check_booking(
            kind="withdraw",
            violation="withdrawal.ledger_mismatch",
            table="withdrawal",
            row_id=request_id,
            txn_id=int(w["txn_id"]),
            expected=dict(expected),
        )

    # --- deposits and transcripts --------------------------------------------------------------

    def check_deposits(self, tx: Transaction) -> None:
        merchants = {str(r["merchant_id"]): str(r["cert_pem"]) for r in tx.fetchall(SQL_MERCHANTS)}
        deposits = {str(r["deposit_id"]): dict(r) for r in tx.fetchall(SQL_DEPOSITS)}
        by_deposit: dict[str, list[dict[str, Any]]] = defaultdict(list)
        for row in tx.fetchall(SQL_TRANSCRIPTS):
            t = dict(row)
            self.transcripts[int(t["transcript_id"])] = t
            by_deposit[str(t["deposit_id"])].append(t)
        self.counts["deposits"] = len(deposits)
        self.counts["transcripts"] = len(self.transcripts)
        if self.secrets is None:
            self.skipped.append(
                {
                    "check": "coin.credential",
                    "reason": "no issuer secrets given: the designated credential check "
                    "(S = y*R, T = x*(R + W)) of deposited coins was not run",
                }
            )
        for deposit_id in sorted(set(by_deposit) - set(deposits)):
            for t in by_deposit[deposit_id]:
                self.flag(
                    "transcript.row_mismatch",
                    "transcript of a deposit that does not exist",
                    table="spend_transcript",
                    row_id=int(t["transcript_id"]),
                    serial=_b(t["sigma"]),
                    found=deposit_id,
                    field="deposit_id",
                )
                self._check_transcript(t, None)
        for deposit_id, d in deposits.items():
            self._check_deposit(d, by_deposit.get(deposit_id, []), merchants)

    def _check_deposit(
        self,
        d: Mapping[str, Any],
        transcripts: Sequence[Mapping[str, Any]],
        merchants: Mapping[str, str],
    ) -> None:
        deposit_id = str(d["deposit_id"])
        merchant_id = str(d["merchant_id"])
        preq = _b(d["preq"])
        amount = int(d["amount"])
        if not transcripts:
            self.flag(
                "deposit.no_transcripts",
                "deposit without any transcript",
                table="deposit",
                row_id=deposit_id,
            )
        value = 0
        expected: dict[str, int] = defaultdict(int)
        requests: dict[str, Any] = {}
        for t in transcripts:
            body = self._check_transcript(t, d)
            keyset = self.keysets.get(_b(t["keyset_id"]))
            if keyset is not None:
                value += keyset.value
                expected[keyset.account] -= keyset.value
            if body is not None and "request" in body:
                requests[json.dumps(body["request"], sort_keys=True)] = body["request"]
        if transcripts and value != amount:
            self.flag(
                "deposit.amount_mismatch",
                "deposit amount differs from the value of its coins",
                table="deposit",
                row_id=deposit_id,
                expected=value,
                found=amount,
            )
        expected[MERCHANT + merchant_id] += amount
        self._check_booking(
            kind="deposit",
            violation="deposit.ledger_mismatch",
            table="deposit",
            row_id=deposit_id,
            txn_id=int(d["txn_id"]),
            expected=dict(expected),
        )
        if len(requests) > 1:
            self.flag(
                "transcript.row_mismatch",
                "the transcripts of one deposit carry different payment requests",
                table="deposit",
                row_id=deposit_id,
                found=len(requests),
                expected=1,
                field="request",
            )
        for doc in requests.values():
            self._check_request(doc, d, merchants.get(merchant_id), preq)
        self._check_receipt(d, transcripts)

    def _merchant_key(
        self, merchant_id: str, cert_pem: str | None, at: int
    ) -> ec.EllipticCurvePublicKey | None:
        if cert_pem is None:
            self.flag_once(
                merchant_id,
                "merchant.certificate_invalid",
                "the depositing merchant is not registered (no certificate)",
                table="merchant",
                row_id=merchant_id,
            )
            return None
        try:
            return verify_party_certificate(
                cert_pem, self.root, role="merchant", name=merchant_id, now=_utc(at)
            )
        except EcashError as exc:
            self.flag_once(
                merchant_id,
                "merchant.certificate_invalid",
                f"merchant certificate: {exc.message}",
                table="merchant",
                row_id=merchant_id,
                found=exc.code,
            )
            return None

    def _check_request(
        self, doc: Any, d: Mapping[str, Any], cert_pem: str | None, preq: bytes
    ) -> None:
        deposit_id = str(d["deposit_id"])
        merchant_id = str(d["merchant_id"])
        try:
            digest = canonical_digest(doc["body"]) if isinstance(doc, Mapping) else None
        except EcashError:
            digest = None
        if digest != preq:
            self.flag(
                "request.preq_mismatch",
                "the recorded preq is not the digest of the payment request",
                table="deposit",
                row_id=deposit_id,
                expected=b64u_encode(preq),
                found=None if digest is None else b64u_encode(digest),
            )
        key = self._merchant_key(merchant_id, cert_pem, int(d["created_at"]))
        if key is None:
            return
        try:
            body = verify_object(doc, key, PAYMENT_REQUEST_KIND)
        except EcashError as exc:
            self.flag(
                "request.bad_signature",
                f"payment request not signed by the merchant's key: {exc.message}",
                table="deposit",
                row_id=deposit_id,
                found=exc.code,
                merchant_id=merchant_id,
            )
            return
        wanted = {
            "merchant_id": merchant_id,
            "bank": self.bank_id,
            "currency": str(d["currency"]),
            "amount": int(d["amount"]),
        }
        for name, value in wanted.items():
            if body.get(name) != value:
                self.flag(
                    "request.mismatch",
                    f"payment request field {name} does not match the deposit",
                    table="deposit",
                    row_id=deposit_id,
                    expected=value,
                    found=body.get(name),
                    field=name,
                )

    def _check_receipt(
        self, d: Mapping[str, Any], transcripts: Sequence[Mapping[str, Any]]
    ) -> None:
        deposit_id = str(d["deposit_id"])
        try:
            body = verify_object(json.loads(d["receipt"]), self.bank_key, RECEIPT_KIND)
        except (EcashError, ValueError, TypeError) as exc:
            message = exc.message if isinstance(exc, EcashError) else str(exc)
            self.flag(
                "receipt.bad_signature",
                f"deposit receipt: {message}",
                table="deposit",
                row_id=deposit_id,
            )
            return
        ordered = sorted(transcripts, key=lambda t: int(t["transcript_id"]))
        expected = {
            "deposit_id": deposit_id,
            "merchant_id": str(d["merchant_id"]),
            "preq": b64u_encode(_b(d["preq"])),
            "amount": int(d["amount"]),
            "currency": str(d["currency"]),
            "serials": [b64u_encode(_b(t["sigma"])) for t in ordered],
            "transcript_ids": [int(t["transcript_id"]) for t in ordered],
            "deposited_at": int(d["created_at"]),
        }
        for name in _RECEIPT_FIELDS:
            if body.get(name) != expected[name]:
                self.flag(
                    "receipt.mismatch",
                    f"signed receipt field {name} differs from the deposit's records",
                    table="deposit",
                    row_id=deposit_id,
                    expected=expected[name],
                    found=body.get(name),
                    field=name,
                )

    def _check_transcript(
        self, t: Mapping[str, Any], d: Mapping[str, Any] | None
    ) -> dict[str, Any] | None:
        """Verify one recorded spend; returns its body (None if unreadable)."""
        tid = int(t["transcript_id"])
        sigma = _b(t["sigma"])
        created = int(t["created_at"])
        self.counts["coins_verified"] += 1

        def mismatch(name: str, expected: Any, found: Any) -> None:
            self.flag(
                "transcript.row_mismatch",
                f"transcript {name} disagrees",
                table="spend_transcript",
                row_id=tid,
                serial=sigma,
                expected=expected,
                found=found,
                field=name,
            )

        try:
            body = json.loads(t["body"])
            if not isinstance(body, dict):
                raise ValueError("body is not an object")
            parsed = parse_transcript({**body, "transcript_id": tid})
            coin = body["spend"]["coin"]
            msg_prefix = b64u_decode(coin["msg_prefix"])
            signature = b64u_decode(coin["signature"])
            if len(msg_prefix) != MSG_PREFIX_LEN or not signature:
                raise ValueError("msg_prefix or signature has the wrong length")
        except (EcashError, ValueError, TypeError, KeyError) as exc:
            message = exc.message if isinstance(exc, EcashError) else str(exc)
            self.flag(
                "transcript.malformed",
                f"transcript cannot be parsed: {message}",
                table="spend_transcript",
                row_id=tid,
                serial=sigma,
            )
            return None
        self.parsed[tid] = parsed

        # the row, the body and the deposit must tell one story
        pairs: list[tuple[str, Any, Any]] = [
            ("sigma", b64u_encode(sigma), b64u_encode(parsed.sigma)),
            ("sigma", b64u_encode(sigma), body.get("sigma")),
            ("keyset_id", b64u_encode(_b(t["keyset_id"])), b64u_encode(parsed.keyset_id)),
            ("keyset_id", b64u_encode(_b(t["keyset_id"])), body.get("keyset_id")),
            ("epoch", parsed.epoch, body.get("epoch")),
            ("preq", b64u_encode(_b(t["preq"])), b64u_encode(parsed.preq)),
            ("merchant_id", str(t["merchant_id"]), parsed.merchant_id),
            ("deposit_id", str(t["deposit_id"]), body.get("deposit_id")),
            ("deposited_at", created, body.get("deposited_at")),
        ]
        if d is not None:
            pairs += [
                ("preq", b64u_encode(_b(d["preq"])), b64u_encode(_b(t["preq"]))),
                ("merchant_id", str(d["merchant_id"]), str(t["merchant_id"])),
                ("created_at", int(d["created_at"]), created),
            ]
        for name, expected, found in pairs:
            if expected != found:
                mismatch(name, expected, found)

        keyset = self.keysets.get(parsed.keyset_id)
        if keyset is None:
            self.flag(
                "coin.unknown_keyset",
                "deposited coin under an unknown keyset",
                table="spend_transcript",
                row_id=tid,
                serial=sigma,
                found=parsed.keyset_id.hex(),
            )
        else:
            if body.get("value") != keyset.value:
                mismatch("value", keyset.value, body.get("value"))
            if body.get("currency") != keyset.currency:
                mismatch("currency", keyset.currency, body.get("currency"))
            if not keyset.withdraw_from <= created < keyset.deposit_until:
                self.flag(
                    "coin.keyset_not_depositable",
                    "coin accepted outside its keyset's deposit window",
                    table="spend_transcript",
                    row_id=tid,
                    serial=sigma,
                    expected=[keyset.withdraw_from, keyset.deposit_until],
                    found=created,
                )
            if keyset.public_key is not None:
                prepared = msg_prefix + coin_message(
                    parsed.keyset_id, parsed.epoch, parsed.sigma, parsed.coin
                )
                try:
                    blindrsa.verify(
                        keyset.public_key, prepared, signature, salt_length=keyset.salt_length
                    )
                except blindrsa.BlindRsaError:
                    self.flag(
                        "coin.bad_signature",
                        "coin signature does not verify under its keyset",
                        table="spend_transcript",
                        row_id=tid,
                        serial=sigma,
                        keyset_id=keyset.keyset_id.hex(),
                    )
        self._check_credential(parsed, tid, sigma)
        try:
            verify_spend_proof(
                parsed.proof,
                hop=self.hop,
                preq=_b(t["preq"]),
                keyset_id=parsed.keyset_id,
                epoch=parsed.epoch,
                sigma=parsed.sigma,
                coin=parsed.coin,
            )
        except EcashError as exc:
            self.flag(
                "spend.bad_proof",
                "spend proof does not verify for the recorded payment request",
                table="spend_transcript",
                row_id=tid,
                serial=sigma,
                found=exc.code,
            )
        return body

    def _check_credential(self, parsed: Transcript, tid: int, sigma: bytes) -> None:
        if self.secrets is None:
            return
        try:
            secret = self.secrets.secret_for_epoch(parsed.epoch)
        except NotFoundError:
            self.flag(
                "coin.unknown_epoch",
                "no issuer secret for the coin's epoch",
                table="spend_transcript",
                row_id=tid,
                serial=sigma,
                found=parsed.epoch,
            )
            return
        self._check_epoch_key(parsed.epoch, secret)
        self.counts["credentials_checked"] += 1
        try:
            verify_credential(secret, *parsed.coin)
        except EcashError as exc:
            self.flag(
                "coin.bad_credential",
                "coin credential is not valid for its epoch",
                table="spend_transcript",
                row_id=tid,
                serial=sigma,
                found=exc.detail.get("check", exc.code),
                epoch=parsed.epoch,
            )

    def _check_epoch_key(self, epoch: int, secret: IssuerSecret) -> None:
        if self.issuer_public is None or epoch in self._epochs_checked:
            return
        self._epochs_checked.add(epoch)
        published = self.issuer_public.get(epoch)
        if published is not None and secret.public != published:
            self.flag(
                "issuer.secret_mismatch",
                "the issuer secret of this epoch does not match the published public key",
                row_id=epoch,
                expected=published.to_dict(),
                found=secret.public.to_dict(),
            )

    # --- serials -------------------------------------------------------------------------------

    def check_serials(self, tx: Transaction) -> None:
        spent_rows = [dict(r) for r in tx.fetchall(SQL_SPENT)]
        self.counts["spent_coins"] = len(spent_rows)
        by_sigma: dict[bytes, list[int]] = defaultdict(list)
        for tid, t in sorted(self.transcripts.items()):
            by_sigma[_b(t["sigma"])].append(tid)
        for sigma, ids in by_sigma.items():
            if len(ids) > 1:
                self.flag(
                    "serial.duplicate",
                    "one serial is transcribed as spent more than once",
                    table="spend_transcript",
                    row_id=ids[1],
                    serial=sigma,
                    expected=1,
                    found=len(ids),
                    transcript_ids=ids,
                )
        spent_by_sigma: dict[bytes, list[dict[str, Any]]] = defaultdict(list)
        for r in spent_rows:
            spent_by_sigma[_b(r["sigma"])].append(r)
        seen: set[bytes] = set()
        for sigma, rows in spent_by_sigma.items():
            if len(rows) > 1:
                self.flag(
                    "serial.duplicate",
                    "one serial is in the spent-coin table more than once",
                    table="spent_coin",
                    row_id=int(rows[1]["transcript_id"]),
                    serial=sigma,
                    expected=1,
                    found=len(rows),
                    transcript_ids=[int(r["transcript_id"]) for r in rows],
                )
            for r in rows:
                self._check_spent_row(sigma, r)
            if sigma not in seen:
                seen.add(sigma)
                first = rows[0]
                self.spent.append((_b(first["keyset_id"]), sigma, int(first["spent_at"])))
        for sigma, ids in by_sigma.items():
            if sigma not in spent_by_sigma:
                self.flag(
                    "serial.not_marked_spent",
                    "a transcribed serial is missing from the spent-coin table",
                    table="spend_transcript",
                    row_id=ids[0],
                    serial=sigma,
                )

    def _check_spent_row(self, sigma: bytes, r: Mapping[str, Any]) -> None:
        tid = int(r["transcript_id"])
        t = self.transcripts.get(tid)
        if t is None:
            self.flag(
                "serial.spent_row_mismatch",
                "spent coin points to a transcript that does not exist",
                table="spent_coin",
                row_id=tid,
                serial=sigma,
            )
            return
        pairs = [
            ("sigma", b64u_encode(_b(t["sigma"])), b64u_encode(sigma)),
            ("keyset_id", _b(t["keyset_id"]).hex(), _b(r["keyset_id"]).hex()),
            ("deposit_id", str(t["deposit_id"]), str(r["deposit_id"])),
            ("spent_at", int(t["created_at"]), int(r["spent_at"])),
        ]
        for name, expected, found in pairs:
            if expected != found:
                self.flag(
                    "serial.spent_row_mismatch",
                    f"spent coin {name} differs from its transcript",
                    table="spent_coin",
                    row_id=tid,
                    serial=sigma,
                    expected=expected,
                    found=found,
                    field=name,
                )

    # --- money supply --------------------------------------------------------------------------

    def outstanding_as_of(self, as_of: int | None = None) -> dict[bytes, tuple[int, int]]:
        """Per known keyset ``(issued, spent)`` counts up to ``as_of`` (all if None)."""
        issued: Counter[bytes] = Counter(k for k, at in self.issued if as_of is None or at <= as_of)
        spent: Counter[bytes] = Counter(
            k for k, _, at in self.spent if as_of is None or at <= as_of
        )
        return {kid: (issued[kid], spent[kid]) for kid in self.keysets}

    def check_supply(self) -> list[KeysetSupplyAudit]:
        out = []
        counts = self.outstanding_as_of(None)
        for kid, keyset in self.keysets.items():
            issued, spent = counts[kid]
            withdrawn, deposited = self.account_sums.get(keyset.account, (0, 0))
            ledger_outstanding = withdrawn - deposited
            audit = KeysetSupplyAudit(
                keyset_id=keyset.b64,
                value=keyset.value,
                currency=keyset.currency,
                issued_count=issued,
                spent_count=spent,
                outstanding_count=issued - spent,
                outstanding_value=keyset.value * (issued - spent),
                ledger_withdrawn=withdrawn,
                ledger_deposited=deposited,
                ledger_outstanding=ledger_outstanding,
            )
            out.append(audit)
            where: dict[str, Any] = {
                "table": "ledger_entry",
                "row_id": keyset.account,
                "keyset_id": keyset.b64,
            }
            if withdrawn != keyset.value * issued:
                self.flag(
                    "supply.withdrawn_mismatch",
                    "ledger value withdrawn != value x signatures issued",
                    expected=keyset.value * issued,
                    found=withdrawn,
                    issued_count=issued,
                    **where,
                )
            if deposited != keyset.value * spent:
                self.flag(
                    "supply.deposited_mismatch",
                    "ledger value deposited != value x serials spent",
                    expected=keyset.value * spent,
                    found=deposited,
                    spent_count=spent,
                    **where,
                )
            if ledger_outstanding != audit.outstanding_value:
                self.flag(
                    "supply.outstanding_mismatch",
                    "ledger outstanding != value x (issued - spent)",
                    expected=audit.outstanding_value,
                    found=ledger_outstanding,
                    **where,
                )
            if spent > issued:
                self.flag(
                    "supply.negative_outstanding",
                    "more serials spent than signatures issued",
                    expected=f"<= {issued}",
                    found=spent,
                    **where,
                )
        return out

    # --- blacklist -----------------------------------------------------------------------------

    def check_blacklist(self, tx: Transaction) -> None:
        failures = {int(r["failure_id"]): dict(r) for r in tx.fetchall(SQL_FAILURES)}
        entries = [dict(r) for r in tx.fetchall(SQL_BLACKLIST)]
        self.counts["blacklist_entries"] = len(entries)
        self.counts["verification_failures"] = len(failures)
        used_up: dict[str, int] = defaultdict(int)  # subject -> last failure used by a lift
        for e in entries:
            entry_id = int(e["entry_id"])
            subject = str(e["subject"])
            problems = self._entry_problems(e, failures, used_up.get(subject, 0))
            for reason, expected, found in problems:
                self.flag(
                    "blacklist.unjustified",
                    f"blacklist entry not justified: {reason}",
                    table="blacklist",
                    row_id=entry_id,
                    expected=expected,
                    found=found,
                    subject=subject,
                )
            if e["lifted_at"] is not None:
                self.counts["blacklist_lifted"] += 1
                missing = [
                    name
                    for name in ("lifted_by", "lift_reason")
                    if not isinstance(e[name], str) or not e[name].strip()
                ]
                if missing or int(e["lifted_at"]) < int(e["listed_at"]):
                    self.flag(
                        "blacklist.lift_unexplained",
                        "lifted entry lacks "
                        + (", ".join(missing) if missing else "a lift time after its listing"),
                        table="blacklist",
                        row_id=entry_id,
                        expected="who and why",
                        found={"lifted_by": e["lifted_by"], "lift_reason": e["lift_reason"]},
                        subject=subject,
                    )
                if e["lift_failure_id"] is not None:
                    used_up[subject] = max(used_up[subject], int(e["lift_failure_id"]))

    @staticmethod
    def _entry_problems(
        e: Mapping[str, Any], failures: Mapping[int, Mapping[str, Any]], used_up: int
    ) -> list[tuple[str, Any, Any]]:
        try:
            ids = json.loads(e["failure_ids"])
            if not isinstance(ids, list) or not all(
                isinstance(i, int) and not isinstance(i, bool) for i in ids
            ):
                raise ValueError("not a list of integers")
        except (ValueError, TypeError):
            return [("failure_ids is not a list of failure ids", "list", e["failure_ids"])]
        threshold, window = int(e["threshold"]), int(e["window_s"])
        listed = int(e["listed_at"])
        subject = str(e["subject"])
        problems: list[tuple[str, Any, Any]] = []
        if threshold < 1 or window < 1:
            problems.append(("recorded policy is not positive", ">= 1", [threshold, window]))
        if len(set(ids)) != len(ids):
            problems.append(("a failure is named twice", len(set(ids)), len(ids)))
        justified = 0
        for fid in sorted(set(ids)):
            f = failures.get(fid)
            if f is None:
                problems.append(("names a failure that is not recorded", "recorded", fid))
            elif f["subject"] != subject:
                problems.append((f"failure {fid} is another subject's", subject, f["subject"]))
            elif not listed - window < int(f["at"]) <= listed:
                problems.append(
                    (f"failure {fid} is outside the window", [listed - window, listed], f["at"])
                )
            elif fid <= used_up:
                problems.append(
                    (f"failure {fid} was used up by an earlier lift", f"> {used_up}", fid)
                )
            else:
                justified += 1
        if justified < threshold:
            problems.append(
                (
                    "fewer recorded failures within the window than the threshold",
                    threshold,
                    justified,
                )
            )
        return problems

    # --- double-spend reports ------------------------------------------------------------------

    def check_double_spend_reports(self, tx: Transaction) -> None:
        rows = tx.fetchall(SQL_DOUBLE_SPEND_REPORTS)
        self.counts["double_spend_reports"] = len(rows)
        for r in rows:
            self.counts["double_spend_reports_" + str(r["status"])] += 1
            problem = self._report_problem(r)
            if problem is not None:
                self.flag(
                    "double_spend_report.invalid",
                    f"double-spend report is not a double spend: {problem}",
                    table="double_spend_report",
                    row_id=int(r["report_id"]),
                    serial=_b(r["sigma"]),
                )

    def _report_problem(self, r: Mapping[str, Any]) -> str | None:
        sigma = _b(r["sigma"])
        first = self.parsed.get(int(r["first_transcript_id"]))
        if first is None:
            return "the first transcript is missing or unreadable"
        try:
            second = parse_transcript(
                {**json.loads(r["second_transcript"]), "transcript_id": f"attempt-{r['report_id']}"}
            )
        except (EcashError, ValueError, TypeError) as exc:
            return f"the refused attempt cannot be parsed ({exc})"
        if first.sigma != sigma or second.sigma != sigma:
            return "the transcripts are of another serial"
        if second.preq != _b(r["second_preq"]):
            return "the attempt's preq differs from the recorded one"
        if first.preq == second.preq:
            return "both spends are for the same payment request"
        try:
            second.verify_spend(self.hop)
        except EcashError:
            return "the attempt's spend proof does not verify"
        return None

    # --- the bank's supply report --------------------------------------------------------------

    def check_supply_report(self, stored: Mapping[str, Any]) -> dict[str, Any]:
        from ecash_tpm.protocol.api.base import validate_model
        from ecash_tpm.protocol.supply import SupplyReportBody, check_supply_report

        report = stored.get("report")
        cert = stored.get("cert")
        report_id = stored.get("report_id")
        summary: dict[str, Any] = {"report_id": report_id, "as_of": None, "discrepancies": []}
        raw_body = report.get("body") if isinstance(report, Mapping) else None
        as_of = raw_body.get("as_of") if isinstance(raw_body, Mapping) else None
        at = as_of if isinstance(as_of, int) and not isinstance(as_of, bool) else self.now
        try:
            if not isinstance(cert, str | bytes):
                raise AuditInputError("the stored report has no certificate")
            key = verify_party_certificate(cert, self.root, role="bank", now=_utc(at))
            body = validate_model(SupplyReportBody, verify_object(report, key, SUPPLY_REPORT_KIND))
        except EcashError as exc:
            self.flag(
                "supply_report.bad_signature",
                f"supply report: {exc.message}",
                table="supply_report",
                row_id=report_id,
                found=exc.code,
            )
            return summary
        if body.bank_id != self.bank_id or common_name(load_certificate(cert)) != self.bank_id:
            raise AuditInputError(
                "the supply report is another bank's",
                detail={"bank_id": body.bank_id, "audited": self.bank_id},
            )
        counts = self.outstanding_as_of(body.as_of)
        audited = {
            k.b64: k.value * (counts[kid][0] - counts[kid][1]) for kid, k in self.keysets.items()
        }
        found = check_supply_report(body, audited)
        for d in found:
            self.flag(
                "supply_report." + d.kind,
                f"supply report as of {body.as_of}: {d.kind.replace('_', ' ')}",
                table="supply_report",
                row_id=report_id,
                expected=d.expected,
                found=d.reported,
                keyset_id=d.keyset_id,
            )
        summary.update(
            as_of=body.as_of,
            bank_id=body.bank_id,
            reported_total=sum(k.outstanding_value for k in body.keysets),
            audited_total=sum(audited.values()),
            discrepancies=[d.to_dict() for d in found],
        )
        return summary


def _blind_signature_ok(key: rsa.RSAPublicKey, blinded: bytes, sig: bytes) -> bool:
    """RFC 9474 BlindSign's own check: s^e mod n == blinded message (as integers)."""
    numbers = key.public_numbers()
    size = (key.key_size + 7) // 8
    if len(sig) != size or len(blinded) != size:
        return False
    s, m = int.from_bytes(sig, "big"), int.from_bytes(blinded, "big")
    return s < numbers.n and m < numbers.n and pow(s, numbers.e, numbers.n) == m


def run_audit(
    bank_db: Database | str,
    *,
    bank_cert: x509.Certificate | str | bytes,
    central_bank_root: x509.Certificate | str | bytes,
    opener_public: Point,
    issuer_secrets: EpochSecrets | Mapping[int, IssuerSecret] | None = None,
    issuer_public: Mapping[int, IssuerPublic] | None = None,
    keyset_descriptors: Sequence[Mapping[str, Any]] | None = None,
    supply_report: Mapping[str, Any] | None = None,
    now: int | None = None,
) -> AuditReport:
    """Audit a bank's database; never raises for what it finds (see the module docstring).

    ``bank_db``: an open :class:`Database` (left open) or its URL (opened read-only, closed).
    ``bank_cert`` / ``central_bank_root``: the bank's certificate and the auditor's own copy of
    the central-bank root (the trust anchor). ``opener_public``: Hop. ``issuer_secrets``: an
    ``IssuerKeyStore`` or ``{epoch: IssuerSecret}``; without them the credential check is
    skipped and listed in ``report.skipped``. ``issuer_public``: ``{epoch: IssuerPublic}`` to
    check the secrets against. ``keyset_descriptors``: signed descriptors the bank published,
    which must be in its database. ``supply_report``: the central bank's stored report
    (``{report_id, report, cert, ...}`` as ``GET /v1/supply-reports/latest`` returns it).
    Raises only for unusable inputs (:class:`AuditInputError`, :class:`BankDatabaseError`).
    """
    try:
        cert = load_certificate(bank_cert)
        root = load_certificate(central_bank_root)
    except EcashError as exc:
        raise AuditInputError(f"bank certificate or root: {exc.message}") from exc
    if not isinstance(opener_public, Point) or opener_public.is_infinity:
        raise AuditInputError("opener_public must be a finite BN_P256 point")
    secrets: EpochSecrets | None = (
        _MappingSecrets(issuer_secrets) if isinstance(issuer_secrets, Mapping) else issuer_secrets
    )
    moment = int(time.time()) if now is None else now

    owned = isinstance(bank_db, str)
    db = open_bank_database(bank_db) if isinstance(bank_db, str) else bank_db
    try:
        version = _schema_version(db)
        auditor = _Auditor(
            bank_cert=cert,
            root=root,
            hop=opener_public,
            secrets=secrets,
            issuer_public=issuer_public,
            now=moment,
        )
        with db.read() as tx:
            auditor.load_keysets(tx)
            if keyset_descriptors is not None:
                auditor.check_published(keyset_descriptors)
            auditor.load_ledger(tx)
            auditor.check_withdrawals(tx)
            auditor.check_deposits(tx)
            auditor.check_serials(tx)
            auditor.check_ledger(tx)
            keysets = auditor.check_supply()
            auditor.check_blacklist(tx)
            auditor.check_double_spend_reports(tx)
        supply = None if supply_report is None else auditor.check_supply_report(supply_report)
        database = db.url
    finally:
        if owned:
            db.close()
    violations = sorted(
        auditor.violations, key=lambda v: (v.kind, v.table or "", str(v.row_id), v.serial or "")
    )
    return AuditReport(
        bank_id=auditor.bank_id,
        database=database,
        schema_version=version,
        audited_at=moment,
        counts=dict(sorted(auditor.counts.items())),
        skipped=auditor.skipped,
        violations=violations,
        keysets=keysets,
        supply_report=supply,
    )
