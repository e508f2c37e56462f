"""Leaf errors of the supervision department (opening, registry, double-spend evidence)."""

from __future__ import annotations

from ecash_tpm.errors import (
    AuthenticationError,
    ConfigError,
    ForbiddenError,
)


class OpenerKeyError(ConfigError):
    """The opener secret is missing, unreadable, malformed, or not mode 0600."""

    code = "supervision.opener_key_invalid"


class SupervisionConfigError(ConfigError):
    """A supervision setting needed for this request is missing."""

    code = "supervision.config_invalid"


class OpenUnauthorizedError(AuthenticationError):
    """/v1/open needs the operator's bearer token."""

    code = "supervision.unauthorized"


class OpenDisabledError(ForbiddenError):
    """No operator token is configured, so nobody may open spends over HTTP.

    Opening de-anonymizes a payment; an endpoint that did it for anyone by default would undo
    the whole scheme. Offline opening (``ecash-tpm supervision open --data``) still works.
    """

    code = "supervision.open_disabled"
