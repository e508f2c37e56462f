"""The merchant (shop): signs payment requests, checks payments, deposits, keeps receipts.

- :mod:`.protocol` — wire checks shared with the wallet (keysets, coins, requests, receipts)
- :mod:`.domain` — :class:`~ecash_tpm.merchant.domain.Merchant`, no HTTP
- :mod:`.store` — its database (requests paid once, deposits, counters)
- :mod:`.routes`, :mod:`.app`, :mod:`.settings` — the HTTP service
- :mod:`.client` — :class:`MerchantClient` (for wallets) and the bank gateway

Submodules are imported on use, so the wallet can use :mod:`.protocol` without FastAPI.
"""
