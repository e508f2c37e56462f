"""MakeCredential: checked against an independent ActivateCredential written with cryptography's
own KDFs (KBKDF for KDFa, ConcatKDF for KDFe) and software EKs. The real-TPM check is in
tests/integration/device/test_interop_tpm2tools.py.
"""

from __future__ import annotations

import hmac
import os
from pathlib import Path

import pytest
from cryptography.hazmat.decrepit.ciphers.modes import CFB
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms
from cryptography.hazmat.primitives.kdf.concatkdf import ConcatKDFHash
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFHMAC, CounterLocation, Mode

from ecash_tpm.attest import (
    CredentialInputError,
    CredentialKeyError,
    CredentialUnsupportedError,
    kdfa,
    kdfe,
    make_credential,
    parse_tpm2b_public,
    public_area_from_key,
)
from ecash_tpm.attest.wire import (
    ObjectAttributes,
    PublicArea,
    Reader,
    Scheme,
    SymDef,
    TpmAlg,
    hash_size,
)
from ecash_tpm.errors import EcashError

DATA = Path(__file__).parents[2] / "data" / "attest"
EK_ATTRS = (
    ObjectAttributes.FIXED_TPM
    | ObjectAttributes.FIXED_PARENT
    | ObjectAttributes.SENSITIVE_DATA_ORIGIN
    | ObjectAttributes.ADMIN_WITH_POLICY
    | ObjectAttributes.RESTRICTED
    | ObjectAttributes.DECRYPT
)
HASHES = {TpmAlg.SHA256: hashes.SHA256, TpmAlg.SHA384: hashes.SHA384}


def ref_kdfa(alg: TpmAlg, key: bytes, label: bytes, ctx_u: bytes, ctx_v: bytes, bits: int) -> bytes:
    return KBKDFHMAC(
        algorithm=HASHES[alg](),
        mode=Mode.CounterMode,
        length=bits // 8,
        rlen=4,
        llen=4,
        location=CounterLocation.BeforeFixed,
        label=label,
        context=ctx_u + ctx_v,
        fixed=None,
    ).derive(key)


