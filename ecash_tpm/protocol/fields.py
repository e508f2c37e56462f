"""One reader for the fields of signed bodies (docs/protocol.md, "Encodings").

Every signed object's body is a JSON object whose integers are plain JSON integers (never
booleans), whose bytes are unpadded base64url, whose party names are short identifiers and whose
currency is an upper-case code. Each reader raises the caller's error class naming the field, so
a malformed body is refused with the code of the object being read (``receipt.invalid``,
``ttp.registration_invalid``, ...), never with a bare ``KeyError``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.errors import EcashError, EncodingError
from ecash_tpm.protocol.money import is_currency_code

__all__ = ["NAME_PATTERN", "read_bytes", "read_currency", "read_int", "read_name", "read_str"]

#: A party id (merchant, TTP, bank name) as it appears in bodies and certificate CNs.
NAME_PATTERN = r"^[A-Za-z0-9._:-]{1,64}$"
_NAME_RE = re.compile(NAME_PATTERN)


def read_int(body: Mapping[str, Any], key: str, err: type[EcashError], low: int = 0) -> int:
    """An integer >= ``low`` (booleans are not integers here)."""
    value = body.get(key)
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise err(f"{key} must be an integer >= {low}", detail={"field": key})
    return value


def read_str(body: Mapping[str, Any], key: str, err: type[EcashError], limit: int = 256) -> str:
    """A non-empty string of at most ``limit`` characters."""
    value = body.get(key)
    if not isinstance(value, str) or not value or len(value) > limit:
        raise err(f"{key} must be a non-empty string of at most {limit}", detail={"field": key})
    return value


def read_bytes(
    body: Mapping[str, Any], key: str, err: type[EcashError], length: int | None = None
) -> bytes:
    """Canonical unpadded base64url, decoded; exactly ``length`` bytes when given."""
    value = body.get(key)
    if not isinstance(value, str):
        raise err(f"{key} must be base64url", detail={"field": key})
    try:
        raw = b64u_decode(value)
    except EncodingError:
        raise err(f"{key} must be base64url", detail={"field": key}) from None
    if length is not None and len(raw) != length:
        raise err(f"{key} must be {length} bytes", detail={"field": key, "length": len(raw)})
    return raw


def read_name(body: Mapping[str, Any], key: str, err: type[EcashError]) -> str:
    """A party id (:data:`NAME_PATTERN`)."""
    value = body.get(key)
    if not isinstance(value, str) or not _NAME_RE.fullmatch(value):
        raise err(f"{key} must be a party id", detail={"field": key})
    return value


def read_currency(body: Mapping[str, Any], err: type[EcashError]) -> str:
    """The ``currency`` field: an upper-case code like ``EUR``."""
    value = body.get("currency")
    if not is_currency_code(value):
        raise err("currency must be an upper-case code like EUR", detail={"field": "currency"})
    return value
