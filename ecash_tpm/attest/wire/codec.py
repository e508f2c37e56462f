"""Bounds-checked reading and big-endian writing of TPM 2.0 primitive types.

Every parser in the wire package goes through :class:`Reader`, so truncation, oversized
``TPM2B`` buffers, unknown algorithms and trailing bytes are refused in one place.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable

from ecash_tpm.attest.errors import (
    WireSizeError,
    WireTrailingDataError,
    WireTruncatedError,
    WireUnsupportedError,
    WireValueError,
)
from ecash_tpm.attest.wire.constants import HASH_SIZES, TpmAlg


def as_bytes(data: object, what: str) -> bytes:
    """``data`` as ``bytes``: hosts hand over bytearray/memoryview too, anything else is refused."""
    if isinstance(data, bytes):
        return data
    if isinstance(data, bytearray | memoryview):
        return bytes(data)
    raise WireValueError(f"{what} must be bytes, not {type(data).__name__}")


class Reader:
    """A cursor over a byte string whose every read is bounds-checked.

    Errors name the structure being read (``what``) and the offset, so that a rejected blob can
    be diagnosed without a debugger.
    """

    __slots__ = ("_data", "_pos", "what")

    def __init__(self, data: bytes, what: str) -> None:
        self._data = as_bytes(data, what)
        self._pos = 0
        self.what = what

    @property
    def remaining(self) -> int:
        """Bytes not yet consumed."""
        return len(self._data) - self._pos

    def take(self, n: int, field: str) -> bytes:
        """The next ``n`` bytes, or :class:`WireTruncatedError`."""
        if n < 0 or self._pos + n > len(self._data):
            raise WireTruncatedError(
                f"{self.what}: truncated reading {field} ({n} bytes at offset {self._pos},"
                f" {self.remaining} left)",
                detail={"structure": self.what, "field": field, "offset": self._pos},
            )
        chunk = self._data[self._pos : self._pos + n]
        self._pos += n
        return chunk

    def u8(self, field: str) -> int:
        """An unsigned byte."""
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        """A big-endian UINT16."""
        return int(struct.unpack(">H", self.take(2, field))[0])

    def u32(self, field: str) -> int:
        """A big-endian UINT32."""
        return int(struct.unpack(">I", self.take(4, field))[0])

    def u64(self, field: str) -> int:
        """A big-endian UINT64."""
        return int(struct.unpack(">Q", self.take(8, field))[0])

    def tpm2b(self, max_size: int, field: str) -> bytes:
        """A TPM2B: UINT16 size then that many bytes, the size bounded by the type's maximum."""
        size = self.u16(field + ".size")
        if size > max_size:
            raise WireSizeError(
                f"{self.what}: {field} has size {size}, more than its maximum {max_size}",
                detail={"structure": self.what, "field": field, "size": size},
            )
        return self.take(size, field)

    def alg(self, field: str, allowed: Iterable[TpmAlg] | None = None) -> TpmAlg:
        """A TPM_ALG_ID, refused if unknown or not in ``allowed``."""
        value = self.u16(field)
        try:
            alg = TpmAlg(value)
        except ValueError:
            raise WireUnsupportedError(
                f"{self.what}: unknown algorithm {value:#06x} in {field}",
                detail={"structure": self.what, "field": field, "alg": value},
            ) from None
        if allowed is not None and alg not in frozenset(allowed):
            raise WireUnsupportedError(
                f"{self.what}: algorithm {alg.name} not allowed in {field}",
                detail={"structure": self.what, "field": field, "alg": value},
            )
        return alg

    def hash_alg(self, field: str, *, allow_null: bool = False) -> TpmAlg:
        """A TPMI_ALG_HASH (optionally +NULL)."""
        allowed = set(HASH_SIZES)
        if allow_null:
            allowed.add(TpmAlg.NULL)
        return self.alg(field, allowed)

    def done(self) -> None:
        """Refuse trailing bytes: a structure that must fill its buffer exactly."""
        if self.remaining:
            raise WireTrailingDataError(
                f"{self.what}: {self.remaining} trailing bytes after the structure",
                detail={"structure": self.what, "trailing": self.remaining},
            )


def u16(value: int) -> bytes:
    """Marshal a UINT16."""
    return struct.pack(">H", value)


def u32(value: int) -> bytes:
    """Marshal a UINT32."""
    return struct.pack(">I", value)


def u64(value: int) -> bytes:
    """Marshal a UINT64."""
    return struct.pack(">Q", value)


def tpm2b(data: bytes) -> bytes:
    """Marshal a TPM2B: UINT16 size || data."""
    if len(data) > 0xFFFF:
        raise WireSizeError(f"TPM2B payload of {len(data)} bytes does not fit a UINT16 size")
    return u16(len(data)) + data
