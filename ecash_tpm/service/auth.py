"""Service tokens: ``Authorization: Bearer <token>`` for operator and party-to-party routes.

One parser and one comparison for every party, so that no route forgets the constant-time
compare, and an endpoint whose token is not configured is off rather than open.
"""

from __future__ import annotations

import hmac

from ecash_tpm.errors import EcashError


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer <token>`` header, or None if there is none."""
    scheme, _, token = (authorization or "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def require_bearer(
    authorization: str | None,
    configured: str | None,
    *,
    disabled: EcashError,
    unauthorized: EcashError,
) -> None:
    """Raise ``disabled`` when no token is configured, ``unauthorized`` unless it was given."""
    if not configured:
        raise disabled
    given = bearer_token(authorization)
    if given is None or not hmac.compare_digest(given.encode(), configured.encode()):
        raise unauthorized
