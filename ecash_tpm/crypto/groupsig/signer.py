"""The device half of every proof: a :class:`DaaSigner` (TPM2_Commit + ECDAA TPM2_Sign).

DESIGN §2 and docs/protocol.md §2.1, §2.3. Delegating to this interface keeps the layer pure
(no TPM library import). The TPM's semantics, checked against libtpms
(``CryptEccCommitCompute``, ``TpmEcc_SignEcdaa``):

* ``commit(P1, s2, y2)``: with s2/y2 the TPM forms J = (int(SHA-256(s2)) mod p, y2) and
  returns K = sk*J, L = r*J, and E = r*P1 if P1 is given; without s2 it returns only
  E = r*P1, or E = r*G when P1 is absent too. (With s2 but no P1, E is *not* computed.)
* ``sign(digest, counter)``: nonceK = random n_T in [1, n-1] as a minimal big-endian octet
  string, c = int(SHA-256(nonceK || digest)) mod n, s = r + c*sk mod n.
"""

from __future__ import annotations

from typing import NamedTuple, Protocol, runtime_checkable

from ecash_tpm.crypto.bn256 import Point, tracing_base
from ecash_tpm.crypto.groupsig.encoding import _nonce_k, _scalar
from ecash_tpm.crypto.groupsig.errors import GroupsigEncodingError, SignerOutputError
from ecash_tpm.errors import ProofError

__all__ = ["CommitResult", "DaaSigner"]


class CommitResult(NamedTuple):
    """TPM2_Commit outputs; absent points are None (tpm2-pytss gives size-4 empties)."""

    K: Point | None
    L: Point | None
    E: Point | None
    counter: int


@runtime_checkable
class DaaSigner(Protocol):
    """What the protocol needs from the TPM's ECDAA key (device code implements this).

    ``public_point`` is Q = sk*G. ``commit`` is TPM2_Commit (s2/y2 both given or both None).
    ``sign`` is TPM2_Sign with scheme ECDAA and the commit counter; it returns nonceK exactly
    as the TPM returned it (signatureR) and s as an int.
    """

    @property
    def public_point(self) -> Point: ...

    def commit(self, p1: Point | None, s2: bytes | None, y2: bytes | None) -> CommitResult: ...

    def sign(self, digest: bytes, counter: int) -> tuple[bytes, int]: ...


def _commit(signer: DaaSigner, p1: Point) -> tuple[Point, Point, Point, int]:
    """One TPM2_Commit(P1, s2_0, y(J0)); check it returned K, L, E."""
    s2_0, j0 = tracing_base()
    res = signer.commit(p1, s2_0, j0.y_bytes())
    out = []
    for name in ("K", "L", "E"):
        v = getattr(res, name)
        if not isinstance(v, Point) or v.is_infinity:
            raise SignerOutputError(
                f"TPM2_Commit did not return a usable {name}", detail={"field": name}
            )
        out.append(v)
    if isinstance(res.counter, bool) or not isinstance(res.counter, int) or res.counter < 0:
        raise SignerOutputError("TPM2_Commit returned a bad counter")
    return out[0], out[1], out[2], res.counter


def _sign(signer: DaaSigner, digest: bytes, counter: int) -> tuple[bytes, int]:
    nonce_k, s = signer.sign(digest, counter)
    try:
        nonce_k = _nonce_k(nonce_k)
        s = _scalar(s, "s")
    except GroupsigEncodingError as exc:
        raise SignerOutputError(f"TPM2_Sign output unusable: {exc.message}") from exc
    return nonce_k, s


def _finite_or(exc_type: type[ProofError], what: str, *points: Point) -> None:
    """A recomputed commitment at infinity cannot be hashed: the proof is simply wrong."""
    for pt in points:
        if pt.is_infinity:
            raise exc_type(
                f"{what}: a recomputed commitment is the point at infinity",
                detail={"check": "commitment_finite"},
            )
