"""The issuer's proof that a credential was made with the epoch's published key (issue 10, #6).

DESIGN §4 issues (A, B, C, D) with B = y*A and C = x*(A + D) under the epoch secret (x, y);
docs/protocol.md §3.6 adds this proof so a member can check that its credential was made with
*the* key the central bank certified for the epoch (X = x*G, Y = y*G, the same for every
member), not with a per-member (x', y') that would let the bank name the member of every coin.

It is a non-interactive AND of two Chaum–Pedersen proofs (Fiat–Shamir, one challenge):

    log_G(Y) = log_A(B)         (witness y)
    log_G(X) = log_{A+D}(C)     (witness x)

    v, w <- random;  V1 = v*G, V2 = v*A, W1 = w*G, W2 = w*(A + D)
    k  = int(Hash("ecash-tpm/v1/cred-key", X, Y, A, B, C, D, V1, V2, W1, W2)) mod n
    zy = v + k*y mod n;  zx = w + k*x mod n;  proof = (k, zy, zx)

The member recomputes V1 = zy*G - k*Y, V2 = zy*A - k*B, W1 = zx*G - k*X,
W2 = zx*(A + D) - k*C and checks that k is the hash of them (points in their 65-byte encoding,
scalars 32 bytes big-endian, as everywhere in this package).
"""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.crypto.bn256 import (
    G,
    N,
    Point,
    encode_scalar,
    hash_to_scalar,
    multi_mult,
    random_scalar,
)
from ecash_tpm.crypto.encoding import b64u_encode, tagged_hash
from ecash_tpm.crypto.groupsig.credential import Credential
from ecash_tpm.crypto.groupsig.encoding import _dict_fields, _point, _sc, _scalar
from ecash_tpm.crypto.groupsig.errors import CredentialKeyProofError, GroupsigEncodingError
from ecash_tpm.crypto.groupsig.keys import IssuerPublic, IssuerSecret

__all__ = [
    "TAG_CRED_KEY",
    "CredentialKeyProof",
    "prove_credential_key",
    "verify_credential_key",
]

TAG_CRED_KEY = "ecash-tpm/v1/cred-key"


@dataclass(frozen=True, slots=True)
class CredentialKeyProof:
    """(k, zy, zx): the Fiat–Shamir challenge and the two responses (see the module)."""

    k: int
    zy: int
    zx: int

    def __post_init__(self) -> None:
        _scalar(self.k, "k", allow_zero=True)
        _scalar(self.zy, "zy", allow_zero=True)
        _scalar(self.zx, "zx", allow_zero=True)

    def to_dict(self) -> dict[str, str]:
        return {n: b64u_encode(encode_scalar(getattr(self, n))) for n in ("k", "zy", "zx")}

    @classmethod
    def from_dict(cls, data: object) -> CredentialKeyProof:
        f = _dict_fields(data, ("k", "zy", "zx"), "credential key proof")
        return cls(*(_sc(f[n], n, allow_zero=True) for n in ("k", "zy", "zx")))


def _challenge(public: IssuerPublic, cred: Credential, commitments: tuple[Point, ...]) -> int:
    parts = (public.X, public.Y, *cred, *commitments)
    return hash_to_scalar(tagged_hash(TAG_CRED_KEY, *(p.encode() for p in parts)))


def prove_credential_key(secret: IssuerSecret, cred: Credential) -> CredentialKeyProof:
    """Issuer: prove that ``cred`` was made with ``secret`` (B = y*A, C = x*(A + D))."""
    if not isinstance(secret, IssuerSecret) or not isinstance(cred, Credential):
        raise GroupsigEncodingError("need an IssuerSecret and a Credential")
    ad = cred.A + cred.D
    v, w = random_scalar(), random_scalar()
    k = _challenge(secret.public_g1, cred, (v * G, v * cred.A, w * G, w * ad))
    return CredentialKeyProof(k, (v + k * secret.y) % N, (w + k * secret.x) % N)


def verify_credential_key(
    public: IssuerPublic, cred: Credential, proof: CredentialKeyProof
) -> None:
    """Member: refuse a credential not made with the certified (X, Y) of its epoch.

    Raises :class:`CredentialKeyProofError` (``daa.credential_key_proof_invalid``) when the
    proof does not verify: the credential is under another key than the one published for
    every member (docs/protocol.md §3.6).
    """
    if not isinstance(public, IssuerPublic) or not isinstance(cred, Credential):
        raise GroupsigEncodingError("need an IssuerPublic and a Credential")
    if not isinstance(proof, CredentialKeyProof):
        raise GroupsigEncodingError("need a CredentialKeyProof")
    x_pub, y_pub = _point(public.X, "X"), _point(public.Y, "Y")
    ad = cred.A + cred.D
    if ad.is_infinity:
        raise CredentialKeyProofError(
            "credential has A + D at infinity", detail={"check": "structure"}
        )
    k = proof.k
    commitments = (
        multi_mult(((proof.zy, G), (-k, y_pub))),
        multi_mult(((proof.zy, cred.A), (-k, cred.B))),
        multi_mult(((proof.zx, G), (-k, x_pub))),
        multi_mult(((proof.zx, ad), (-k, cred.C))),
    )
    if any(c.is_infinity for c in commitments) or _challenge(public, cred, commitments) != k:
        raise CredentialKeyProofError(
            "the credential was not made with the epoch's certified issuer key (X, Y)",
            detail={"check": "key"},
        )
