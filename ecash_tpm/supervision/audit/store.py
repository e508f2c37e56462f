"""The bank's tables, read with the audit's own SQL (schema: ``ecash_tpm/bank/store/schema.py``).

All of the audit's SQL lives here. It is deliberately not the bank's store: an auditor that
reused the bank's queries would share the bank's bugs. Every query runs inside the one read
transaction of an audit run, so all areas see one snapshot.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecash_tpm.errors import EcashError
from ecash_tpm.storage import Database, Transaction
from ecash_tpm.supervision.audit_report import BankDatabaseError

__all__ = [
    "BANK_SCHEMA_COMPONENT",
    "BankTables",
    "RedeemTables",
    "RefundTables",
    "SwapReportTables",
    "SwapTables",
    "open_bank_database",
    "schema_version",
]

BANK_SCHEMA_COMPONENT = "bank"

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

Rows = list[dict[str, Any]]


def open_bank_database(url: str) -> Database:
    """Open the bank's database for reading; refuses a SQLite path that does not exist
    (``Database.open`` would create an empty file and the audit would find nothing)."""
    if url.startswith("sqlite:///"):
        path = Path(url[len("sqlite:///") :])
        if not path.is_file():
            raise BankDatabaseError("the bank database does not exist", detail={"path": str(path)})
    return Database.open(url, pool_size=1)


def schema_version(db: Database) -> int:
    """The bank schema's migration version; refuses a database that holds no bank schema."""
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


class BankTables:
    """The bank's tables in one read snapshot (``tx``), one method per table."""

    def __init__(self, tx: Transaction) -> None:
        self._tx = tx

    def keysets(self) -> Rows:
        return self._tx.fetchall(SQL_KEYSETS)

    def withdrawals(self) -> Rows:
        return self._tx.fetchall(SQL_WITHDRAWALS)

    def withdrawal_items(self) -> Rows:
        return self._tx.fetchall(SQL_WITHDRAWAL_ITEMS)

    def ledger_txns(self) -> Rows:
        return self._tx.fetchall(SQL_LEDGER_TXNS)

    def ledger_entries(self) -> Rows:
        return self._tx.fetchall(SQL_LEDGER_ENTRIES)

    def deposits(self) -> Rows:
        return self._tx.fetchall(SQL_DEPOSITS)

    def transcripts(self) -> Rows:
        return self._tx.fetchall(SQL_TRANSCRIPTS)

    def spent_coins(self) -> Rows:
        return self._tx.fetchall(SQL_SPENT)

    def merchants(self) -> Rows:
        return self._tx.fetchall(SQL_MERCHANTS)

    def blacklist(self) -> Rows:
        return self._tx.fetchall(SQL_BLACKLIST)

    def verification_failures(self) -> Rows:
        return self._tx.fetchall(SQL_FAILURES)

    def double_spend_reports(self) -> Rows:
        return self._tx.fetchall(SQL_DOUBLE_SPEND_REPORTS)


# --- refunds (issue 12, item 3): component ``bank_refunds``, absent from older bank databases ---

SQL_HAS_REFUNDS = "SELECT COUNT(*) AS n FROM schema_migrations WHERE component = 'bank_refunds'"
SQL_REFUNDS = (
    "SELECT refund_id, claim_id, merchant_id, deposit_id, preq, amount, currency, permission,"
    " merchant_cert, claim_digest, proofs, txn_id, claimed_at FROM refund"
    " ORDER BY claimed_at, refund_id"
)
SQL_REFUND_COINS = "SELECT refund_id, sigma FROM refund_coin ORDER BY refund_id, sigma"
SQL_REFUND_ITEMS = (
    "SELECT refund_id, idx, keyset_id, blinded_msg, blind_sig FROM refund_item"
    " ORDER BY refund_id, idx"
)


class RefundTables:
    """The bank's refund tables in the audit's snapshot (empty where the bank has none)."""

    def __init__(self, tables: BankTables) -> None:
        self._tx = tables._tx
        self.present = int(self._tx.fetchval(SQL_HAS_REFUNDS) or 0) > 0

    def refunds(self) -> Rows:
        return self._tx.fetchall(SQL_REFUNDS) if self.present else []

    def refund_coins(self) -> Rows:
        return self._tx.fetchall(SQL_REFUND_COINS) if self.present else []

    def refund_items(self) -> Rows:
        return self._tx.fetchall(SQL_REFUND_ITEMS) if self.present else []


