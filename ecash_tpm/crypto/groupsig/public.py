"""Public verification of coin credentials with pairings (issue 14; docs/protocol.md §7.4).

With the epoch's G2 keys X2 = x*P2, Y2 = y*P2 anyone checks a coin's (R, S, T, W) without the
issuer secret: S == y*R and T == x*(R + W) hold exactly when

    e(R, Y2) * e(-S, P2) == 1      and      e(R + W, X2) * e(-T, P2) == 1.

All coins of a payment are checked as ONE pairing product with fresh random 128-bit weights
a_k, b_k, grouped by epoch key so each key costs two Miller loops whatever the number of coins:

    prod_e e(sum a_k R_k, Y2_e) * e(sum b_k (R_k + W_k), X2_e) * e(-sum (a_k S_k + b_k T_k), P2)

(one final exponentiation). A bad coin passes with probability at most 2^-128. A failing batch
says only "some coin is bad"; :func:`verify_credential_public` then names it, with the same
error (``daa.credential_invalid``, detail ``check``) as the designated check.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from ecash_tpm.crypto.bn256 import N, Point, multi_mult
from ecash_tpm.crypto.groupsig.credential import RandomizedCredential
from ecash_tpm.crypto.groupsig.errors import CredentialError, GroupsigEncodingError
from ecash_tpm.crypto.pairing import P2, G2Point, pairing_product_is_one

__all__ = ["verify_credential_public", "verify_credentials_public"]

_WEIGHT_BITS = 128


def _weight() -> int:
    while True:
        r = secrets.randbits(_WEIGHT_BITS)
        if r:
            return r


def _check_item(
    cred: object, x2: object, y2: object
) -> tuple[RandomizedCredential, G2Point, G2Point]:
    if not isinstance(cred, RandomizedCredential):
        raise GroupsigEncodingError("coins must be RandomizedCredentials")
    if not isinstance(x2, G2Point) or not isinstance(y2, G2Point):
        raise GroupsigEncodingError("X2 and Y2 must be G2Points")
    if x2.is_infinity or y2.is_infinity:
        raise GroupsigEncodingError("X2 and Y2 must not be the point at infinity")
    return cred, x2, y2


def verify_credentials_public(
    items: Sequence[tuple[RandomizedCredential, G2Point, G2Point]],
) -> bool:
    """True when every ``(coin, X2, Y2)`` passes the public credential check (up to 2^-128);
    False when at least one coin is bad or has a point at infinity. X2, Y2 must be the
    epoch's certified G2 keys (checked against X, Y when the certificate was parsed). An
    empty list is trivially true."""
    if not items:
        return True
    groups: dict[tuple[G2Point, G2Point], list[tuple[int, Point]]] = {}
    rw_groups: dict[tuple[G2Point, G2Point], list[tuple[int, Point]]] = {}
    st_terms: list[tuple[int, Point]] = []
    for item in items:
        cred, x2, y2 = _check_item(*item)
        if any(pt.is_infinity for pt in cred):
            return False
        a, b = _weight(), _weight()
        key = (x2, y2)
        groups.setdefault(key, []).append((a, cred.R))
        rw_groups.setdefault(key, []).extend(((b, cred.R), (b, cred.W)))
        st_terms += [(N - a, cred.S), (N - b, cred.T)]
    terms: list[tuple[Point, G2Point]] = [(multi_mult(st_terms), P2)]
    for key, r_terms in groups.items():
        x2, y2 = key
        terms.append((multi_mult(r_terms), y2))
        terms.append((multi_mult(rw_groups[key]), x2))
    return pairing_product_is_one(terms)


def verify_credential_public(cred: RandomizedCredential, x2: G2Point, y2: G2Point) -> None:
    """One coin, naming the failing equation: ``daa.credential_invalid`` with ``check`` =
    ``R_finite`` (etc.), ``S`` (e(R, Y2) != e(S, P2)) or ``T`` (e(R + W, X2) != e(T, P2))."""
    cred, x2, y2 = _check_item(cred, x2, y2)
    for name, pt in zip("RSTW", cred, strict=True):
        if pt.is_infinity:
            raise CredentialError(
                f"{name} is the point at infinity", detail={"check": f"{name}_finite"}
            )
    if not pairing_product_is_one([(cred.R, y2), (-cred.S, P2)]):
        raise CredentialError(
            "credential check e(R, Y2) == e(S, P2) failed (wrong epoch key or forged)",
            detail={"check": "S"},
        )
    if not pairing_product_is_one([(cred.R + cred.W, x2), (-cred.T, P2)]):
        raise CredentialError(
            "credential check e(R + W, X2) == e(T, P2) failed (W or T forged)",
            detail={"check": "T"},
        )
