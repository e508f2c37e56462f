"""The merchant (shop): signs payment requests, checks payments, deposits, keeps receipts.

- :mod:`.domain` — :class:`~ecash_tpm.merchant.domain.Merchant`, no HTTP
- :mod:`.catalogue` — digital goods escrowed with the fair-exchange TTP (DESIGN §6)
- :mod:`.models` — HTTP bodies and the typed records the domain returns
- :mod:`.store` — its database (requests paid once, deposits, counters)
- :mod:`.retry` — re-sends deposits whose bank answer was lost, while the service runs
- :mod:`.routes`, :mod:`.app`, :mod:`.settings` — the HTTP service

Submodules are imported on use, so importing the package loads nothing heavy.
"""
