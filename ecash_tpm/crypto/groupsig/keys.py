"""The issuer's per-epoch secret (x, y) and the supervision department's opening key h.

DESIGN §4 (issuer secret for the credential) and §5 (opener key Hop = h*G);
docs/protocol.md §1.6 (issuer public key, secrets on disk) and §12 (opening).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.crypto.bn256 import G, Point, encode_scalar, random_scalar, scalar_mult_secret
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig.encoding import _dict_fields, _fixed, _pt, _Reader, _sc, _scalar

__all__ = ["IssuerPublic", "IssuerSecret", "OpenerSecret"]


@dataclass(frozen=True, slots=True)
class IssuerPublic:
    """Public commitments to an epoch's issuer key: X = x*G, Y = y*G."""

    X: Point
    Y: Point

    def to_dict(self) -> dict[str, str]:
        return {"X": b64u_encode(self.X.encode()), "Y": b64u_encode(self.Y.encode())}

    @classmethod
    def from_dict(cls, data: object) -> IssuerPublic:
        f = _dict_fields(data, ("X", "Y"), "issuer public key")
        return cls(_pt(f["X"], "X"), _pt(f["Y"], "Y"))


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
