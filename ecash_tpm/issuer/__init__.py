"""The group manager (issuer, operated by the bank): attested TPM join, credentials, revocation.

- :mod:`.domain` — :class:`IssuerService`, the join protocol of DESIGN §4 without HTTP
- :mod:`.keys` — :class:`IssuerKeyStore`, per-epoch secrets (also read by the bank)
- :mod:`.trust` / :mod:`.policy` — EK trust store directory, PCR allow-list (+ TOFU for demos)
- :mod:`.store` — SQL and migrations; :mod:`.routes` — HTTP app; :mod:`.client` — HTTP client
- :mod:`.registry` — how member T0s reach the supervision department
"""
