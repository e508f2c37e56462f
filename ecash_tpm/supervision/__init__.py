"""The supervision department: holds the opening key, names signers with proofs.

- :mod:`.domain` — :class:`SupervisionDepartment`: member registry (T0s from the issuer),
  ``open`` with a Chaum-Pedersen proof, double-spend evidence and revocation requests
- :mod:`.evidence` — pure checks of bank transcripts and evidence bundles (used by the issuer)
- :mod:`.keys` — opener secret h (0600) and the published Hop
- :mod:`.store` — SQL; :mod:`.routes` — HTTP app; :mod:`.client` — HTTP client
"""
