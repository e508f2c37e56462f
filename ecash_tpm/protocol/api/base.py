"""Shared pydantic pieces for request/response bodies: base64url bytes, error body, base model,
signed objects and sealed boxes.

Bytes travel in JSON as base64url without padding (DESIGN §7). :data:`B64Bytes` accepts only the
canonical form (no padding, no ``+/``, no whitespace), because two encodings of the same bytes
would let a replayed request look different from the original to an idempotency check.
A bad value is reported as a 400 ``encoding.invalid`` with the field's location.
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationError,
    WithJsonSchema,
)
from pydantic_core import PydanticCustomError

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.errors import EncodingError, InputError

ENCODING_ERROR_TYPE = "encoding_invalid"
M = TypeVar("M", bound=BaseModel)


def _decode_b64(value: Any) -> bytes:
    if isinstance(value, bytes | bytearray | memoryview):  # built in Python, not from JSON
        return bytes(value)
    if not isinstance(value, str):
        raise PydanticCustomError(ENCODING_ERROR_TYPE, "expected a base64url string")
    try:
        return b64u_decode(value)
    except EncodingError as exc:
        raise PydanticCustomError(
            ENCODING_ERROR_TYPE, "{reason}", {"reason": exc.message}
        ) from None


B64Bytes = Annotated[
    bytes,
    BeforeValidator(_decode_b64),
    PlainSerializer(b64u_encode, return_type=str, when_used="json"),
    WithJsonSchema(
        {
            "type": "string",
            "contentEncoding": "base64url",
            "pattern": "^[A-Za-z0-9_-]*$",
            "description": "bytes, base64url without padding",
        }
    ),
]
"""``bytes`` in Python, canonical unpadded base64url in JSON. Add ``Field(min_length=...,
max_length=...)`` for length limits (checked on the decoded bytes)."""


class ApiModel(BaseModel):
    """Base for request/response bodies: unknown fields are an error, not silently dropped."""

    model_config = ConfigDict(extra="forbid")


class ErrorBody(BaseModel):
    """The body of every error response: a stable ``code``, a human ``message``, ``detail``."""

    code: str = Field(description="stable dotted code (area.reason): what clients branch on")
    message: str = Field(description="for humans; may change between versions")
    detail: dict[str, Any] = Field(
        default={}, description="facts about this failure (e.g. retry_after, serial, index)"
    )


class SignedObject(ApiModel):
    """``{kind, body, signature, signer}`` as made by ``sign_object``: ``body`` signed under the
    domain tag ``ecash-tpm/v1/obj/<kind>``; ``signer`` is an unsigned lookup hint."""

    kind: str = Field(max_length=64, description="what the body is (e.g. payment-request)")
    body: dict[str, Any] = Field(description="the signed JSON object")
    signature: str = Field(max_length=200, description="64-byte ECDSA P-256 r||s, base64url")
    signer: str = Field(max_length=200, description="key id or certificate fingerprint")


class SealedBox(ApiModel):
    """A key sealed to an X25519 public key (``ecash_tpm.crypto.sealing``), all base64url."""

    epk: str = Field(description="ephemeral X25519 public key")
    nonce: str
    ct: str = Field(description="ciphertext with its tag")


def _documented_as(model: type[BaseModel]) -> WithJsonSchema:
    return WithJsonSchema(model.model_json_schema())


SignedDoc = Annotated[dict[str, Any], _documented_as(SignedObject)]
"""A signed object in a body: documented as :class:`SignedObject`, but passed on as the mapping
it is, so that a malformed one is refused by the verifier with its own code (e.g.
``signed_object.malformed``), exactly as before the schema was written down."""

SealedDoc = Annotated[dict[str, Any], _documented_as(SealedBox)]
"""A sealed box, documented as :class:`SealedBox` and passed on as a mapping."""


def validation_errors(exc: ValidationError) -> list[dict[str, Any]]:
    """Pydantic errors reduced to ``{loc, type, msg}`` (no echo of the offending input)."""
    return [
        {"loc": list(err.get("loc", ())), "type": err.get("type"), "msg": err.get("msg")}
        for err in exc.errors(include_url=False, include_input=False, include_context=False)
    ]


def validate_model(model: type[M], data: Any) -> M:
    """``model.model_validate(data)`` raising the project's InputError/EncodingError instead."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = validation_errors(exc)
        cls = (
            EncodingError
            if errors and all(e["type"] == ENCODING_ERROR_TYPE for e in errors)
            else InputError
        )
        raise cls(f"invalid {model.__name__}", detail={"errors": errors}) from None