# --- swaps (issue 12, docs/protocol.md §9.3): component ``bank_swap``, absent from older banks ---

SWAP_SCHEMA_COMPONENT = "bank_swap"
SQL_SWAPS = (
    "SELECT request_id, preq, amount_in, amount_out, fee, currency, txn_id, created_at"
    " FROM swap ORDER BY created_at, request_id"
)
SQL_SWAP_INPUTS = (
    "SELECT sigma, request_id, keyset_id, value, body, spent_at FROM swap_input"
    " ORDER BY request_id, sigma"
)
SQL_SWAP_OUTPUTS = (
    "SELECT request_id, idx, keyset_id, value, blinded_msg, blind_sig FROM swap_output"
    " ORDER BY request_id, idx"
)


class SwapTables:
    """The bank's swap tables in the audit's snapshot (empty where the bank has none)."""

    def __init__(self, tables: BankTables) -> None:
        self._tx = tables._tx
        self.present = (
            self._tx.fetchval(SQL_SCHEMA_VERSION, {"c": SWAP_SCHEMA_COMPONENT}) is not None
        )

    def swaps(self) -> Rows:
        return self._tx.fetchall(SQL_SWAPS) if self.present else []

    def swap_inputs(self) -> Rows:
        return self._tx.fetchall(SQL_SWAP_INPUTS) if self.present else []

    def swap_outputs(self) -> Rows:
        return self._tx.fetchall(SQL_SWAP_OUTPUTS) if self.present else []


# --- swap double-spend reports (docs/protocol.md §9.3): component ``bank_swap_reports``, absent
# from older banks ----------------------------------------------------------------------------

SWAP_REPORT_SCHEMA_COMPONENT = "bank_swap_reports"
SQL_SWAP_REPORTS = (
    "SELECT report_id, sigma, second_preq, second_transcript, status FROM swap_report"
    " ORDER BY report_id"
)


class SwapReportTables:
    """The bank's queue of reports whose first spend was a swap (empty where it has none)."""

    def __init__(self, tables: BankTables) -> None:
        self._tx = tables._tx
        self.present = (
            self._tx.fetchval(SQL_SCHEMA_VERSION, {"c": SWAP_REPORT_SCHEMA_COMPONENT}) is not None
        )

    def reports(self) -> Rows:
        return self._tx.fetchall(SQL_SWAP_REPORTS) if self.present else []


# --- redeems (issue 12 #5, docs/protocol.md §9.4): component ``bank_redeem``, absent from older
# banks ------------------------------------------------------------------------------------------

REDEEM_SCHEMA_COMPONENT = "bank_redeem"
SQL_REDEEM_REQUESTS = (
    "SELECT request_id, account_id, preq, amount, currency, deadline, doc, created_at"
    " FROM redeem_request ORDER BY created_at, request_id"
)
SQL_REDEEMS = (
    "SELECT request_id, account_id, preq, amount, currency, receipt, txn_id, created_at"
    " FROM redeem ORDER BY created_at, request_id"
)
SQL_REDEEM_INPUTS = (
    "SELECT sigma, request_id, keyset_id, value, body, spent_at FROM redeem_input"
    " ORDER BY request_id, sigma"
)
SQL_REDEEM_REPORTS = (
    "SELECT report_id, sigma, second_preq, status FROM redeem_report ORDER BY report_id"
)


class RedeemTables:
    """The bank's redeem tables in the audit's snapshot (empty where the bank has none)."""

    def __init__(self, tables: BankTables) -> None:
        self._tx = tables._tx
        self.present = (
            self._tx.fetchval(SQL_SCHEMA_VERSION, {"c": REDEEM_SCHEMA_COMPONENT}) is not None
        )

    def requests(self) -> Rows:
        return self._tx.fetchall(SQL_REDEEM_REQUESTS) if self.present else []

    def redeems(self) -> Rows:
        return self._tx.fetchall(SQL_REDEEMS) if self.present else []

    def inputs(self) -> Rows:
        return self._tx.fetchall(SQL_REDEEM_INPUTS) if self.present else []

    def reports(self) -> Rows:
        return self._tx.fetchall(SQL_REDEEM_REPORTS) if self.present else []
