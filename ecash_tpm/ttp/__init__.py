"""The fair-exchange TTP (DESIGN §6): escrows product keys, resolves disputes, stays offline.

- :mod:`.domain` — :class:`~ecash_tpm.ttp.domain.Ttp`, no HTTP: a facade over
  :mod:`.products` (registration and escrow) and :mod:`.disputes` (bank query, merchant's key,
  deadlines, strikes); :mod:`.config` — its identity and the parties it calls
- :mod:`.errors` — ``ttp.*`` error codes
- :mod:`.models` — HTTP bodies and the typed records the domain returns
- :mod:`.store` — its database (products with escrowed keys, disputes, strikes, counters)
- :mod:`.routes`, :mod:`.settings` — the HTTP service

The wire objects it shares with merchant, wallet and bank are in :mod:`ecash_tpm.protocol`,
its HTTP clients in :mod:`ecash_tpm.clients.ttp`. Submodules are imported on use.
"""
