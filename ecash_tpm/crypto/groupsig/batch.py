"""Batch verification of coin credentials with random 128-bit weights (issue 13 item 2).

docs/protocol.md §7.3 ("Batch verification", the credential row of §7.2). For n coins of one
epoch the designated checks ``S_i == y*R_i`` and ``T_i == x*(R_i + W_i)`` become

    sum r_i*S_i == y * sum r_i*R_i      and      sum r_i*T_i == x * (sum r_i*R_i + sum r_i*W_i)

with fresh random r_i in [1, 2^128) (``secrets.randbits``): if any coin is bad, both sides differ
except with probability at most 2^-128 per batch. Four short multi-scalar multiplications share
their doublings and the secret scalars x, y are used twice per batch instead of twice per coin.
A failing batch says only "some coin is bad"; the caller then runs the per-coin
:func:`~ecash_tpm.crypto.groupsig.credential.verify_credential` to name it with the usual error.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence

from ecash_tpm.crypto.bn256 import N, Point, multi_mult, scalar_mult_secret
from ecash_tpm.crypto.groupsig.credential import RandomizedCredential
from ecash_tpm.crypto.groupsig.errors import GroupsigEncodingError
from ecash_tpm.crypto.groupsig.keys import IssuerSecret

__all__ = ["WEIGHT_BITS", "combine_terms", "credentials_batch_ok"]

WEIGHT_BITS = 128
"""Bit length of the random weights: a bad batch passes with probability <= 2^-128."""


def _weight() -> int:
    while True:
        r = secrets.randbits(WEIGHT_BITS)
        if r:
            return r


def credentials_batch_ok(secret: IssuerSecret, coins: Sequence[RandomizedCredential]) -> bool:
    """True when every coin's (R, S, T, W) passes the designated check under ``secret``
    (up to 2^-128); False means at least one coin is bad (or a point is infinity).

    All coins must be of the epoch whose secret is given. An empty batch is trivially true.
    """
    if not isinstance(secret, IssuerSecret):
        raise GroupsigEncodingError("secret must be an IssuerSecret")
    if not coins:
        return True
    weights = [_weight() for _ in coins]
    for coin in coins:
        if not isinstance(coin, RandomizedCredential):
            raise GroupsigEncodingError("coins must be RandomizedCredentials")
        if any(pt.is_infinity for pt in coin):
            return False
    s_sum = multi_mult(zip(weights, (c.S for c in coins), strict=True))
    r_sum = multi_mult(zip(weights, (c.R for c in coins), strict=True))
    if scalar_mult_secret(secret.y, r_sum) != s_sum:
        return False
    t_sum = multi_mult(zip(weights, (c.T for c in coins), strict=True))
    w_sum = multi_mult(zip(weights, (c.W for c in coins), strict=True))
    rw_sum: Point = r_sum + w_sum
    return bool(scalar_mult_secret(secret.x, rw_sum) == t_sum)


def combine_terms(terms: Sequence[tuple[int, Point]]) -> list[tuple[int, Point]]:
    """Merge the scalars of terms that share one point object (G, J0 and Hop in a batch of
    spend proofs), so each fixed base is one table walk per batch."""
    merged: dict[int, tuple[int, Point]] = {}
    for k, pt in terms:
        key = id(pt)
        if key in merged:
            merged[key] = ((merged[key][0] + k) % N, pt)
        else:
            merged[key] = (k, pt)
    return list(merged.values())
