"""Key templates: the TCG EK profiles, our storage primary (SRK), the AK and the DAA key.

The AK and DAA templates are fixed here so a saved key blob can be checked against what this
code would create before it is trusted (:func:`template_matches`).
"""

from __future__ import annotations

from tpm2_pytss.constants import TPM2_ALG, TPM2_ECC, TPMA_OBJECT
from tpm2_pytss.types import TPMT_PUBLIC

from ecash_tpm.device.constants import (
    AK_ATTRIBUTES,
    DAA_ATTRIBUTES,
    SRK_ATTRIBUTES,
    EkKind,
    EkSpec,
)

AK_TEMPLATE = "ecc256:ecdsa-sha256:null"
DAA_TEMPLATE = "ecc_bn_p256:ecdaa0-sha256"


def ek_template(spec: EkSpec) -> TPMT_PUBLIC:
    """The TCG EK Credential Profile template (L-1, L-2 or H-3)."""
    t = TPMT_PUBLIC()
    t.nameAlg = TPM2_ALG.parse(spec.name_hash)
    t.objectAttributes = TPMA_OBJECT(spec.attributes)
    t.authPolicy = spec.auth_policy
    if spec.kind is EkKind.RSA_2048:
        t.type = TPM2_ALG.RSA
        d = t.parameters.rsaDetail
        d.symmetric.algorithm = TPM2_ALG.AES
        d.symmetric.keyBits.aes = 128
        d.symmetric.mode.aes = TPM2_ALG.CFB
        d.scheme.scheme = TPM2_ALG.NULL
        d.keyBits = 2048
        d.exponent = 0
        t.unique.rsa = bytes(256)
        return t
    t.type = TPM2_ALG.ECC
    e = t.parameters.eccDetail
    e.symmetric.algorithm = TPM2_ALG.AES
    e.symmetric.mode.aes = TPM2_ALG.CFB
    e.scheme.scheme = TPM2_ALG.NULL
    e.kdf.scheme = TPM2_ALG.NULL
    if spec.kind is EkKind.ECC_P256:
        e.symmetric.keyBits.aes = 128
        e.curveID = TPM2_ECC.NIST_P256
        t.unique.ecc.x = bytes(32)
        t.unique.ecc.y = bytes(32)
    else:  # H-3: high range templates have an empty unique field
        e.symmetric.keyBits.aes = 256
        e.curveID = TPM2_ECC.NIST_P384
    return t


def srk_template() -> TPMT_PUBLIC:
    """Our storage primary (owner hierarchy): ECC P-256, AES-128-CFB, zero unique.

    It is re-derived from the owner seed on every use, so saved child blobs load across
    processes and reboots without a persistent handle.
    """
    t = TPMT_PUBLIC.parse("ecc256:aes128cfb", objectAttributes=TPMA_OBJECT(SRK_ATTRIBUTES))
    t.unique.ecc.x = bytes(32)
    t.unique.ecc.y = bytes(32)
    return t


def child_template(role: str) -> TPMT_PUBLIC:
    """The template of the AK (``role == "ak"``) or of the DAA key (any other role)."""
    if role == "ak":
        return TPMT_PUBLIC.parse(AK_TEMPLATE, objectAttributes=TPMA_OBJECT(AK_ATTRIBUTES))
    return TPMT_PUBLIC.parse(DAA_TEMPLATE, objectAttributes=TPMA_OBJECT(DAA_ATTRIBUTES))


def template_matches(expected: TPMT_PUBLIC, actual: TPMT_PUBLIC) -> bool:
    """Whether a saved key has the template we would create (refuse foreign blobs)."""
    ee, ae = expected.parameters.eccDetail, actual.parameters.eccDetail
    return (
        int(actual.type) == int(expected.type)
        and int(actual.nameAlg) == int(expected.nameAlg)
        and int(actual.objectAttributes) == int(expected.objectAttributes)
        and int(ae.curveID) == int(ee.curveID)
        and int(ae.scheme.scheme) == int(ee.scheme.scheme)
        and int(ae.scheme.details.anySig.hashAlg) == int(ee.scheme.details.anySig.hashAlg)
        and bytes(actual.authPolicy) == b""
    )
