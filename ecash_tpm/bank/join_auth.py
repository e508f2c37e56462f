"""The bank's join authorisation (docs/protocol.md, "Join authorisation").

A logged-in customer asks for one per join, naming the hash of the AK the join will attest;
the bank signs ``join-authorisation`` for the account the login token belongs to, never for
an account the caller names, so nobody joins under an account whose login they do not hold.
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.errors import InputError
from ecash_tpm.pki import certificate_fingerprint
from ecash_tpm.protocol.join_auth import JOIN_AUTHORISATION_KIND, NONCE_LEN, JoinAuthorisation

__all__ = ["JOIN_AUTHORISATION_TTL_S", "BindingInvalidError", "issue_join_authorisation"]

JOIN_AUTHORISATION_TTL_S = 120
"""Lifetime of an authorisation: long enough for one join, too short to hoard."""

_BINDING = re.compile(r"[0-9a-f]{64}")


class BindingInvalidError(InputError):
    """The binding is not 64 lowercase hex digits (Hash(join-binding, AK public))."""

    code = "bank.join_binding_invalid"


def issue_join_authorisation(bank: BankDomain, account_id: str, binding: str) -> dict[str, Any]:
    """``{authorisation, cert}``: the signed authorisation for the authenticated account."""
    if not _BINDING.fullmatch(binding):
        raise BindingInvalidError("binding must be 64 lowercase hex digits")
    now = int(bank.clock())
    auth = JoinAuthorisation(
        account_id=account_id,
        binding=binding,
        nonce=secrets.token_bytes(NONCE_LEN),
        issued_at=now,
        expires_at=now + JOIN_AUTHORISATION_TTL_S,
    )
    signer = certificate_fingerprint(bank.bank_cert)
    doc = sign_object(bank.bank_key, JOIN_AUTHORISATION_KIND, auth.to_body(), signer=signer)
    return {"authorisation": doc, "cert": bank.bank_cert_pem()}
