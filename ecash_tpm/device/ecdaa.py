"""ECDAA on the DAA key: TPM2_Commit and TPM2_Sign with the ECDAA scheme (BN_P256).

Points cross this boundary as ``04||X||Y`` and signatures as the raw (nonceK, s) the TPM
returned, so the group-signature code in :mod:`ecash_tpm.crypto` stays free of tpm2-pytss.
"""

from __future__ import annotations

from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPM2B_ECC_POINT, TPMT_SIG_SCHEME

from ecash_tpm.device.errors import TpmArgumentError, TpmCommandError
from ecash_tpm.device.keys import TpmKeys
from ecash_tpm.device.models import CommitResult, KeyRef
from ecash_tpm.device.tss import parse_point, point_bytes, tpm_call


class EcdaaCommands(TpmKeys):
    """The two TPM commands of an ECDAA signature: commit, then sign with the counter."""

    def commit(
        self,
        key: KeyRef,
        p1: bytes | None = None,
        s2: bytes | None = None,
        y2: bytes | None = None,
    ) -> CommitResult:
        """TPM2_Commit on the DAA key.

        With s2/y2 the TPM uses J = (int(SHA-256(s2)) mod p, y2): K = sk*J, L = r*J; with P1,
        E = r*P1; without P1 and s2, E = r*G. The counter is passed to :meth:`ecdaa_sign`.
        """
        handle = self._handle(key, "daa")
        if (s2 is None) != (y2 is None):
            raise TpmArgumentError("s2 and y2 go together: give both or neither")
        p1_in = TPM2B_ECC_POINT() if p1 is None else parse_point(p1, "P1")
        for v, what in ((s2, "s2"), (y2, "y2")):
            if v is not None and not isinstance(v, bytes | bytearray):
                raise TpmArgumentError(f"{what} must be bytes")
        if y2 is not None and len(y2) > 32:
            raise TpmArgumentError("y2 must be at most 32 bytes")
        if self.injected_latency is not None:  # benchmarks only: a hardware TPM's delay
            self.injected_latency.before("commit")
        # tpm2-pytss wants empty values, not None, for absent inputs
        with tpm_call("Commit"):
            k, l_pt, e, counter = self.esys.commit(
                handle, p1_in, bytes(s2) if s2 else b"", bytes(y2) if y2 else b""
            )
        return CommitResult(
            point_bytes(k.point), point_bytes(l_pt.point), point_bytes(e.point), int(counter)
        )

    def ecdaa_sign(self, key: KeyRef, digest: bytes, counter: int) -> tuple[bytes, bytes]:
        """TPM2_Sign with ECDAA -> (nonceK, s) exactly as the TPM returned them.

        nonceK (signatureR) has variable length (leading zeros dropped); hash it as is.
        """
        handle = self._handle(key, "daa")
        if not isinstance(digest, bytes | bytearray) or len(digest) != 32:
            raise TpmArgumentError("the ECDAA digest must be 32 bytes")
        if not isinstance(counter, int) or not 0 <= counter <= 0xFFFF:
            raise TpmArgumentError("the commit counter must be a 16-bit integer")
        scheme = TPMT_SIG_SCHEME(scheme=TPM2_ALG.ECDAA)
        scheme.details.ecdaa.hashAlg = TPM2_ALG.SHA256
        scheme.details.ecdaa.count = counter
        if self.injected_latency is not None:
            self.injected_latency.before("sign")
        with tpm_call("Sign(ECDAA)"):
            sig = self.esys.sign(handle, bytes(digest), scheme)
        if int(sig.sigAlg) != int(TPM2_ALG.ECDAA):
            raise TpmCommandError(
                "TPM2_Sign did not return an ECDAA signature",
                detail={"operation": "Sign", "sigAlg": int(sig.sigAlg)},
            )
        return bytes(sig.signature.ecdaa.signatureR), bytes(sig.signature.ecdaa.signatureS)
