"""The central bank: the system's root CA (DESIGN §1).

``pki`` holds what every party needs to *check* certificates (roles, OIDs, errors,
:func:`verify_party_certificate`); ``ca`` holds what only the central bank does (issue, revoke,
publish CRLs), with its state in the data layer (``store``). Importing the package gives both.

The service lives in submodules that are imported on demand (they pull in FastAPI):
``settings`` / ``routes`` / ``service`` (the HTTP API), ``client`` (for the other parties),
``supply`` (money-supply reports and :func:`~ecash_tpm.protocol.supply.check_supply_report`).
"""
