"""The supervision department: holds the opening key, names signers with proofs, audits banks.

- :mod:`.domain` — :class:`SupervisionDepartment`: member registry (T0s from the issuer),
  ``open`` with a Chaum-Pedersen proof, double-spend evidence and revocation requests (the
  evidence format itself is the wire specification's, ``ecash_tpm.protocol.evidence``)
- :mod:`.audit` — the audit of a bank's database, one analysis per area over a shared context;
  :mod:`.audit_report` — its report
- :mod:`.keys` — opener secret h (0600) and the published Hop
- :mod:`.store` — SQL; :mod:`.routes` — HTTP app (its client is ``ecash_tpm.clients.supervision``)
"""
