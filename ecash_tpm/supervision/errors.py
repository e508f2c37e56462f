"""Leaf errors of the supervision department (opening, registry, double-spend evidence)."""

from __future__ import annotations

from ecash_tpm.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    CryptoError,
    ForbiddenError,
    InputError,
)


class TranscriptMalformedError(InputError):
    """A bank transcript lacks a field or holds a badly encoded coin/proof."""

    code = "evidence.transcript_malformed"


class NotDoubleSpendError(CryptoError):
    """The transcripts are not two different valid spends of one serial."""

    code = "evidence.not_double_spend"


class OpeningsDisagreeError(CryptoError):
    """The two spends of a serial open to different T0s (cannot happen for honest coins)."""

    code = "evidence.openings_disagree"


class EvidenceInvalidError(CryptoError):
    """An evidence bundle is malformed or its openings do not verify."""

    code = "evidence.invalid"


class RegistryConflictError(ConflictError):
    """T0 is already registered for another member id (or the member id for another T0)."""

    code = "registry.conflict"


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
