"""A software ECDAA signer — FOR TESTS AND SIMULATION ONLY.

:class:`SoftwareDaaSigner` implements :class:`~ecash_tpm.crypto.groupsig.DaaSigner` with the
secret key in Python memory, mirroring the TPM's TPM2_Commit / TPM2_Sign(ECDAA) semantics
(libtpms ``TPM2_Commit``, ``CryptEccCommitCompute``, ``TpmEcc_SignEcdaa``). It exists so the
group-signature protocol can be unit-tested without a TPM, and to play the attacker who copied
a wallet but not its TPM: its proofs are well formed yet fail verification because its key is
not the one bound into the coin. It gives none of the TPM's guarantees (the key is
extractable); never use it to hold real value.
"""

from __future__ import annotations

import hashlib
import secrets
from collections.abc import Callable

from ecash_tpm.crypto.bn256 import (
    B,
    G,
    N,
    P,
    Point,
    random_scalar,
    tpm_challenge,
    tracing_base,
)
from ecash_tpm.crypto.groupsig import CommitResult
from ecash_tpm.errors import TpmError

__all__ = ["SoftDaaError", "SoftwareDaaSigner"]

_COUNTER_MOD = 1 << 16  # the TPM's commit counter is a UINT16


class SoftDaaError(TpmError):
    """The simulated TPM refused a command (as a real TPM would, e.g. TPM_RC_VALUE)."""

    code = "softdaa.command_failed"


class SoftwareDaaSigner:
    """In-memory ECDAA key: Q = sk*G. Test/simulation only (see module docstring).

    ``nonce_k_source`` lets tests choose the TPM's nonce n_T (e.g. one below 2^248 to get the
    31-byte nonceK that a real TPM yields about once in 256 signatures).
    """

    def __init__(
        self, sk: int | None = None, *, nonce_k_source: Callable[[], int] | None = None
    ) -> None:
        if sk is None:
            sk = random_scalar()
        if isinstance(sk, bool) or not isinstance(sk, int) or not 0 < sk < N:
            raise SoftDaaError("sk must be an integer in [1, n-1]")
        self._sk = int(sk)
        self._q = self._sk * G
        self._nonce_k_source = nonce_k_source
        self._commits: dict[int, int] = {}
        self._next_counter = 1

    def __repr__(self) -> str:
        return f"SoftwareDaaSigner(Q={self._q!r})"

    @property
    def public_point(self) -> Point:
        """Q = sk*G."""
        return self._q

    @property
    def t0(self) -> Point:
        """T0 = sk*J0, the member tag the join proof reveals (what K is for s2_0)."""
        return self._sk * tracing_base()[1]

    def commit(self, p1: Point | None, s2: bytes | None, y2: bytes | None) -> CommitResult:
        """TPM2_Commit: K = sk*J, L = r*J (with s2/y2), E = r*P1, or r*G without P1 and s2."""
        s2 = s2 or None  # the TPM treats an empty buffer as absent
        y2 = y2 or None
        if (s2 is None) != (y2 is None):
            raise SoftDaaError("s2 and y2 must both be given or both be absent (TPM_RC_SIZE)")
        if p1 is not None and (not isinstance(p1, Point) or p1.is_infinity):
            raise SoftDaaError("P1 is not a point on the curve (TPM_RC_ECC_POINT)")
        j: Point | None = None
        if s2 is not None and y2 is not None:
            if len(y2) > 32:
                raise SoftDaaError("y2 too large (TPM_RC_SIZE)")
            x2 = int.from_bytes(hashlib.sha256(bytes(s2)).digest(), "big") % P
            y = int.from_bytes(bytes(y2), "big")
            if not (y < P and (y * y - x2 * x2 * x2 - B) % P == 0):
                raise SoftDaaError("(H(s2), y2) is not on the curve (TPM_RC_ECC_POINT)")
            j = Point(x2, y)
        r = random_scalar()
        k_pt = l_pt = e_pt = None
        if j is not None:
            k_pt, l_pt = self._sk * j, r * j
        if p1 is not None:
            e_pt = r * p1
        elif j is None:
            e_pt = r * G
        counter = self._next_counter
        self._next_counter = (self._next_counter + 1) % _COUNTER_MOD
        self._commits[counter] = r
        return CommitResult(k_pt, l_pt, e_pt, counter)

    def sign(self, digest: bytes, counter: int) -> tuple[bytes, int]:
        """TPM2_Sign(ECDAA): n_T random, c = H(nonceK || digest) mod n, s = r + c*sk mod n.

        Each commit counter is usable once, as in the TPM.
        """
        if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
            raise SoftDaaError("digest must be 32 bytes for SHA-256 (TPM_RC_SIZE)")
        r = self._commits.pop(counter, None)
        if r is None:
            raise SoftDaaError("no outstanding commit for this counter (TPM_RC_VALUE)")
        n_t = (
            self._nonce_k_source()
            if self._nonce_k_source is not None
            else secrets.randbelow(N - 1) + 1
        )
        if not 0 < n_t < N:
            raise SoftDaaError("nonceK source gave a value outside [1, n-1]")
        nonce_k = n_t.to_bytes((n_t.bit_length() + 7) // 8, "big")  # minimal, like the TPM
        c = tpm_challenge(nonce_k, bytes(digest))
        return nonce_k, (r + c * self._sk) % N
