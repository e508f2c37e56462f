"""The bank: accounts, denomination keysets, blind-signed withdrawals, deposits with
double-spend detection, the lock period T, blacklists and a double-entry ledger (DESIGN §5).

- :class:`BankDomain` (``domain.py``) — the whole bank without HTTP; inject
  :class:`IssuerSecrets`, :class:`MembershipCheck`, :class:`DoubleSpendReporter` and a clock;
  it returns the typed records of ``models.py``
- ``verify.py`` — the checks of an incoming deposit or reservation (docs/protocol.md §9);
  ``deposit.py`` books what passed them; ``reports.py`` sends double-spend evidence
- ``store/`` — all of the bank's SQL (schema and one query module per table group)
- :func:`create_bank_app` (``routes.py``) — the FastAPI app of docs/api.md
- :mod:`ecash_tpm.clients.bank` — the httpx client for wallets, merchants, the TTP
- :mod:`ecash_tpm.protocol.coins` — wire forms (coins, spends, signed deposits)
"""
