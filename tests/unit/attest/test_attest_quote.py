"""verify_quote / verify_certify / check_key_attributes: recorded swtpm evidence and attacks.

Attacks that a real TPM would not sign (extra PCR banks, forged digests, wrong magic) are built
with a software key modelled as a restricted AK: they must fail on content, not on signature.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import Prehashed, decode_dss_signature

from ecash_tpm.attest import (
    AK_REQUIRED_ATTRIBUTES,
    DAA_FORBIDDEN_ATTRIBUTES,
    DAA_REQUIRED_ATTRIBUTES,
    TPM_GENERATED_VALUE,
    AkAttributesError,
    AkNotRestrictedError,
    AkNotSigningKeyError,
    Attest,
    AttestType,
    CertifyBadSignatureError,
    CertifyNameMismatchError,
    CertifyNonceMismatchError,
    CertifyWrongTypeError,
    EccCurve,
    KeyAttributesForbiddenError,
    KeyAttributesMissingError,
    KeyTypeMismatchError,
    ObjectAttributes,
    PcrSelection,
    PcrValuesError,
    PublicArea,
    QuoteBadMagicError,
    QuoteBadSignatureError,
    QuoteNonceMismatchError,
    QuotePcrDigestMismatchError,
    QuotePcrSelectionMismatchError,
    QuoteWrongTypeError,
    TpmAlg,
    check_ak_public,
    check_key_attributes,
    parse_tpm2b_public,
    pcr_composite_digest,
    public_area_from_key,
    verify_certify,
    verify_quote,
)
from ecash_tpm.attest.wire import (
    ClockInfo,
    EccSignature,
    HmacSignature,
    NullSignature,
    RsaSignature,
    Scheme,
    TpmsCertifyInfo,
    TpmsQuoteInfo,
    crypto_hash,
    tpm2b,
    tpm_hash,
)
from ecash_tpm.errors import AttestationError, EcashError, WireFormatError

DATA = Path(__file__).parents[2] / "data" / "attest"
META = json.loads((DATA / "meta.json").read_text())
NONCE = bytes.fromhex(META["nonce"])
PCRS = {int(k): bytes.fromhex(v) for k, v in META["pcrs"].items()}
CERTIFY_NONCE = bytes.fromhex(META["certify"]["nonce"])


def blob(name: str) -> bytes:
    return (DATA / name).read_bytes()


def quote_args(kind: str) -> tuple[bytes, bytes, bytes]:
    return blob(META["quotes"][kind]["ak"]), blob(f"quote-{kind}.msg"), blob(f"quote-{kind}.sig")


# --- recorded quotes -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "hash_alg"),
    [
        ("ecc", TpmAlg.SHA256),
        ("ecc384", TpmAlg.SHA384),
        ("rsa", TpmAlg.SHA256),
        ("rsapss", TpmAlg.SHA256),
    ],
)
def test_recorded_quote_verifies(kind: str, hash_alg: TpmAlg) -> None:
    ak, msg, sig = quote_args(kind)
    info = verify_quote(ak, msg, sig, NONCE, PCRS)
    assert info.hash_alg == hash_alg
    assert info.pcrs == dict(sorted(PCRS.items()))
    assert info.pcr_digest == pcr_composite_digest(hash_alg, PCRS)
    assert info.ak_name == blob(f"ak-{kind}.name")
    assert info.clock_info.safe in (True, False) and info.firmware_version > 0
    assert [s.indices for s in info.pcr_selection] == [(0, 1, 2, 3, 7, 16)]
    # The same quote handed over as a TPM2B_ATTEST (tpm2-pytss marshalling) is accepted too.
    verify_quote(ak, tpm2b(msg), sig, NONCE, PCRS)


def test_wrong_nonce() -> None:
    ak, msg, sig = quote_args("ecc")
    for nonce in (b"", NONCE[:-1], NONCE + b"\0", bytes(32), NONCE[::-1]):
        with pytest.raises(QuoteNonceMismatchError) as exc:
            verify_quote(ak, msg, sig, nonce, PCRS)
        assert exc.value.code == "quote.nonce_mismatch"


def test_changed_pcr_value() -> None:
    ak, msg, sig = quote_args("ecc")
    for index in PCRS:
        pcrs = dict(PCRS)
        pcrs[index] = bytes([pcrs[index][0] ^ 1]) + pcrs[index][1:]
        with pytest.raises(QuotePcrDigestMismatchError) as exc:
            verify_quote(ak, msg, sig, NONCE, pcrs)
        assert exc.value.code == "quote.pcr_digest_mismatch"
    # Swapping two values keeps the set but changes the ordered composite.
    swapped = dict(PCRS)
    swapped[0], swapped[1] = PCRS[1], PCRS[0]
    with pytest.raises(QuotePcrDigestMismatchError):
        verify_quote(ak, msg, sig, NONCE, swapped)


def test_quote_selects_more_pcrs_than_requested() -> None:
    ak, msg, sig = quote_args("rsa")
    fewer = {i: v for i, v in PCRS.items() if i != 16}
    with pytest.raises(QuotePcrSelectionMismatchError) as exc:
        verify_quote(ak, msg, sig, NONCE, fewer)
    assert exc.value.code == "quote.pcr_selection_mismatch"
    assert exc.value.detail["quoted"] == [["sha256", [0, 1, 2, 3, 7, 16]]]


def test_quote_selects_fewer_pcrs_than_requested() -> None:
    ak, msg, sig = quote_args("ecc")
    more = dict(PCRS)
    more[23] = bytes(32)
    with pytest.raises(QuotePcrSelectionMismatchError):
        verify_quote(ak, msg, sig, NONCE, more)
    moved = {(i if i != 16 else 15): v for i, v in PCRS.items()}
    with pytest.raises(QuotePcrSelectionMismatchError):
        verify_quote(ak, msg, sig, NONCE, moved)


def test_every_flipped_attest_byte_breaks_the_signature() -> None:
    ak, msg, sig = quote_args("ecc")
    for i in range(len(msg)):
        tampered = bytearray(msg)
        tampered[i] ^= 0x01
        with pytest.raises(QuoteBadSignatureError) as exc:
            verify_quote(ak, bytes(tampered), sig, NONCE, PCRS)
        assert exc.value.code == "quote.bad_signature"


@pytest.mark.parametrize("kind", ["ecc", "rsa", "rsapss"])
def test_every_flipped_signature_byte_is_rejected(kind: str) -> None:
    ak, msg, sig = quote_args(kind)
    for i in range(len(sig)):
        tampered = bytearray(sig)
        tampered[i] ^= 0x04
        with pytest.raises((QuoteBadSignatureError, WireFormatError)):
            verify_quote(ak, msg, bytes(tampered), NONCE, PCRS)
    # Flips inside the signature value itself are signature failures, not parse failures.
    with pytest.raises(QuoteBadSignatureError):
        verify_quote(ak, msg, sig[:-1] + bytes([sig[-1] ^ 0x80]), NONCE, PCRS)


def test_another_ak_rejected() -> None:
    _, msg, sig = quote_args("ecc")
    for other in ("ak-rsa.pub", "ak-ecc384.pub", "ak-rsapss.pub"):
        with pytest.raises(QuoteBadSignatureError):
            verify_quote(blob(other), msg, sig, NONCE, PCRS)
    _, rsa_msg, rsa_sig = quote_args("rsa")
    with pytest.raises(QuoteBadSignatureError):  # same key type, another key
        verify_quote(blob("ak-rsapss.pub"), rsa_msg, rsa_sig, NONCE, PCRS)
    soft, _ = soft_ak()
    with pytest.raises(QuoteBadSignatureError):
        verify_quote(soft.marshal_tpm2b(), msg, sig, NONCE, PCRS)


def test_non_restricted_ak_refused() -> None:
    ak, msg, sig = quote_args("unrestricted")
    with pytest.raises(AkNotRestrictedError) as exc:
        verify_quote(ak, msg, sig, NONCE, PCRS)
    assert exc.value.code == "attest.ak_not_restricted"
    # The attack it prevents: an unrestricted key signs a host-forged "quote" of any PCRs.
    fake_pcrs = {i: bytes(32) for i in PCRS}
    key_area, key = soft_ak(attributes=AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.RESTRICTED)
    forged = quote_attest(NONCE, [PcrSelection.of(TpmAlg.SHA256, fake_pcrs)], fake_pcrs)
    with pytest.raises(AkNotRestrictedError):
        verify_quote(key_area.marshal_tpm2b(), forged, sign(key, forged), NONCE, fake_pcrs)


def test_certify_attestation_is_not_a_quote() -> None:
    with pytest.raises(QuoteWrongTypeError) as exc:
        verify_quote(
            blob("ak-ecc.pub"), blob("certify-daa.msg"), blob("certify-daa.sig"), NONCE, PCRS
        )
    assert exc.value.code == "quote.wrong_type"


def test_invalid_pcr_values() -> None:
    ak, msg, sig = quote_args("ecc")
    bad: list[object] = [
        {},
        {0: bytes(31)},
        {0: bytes(48)},
        {-1: bytes(32)},
        {24: bytes(32)},
        {"0": bytes(32)},
        {True: bytes(32)},
        {0: "00" * 32},
        [bytes(32)],
    ]
    for pcrs in bad:
        with pytest.raises(PcrValuesError) as exc:
            verify_quote(ak, msg, sig, NONCE, pcrs)  # type: ignore[arg-type]
        assert exc.value.code == "quote.pcr_values_invalid"


# --- synthetic quotes from a software "AK" -----------------------------------------------------


def soft_ak(
    *,
    attributes: ObjectAttributes | int = AK_REQUIRED_ATTRIBUTES | ObjectAttributes.USER_WITH_AUTH,
    scheme: Scheme | None = None,
    rsa_key: bool = False,
) -> tuple[PublicArea, ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey]:
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey
    if rsa_key:
        key = rsa.generate_private_key(65537, 2048)
        default = Scheme(TpmAlg.RSASSA, TpmAlg.SHA256)
    else:
        key = ec.generate_private_key(ec.SECP256R1())
        default = Scheme(TpmAlg.ECDSA, TpmAlg.SHA256)
    area = public_area_from_key(
        key.public_key(), attributes=attributes, scheme=scheme if scheme is not None else default
    )
    return area, key


def sign(
    key: ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey,
    data: bytes,
    hash_alg: TpmAlg = TpmAlg.SHA256,
    sig_alg: TpmAlg | None = None,
) -> bytes:
    digest = tpm_hash(hash_alg, data)
    pre = Prehashed(crypto_hash(hash_alg))
    if isinstance(key, ec.EllipticCurvePrivateKey):
        r, s = decode_dss_signature(key.sign(digest, ec.ECDSA(pre)))
        size = (key.curve.key_size + 7) // 8
        return EccSignature(
            sig_alg or TpmAlg.ECDSA, hash_alg, r.to_bytes(size, "big"), s.to_bytes(size, "big")
        ).marshal()
    return RsaSignature(
        sig_alg or TpmAlg.RSASSA, hash_alg, key.sign(digest, padding.PKCS1v15(), pre)
    ).marshal()


def quote_attest(
    nonce: bytes,
    selections: list[PcrSelection],
    pcrs: dict[int, bytes],
    *,
    hash_alg: TpmAlg = TpmAlg.SHA256,
    magic: int = TPM_GENERATED_VALUE,
    digest: bytes | None = None,
) -> bytes:
    return Attest(
        magic=magic,
        type=AttestType.QUOTE,
        qualified_signer=b"\x00\x0b" + bytes(32),
        extra_data=nonce,
        clock_info=ClockInfo(1000, 1, 0, True),
        firmware_version=0x2019102300163636,
        attested=TpmsQuoteInfo(
            tuple(selections),
            digest if digest is not None else pcr_composite_digest(hash_alg, pcrs),
        ),
    ).marshal()


SHA256_SEL = PcrSelection.of(TpmAlg.SHA256, PCRS)


def test_synthetic_quote_verifies() -> None:
    area, key = soft_ak()
    msg = quote_attest(NONCE, [SHA256_SEL], PCRS)
    info = verify_quote(area.marshal_tpm2b(), msg, sign(key, msg), NONCE, PCRS)
    assert info.ak_name == area.name
    # A 4-byte bitmap with the same bits is the same selection.
    wide = PcrSelection(TpmAlg.SHA256, SHA256_SEL.select + b"\0")
    msg2 = quote_attest(NONCE, [wide], PCRS)
    verify_quote(area, msg2, sign(key, msg2), NONCE, PCRS)
    rsa_area, rsa_priv = soft_ak(rsa_key=True)
    verify_quote(rsa_area, msg, sign(rsa_priv, msg), NONCE, PCRS)


@pytest.mark.parametrize(
    "selections",
    [
        # CVE-2022-0317: an extra bank the verifier never looked at.
        [SHA256_SEL, PcrSelection.of(TpmAlg.SHA1, [0])],
        [PcrSelection.of(TpmAlg.SHA1, [0]), SHA256_SEL],
        [SHA256_SEL, PcrSelection.of(TpmAlg.SHA1, [])],
        [PcrSelection.of(TpmAlg.SHA1, PCRS)],
        [PcrSelection.of(TpmAlg.SHA384, PCRS)],
        [SHA256_SEL, SHA256_SEL],
        [PcrSelection.of(TpmAlg.SHA256, [0, 1, 2, 3, 7]), PcrSelection.of(TpmAlg.SHA256, [16])],
        [],
    ],
)
def test_selection_must_be_exactly_sha256_of_given_indices(
    selections: list[PcrSelection],
) -> None:
    area, key = soft_ak()
    msg = quote_attest(NONCE, selections, PCRS)
    with pytest.raises(QuotePcrSelectionMismatchError):
        verify_quote(area, msg, sign(key, msg), NONCE, PCRS)


def test_forged_digest_with_right_selection() -> None:
    area, key = soft_ak()
    msg = quote_attest(NONCE, [SHA256_SEL], PCRS, digest=bytes(32))
    with pytest.raises(QuotePcrDigestMismatchError):
        verify_quote(area, msg, sign(key, msg), NONCE, PCRS)
    # A SHA-1 composite digest under a SHA-256 signature is also wrong.
    msg2 = quote_attest(NONCE, [SHA256_SEL], PCRS, hash_alg=TpmAlg.SHA1)
    with pytest.raises(QuotePcrDigestMismatchError):
        verify_quote(area, msg2, sign(key, msg2), NONCE, PCRS)


def test_bad_magic() -> None:
    area, key = soft_ak()
    msg = quote_attest(NONCE, [SHA256_SEL], PCRS, magic=0xFF544348)
    with pytest.raises(QuoteBadMagicError) as exc:
        verify_quote(area, msg, sign(key, msg), NONCE, PCRS)
    assert exc.value.code == "quote.bad_magic"


def test_signature_scheme_must_match_ak() -> None:
    area, key = soft_ak()  # ECDSA/SHA-256 AK
    msg = quote_attest(NONCE, [SHA256_SEL], PCRS, hash_alg=TpmAlg.SHA384)
    with pytest.raises(QuoteBadSignatureError):
        verify_quote(area, msg, sign(key, msg, TpmAlg.SHA384), NONCE, PCRS)
    with pytest.raises(QuoteBadSignatureError):  # same math, but labelled EC-Schnorr
        msg1 = quote_attest(NONCE, [SHA256_SEL], PCRS)
        verify_quote(area, msg1, sign(key, msg1, sig_alg=TpmAlg.ECSCHNORR), NONCE, PCRS)
    # With a NULL scheme in the template the signature picks the hash, and the PCR composite
    # is hashed with it.
    free, free_key = soft_ak(scheme=Scheme())
    info = verify_quote(free, msg, sign(free_key, msg, TpmAlg.SHA384), NONCE, PCRS)
    assert info.hash_alg == TpmAlg.SHA384 and len(info.pcr_digest) == 48
    for bogus in (NullSignature().marshal(), HmacSignature(TpmAlg.SHA256, bytes(32)).marshal()):
        with pytest.raises(QuoteBadSignatureError):
            verify_quote(free, msg, bogus, NONCE, PCRS)


@pytest.mark.parametrize(
    ("attributes", "error", "code"),
    [
        (
            AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.RESTRICTED,
            AkNotRestrictedError,
            "attest.ak_not_restricted",
        ),
        (
            AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.FIXED_TPM,
            AkAttributesError,
            "attest.ak_attributes",
        ),
        (
            AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.FIXED_PARENT,
            AkAttributesError,
            "attest.ak_attributes",
        ),
        (
            AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.SENSITIVE_DATA_ORIGIN,
            AkAttributesError,
            "attest.ak_attributes",
        ),
        (
            AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.SIGN_ENCRYPT,
            AkNotSigningKeyError,
            "attest.ak_not_signing",
        ),
        (
            AK_REQUIRED_ATTRIBUTES | ObjectAttributes.DECRYPT,
            AkNotSigningKeyError,
            "attest.ak_not_signing",
        ),
    ],
)
def test_ak_attribute_checks(
    attributes: ObjectAttributes, error: type[AttestationError], code: str
) -> None:
    area, key = soft_ak(attributes=attributes)
    msg = quote_attest(NONCE, [SHA256_SEL], PCRS)
    with pytest.raises(error) as exc:
        verify_quote(area, msg, sign(key, msg), NONCE, PCRS)
    assert exc.value.code == code
    with pytest.raises(error):
        check_ak_public(area.marshal_tpm2b())


def test_errors_are_typed_attestation_or_input_errors() -> None:
    ak, msg, sig = quote_args("ecc")
    with pytest.raises(EcashError):
        verify_quote(ak[:-1], msg, sig, NONCE, PCRS)
    with pytest.raises(WireFormatError):
        verify_quote(ak, msg, sig[:-1], NONCE, PCRS)


# --- certify ---------------------------------------------------------------------------------


def certify_args() -> tuple[bytes, bytes, bytes]:
    return blob("ak-ecc.pub"), blob("certify-daa.msg"), blob("certify-daa.sig")


def test_recorded_certify_verifies() -> None:
    ak, msg, sig = certify_args()
    info = verify_certify(ak, msg, sig, CERTIFY_NONCE, blob("daa.pub"))
    daa = parse_tpm2b_public(blob("daa.pub"))
    assert info.certified_name == daa.name
    assert info.certified_public == daa
    assert info.ak_name == blob("ak-ecc.name")
    assert info.certified_qualified_name[:2] == b"\x00\x0b"


@pytest.mark.parametrize("other", ["unrestricted.pub", "ak-ecc.pub", "ak-rsa.pub", "ek-rsa.pub"])
def test_certify_of_another_key_rejected(other: str) -> None:
    ak, msg, sig = certify_args()
    with pytest.raises(CertifyNameMismatchError) as exc:
        verify_certify(ak, msg, sig, CERTIFY_NONCE, blob(other))
    assert exc.value.code == "certify.name_mismatch"


def test_certify_same_key_other_attributes_rejected() -> None:
    # Same point, different template (e.g. without fixedTPM): a different Name.
    daa = parse_tpm2b_public(blob("daa.pub"))
    raw = bytearray(daa.raw)
    raw[4:8] = int(daa.attributes & ~ObjectAttributes.FIXED_TPM).to_bytes(4, "big")
    ak, msg, sig = certify_args()
    with pytest.raises(CertifyNameMismatchError):
        verify_certify(ak, msg, sig, CERTIFY_NONCE, tpm2b(bytes(raw)))


def test_certify_wrong_nonce_type_and_signature() -> None:
    ak, msg, sig = certify_args()
    daa = blob("daa.pub")
    with pytest.raises(CertifyNonceMismatchError) as exc:
        verify_certify(ak, msg, sig, NONCE, daa)
    assert exc.value.code == "certify.nonce_mismatch"
    q_ak, q_msg, q_sig = quote_args("ecc")
    with pytest.raises(CertifyWrongTypeError) as exc2:
        verify_certify(q_ak, q_msg, q_sig, NONCE, daa)
    assert exc2.value.code == "certify.wrong_type"
    tampered = bytearray(msg)
    tampered[-1] ^= 1
    with pytest.raises(CertifyBadSignatureError) as exc3:
        verify_certify(ak, bytes(tampered), sig, CERTIFY_NONCE, daa)
    assert exc3.value.code == "certify.bad_signature"
    with pytest.raises(CertifyBadSignatureError):
        verify_certify(blob("ak-ecc384.pub"), msg, sig, CERTIFY_NONCE, daa)


def test_certify_by_non_restricted_key_refused() -> None:
    daa = parse_tpm2b_public(blob("daa.pub"))
    area, key = soft_ak(attributes=AK_REQUIRED_ATTRIBUTES & ~ObjectAttributes.RESTRICTED)
    msg = Attest(
        TPM_GENERATED_VALUE,
        AttestType.CERTIFY,
        b"",
        NONCE,
        ClockInfo(1, 1, 1, True),
        1,
        TpmsCertifyInfo(daa.name, daa.name),
    ).marshal()
    with pytest.raises(AkNotRestrictedError):
        verify_certify(area, msg, sign(key, msg), NONCE, daa)
    restricted, rkey = soft_ak()
    verify_certify(restricted, msg, sign(rkey, msg), NONCE, daa)


# --- key templates ---------------------------------------------------------------------------


def daa_check(public: bytes | PublicArea) -> PublicArea:
    return check_key_attributes(
        public,
        required=DAA_REQUIRED_ATTRIBUTES,
        forbidden=DAA_FORBIDDEN_ATTRIBUTES,
        key_type=TpmAlg.ECC,
        curve=EccCurve.BN_P256,
        scheme=TpmAlg.ECDAA,
        scheme_hash=TpmAlg.SHA256,
        name_alg=TpmAlg.SHA256,
    )


def test_daa_template_check() -> None:
    assert daa_check(blob("daa.pub")).ecc.curve == EccCurve.BN_P256
    with pytest.raises(KeyAttributesForbiddenError) as exc:
        daa_check(blob("ak-ecc.pub"))  # restricted
    assert exc.value.code == "attest.key_attributes_forbidden"
    with pytest.raises(KeyAttributesMissingError) as exc2:
        daa_check(blob("ek-rsa.pub"))  # no sign, no userWithAuth
    assert exc2.value.code == "attest.key_attributes_missing"
    p256_ecdaa, _ = soft_ak(
        attributes=DAA_REQUIRED_ATTRIBUTES, scheme=Scheme(TpmAlg.ECDAA, TpmAlg.SHA256)
    )
    with pytest.raises(KeyTypeMismatchError) as exc3:
        daa_check(p256_ecdaa)  # right scheme, wrong curve
    assert exc3.value.code == "attest.key_type_mismatch"
    ecdsa_key, _ = soft_ak(attributes=DAA_REQUIRED_ATTRIBUTES)
    with pytest.raises(KeyTypeMismatchError):
        check_key_attributes(ecdsa_key, scheme=TpmAlg.ECDAA)
    with pytest.raises(KeyTypeMismatchError):
        check_key_attributes(blob("ak-rsa.pub"), key_type=TpmAlg.ECC)
    with pytest.raises(KeyTypeMismatchError):
        check_key_attributes(blob("ek-ecc.pub"), name_alg=TpmAlg.SHA256)
