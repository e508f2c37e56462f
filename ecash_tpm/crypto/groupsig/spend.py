"""Coin messages and spend proofs: TPM-bound proof of sk with T0 escrowed under Hop.

DESIGN §5 (coin message, spend proof, verification); docs/protocol.md §5.1 (the coin), §7 and
§7.1 (spend proof and its verification equations).
"""

from __future__ import annotations

import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass

from ecash_tpm.crypto.bn256 import (
    G,
    N,
    Point,
    encode_scalar,
    multi_mult,
    random_scalar,
    tpm_challenge,
    tracing_base,
)
from ecash_tpm.crypto.encoding import b64u_encode, tagged_hash
from ecash_tpm.crypto.groupsig.credential import RandomizedCredential
from ecash_tpm.crypto.groupsig.encoding import (
    DIGEST_LEN,
    KEYSET_ID_LEN,
    PREQ_LEN,
    SIGMA_LEN,
    TAG_COIN,
    TAG_SPEND,
    _dict_fields,
    _fixed,
    _nonce_k,
    _point,
    _pt,
    _Reader,
    _sc,
    _scalar,
    _u32,
)
from ecash_tpm.crypto.groupsig.errors import (
    GroupsigEncodingError,
    SignerOutputError,
    SpendProofError,
)
from ecash_tpm.crypto.groupsig.signer import DaaSigner, _commit, _finite_or, _sign

__all__ = [
    "SpendProof",
    "check_spend_challenge",
    "coin_message",
    "make_spend_proof",
    "spend_challenge",
    "spend_equation_terms",
    "verify_spend_proof",
]


def coin_message(keyset_id: bytes, epoch: int, sigma: bytes, coin: RandomizedCredential) -> bytes:
    """m = Hash("ecash-tpm/v1/coin", keyset_id, u32be(epoch), sigma, R, S, T, W)."""
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    return tagged_hash(
        TAG_COIN,
        _fixed(keyset_id, KEYSET_ID_LEN, "keyset_id"),
        _u32(epoch),
        _fixed(sigma, SIGMA_LEN, "sigma"),
        *(p.encode() for p in coin),
    )


_FIELDS = ("c_prime", "nonce_k", "s", "c1", "c2", "st")
_COMMITMENTS = ("E", "R1", "R2")


