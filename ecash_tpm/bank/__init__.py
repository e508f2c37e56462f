"""The bank: accounts, denomination keysets, blind-signed withdrawals, deposits with
double-spend detection, the lock period T, blacklists and a double-entry ledger (DESIGN §5).

- :class:`BankDomain` (``domain.py``) — the whole bank without HTTP; inject
  :class:`IssuerSecrets`, :class:`MembershipCheck`, :class:`DoubleSpendReporter` and a clock
- :func:`create_bank_app` (``routes.py``) — the FastAPI app of docs/api.md
- :class:`BankClient` (``client.py``) — the httpx client for wallets, merchants, the TTP
- :mod:`ecash_tpm.protocol.coins` — wire forms (coins, spends, signed deposits)
"""