def ref_kdfe(alg: TpmAlg, z: bytes, label: bytes, u: bytes, v: bytes, bits: int) -> bytes:
    return ConcatKDFHash(HASHES[alg](), bits // 8, label + b"\0" + u + v).derive(z)


def activate(
    ek: PublicArea,
    ek_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    name: bytes,
    id_object: bytes,
    encrypted_secret: bytes,
) -> bytes:
    """TPM2_ActivateCredential, written from the spec independently of the code under test."""
    alg = ek.name_alg
    size = hash_size(alg)
    r = Reader(encrypted_secret, "TPM2B_ENCRYPTED_SECRET")
    secret = r.tpm2b(0xFFFF, "secret")
    r.done()
    if isinstance(ek_key, rsa.RSAPrivateKey):
        h = HASHES[alg]()
        seed = ek_key.decrypt(
            secret, padding.OAEP(mgf=padding.MGF1(h), algorithm=h, label=b"IDENTITY\0")
        )
    else:
        pr = Reader(secret, "TPMS_ECC_POINT")
        x, y = pr.tpm2b(128, "x"), pr.tpm2b(128, "y")
        pr.done()
        peer = ec.EllipticCurvePublicKey.from_encoded_point(ek_key.curve, b"\x04" + x + y)
        z = ek_key.exchange(ec.ECDH(), peer)
        seed = ref_kdfe(alg, z, b"IDENTITY", x, ek.ecc_point().x, 8 * size)
    r = Reader(id_object, "TPM2B_ID_OBJECT")
    body = r.tpm2b(0xFFFF, "credential")
    r.done()
    br = Reader(body, "ID_OBJECT")
    integrity = br.tpm2b(64, "integrityHMAC")
    enc_identity = br.take(br.remaining, "encIdentity")
    hmac_key = ref_kdfa(alg, seed, b"INTEGRITY", b"", b"", 8 * size)
    expected = hmac.new(hmac_key, enc_identity + name, HASHES[alg]().name).digest()
    if not hmac.compare_digest(expected, integrity):
        raise ValueError("integrity check failed")
    sym_key = ref_kdfa(alg, seed, b"STORAGE", name, b"", ek.parameters.symmetric.key_bits)  # type: ignore[union-attr]
    dec = Cipher(algorithms.AES(sym_key), CFB(b"\0" * 16)).decryptor()
    plain = dec.update(enc_identity) + dec.finalize()
    pr2 = Reader(plain, "TPM2B_DIGEST")
    out = pr2.tpm2b(64, "credential")
    pr2.done()
    return out


def software_ek(kind: str) -> tuple[PublicArea, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey]:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    if kind == "rsa2048":
        key = rsa.generate_private_key(65537, 2048)
        return public_area_from_key(
            key.public_key(), attributes=EK_ATTRS, symmetric=SymDef(TpmAlg.AES, 128, TpmAlg.CFB)
        ), key
    if kind == "p256":
        key = ec.generate_private_key(ec.SECP256R1())
        return public_area_from_key(
            key.public_key(), attributes=EK_ATTRS, symmetric=SymDef(TpmAlg.AES, 128, TpmAlg.CFB)
        ), key
    key = ec.generate_private_key(ec.SECP384R1())
    return public_area_from_key(
        key.public_key(),
        attributes=EK_ATTRS | ObjectAttributes.USER_WITH_AUTH,
        name_alg=TpmAlg.SHA384,
        symmetric=SymDef(TpmAlg.AES, 256, TpmAlg.CFB),
    ), key


AK_NAME = bytes.fromhex("000b") + bytes(range(32))


@pytest.mark.parametrize("kind", ["rsa2048", "p256", "p384"])
def test_make_credential_roundtrip(kind: str) -> None:
    ek, key = software_ek(kind)
    secret = os.urandom(32)
    id_object, enc_secret = make_credential(ek.marshal_tpm2b(), AK_NAME, secret)
    assert activate(ek, key, AK_NAME, id_object, enc_secret) == secret
    # Bound to the Name: activating for another object fails the integrity check.
    other = AK_NAME[:-1] + bytes([AK_NAME[-1] ^ 1])
    with pytest.raises(ValueError, match="integrity"):
        activate(ek, key, other, id_object, enc_secret)
    # Fresh randomness every time (RSA: OAEP and seed; ECC: ephemeral key).
    again = make_credential(ek, AK_NAME, secret)
    assert again[0] != id_object and again[1] != enc_secret


def test_short_secret_and_sha384_name() -> None:
    ek, key = software_ek("p384")
    name = b"\x00\x0c" + os.urandom(48)
    secret = b"\x01"
    assert activate(ek, key, name, *make_credential(ek, name, secret)) == secret
    big = os.urandom(48)  # SHA-384 EK: up to 48 bytes
    assert activate(ek, key, name, *make_credential(ek, name, big)) == big


def test_recorded_ek_shapes() -> None:
    ek_rsa = (DATA / "ek-rsa.pub").read_bytes()
    ek_ecc = (DATA / "ek-ecc.pub").read_bytes()
    ak_name = (DATA / "ak-ecc.name").read_bytes()
    id_rsa, sec_rsa = make_credential(ek_rsa, ak_name, b"s" * 32)
    assert len(sec_rsa) == 2 + 256
    assert len(id_rsa) == 2 + (2 + 32) + (2 + 32)  # HMAC-SHA256 + CFB(TPM2B(secret))
    id_ecc, sec_ecc = make_credential(ek_ecc, ak_name, b"s" * 32)
    assert len(sec_ecc) == 2 + (2 + 48) * 2  # ephemeral P-384 point
    assert len(id_ecc) == 2 + (2 + 48) + (2 + 32)  # HMAC-SHA384


def test_kdfs_match_reference() -> None:
    key, name = os.urandom(32), os.urandom(34)
    for alg in (TpmAlg.SHA256, TpmAlg.SHA384):
        for bits in (128, 256, 384, 520):
            assert kdfa(alg, key, b"STORAGE", name, b"v", bits) == ref_kdfa(
                alg, key, b"STORAGE", name, b"v", bits
            )
            assert kdfe(alg, key, b"IDENTITY", name, b"v", bits) == ref_kdfe(
                alg, key, b"IDENTITY", name, b"v", bits
            )


def test_refuses_non_storage_ek() -> None:
    signing = public_area_from_key(
        ec.generate_private_key(ec.SECP256R1()).public_key(),
        attributes=ObjectAttributes.RESTRICTED | ObjectAttributes.SIGN_ENCRYPT,
        scheme=Scheme(TpmAlg.ECDSA, TpmAlg.SHA256),
    )
    with pytest.raises(CredentialKeyError) as exc:
        make_credential(signing, AK_NAME, b"x")
    assert exc.value.code == "credential.ek_not_storage_key"
    ak = (DATA / "ak-ecc.pub").read_bytes()
    with pytest.raises(CredentialKeyError):
        make_credential(ak, AK_NAME, b"x")
    unrestricted = public_area_from_key(
        rsa.generate_private_key(65537, 2048).public_key(),
        attributes=ObjectAttributes.DECRYPT,
        symmetric=SymDef(TpmAlg.AES, 128, TpmAlg.CFB),
    )
    with pytest.raises(CredentialKeyError):
        make_credential(unrestricted, AK_NAME, b"x")


def test_refuses_unsupported_ek() -> None:
    no_sym = public_area_from_key(
        rsa.generate_private_key(65537, 2048).public_key(), attributes=EK_ATTRS
    )
    with pytest.raises(CredentialUnsupportedError):
        make_credential(no_sym, AK_NAME, b"x")
    daa = parse_tpm2b_public((DATA / "daa.pub").read_bytes())
    with pytest.raises(EcashError):
        make_credential(daa, AK_NAME, b"x")
    with pytest.raises(CredentialUnsupportedError):
        make_credential(b"\x00\x01\x00", AK_NAME, b"x")


def test_refuses_bad_inputs() -> None:
    ek = (DATA / "ek-rsa.pub").read_bytes()
    for secret in (b"", os.urandom(33)):
        with pytest.raises(CredentialInputError) as exc:
            make_credential(ek, AK_NAME, secret)
        assert exc.value.code == "credential.invalid_input"
    for name in (b"", AK_NAME[:-1], AK_NAME + b"\0", b"\x00\x06" + bytes(32)):
        with pytest.raises(CredentialInputError):
            make_credential(ek, name, b"secret")


def test_aes_cfb_matches_reference() -> None:
    from ecash_tpm.attest.credential import aes_cfb_encrypt

    for key_len in (16, 32):
        key = os.urandom(key_len)
        for n in (0, 1, 15, 16, 17, 34, 50, 66):
            data = os.urandom(n)
            enc = Cipher(algorithms.AES(key), CFB(b"\0" * 16)).encryptor()
            assert aes_cfb_encrypt(key, data) == enc.update(data) + enc.finalize()
