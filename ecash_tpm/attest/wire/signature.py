"""TPMT_SIGNATURE: the signature over a TPMS_ATTEST, as tpm2-tools writes it (``tss`` format)."""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.attest.wire.codec import Reader, tpm2b, u16
from ecash_tpm.attest.wire.constants import MAX_ECC_BYTES, MAX_RSA_BYTES, TpmAlg, hash_size

_ECC_SIG_ALGS = frozenset({TpmAlg.ECDSA, TpmAlg.ECDAA, TpmAlg.SM2, TpmAlg.ECSCHNORR})
_RSA_SIG_ALGS = frozenset({TpmAlg.RSASSA, TpmAlg.RSAPSS})


@dataclass(frozen=True)
class EccSignature:
    """TPMS_SIGNATURE_ECC (ECDSA, ECDAA, SM2, EC-Schnorr): r and s as the TPM sent them.

    For ECDAA ``r`` is the TPM's nonceK, of variable length: hash it exactly as received.
    """

    sig_alg: TpmAlg
    hash_alg: TpmAlg
    r: bytes
    s: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(self.sig_alg) + u16(self.hash_alg) + tpm2b(self.r) + tpm2b(self.s)


@dataclass(frozen=True)
class RsaSignature:
    """TPMS_SIGNATURE_RSA (RSASSA-PKCS1-v1_5 or RSA-PSS)."""

    sig_alg: TpmAlg
    hash_alg: TpmAlg
    sig: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(self.sig_alg) + u16(self.hash_alg) + tpm2b(self.sig)


@dataclass(frozen=True)
class HmacSignature:
    """TPMT_HA inside an HMAC signature."""

    hash_alg: TpmAlg
    digest: bytes

    sig_alg = TpmAlg.HMAC

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(TpmAlg.HMAC) + u16(self.hash_alg) + self.digest


@dataclass(frozen=True)
class NullSignature:
    """A TPMT_SIGNATURE with sigAlg TPM_ALG_NULL (what a TPM returns without a signing key)."""

    sig_alg = TpmAlg.NULL
    hash_alg = TpmAlg.NULL

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(TpmAlg.NULL)


Signature = EccSignature | RsaSignature | HmacSignature | NullSignature


def parse_signature(data: bytes) -> Signature:
    """Parse a marshalled TPMT_SIGNATURE that fills ``data`` exactly."""
    r = Reader(data, "TPMT_SIGNATURE")
    alg = r.alg("sigAlg", _ECC_SIG_ALGS | _RSA_SIG_ALGS | {TpmAlg.HMAC, TpmAlg.NULL})
    sig: Signature
    if alg == TpmAlg.NULL:
        sig = NullSignature()
    elif alg == TpmAlg.HMAC:
        hash_alg = r.hash_alg("hmac.hashAlg")
        sig = HmacSignature(hash_alg, r.take(hash_size(hash_alg), "hmac.digest"))
    elif alg in _RSA_SIG_ALGS:
        hash_alg = r.hash_alg("rsa.hash")
        sig = RsaSignature(alg, hash_alg, r.tpm2b(MAX_RSA_BYTES, "rsa.sig"))
    else:
        hash_alg = r.hash_alg("ecc.hash")
        sig = EccSignature(
            alg,
            hash_alg,
            r.tpm2b(MAX_ECC_BYTES, "ecc.signatureR"),
            r.tpm2b(MAX_ECC_BYTES, "ecc.signatureS"),
        )
    r.done()
    return sig
