"""The bank: accounts, denomination keysets, blind-signed withdrawals, deposits with
double-spend detection, the lock period T, blacklists and a double-entry ledger (DESIGN §5).

- :class:`BankDomain` (``domain.py``) — the whole bank without HTTP; inject
  :class:`IssuerSecrets`, :class:`MembershipCheck`, :class:`DoubleSpendReporter` and a clock
- :func:`create_bank_app` (``routes.py``) — the FastAPI app of docs/api.md
- :class:`BankClient` (``client.py``) — the httpx client for wallets, merchants, the TTP
- :mod:`ecash_tpm.bank.coins` — wire forms (coins, spends, signed deposits)
"""

from ecash_tpm.bank.client import BankClient, BankKeysets, verify_receipt
from ecash_tpm.bank.coins import (
    Coin,
    PaymentRequest,
    Spend,
    sign_deposit,
    sign_payment_request,
    sign_reserve,
)
from ecash_tpm.bank.domain import BankDomain, BankPolicy, system_clock
from ecash_tpm.bank.keysets import Keyset, KeysetStore
from ecash_tpm.bank.ledger import ledger_check
from ecash_tpm.bank.protocols import DoubleSpendReporter, IssuerSecrets, MembershipCheck
from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.bank.store import MIGRATIONS

__all__ = [
    "MIGRATIONS",
    "BankClient",
    "BankDomain",
    "BankKeysets",
    "BankPolicy",
    "BankSettings",
    "Coin",
    "DoubleSpendReporter",
    "IssuerSecrets",
    "Keyset",
    "KeysetStore",
    "MembershipCheck",
    "PaymentRequest",
    "Spend",
    "create_bank_app",
    "ledger_check",
    "sign_deposit",
    "sign_payment_request",
    "sign_reserve",
    "system_clock",
    "verify_receipt",
]
