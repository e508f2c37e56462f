"""The fair-exchange TTP (DESIGN §6): escrows product keys, resolves disputes, stays offline.

- :mod:`.crypto` — AES-256-GCM content encryption, X25519 sealed boxes (pure)
- :mod:`.protocol` — signed wire objects shared with merchant, wallet and bank (pure)
- :mod:`.errors` — ``ttp.*`` error codes
- :mod:`.domain` — :class:`~ecash_tpm.ttp.domain.Ttp`, no HTTP
- :mod:`.store` — its database (products with escrowed keys, disputes, strikes, counters)
- :mod:`.routes`, :mod:`.settings` — the HTTP service; :mod:`.client` — HTTP clients
- :mod:`.scenario` — the demo's fair-exchange story

Submodules are imported on use, so the wallet can use :mod:`.crypto`/:mod:`.protocol`
without FastAPI.
"""
