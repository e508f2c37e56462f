"""The customer wallet: runs on the device that holds the TPM.

- :mod:`.tpm_signer` — :class:`TpmDaaSigner`, the group-signature signer backed by the TPM
- :mod:`.membership` — the member state kept in the wallet data directory
- :mod:`.join` — the device side of the attested join (DESIGN §4)
- :mod:`.context` — :class:`WalletContext` / :class:`SpendingContext`, what every verb takes
- :mod:`.withdraw`, :mod:`.pay` — withdrawal, payment and recovery (docs/protocol.md 5-9)
- :mod:`.coins`, :mod:`.records`, :mod:`.store` — coin choice, records, the coin database
- :mod:`.purchases` — buying digital goods with the fair exchange (docs/protocol.md 16)

Modules are imported on use (this package imports nothing eagerly), so wallet code that does
not touch the TPM does not load tpm2-pytss.
"""
