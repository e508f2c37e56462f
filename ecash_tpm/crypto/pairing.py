"""The pairing facade everything else uses (docs/protocol.md §1.7, §7.4).

It runs the native module (:func:`ecash_tpm.crypto.native.load`) when that module offers
``pairing_product_is_one``, else the pure-Python reference :mod:`.bn256_pairing`; both follow
the same conventions, so callers never know which one answered. G2 points are always the
reference's :class:`G2Point` (validated on decode); only the heavy operations are delegated.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from types import ModuleType
from typing import Any

from ecash_tpm.crypto import bn256_pairing as _ref
from ecash_tpm.crypto import native
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.bn256_pairing import (
    G2_LEN,
    P2,
    G2EncodingError,
    G2NotInSubgroupError,
    G2NotOnTwistError,
    G2Point,
    encode_g2,
)
from ecash_tpm.errors import InvalidPointError

__all__ = [
    "G2_LEN",
    "P2",
    "G2EncodingError",
    "G2NotInSubgroupError",
    "G2NotOnTwistError",
    "G2Point",
    "backend",
    "decode_g2",
    "encode_g2",
    "g2_mul",
    "pairing_product_is_one",
]


@lru_cache(maxsize=1)
def _native() -> ModuleType | None:
    """The native module if it implements the pairing (looked up once: a constant)."""
    mod = native.load()
    if mod is not None and hasattr(mod, "pairing_product_is_one"):
        return mod
    return None


def backend() -> str:
    """``"native"`` or ``"python"``: which implementation answers (status pages, benchmarks)."""
    return "native" if _native() is not None else "python"


def pairing_product_is_one(terms: Sequence[tuple[Point, G2Point]]) -> bool:
    """prod e(P_k, Q_k) == 1 (one final exponentiation). Infinity on either side is 1."""
    mod = _native()
    if mod is None:
        return _ref.pairing_product_is_one(terms)
    flat: list[tuple[int, int, int, int, int, int]] = []
    for p, q in terms:
        if not isinstance(p, Point) or not isinstance(q, G2Point):
            raise InvalidPointError("pairing terms must be (Point, G2Point)")
        if p.is_infinity or q.is_infinity:
            continue
        flat.append((p.x, p.y, *q.coordinates))
    if not flat:
        return True
    return bool(mod.pairing_product_is_one(flat))


def g2_mul(k: int, q: G2Point) -> G2Point:
    """k * Q on the twist."""
    mod = _native()
    if mod is None or q.is_infinity:
        return q * k
    out: Any = mod.g2_mul(int(k), *q.coordinates)
    if out is None:
        return G2Point.infinity()
    return G2Point(*out)


def decode_g2(data: bytes) -> G2Point:
    """:func:`.bn256_pairing.decode_g2`, with the subgroup check done natively when possible."""
    mod = _native()
    if mod is None or not hasattr(mod, "g2_is_valid"):
        return _ref.decode_g2(data)
    if not isinstance(data, bytes | bytearray | memoryview) or len(data) != G2_LEN:
        return _ref.decode_g2(data)  # raises the typed encoding error
    data = bytes(data)
    if data[0] != 4:
        return _ref.decode_g2(data)
    cs = [int.from_bytes(data[1 + 32 * k : 33 + 32 * k], "big") for k in range(4)]
    q = G2Point(*cs)  # range and on-twist, typed errors
    if not mod.g2_is_valid(*cs):
        raise G2NotInSubgroupError("G2 point is not in the order-n subgroup")
    return q
