"""One typed exception hierarchy for the whole project.

Every failure a caller can act on is an :class:`EcashError` with a stable, dotted ``code``
(``area.reason``) and an HTTP status that services map to ``{code, message, detail}`` bodies.
Callers branch on the class or on ``code``, never on the message text, so messages may change
but codes may not. Subsystems add leaf classes next to their code; the areas live here so that
every part of the system shares them.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Self


class EcashError(Exception):
    """Base of every error this project raises on purpose."""

    code: str = "internal.error"
    http_status: int = 500

    def __init__(
        self,
        message: str,
        *,
        code: str | None = None,
        detail: dict[str, Any] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        if http_status is not None:
            self.http_status = http_status
        self.detail: dict[str, Any] = dict(detail or {})

    def recode(
        self,
        code: str,
        *,
        http_status: int | None = None,
        detail: Mapping[str, Any] | None = None,
    ) -> Self:
        """The same failure reported under a party's own stable code (the bank answers
        ``bank.keyset_expired`` where a merchant answers ``coin.keyset_expired``): same class,
        same message and status (unless ``http_status`` is given), ``detail`` added to this
        error's; chained to this error."""
        other = type(self).__new__(type(self))  # no __init__: subclasses may have their own
        other.__dict__.update(self.__dict__)
        other.args = self.args
        other.code = code
        other.detail = {**self.detail, **(detail or {})}
        if http_status is not None:
            other.http_status = http_status
        other.__cause__ = self
        return other

    def to_dict(self) -> dict[str, Any]:
        """The wire form of the error: ``{code, message, detail}``."""
        return {"code": self.code, "message": self.message, "detail": self.detail}

    def __str__(self) -> str:
        return f"[{self.code}] {self.message}"


# --- input and encodings ---------------------------------------------------------------------


class InputError(EcashError):
    """The caller sent something malformed or out of range."""

    code = "input.invalid"
    http_status = 400


class WireFormatError(InputError):
    """A TPM wire structure (or other binary encoding) is truncated, oversized or inconsistent."""

    code = "wire.malformed"


class EncodingError(InputError):
    """A point, scalar or other project encoding is invalid."""

    code = "encoding.invalid"


# --- cryptography ----------------------------------------------------------------------------


class CryptoError(EcashError):
    """A cryptographic check failed: the input is well formed but not authentic or not valid."""

    code = "crypto.invalid"
    http_status = 400


class InvalidPointError(EncodingError):
    """A curve point is off the curve, the point at infinity, or badly encoded."""

    code = "crypto.invalid_point"


class InvalidScalarError(EncodingError):
    """A scalar is outside its permitted range."""

    code = "crypto.invalid_scalar"


class ProofError(CryptoError):
    """A zero-knowledge proof or Schnorr-type signature does not verify."""

    code = "crypto.proof_invalid"


class SignatureError(CryptoError):
    """A signature does not verify."""

    code = "crypto.bad_signature"


# --- attestation (pure verifier) ---------------------------------------------------------------


class AttestationError(EcashError):
    """Platform evidence (EK certificate, quote, certify, key attributes) was not accepted."""

    code = "attest.failed"
    http_status = 403


class EkCertificateError(AttestationError):
    """The EK certificate does not chain to a trusted root, or is otherwise unacceptable."""

    code = "ek.chain_invalid"


class QuoteError(AttestationError):
    """A TPM2_Quote was rejected."""

    code = "quote.invalid"


class CertifyError(AttestationError):
    """A TPM2_Certify was rejected."""

    code = "certify.invalid"


class KeyAttributesError(AttestationError):
    """A key's public area does not have the attributes the protocol requires."""

    code = "attest.key_attributes"


# --- TPM device and emulator ---------------------------------------------------------------------


class TpmError(EcashError):
    """Talking to the TPM failed (connection, command error, missing capability)."""

    code = "tpm.error"
    http_status = 500


class TpmCapabilityError(TpmError):
    """The TPM lacks something the protocol needs (e.g. ECDAA on BN_P256)."""

    code = "tpm.capability_missing"


class SwtpmError(EcashError):
    """Provisioning, starting or stopping the swtpm emulator failed."""

    code = "swtpm.error"


# --- services and protocol state ---------------------------------------------------------------


class ConfigError(EcashError):
    """A configuration file or environment setting is missing or invalid."""

    code = "config.invalid"


class StorageError(EcashError):
    """The data layer failed (migration, constraint we did not expect, I/O)."""

    code = "storage.error"


class NotFoundError(EcashError):
    """The referenced object does not exist."""

    code = "not_found"
    http_status = 404


class ConflictError(EcashError):
    """The request conflicts with recorded state (duplicate, replay, double spend)."""

    code = "conflict"
    http_status = 409


class AuthenticationError(EcashError):
    """The caller could not be authenticated."""

    code = "auth.failed"
    http_status = 401


class ForbiddenError(EcashError):
    """The caller is known but may not do this (blacklisted, revoked)."""

    code = "forbidden"
    http_status = 403


class ProtocolError(EcashError):
    """A protocol step arrived out of order, expired, or with state that does not match."""

    code = "protocol.invalid"
    http_status = 400


class RemoteError(EcashError):
    """Another party answered with an error, or could not be reached."""

    code = "remote.error"
    http_status = 502
