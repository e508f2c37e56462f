"""PCRs and the attestation commands: PCR_Read/Extend, Quote, Certify, ActivateCredential.

Outputs are the marshalled structures tpm2-tools writes (``tpm2_quote -m/-s``), so the pure
verifier in :mod:`ecash_tpm.attest` reads them without a TPM library.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Sequence

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR, TPM2_ALG, TPM2_SE
from tpm2_pytss.types import (
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPML_DIGEST,
    TPML_DIGEST_VALUES,
    TPMT_HA,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
)

from ecash_tpm.device.constants import EK_SPECS, POLICY_A_SHA384, POLICY_C_SHA384, EkKind
from ecash_tpm.device.errors import TpmArgumentError, TpmCommandError
from ecash_tpm.device.keys import TpmKeys
from ecash_tpm.device.models import KeyRef
from ecash_tpm.device.tss import (
    check_qualifying,
    hash_alg,
    pcr_selection,
    tpm_call,
    unmarshal_exact,
)


class AttestationCommands(TpmKeys):
    """PCR access and the commands whose outputs a verifier checks."""

    # -- PCRs ----------------------------------------------------------------------------

    def pcr_read(self, indices: Sequence[int], bank: str = "sha256") -> dict[int, bytes]:
        """Current values of the selected PCRs of one bank."""
        hash_alg(bank)
        wanted = sorted(set(indices))
        pcr_selection(bank, wanted)
        out: dict[int, bytes] = {}
        for start in range(0, len(wanted), 8):  # TPML_DIGEST holds at most 8 digests
            chunk = wanted[start : start + 8]
            with tpm_call("PCR_Read"):
                _ctr, sel_out, digests = self.esys.pcr_read(pcr_selection(bank, chunk))
            got: list[int] = []
            for sel in sel_out.pcrSelections[: sel_out.count]:
                bits = bytes(sel.pcrSelect)[: sel.sizeofSelect]
                got.extend(i for i in range(len(bits) * 8) if bits[i // 8] >> (i % 8) & 1)
            values = [bytes(d) for d in digests]
            if got != chunk or len(values) != len(chunk):
                raise TpmCommandError(
                    f"PCR_Read returned PCRs {got} for requested {chunk} in bank {bank}",
                    detail={"operation": "PCR_Read", "requested": chunk, "returned": got},
                )
            out.update(zip(chunk, values, strict=True))
        return out

    def pcr_extend(self, index: int, digest: bytes, bank: str = "sha256") -> None:
        """PCR[index] = H(PCR[index] || digest) in ``bank``; ``digest`` is the bank's size."""
        alg = hash_alg(bank)
        pcr_selection(bank, [index])
        size = hashlib.new(bank).digest_size
        if not isinstance(digest, bytes | bytearray) or len(digest) != size:
            raise TpmArgumentError(f"a {bank} extend digest must be {size} bytes")
        ha = TPMT_HA(hashAlg=alg)
        setattr(ha.digest, bank, bytes(digest))
        with tpm_call("PCR_Extend"):
            self.esys.pcr_extend(ESYS_TR.PCR0 + index, TPML_DIGEST_VALUES([ha]))

    # -- attestation ---------------------------------------------------------------------

    def quote(
        self, ak: KeyRef, pcrs: Sequence[int], qualifying: bytes, bank: str = "sha256"
    ) -> tuple[bytes, bytes]:
        """TPM2_Quote -> (marshalled TPMS_ATTEST, marshalled TPMT_SIGNATURE) as tpm2_quote -m/-s."""
        handle = self._handle(ak, "ak")
        hash_alg(bank)
        sel = pcr_selection(bank, pcrs)
        with tpm_call("Quote"):
            attest, sig = self.esys.quote(handle, sel, check_qualifying(qualifying))
        return bytes(attest), sig.marshal()

    def certify(self, obj: KeyRef, ak: KeyRef, qualifying: bytes) -> tuple[bytes, bytes]:
        """TPM2_Certify(obj by AK) -> (marshalled TPMS_ATTEST, marshalled TPMT_SIGNATURE)."""
        signer = self._handle(ak, "ak")
        target = self._handle(obj)
        with tpm_call("Certify"):
            attest, sig = self.esys.certify(
                target, signer, check_qualifying(qualifying), TPMT_SIG_SCHEME(scheme=TPM2_ALG.NULL)
            )
        return bytes(attest), sig.marshal()

    def activate_credential(
        self,
        ak: KeyRef,
        ek: EkKind | str | KeyRef,
        credential_blob: bytes,
        encrypted_secret: bytes,
    ) -> bytes:
        """TPM2_ActivateCredential: recover the secret bound to Name(AK) and this TPM's EK.

        ``credential_blob`` is a marshalled TPM2B_ID_OBJECT, ``encrypted_secret`` a marshalled
        TPM2B_ENCRYPTED_SECRET. The EK's policy is satisfied with a policy session:
        PolicySecret(ENDORSEMENT), plus PolicyOR(PolicyA, PolicyC) for the high-range P-384 EK.
        """
        handle = self._handle(ak, "ak")
        kind = EkKind(ek.role.removeprefix("ek:")) if isinstance(ek, KeyRef) else EkKind(ek)
        spec = EK_SPECS[kind]
        blob = unmarshal_exact(TPM2B_ID_OBJECT, credential_blob, "credential blob")
        secret = unmarshal_exact(TPM2B_ENCRYPTED_SECRET, encrypted_secret, "encrypted secret")
        esys = self.esys
        with self._ek_loaded(kind) as ek_handle:
            if isinstance(ek, KeyRef) and ek.public != self._ek_cache[kind].public:
                raise TpmArgumentError("the EK given is not this TPM's EK of that kind")
            with tpm_call("StartAuthSession(EK policy)"):
                sess = esys.start_auth_session(
                    ESYS_TR.NONE,
                    ESYS_TR.NONE,
                    TPM2_SE.POLICY,
                    TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
                    TPM2_ALG.parse(spec.name_hash),
                )
            try:
                with tpm_call("PolicySecret(ENDORSEMENT)"):
                    esys.policy_secret(ESYS_TR.ENDORSEMENT, sess, expiration=0)
                if spec.high_range:
                    with tpm_call("PolicyOR"):
                        esys.policy_or(sess, TPML_DIGEST([POLICY_A_SHA384, POLICY_C_SHA384]))
                with tpm_call("ActivateCredential"):
                    cert_info = esys.activate_credential(
                        handle, ek_handle, blob, secret, session2=sess
                    )
            finally:
                with contextlib.suppress(TSS2_Exception):
                    esys.flush_context(sess)
        return bytes(cert_info)
