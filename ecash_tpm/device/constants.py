"""Pure constants of the device layer: EK kinds, NV indices, TCG EK policy digests.

Kept free of tpm2-pytss so that verifiers and tools can use them too. Sources: TCG EK
Credential Profile for TPM Family 2.0 (v2.3+), templates L-1 (RSA-2048), L-2 (ECC P-256) and
H-3 (ECC P-384); policy digests B.6 (PolicyA = PolicySecret(TPM_RH_ENDORSEMENT),
PolicyC = PolicyAuthorizeNV(EK policy index), PolicyB = PolicyOR(PolicyA, PolicyC)).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from enum import StrEnum

TPM_CC_POLICY_SECRET = 0x00000151
TPM_CC_POLICY_OR = 0x00000171
TPM_RH_ENDORSEMENT = 0x4000000B

# TPMA_OBJECT bits we use
FIXED_TPM = 0x00000002
FIXED_PARENT = 0x00000010
SENSITIVE_DATA_ORIGIN = 0x00000020
USER_WITH_AUTH = 0x00000040
ADMIN_WITH_POLICY = 0x00000080
NO_DA = 0x00000400
RESTRICTED = 0x00010000
DECRYPT = 0x00020000
SIGN_ENCRYPT = 0x00040000

EK_LOW_ATTRIBUTES = (
    FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | ADMIN_WITH_POLICY | RESTRICTED | DECRYPT
)  # 0x000300B2
EK_HIGH_ATTRIBUTES = EK_LOW_ATTRIBUTES | USER_WITH_AUTH  # 0x000300F2
SRK_ATTRIBUTES = (
    FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | NO_DA | RESTRICTED | DECRYPT
)
AK_ATTRIBUTES = (
    FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | RESTRICTED | SIGN_ENCRYPT
)
DAA_ATTRIBUTES = FIXED_TPM | FIXED_PARENT | SENSITIVE_DATA_ORIGIN | USER_WITH_AUTH | SIGN_ENCRYPT


def policy_secret_endorsement(hash_name: str) -> bytes:
    """PolicyA: digest of PolicySecret(TPM_RH_ENDORSEMENT) with an empty policyRef."""
    size = hashlib.new(hash_name).digest_size
    cc = TPM_CC_POLICY_SECRET.to_bytes(4, "big")
    step = hashlib.new(hash_name, bytes(size) + cc + TPM_RH_ENDORSEMENT.to_bytes(4, "big")).digest()
    return hashlib.new(hash_name, step).digest()


def policy_or(hash_name: str, *branches: bytes) -> bytes:
    """Digest of PolicyOR over ``branches`` starting from an empty policy."""
    size = hashlib.new(hash_name).digest_size
    return hashlib.new(
        hash_name, bytes(size) + TPM_CC_POLICY_OR.to_bytes(4, "big") + b"".join(branches)
    ).digest()


POLICY_A_SHA256 = policy_secret_endorsement("sha256")
POLICY_A_SHA384 = policy_secret_endorsement("sha384")
# PolicyC = PolicyAuthorizeNV(0x01C07F02) for SHA-384: a published constant (it depends on the
# NV index's Name, which we do not evaluate: we only need it as the second OR branch).
POLICY_C_SHA384 = bytes.fromhex(
    "d6032ce61f2fb3c240eb3cf6a33237ef2b6a16f4293c22b455e261cffd217ad5"
    "b4947c2d73e63005eed2dc2b3593d165"
)
POLICY_B_SHA384 = policy_or("sha384", POLICY_A_SHA384, POLICY_C_SHA384)


class EkKind(StrEnum):
    """The EK types we support (all that real TPMs and swtpm ship with certificates)."""

    RSA_2048 = "rsa2048"
    ECC_P256 = "ecc_p256"
    ECC_P384 = "ecc_p384"


@dataclass(frozen=True)
class EkSpec:
    """How to build one EK kind and where its certificate lives."""

    kind: EkKind
    cert_nv_index: int
    high_range: bool
    name_hash: str  # nameAlg and policy hash
    auth_policy: bytes
    attributes: int
    template_id: str  # TCG EK Credential Profile template name


EK_SPECS: dict[EkKind, EkSpec] = {
    EkKind.RSA_2048: EkSpec(
        EkKind.RSA_2048, 0x01C00002, False, "sha256", POLICY_A_SHA256, EK_LOW_ATTRIBUTES, "L-1"
    ),
    EkKind.ECC_P256: EkSpec(
        EkKind.ECC_P256, 0x01C0000A, False, "sha256", POLICY_A_SHA256, EK_LOW_ATTRIBUTES, "L-2"
    ),
    EkKind.ECC_P384: EkSpec(
        EkKind.ECC_P384, 0x01C00016, True, "sha384", POLICY_B_SHA384, EK_HIGH_ATTRIBUTES, "H-3"
    ),
}

EK_CERT_NV_RANGE = (0x01C00000, 0x01C07FFF)
