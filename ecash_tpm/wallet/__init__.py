"""The customer wallet: runs on the device that holds the TPM.

- :mod:`.tpm_signer` — :class:`TpmDaaSigner`, the group-signature signer backed by the TPM
- :mod:`.membership` — the member state kept in the wallet data directory
- :mod:`.join` — the device side of the attested join (DESIGN §4)
- the coin modules (withdrawal, payment, the wallet's coin store) build on these

Modules are imported on use (this package imports nothing eagerly), so wallet code that does
not touch the TPM does not load tpm2-pytss.
"""
