"""The bank's money-supply report to the central bank (DESIGN §1; body in
:mod:`ecash_tpm.protocol.supply`).

The bank states, per keyset, how many coins are outstanding and their value, computed from its
ledger (the ``coins-outstanding:<keyset>`` account of :mod:`ecash_tpm.bank.ledger`) on one
snapshot and *as of* a moment: only ledger transactions dated ``<= as_of`` count, so the
supervision department's audit can recompute the very same figures from the coin tables
(signatures issued and serials spent up to ``as_of``) even after later activity. The report is
signed with the bank's certified key (kind ``supply-report``) and sent with the certificate;
the central bank stores one report per ``(bank_id, as_of)``.

    report = build_supply_report(bank)                    # signed object
    receipt = send_supply_report(bank, "http://cb:8081")  # build, sign, POST /v1/supply-reports
"""

from __future__ import annotations

from typing import Any

from cryptography.x509.oid import NameOID

from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.errors import LedgerInvariantError
from ecash_tpm.bank.store import keysets as keyset_rows
from ecash_tpm.bank.store import ledger as ledger_rows
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.errors import ConfigError, InputError
from ecash_tpm.pki import certificate_fingerprint
from ecash_tpm.protocol.api.base import validate_model
from ecash_tpm.protocol.keysets import FEE_ACCOUNT
from ecash_tpm.protocol.supply import SUPPLY_REPORT_KIND, SupplyReportBody
from ecash_tpm.storage import Database

__all__ = [
    "build_supply_report",
    "outstanding_per_keyset",
    "send_supply_report",
    "supply_report_body",
]


def outstanding_per_keyset(db: Database, *, as_of: int) -> list[dict[str, Any]]:
    """Per keyset: ``{keyset_id (b64), value, currency, outstanding_count, outstanding_value}``
    from the ledger as of ``as_of``; raises if the ledger holds a fraction of a coin or a
    negative amount (a broken ledger must not be reported as if it were fine)."""
    lines = []
    with db.read() as tx:
        for kid, value, currency in keyset_rows.denominations(tx):
            total = ledger_rows.outstanding_as_of(tx, "coins-outstanding:" + kid.hex(), as_of)
            if total < 0 or total % value:
                raise LedgerInvariantError(
                    "the ledger's outstanding value of a keyset is not a whole number of coins",
                    detail={"keyset_id": kid.hex(), "value": value, "outstanding": total},
                )
            lines.append(
                {
                    "keyset_id": b64u_encode(kid),
                    "value": value,
                    "currency": currency,
                    "outstanding_count": total // value,
                    "outstanding_value": total,
                }
            )
    return lines


def _bank_id(bank: BankDomain) -> str:
    """The central bank checks ``bank_id`` against the CN of the certificate it issued."""
    values = bank.bank_cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
    if not values:
        raise ConfigError("the bank certificate has no common name")
    return str(values[0].value)


def supply_report_body(bank: BankDomain, *, as_of: int | None = None) -> dict[str, Any]:
    """The unsigned report body, validated against the central bank's model before signing
    (so a refusal, e.g. a currency the report format does not allow, is local and clear)."""
    moment = bank.clock() if as_of is None else as_of
    if isinstance(moment, bool) or not isinstance(moment, int) or moment < 0:
        raise InputError("as_of must be a non-negative integer (Unix seconds)")
    with bank.db.read() as tx:  # docs/protocol.md 4.2: the fees earned up to as_of
        fees = ledger_rows.outstanding_as_of(tx, FEE_ACCOUNT, moment)
    body = {
        "bank_id": _bank_id(bank),
        "as_of": moment,
        "keysets": outstanding_per_keyset(bank.db, as_of=moment),
        "fees": fees,
    }
    validate_model(SupplyReportBody, body)
    return body


def build_supply_report(bank: BankDomain, *, as_of: int | None = None) -> dict[str, Any]:
    """The signed ``supply-report`` object (signer hint: the certificate's fingerprint)."""
    return sign_object(
        bank.bank_key,
        SUPPLY_REPORT_KIND,
        supply_report_body(bank, as_of=as_of),
        signer=certificate_fingerprint(bank.bank_cert),
    )


def send_supply_report(
    bank: BankDomain, central_bank: Any, *, as_of: int | None = None
) -> dict[str, Any]:
    """Build, sign and submit the report; ``central_bank`` is a URL or a
    :class:`~ecash_tpm.clients.centralbank.CentralBankClient`. Returns ``{report, receipt}``."""
    from ecash_tpm.clients.centralbank import CentralBankClient

    report = build_supply_report(bank, as_of=as_of)
    if isinstance(central_bank, CentralBankClient):
        receipt = central_bank.submit_supply_report(report, bank.bank_cert)
    elif isinstance(central_bank, str):
        with CentralBankClient(central_bank) as client:
            receipt = client.submit_supply_report(report, bank.bank_cert)
    else:
        raise InputError("central_bank must be a URL or a CentralBankClient")
    return {"report": report, "receipt": receipt.model_dump(mode="json")}
