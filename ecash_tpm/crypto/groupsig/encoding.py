"""Byte-level constants and the small decoders every group-signature object shares.

docs/protocol.md §1.2 (points and scalars), §1.3 (tagged hash), §1.6 (group-signature objects);
the encodings the design leaves open are fixed here and listed in :data:`ENCODING_NOTES`.
The underscore helpers are package-internal: each raises :class:`GroupsigEncodingError` with
the offending field, so every object reports malformed input the same way.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from ecash_tpm.crypto.bn256 import N, Point, decode_scalar
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.groupsig.errors import GroupsigEncodingError
from ecash_tpm.errors import EcashError, EncodingError, InvalidScalarError

__all__ = [
    "DIGEST_LEN",
    "ENCODING_NOTES",
    "JOIN_NONCE_LEN",
    "KEYSET_ID_LEN",
    "NONCE_K_MAX_LEN",
    "PREQ_LEN",
    "SIGMA_LEN",
    "TAG_COIN",
    "TAG_CRED",
    "TAG_JOIN",
    "TAG_OPEN",
    "TAG_SPEND",
]

TAG_JOIN = "ecash-tpm/v1/join"
TAG_CRED = "ecash-tpm/v1/cred"
TAG_COIN = "ecash-tpm/v1/coin"
TAG_SPEND = "ecash-tpm/v1/spend"
TAG_OPEN = "ecash-tpm/v1/open"

JOIN_NONCE_LEN = 32
KEYSET_ID_LEN = 16
SIGMA_LEN = 32
PREQ_LEN = 32
DIGEST_LEN = 32
NONCE_K_MAX_LEN = 32

ENCODING_NOTES = """\
Encodings fixed by this module where DESIGN.md is silent:
- epoch inside hashes: u32be (4 bytes, 0 <= epoch < 2^32).
- keyset_id: 16 bytes; sigma: 32 bytes; preq: 32 bytes; join nonce: 32 bytes; c': 32 bytes.
- hash -> scalar (credential k, opening e): int.from_bytes(digest, "big") mod n.
- nonceK: 1..32 bytes, value in [1, n-1], kept and hashed exactly as the TPM returned it.
- proof bytes: fixed-width fields in order, nonceK as u8(len) || nonceK; dict form: the same
  fields as base64url strings (points 65-byte SEC1, scalars 32-byte big-endian), exact key set.
- spend proof: optionally followed by its commitments E || R1 || R2 (bytes; keys "E", "R1",
  "R2" in the dict form), which verifiers use for batch checks; both forms are accepted.
- opening proof: (e, z) with V1 = z*G - e*Hop, V2 = z*c1 - e*(c2 - T0),
  e = Hash("ecash-tpm/v1/open", Hop, c1, c2, T0, V1, V2) mod n.
"""


def _u32(epoch: int) -> bytes:
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**32:
        raise GroupsigEncodingError("epoch must be an integer in [0, 2^32)")
    return struct.pack(">I", epoch)


def _fixed(value: object, length: int, what: str) -> bytes:
    if not isinstance(value, bytes | bytearray | memoryview):
        raise GroupsigEncodingError(f"{what} must be bytes", detail={"field": what})
    value = bytes(value)
    if len(value) != length:
        raise GroupsigEncodingError(
            f"{what} must be {length} bytes, got {len(value)}",
            detail={"field": what, "length": len(value)},
        )
    return value


def _nonce_k(value: object) -> bytes:
    """Validate nonceK: 1..32 bytes with value in [1, n-1]; returned unchanged."""
    if not isinstance(value, bytes | bytearray | memoryview):
        raise GroupsigEncodingError("nonceK must be bytes", detail={"field": "nonce_k"})
    value = bytes(value)
    if not 1 <= len(value) <= NONCE_K_MAX_LEN:
        raise GroupsigEncodingError(
            f"nonceK must be 1..{NONCE_K_MAX_LEN} bytes, got {len(value)}",
            detail={"field": "nonce_k", "length": len(value)},
        )
    if not 0 < int.from_bytes(value, "big") < N:
        raise GroupsigEncodingError("nonceK out of range [1, n-1]", detail={"field": "nonce_k"})
    return value


def _point(value: object, what: str) -> Point:
    if not isinstance(value, Point):
        raise GroupsigEncodingError(f"{what} must be a Point", detail={"field": what})
    return value.require_finite(what)


def _scalar(value: object, what: str, allow_zero: bool = False) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise GroupsigEncodingError(f"{what} must be an integer", detail={"field": what})
    low = 0 if allow_zero else 1
    if not low <= value < N:
        raise GroupsigEncodingError(f"{what} out of range [{low}, n-1]", detail={"field": what})
    return int(value)


def _dict_fields(data: object, keys: tuple[str, ...], what: str) -> dict[str, bytes]:
    """Decode a JSON object whose values are all base64url, with exactly ``keys``."""
    if not isinstance(data, Mapping):
        raise GroupsigEncodingError(f"{what} must be a JSON object")
    if set(data) != set(keys):
        raise GroupsigEncodingError(
            f"{what} must have exactly the fields {sorted(keys)}",
            detail={"got": sorted(str(k) for k in data)},
        )
    out = {}
    for k in keys:
        try:
            out[k] = b64u_decode(data[k])
        except EncodingError as exc:
            raise GroupsigEncodingError(
                f"{what}.{k} is not base64url", detail={"field": k}
            ) from exc
    return out


def _pt(data: bytes, what: str) -> Point:
    """Decode a point, tagging the error with the field name (keeps the precise subclass)."""
    try:
        return Point.decode(data)
    except EcashError as exc:
        exc.detail.setdefault("field", what)
        raise


def _sc(data: bytes, what: str, allow_zero: bool = False) -> int:
    try:
        return decode_scalar(data, allow_zero=allow_zero)
    except InvalidScalarError as exc:
        exc.detail.setdefault("field", what)
        raise


class _Reader:
    """Cursor over a canonical byte encoding; every short read is a GroupsigEncodingError."""

    def __init__(self, data: object, what: str) -> None:
        if not isinstance(data, bytes | bytearray | memoryview):
            raise GroupsigEncodingError(f"{what} must be bytes")
        self.data = bytes(data)
        self.pos = 0
        self.what = what

    def take(self, n: int) -> bytes:
        if self.pos + n > len(self.data):
            raise GroupsigEncodingError(f"{self.what} is truncated")
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def done(self) -> None:
        if self.pos != len(self.data):
            raise GroupsigEncodingError(f"{self.what} has trailing bytes")
