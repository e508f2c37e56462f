"""The DAA signer backed by the TPM: TPM2_Commit + TPM2_Sign(ECDAA) through the device layer.

Implements :class:`ecash_tpm.crypto.groupsig.DaaSigner`, so ``make_join_proof`` and
``make_spend_proof`` run their host arithmetic in Python and delegate the parts that use sk to
the TPM. Time spent inside TPM commands is accumulated in :attr:`TpmDaaSigner.stats`, so
benchmarks can split proof generation into TPM and host time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import CommitResult, SignerOutputError
from ecash_tpm.errors import EcashError

if TYPE_CHECKING:
    from ecash_tpm.device import KeyRef, TpmDevice


@dataclass
class SignerStats:
    """Counters of the TPM commands one signer issued and the wall time spent in them."""

    commits: int = 0
    signs: int = 0
    tpm_seconds: float = 0.0

    def reset(self) -> None:
        self.commits = self.signs = 0
        self.tpm_seconds = 0.0


def _point_or_none(data: bytes | None, what: str) -> Point | None:
    if data is None:
        return None
    try:
        return Point.decode(data)
    except EcashError as exc:
        raise SignerOutputError(
            f"TPM2_Commit returned an invalid {what}: {exc.message}", detail={"field": what}
        ) from exc


class TpmDaaSigner:
    """``DaaSigner`` over one loaded DAA key of an open :class:`TpmDevice`.

    The device must stay open while the signer is used; one device serves one process.
    """

    def __init__(self, device: TpmDevice, daa_key: KeyRef) -> None:
        if daa_key.point is None:
            raise SignerOutputError("the DAA key has no ECC public point")
        self._device = device
        self._key = daa_key
        self._q = Point.decode(daa_key.point)
        self.stats = SignerStats()

    @property
    def public_point(self) -> Point:
        """Q = sk*G from the key's public area."""
        return self._q

    @property
    def key(self) -> KeyRef:
        return self._key

    def commit(self, p1: Point | None, s2: bytes | None, y2: bytes | None) -> CommitResult:
        """TPM2_Commit; points come back decoded (None where the TPM returned none)."""
        start = time.perf_counter()
        try:
            res = self._device.commit(self._key, None if p1 is None else p1.encode(), s2, y2)
        finally:
            self.stats.tpm_seconds += time.perf_counter() - start
            self.stats.commits += 1
        return CommitResult(
            _point_or_none(res.K, "K"),
            _point_or_none(res.L, "L"),
            _point_or_none(res.E, "E"),
            res.counter,
        )

    def sign(self, digest: bytes, counter: int) -> tuple[bytes, int]:
        """TPM2_Sign(ECDAA): nonceK exactly as returned, s as an integer."""
        start = time.perf_counter()
        try:
            nonce_k, s = self._device.ecdaa_sign(self._key, digest, counter)
        finally:
            self.stats.tpm_seconds += time.perf_counter() - start
            self.stats.signs += 1
        return nonce_k, int.from_bytes(s, "big")
