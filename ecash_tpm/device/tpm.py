"""The TPM 2.0 device: :class:`TpmDevice`, composed from the device layer's modules.

Everything crossing the device layer's boundary is plain bytes/ints in TPM wire formats
(marshalled TPM2B_PUBLIC, TPMS_ATTEST, TPMT_SIGNATURE, uncompressed points), so verifiers stay
pure and never import a TPM library.

Without a resource manager (swtpm, raw /dev/tpm0) transient objects and sessions survive the
process that made them, and libtpms has only 3 object slots. So the device flushes leftovers
when it opens, creates primaries (SRK, EK) only for the command that needs them, keeps at most
the AK and the DAA key loaded, and flushes everything on :meth:`TpmDevice.close`.

Layers, each a module: :mod:`.session` (open/close, capabilities), :mod:`.keys` (EK, AK, DAA
key), :mod:`.attestation` (PCRs, quote, certify, credential activation), :mod:`.ecdaa`
(commit, ECDAA sign); :mod:`.tss`, :mod:`.templates` and :mod:`.models` hold what they share.
The tpm2-pytss types that callers (tests, tools) build TPM structures with are re-exported here.
"""

from __future__ import annotations

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import (
    ESYS_TR,
    TPM2_ALG,
    TPM2_CAP,
    TPM2_ECC,
    TPM2_HT,
    TPM2_PT,
    TPM2_PT_NV,
    TPM2_SE,
    TPMA_OBJECT,
)
from tpm2_pytss.types import (
    TPM2B_ECC_POINT,
    TPM2B_ENCRYPTED_SECRET,
    TPM2B_ID_OBJECT,
    TPM2B_PRIVATE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPML_DIGEST,
    TPML_DIGEST_VALUES,
    TPML_PCR_SELECTION,
    TPMS_ECC_POINT,
    TPMT_HA,
    TPMT_PUBLIC,
    TPMT_SIG_SCHEME,
    TPMT_SYM_DEF,
)

from ecash_tpm.device.attestation import AttestationCommands
from ecash_tpm.device.constants import (
    AK_ATTRIBUTES,
    DAA_ATTRIBUTES,
    EK_CERT_NV_RANGE,
    EK_SPECS,
    POLICY_A_SHA384,
    POLICY_C_SHA384,
    SRK_ATTRIBUTES,
    EkKind,
    EkSpec,
)
from ecash_tpm.device.ecdaa import EcdaaCommands
from ecash_tpm.device.errors import (
    EcdaaUnsupportedError,
    EkCertificateMissingError,
    EkUnsupportedError,
    KeyBlobError,
    TpmArgumentError,
    TpmCommandError,
    TpmConnectionError,
)
from ecash_tpm.device.models import CommitResult, EccParameters, KeyRef, TpmInfo
from ecash_tpm.device.session import DEFAULT_TCTI
from ecash_tpm.device.templates import AK_TEMPLATE, DAA_TEMPLATE
from ecash_tpm.device.tss import MAX_QUALIFYING_DATA, PCR_COUNT

# TPM_PT_* fixed properties (PT_FIXED + n); tpm2-pytss 3.0 does not name all of them
_PT_FAMILY_INDICATOR = 0x100
_PT_REVISION = 0x102
_PT_MANUFACTURER = 0x105
_PT_VENDOR_STRINGS = (0x106, 0x107, 0x108, 0x109)
_PT_FIRMWARE_VERSION_1 = 0x10B
_PT_FIRMWARE_VERSION_2 = 0x10C


class TpmDevice(AttestationCommands, EcdaaCommands):
    """An open connection to one TPM (context manager).

    ``tcti`` is a tpm2-tss TCTI string: ``swtpm:host=127.0.0.1,port=N``, ``device:/dev/tpmrm0``,
    ``tabrmd``. Opening flushes leftover transient objects and sessions unless
    ``flush_leftovers=False`` (they are garbage without a resource manager; with one, the list
    is empty).
    """

    # -- info ----------------------------------------------------------------------------

    def info(self) -> TpmInfo:
        """Manufacturer, firmware, EK certificates, PCR banks, ECDAA/BN_P256 support."""
        props = self.properties()

        def text(*pts: int) -> str:
            raw = b"".join(props.get(int(p), 0).to_bytes(4, "big") for p in pts)
            return raw.replace(b"\0", b"").decode("ascii", errors="replace").strip()

        fw1 = props.get(_PT_FIRMWARE_VERSION_1, 0)
        fw2 = props.get(_PT_FIRMWARE_VERSION_2, 0)
        family = text(_PT_FAMILY_INDICATOR)
        rev = props.get(_PT_REVISION, 0)
        certs: dict[EkKind, bytes] = {}
        for kind in self.ek_kinds_present():
            certs[kind] = self.ek_certificate(kind)
        curves = self.ecc_curves()
        ecdaa = self.has_algorithm(TPM2_ALG.ECDAA)
        curve_names = []
        for c in curves:
            try:
                curve_names.append(str(TPM2_ECC(c)).lower())
            except ValueError:
                curve_names.append(f"0x{c:04x}")
        return TpmInfo(
            manufacturer=text(_PT_MANUFACTURER),
            vendor=text(*_PT_VENDOR_STRINGS),
            firmware_version=f"{fw1 >> 16}.{fw1 & 0xFFFF}.{fw2 >> 16}.{fw2 & 0xFFFF}",
            spec_version=f"{family} rev {rev // 100}.{rev % 100:02d}",
            ek_certificates=certs,
            pcr_banks=self.pcr_banks(),
            ecc_curves=curve_names,
            ecdaa_supported=ecdaa,
            bn_p256_supported=int(TPM2_ECC.BN_P256) in curves,
        )


__all__ = [
    "AK_ATTRIBUTES",
    "AK_TEMPLATE",
    "CommitResult",
    "DAA_ATTRIBUTES",
    "DAA_TEMPLATE",
    "DEFAULT_TCTI",
    "EK_CERT_NV_RANGE",
    "EK_SPECS",
    "ESAPI",
    "ESYS_TR",
    "EccParameters",
    "EcdaaUnsupportedError",
    "EkCertificateMissingError",
    "EkKind",
    "EkSpec",
    "EkUnsupportedError",
    "KeyBlobError",
    "KeyRef",
    "MAX_QUALIFYING_DATA",
    "PCR_COUNT",
    "POLICY_A_SHA384",
    "POLICY_C_SHA384",
    "SRK_ATTRIBUTES",
    "TPM2B_ECC_POINT",
    "TPM2B_ENCRYPTED_SECRET",
    "TPM2B_ID_OBJECT",
    "TPM2B_PRIVATE",
    "TPM2B_PUBLIC",
    "TPM2B_SENSITIVE_CREATE",
    "TPM2_ALG",
    "TPM2_CAP",
    "TPM2_ECC",
    "TPM2_HT",
    "TPM2_PT",
    "TPM2_PT_NV",
    "TPM2_SE",
    "TPMA_OBJECT",
    "TPML_DIGEST",
    "TPML_DIGEST_VALUES",
    "TPML_PCR_SELECTION",
    "TPMS_ECC_POINT",
    "TPMT_HA",
    "TPMT_PUBLIC",
    "TPMT_SIG_SCHEME",
    "TPMT_SYM_DEF",
    "TSS2_Exception",
    "TpmArgumentError",
    "TpmCommandError",
    "TpmConnectionError",
    "TpmDevice",
    "TpmInfo",
]
