"""The issuer's per-epoch secret (x, y) and the supervision department's opening key h.

DESIGN §4 (issuer secret for the credential) and §5 (opener key Hop = h*G);
docs/protocol.md §1.6 (issuer public key, secrets on disk), §3.6 (X2, Y2 on G2) and §12
(opening).
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecash_tpm.crypto.bn256 import G, Point, encode_scalar, random_scalar, scalar_mult_secret
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig.encoding import _dict_fields, _fixed, _pt, _Reader, _sc, _scalar
from ecash_tpm.crypto.groupsig.errors import GroupsigEncodingError, IssuerKeyG2Error
from ecash_tpm.crypto.pairing import (
    P2,
    G2Point,
    decode_g2,
    encode_g2,
    g2_mul,
    pairing_product_is_one,
)
from ecash_tpm.errors import EcashError

__all__ = ["IssuerPublic", "IssuerSecret", "OpenerSecret"]

_G1_FIELDS = ("X", "Y")
_G2_FIELDS = ("X2", "Y2")


def _g2(data: Any, name: str) -> G2Point:
    try:
        return decode_g2(b64u_decode(data))
    except EcashError as exc:
        exc.detail.setdefault("field", name)
        raise


@dataclass(frozen=True, slots=True)
class IssuerPublic:
    """An epoch's issuer public key: X = x*G, Y = y*G and, for public verification (protocol
    §3.6, §7.4), X2 = x*P2, Y2 = y*P2 on G2. X2/Y2 are None for keys certified before issue 14
    (accepted for one release): coins of such an epoch can only be checked by the bank."""

    X: Point
    Y: Point
    X2: G2Point | None = None
    Y2: G2Point | None = None

    def __post_init__(self) -> None:
        if (self.X2 is None) != (self.Y2 is None):
            raise GroupsigEncodingError("issuer public key needs both X2 and Y2 or neither")
        for name in _G2_FIELDS:
            v = getattr(self, name)
            if v is not None and (not isinstance(v, G2Point) or v.is_infinity):
                raise GroupsigEncodingError(f"{name} must be a finite G2Point")

    @property
    def has_g2(self) -> bool:
        """True when coins of this epoch can be verified publicly (X2, Y2 present)."""
        return self.X2 is not None

    @property
    def g1(self) -> IssuerPublic:
        """(X, Y) only: what names the key in proofs and certificates before issue 14."""
        return IssuerPublic(self.X, self.Y)

    def to_dict(self) -> dict[str, str]:
        out = {"X": b64u_encode(self.X.encode()), "Y": b64u_encode(self.Y.encode())}
        if self.X2 is not None and self.Y2 is not None:
            out["X2"] = b64u_encode(encode_g2(self.X2))
            out["Y2"] = b64u_encode(encode_g2(self.Y2))
        return out

    @classmethod
    def from_dict(cls, data: object) -> IssuerPublic:
        """``{X, Y}`` or ``{X, Y, X2, Y2}`` (base64url; a None X2/Y2 counts as absent). G2
        points are checked to be in G2; :meth:`check_g2` checks that they match X, Y."""
        if isinstance(data, Mapping):
            data = {k: v for k, v in data.items() if not (k in _G2_FIELDS and v is None)}
        if isinstance(data, Mapping) and set(_G2_FIELDS) & set(data):
            g1 = {k: v for k, v in data.items() if k not in _G2_FIELDS}
            f = _dict_fields(g1, _G1_FIELDS, "issuer public key")
            if not set(_G2_FIELDS) <= set(data):
                raise GroupsigEncodingError("issuer public key needs both X2 and Y2 or neither")
            x2, y2 = _g2(data["X2"], "X2"), _g2(data["Y2"], "Y2")
            return cls(_pt(f["X"], "X"), _pt(f["Y"], "Y"), x2, y2)
        f = _dict_fields(data, _G1_FIELDS, "issuer public key")
        return cls(_pt(f["X"], "X"), _pt(f["Y"], "Y"))

    def check_g2(self) -> None:
        """Prove that X2, Y2 are the G2 images of X, Y: e(X, P2) == e(G, X2) and
        e(Y, P2) == e(G, Y2), as one product with a random 128-bit weight r:
        e(X + r*Y, P2) * e(-G, X2) * e(-r*G, Y2) == 1 (protocol §3.6).
        ``daa.issuer_g2_key_mismatch`` when they do not match or are missing."""
        if self.X2 is None or self.Y2 is None:
            raise IssuerKeyG2Error(
                "issuer public key has no X2, Y2 on G2", detail={"check": "missing"}
            )
        r = secrets.randbits(128) | 1
        if not pairing_product_is_one(
            [(self.X + r * self.Y, P2), (-G, self.X2), (-(r * G), self.Y2)]
        ):
            raise IssuerKeyG2Error(
                "X2, Y2 are not x*P2, y*P2 for X = x*G, Y = y*G", detail={"check": "pairing"}
            )


@dataclass(frozen=True, slots=True, repr=False)
class IssuerSecret:
    """The issuer's per-epoch secret (x, y) for the designated-verifier credential."""

    x: int
    y: int

    def __post_init__(self) -> None:
        _scalar(self.x, "x")
        _scalar(self.y, "y")

    @classmethod
    def generate(cls) -> IssuerSecret:
        return cls(random_scalar(), random_scalar())

    @property
    def public(self) -> IssuerPublic:
        """X, Y and the G2 keys X2, Y2 (G2 scalar multiplication is plain double-and-add:
        done once per epoch key, docs/threat-model.md, Limits)."""
        g1 = self.public_g1
        return IssuerPublic(g1.X, g1.Y, g2_mul(self.x, P2), g2_mul(self.y, P2))

    @property
    def public_g1(self) -> IssuerPublic:
        """X = x*G, Y = y*G only (cheap: what the key proofs hash)."""
        # secret scalars: the regular-digit path (docs/threat-model.md, Limits)
        return IssuerPublic(scalar_mult_secret(self.x, G), scalar_mult_secret(self.y, G))

    def to_bytes(self) -> bytes:
        """``x(32) || y(32)``."""
        return encode_scalar(self.x) + encode_scalar(self.y)

    @classmethod
    def from_bytes(cls, data: bytes) -> IssuerSecret:
        r = _Reader(data, "issuer secret")
        x, y = _sc(r.take(32), "x"), _sc(r.take(32), "y")
        r.done()
        return cls(x, y)

    def __repr__(self) -> str:
        return "IssuerSecret(<secret>)"


@dataclass(frozen=True, slots=True, repr=False)
class OpenerSecret:
    """The supervision department's opening key h; Hop = h*G encrypts T0 in every spend."""

    h: int

    def __post_init__(self) -> None:
        _scalar(self.h, "h")

    @classmethod
    def generate(cls) -> OpenerSecret:
        return cls(random_scalar())

    @property
    def public(self) -> Point:
        return scalar_mult_secret(self.h, G)

    def to_bytes(self) -> bytes:
        return encode_scalar(self.h)

    @classmethod
    def from_bytes(cls, data: bytes) -> OpenerSecret:
        return cls(_sc(_fixed(data, 32, "opener secret"), "h"))

    def __repr__(self) -> str:
        return "OpenerSecret(<secret>)"