@dataclass(frozen=True, slots=True)
class SpendProof:
    """(c', nonceK, s, c1, c2, st) of DESIGN §5, with the commitments (E, R1, R2) that c'
    hashes (docs/protocol.md §7.3: they let proofs be checked in a batch). ``commitments`` is
    None for the first encoding, still accepted."""

    c_prime: bytes
    nonce_k: bytes
    s: int
    c1: Point
    c2: Point
    st: int
    commitments: tuple[Point, Point, Point] | None = None

    def __post_init__(self) -> None:
        _fixed(self.c_prime, DIGEST_LEN, "c_prime")
        _nonce_k(self.nonce_k)
        _scalar(self.s, "s")
        _point(self.c1, "c1")
        _point(self.c2, "c2")
        _scalar(self.st, "st")
        if self.commitments is not None:
            if not isinstance(self.commitments, tuple) or len(self.commitments) != 3:
                raise GroupsigEncodingError("commitments must be (E, R1, R2)")
            for name, pt in zip(_COMMITMENTS, self.commitments, strict=True):
                _point(pt, name)

    def to_bytes(self) -> bytes:
        """``c'(32) || u8(len nonceK) || nonceK || s(32) || c1(65) || c2(65) || st(32)``, then
        ``E(65) || R1(65) || R2(65)`` when the proof carries its commitments."""
        return (
            self.c_prime
            + bytes([len(self.nonce_k)])
            + self.nonce_k
            + encode_scalar(self.s)
            + self.c1.encode()
            + self.c2.encode()
            + encode_scalar(self.st)
            + b"".join(p.encode() for p in self.commitments or ())
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> SpendProof:
        r = _Reader(data, "spend proof")
        c_prime = r.take(32)
        nonce_k = _nonce_k(r.take(r.take(1)[0]))
        s = _sc(r.take(32), "s")
        c1, c2 = _pt(r.take(65), "c1"), _pt(r.take(65), "c2")
        st = _sc(r.take(32), "st")
        commitments = None
        if r.pos < len(r.data):
            e, r1, r2 = (_pt(r.take(65), name) for name in _COMMITMENTS)
            commitments = (e, r1, r2)
        r.done()
        return cls(c_prime, nonce_k, s, c1, c2, st, commitments)

    def to_dict(self) -> dict[str, str]:
        out = {
            "c_prime": b64u_encode(self.c_prime),
            "nonce_k": b64u_encode(self.nonce_k),
            "s": b64u_encode(encode_scalar(self.s)),
            "c1": b64u_encode(self.c1.encode()),
            "c2": b64u_encode(self.c2.encode()),
            "st": b64u_encode(encode_scalar(self.st)),
        }
        if self.commitments is not None:
            for name, pt in zip(_COMMITMENTS, self.commitments, strict=True):
                out[name] = b64u_encode(pt.encode())
        return out

    @classmethod
    def from_dict(cls, data: object) -> SpendProof:
        """Either form: the six fields, or the six and E, R1, R2 (exactly one of the two)."""
        with_commitments = isinstance(data, Mapping) and any(k in data for k in _COMMITMENTS)
        keys = _FIELDS + _COMMITMENTS if with_commitments else _FIELDS
        f = _dict_fields(data, keys, "spend proof")
        commitments = None
        if with_commitments:
            e, r1, r2 = (_pt(f[name], name) for name in _COMMITMENTS)
            commitments = (e, r1, r2)
        return cls(
            _fixed(f["c_prime"], DIGEST_LEN, "c_prime"),
            _nonce_k(f["nonce_k"]),
            _sc(f["s"], "s"),
            _pt(f["c1"], "c1"),
            _pt(f["c2"], "c2"),
            _sc(f["st"], "st"),
            commitments,
        )


def spend_challenge(
    *,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
    e: Point,
    c1: Point,
    c2: Point,
    r1: Point,
    r2: Point,
) -> bytes:
    """c' = Hash("ecash-tpm/v1/spend", preq, keyset_id, epoch, sigma, R, S, T, W, E, c1, c2,
    R1, R2) with epoch as u32be."""
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    return tagged_hash(
        TAG_SPEND,
        _fixed(preq, PREQ_LEN, "preq"),
        _fixed(keyset_id, KEYSET_ID_LEN, "keyset_id"),
        _u32(epoch),
        _fixed(sigma, SIGMA_LEN, "sigma"),
        *(p.encode() for p in coin),
        e.encode(),
        c1.encode(),
        c2.encode(),
        r1.encode(),
        r2.encode(),
    )


def make_spend_proof(
    signer: DaaSigner,
    *,
    hop: Point,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
    expected_t0: Point | None = None,
    self_check: bool = True,
) -> SpendProof:
    """Wallet side of a payment: one Commit(P1=S, s2_0, y(J0)), one Sign, host math.

    T0 is taken from the commit's K (= sk*J0), compared with ``expected_t0`` when given.
    ``self_check`` runs :func:`verify_spend_proof` on the result (about 4 ms) so a coin
    that does not belong to this TPM is noticed before it reaches the merchant.
    """
    hop = _point(hop, "Hop")
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    t0, l_pt, e, counter = _commit(signer, coin.S)
    if expected_t0 is not None and t0 != expected_t0:
        raise SignerOutputError(
            "TPM2_Commit K differs from the registered T0 (other TPM/key?)", detail={"field": "K"}
        )
    n = N
    while True:
        t, rt = random_scalar(), random_scalar()
        c1 = t * G
        c2 = t0 + t * hop
        r1 = rt * G
        r2 = l_pt + rt * hop
        if not (c2.is_infinity or r2.is_infinity):
            break
    c_prime = spend_challenge(
        preq=preq,
        keyset_id=keyset_id,
        epoch=epoch,
        sigma=sigma,
        coin=coin,
        e=e,
        c1=c1,
        c2=c2,
        r1=r1,
        r2=r2,
    )
    nonce_k, s = _sign(signer, c_prime, counter)
    c = tpm_challenge(nonce_k, c_prime)
    st = (rt + c * t) % n
    proof = SpendProof(c_prime, nonce_k, s, c1, c2, st, (e, r1, r2))
    if self_check:
        verify_spend_proof(
            proof, hop=hop, preq=preq, keyset_id=keyset_id, epoch=epoch, sigma=sigma, coin=coin
        )
    return proof


def verify_spend_proof(
    proof: SpendProof,
    *,
    hop: Point,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
) -> None:
    """Public part of payment verification (merchant and bank).

    c = H'(nonceK, c'); E = s*S - c*W; R1 = st*G - c*c1; R2 = s*J0 + st*Hop - c*c2; c' must
    equal Hash(spend, ...). Passing proves: the responder knows sk with W = sk*S (the TPM the
    coin is bound to), and (c1, c2) encrypts T0 = sk*J0 under Hop. The credential check is
    separate (:func:`verify_credential`, needs the issuer secret), as is the RSA signature.
    """
    if not isinstance(proof, SpendProof):
        raise GroupsigEncodingError("proof must be a SpendProof")
    if not isinstance(coin, RandomizedCredential):
        raise GroupsigEncodingError("coin must be a RandomizedCredential")
    hop = _point(hop, "Hop")
    if proof.commitments is not None:
        # §7.3: c' over the transmitted commitments, then the three equations in one
        # random-weight multi-scalar multiplication
        check_spend_challenge(
            proof, preq=preq, keyset_id=keyset_id, epoch=epoch, sigma=sigma, coin=coin
        )
        if not multi_mult(spend_equation_terms(proof, coin, hop, first=True)).is_infinity:
            raise SpendProofError(
                "spend proof does not verify (commitments do not satisfy the equations)",
                detail={"check": "equations"},
            )
        return
    _, j0 = tracing_base()
    c = tpm_challenge(proof.nonce_k, proof.c_prime)
    e = multi_mult(((proof.s, coin.S), (-c, coin.W)))
    r1 = multi_mult(((proof.st, G), (-c, proof.c1)))
    r2 = multi_mult(((proof.s, j0), (proof.st, hop), (-c, proof.c2)))
    _finite_or(SpendProofError, "spend proof", e, r1, r2)
    _require_challenge(proof, (e, r1, r2), preq, keyset_id, epoch, sigma, coin)


def check_spend_challenge(
    proof: SpendProof,
    *,
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
) -> None:
    """For a proof with commitments: c' must be Hash(spend, ...) over the transmitted E, R1,
    R2 (the cheap half of the check; the equations are :func:`spend_equation_terms`)."""
    if proof.commitments is None:
        raise GroupsigEncodingError("the proof carries no commitments")
    _require_challenge(proof, proof.commitments, preq, keyset_id, epoch, sigma, coin)


def _require_challenge(
    proof: SpendProof,
    commitments: tuple[Point, Point, Point],
    preq: bytes,
    keyset_id: bytes,
    epoch: int,
    sigma: bytes,
    coin: RandomizedCredential,
) -> None:
    """c' must be Hash(spend, ...) over the commitments E, R1, R2 (recomputed or sent)."""
    e, r1, r2 = commitments
    expected = spend_challenge(
        preq=preq,
        keyset_id=keyset_id,
        epoch=epoch,
        sigma=sigma,
        coin=coin,
        e=e,
        c1=proof.c1,
        c2=proof.c2,
        r1=r1,
        r2=r2,
    )
    if not hmac.compare_digest(expected, proof.c_prime):
        raise SpendProofError(
            "spend proof does not verify (c' mismatch: wrong TPM key, tampered coin, "
            "request or ciphertext)",
            detail={"check": "challenge"},
        )


def spend_equation_terms(
    proof: SpendProof, coin: RandomizedCredential, hop: Point, *, first: bool = False
) -> list[tuple[int, Point]]:
    """Terms whose sum is the point at infinity iff (up to 2^-128) the proof's commitments
    satisfy E = s*S - c*W, R1 = st*G - c*c1, R2 = s*J0 + st*Hop - c*c2 (§7.1, §7.3).

    Each equation gets a fresh random 128-bit weight (the first one 1 when ``first``: one
    proof alone needs only two weights). Terms of G, J0 and Hop can be summed over proofs.
    """
    if proof.commitments is None:
        raise GroupsigEncodingError("the proof carries no commitments")
    e, r1, r2 = proof.commitments
    _, j0 = tracing_base()
    n = N
    c = tpm_challenge(proof.nonce_k, proof.c_prime)
    w1 = 1 if first else _weight()
    w2, w3 = _weight(), _weight()
    return [
        (w1 * proof.s % n, coin.S),
        (-w1 * c % n, coin.W),
        (-w1, e),
        (w2 * proof.st % n, G),
        (-w2 * c % n, proof.c1),
        (-w2, r1),
        (w3 * proof.s % n, j0),
        (w3 * proof.st % n, hop),
        (-w3 * c % n, proof.c2),
        (-w3, r2),
    ]


def _weight() -> int:
    """A random weight in [1, 2^128)."""
    while True:
        w = secrets.randbits(128)
        if w:
            return w
