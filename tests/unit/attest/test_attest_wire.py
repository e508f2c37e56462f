"""TPM wire structures: parsing recorded swtpm blobs, Names, marshalling, malformed input."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec, rsa

import ecash_tpm.attest
import ecash_tpm.attest.wire
from ecash_tpm.attest import (
    TPM_GENERATED_VALUE,
    AttestType,
    EccCurve,
    EccSignature,
    ObjectAttributes,
    PcrSelection,
    RsaSignature,
    TpmAlg,
    WireSizeError,
    WireTrailingDataError,
    WireTruncatedError,
    WireUnsupportedError,
    WireValueError,
    parse_attest,
    parse_name,
    parse_pcr_selection_list,
    parse_signature,
    parse_tpm2b_public,
    parse_tpmt_public,
    unwrap_attest,
)
from ecash_tpm.attest.wire import (
    HmacSignature,
    NullSignature,
    TpmsCertifyInfo,
    TpmsQuoteInfo,
    marshal_pcr_selection_list,
    tpm2b,
)
from ecash_tpm.errors import WireFormatError

DATA = Path(__file__).parents[2] / "data" / "attest"
META = json.loads((DATA / "meta.json").read_text())


def blob(name: str) -> bytes:
    return (DATA / name).read_bytes()


@pytest.mark.parametrize("key", ["ak-ecc", "ak-ecc384", "ak-rsa", "ak-rsapss"])
def test_ak_public_name_matches_tpm2_tools(key: str) -> None:
    area = parse_tpm2b_public(blob(f"{key}.pub"))
    assert area.name == blob(f"{key}.name")
    assert area.marshal_tpm2b() == blob(f"{key}.pub")
    needed = (
        ObjectAttributes.FIXED_TPM
        | ObjectAttributes.FIXED_PARENT
        | ObjectAttributes.SENSITIVE_DATA_ORIGIN
        | ObjectAttributes.RESTRICTED
        | ObjectAttributes.SIGN_ENCRYPT
    )
    assert area.attributes & needed == needed
    assert not area.attributes & ObjectAttributes.DECRYPT


def test_ak_keys_convert_to_cryptography() -> None:
    ecc = parse_tpm2b_public(blob("ak-ecc.pub"))
    assert ecc.type == TpmAlg.ECC and ecc.ecc.curve == EccCurve.NIST_P256
    assert ecc.ecc.scheme.scheme == TpmAlg.ECDSA and ecc.ecc.scheme.hash_alg == TpmAlg.SHA256
    key = ecc.to_crypto_key()
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    p384 = parse_tpm2b_public(blob("ak-ecc384.pub")).to_crypto_key()
    assert isinstance(p384, ec.EllipticCurvePublicKey) and p384.curve.name == "secp384r1"
    rsa_area = parse_tpm2b_public(blob("ak-rsa.pub"))
    rsa_key = rsa_area.to_crypto_key()
    assert isinstance(rsa_key, rsa.RSAPublicKey) and rsa_key.key_size == 2048
    assert rsa_key.public_numbers().e == 65537 and rsa_area.rsa.exponent == 0


def test_ek_publics() -> None:
    ek_rsa = parse_tpm2b_public(blob("ek-rsa.pub"))
    assert ek_rsa.type == TpmAlg.RSA and ek_rsa.rsa.key_bits == 2048
    assert ek_rsa.rsa.symmetric.algorithm == TpmAlg.AES and ek_rsa.rsa.symmetric.key_bits == 128
    storage = ObjectAttributes.RESTRICTED | ObjectAttributes.DECRYPT
    assert ek_rsa.attributes & storage == storage
    # The high-range P-384 EK: SHA-384 nameAlg and AES-256 (EK profile template H-3).
    ek_ecc = parse_tpm2b_public(blob("ek-ecc.pub"))
    assert ek_ecc.name_alg == TpmAlg.SHA384
    assert ek_ecc.ecc.curve == EccCurve.NIST_P384
    assert ek_ecc.ecc.symmetric.key_bits == 256 and ek_ecc.ecc.symmetric.mode == TpmAlg.CFB
    assert len(ek_ecc.auth_policy) == 48
    assert ek_ecc.name[:2] == b"\x00\x0c" and len(ek_ecc.name) == 50


def test_daa_key_bn_p256() -> None:
    daa = parse_tpm2b_public(blob("daa.pub"))
    assert daa.ecc.curve == EccCurve.BN_P256
    assert daa.ecc.scheme.scheme == TpmAlg.ECDAA and daa.ecc.scheme.hash_alg == TpmAlg.SHA256
    x, y = daa.ecc_point().as_ints()
    p = 0xFFFFFFFFFFFCF0CD46E5F25EEE71A49F0CDC65FB12980A82D3292DDBAED33013
    assert (y * y - x * x * x - 3) % p == 0
    with pytest.raises(WireUnsupportedError):
        daa.to_crypto_key()  # no BN curves in cryptography: the caller must use its own math


def test_quote_attest_structure() -> None:
    att = parse_attest(blob("quote-ecc.msg"))
    assert att.magic == TPM_GENERATED_VALUE and att.type == AttestType.QUOTE
    assert att.extra_data == bytes.fromhex(META["nonce"])
    assert isinstance(att.attested, TpmsQuoteInfo)
    (sel,) = att.attested.pcr_select
    assert sel.hash_alg == TpmAlg.SHA256 and sel.indices == (0, 1, 2, 3, 7, 16)
    assert len(att.attested.pcr_digest) == 32
    assert att.marshal() == blob("quote-ecc.msg")
    assert att.qualified_signer[:2] == b"\x00\x0b"


def test_certify_attest_structure() -> None:
    att = parse_attest(blob("certify-daa.msg"))
    assert att.type == AttestType.CERTIFY
    assert isinstance(att.attested, TpmsCertifyInfo)
    assert att.attested.name == parse_tpm2b_public(blob("daa.pub")).name
    assert att.marshal() == blob("certify-daa.msg")


def test_signatures_parse_and_roundtrip() -> None:
    for name, cls, alg in [
        ("quote-ecc.sig", EccSignature, TpmAlg.ECDSA),
        ("quote-ecc384.sig", EccSignature, TpmAlg.ECDSA),
        ("quote-rsa.sig", RsaSignature, TpmAlg.RSASSA),
        ("quote-rsapss.sig", RsaSignature, TpmAlg.RSAPSS),
        ("ecdaa.sig", EccSignature, TpmAlg.ECDAA),
    ]:
        sig = parse_signature(blob(name))
        assert isinstance(sig, cls) and sig.sig_alg == alg
        assert sig.marshal() == blob(name)
    ecdaa = parse_signature(blob("ecdaa.sig"))
    assert isinstance(ecdaa, EccSignature) and ecdaa.hash_alg == TpmAlg.SHA256
    assert 0 < len(ecdaa.r) <= 32 and len(ecdaa.s) <= 32


def test_null_and_hmac_signatures() -> None:
    assert parse_signature(b"\x00\x10") == NullSignature()
    hmac_sig = HmacSignature(TpmAlg.SHA256, bytes(range(32)))
    assert parse_signature(hmac_sig.marshal()) == hmac_sig
    with pytest.raises(WireTruncatedError):
        parse_signature(hmac_sig.marshal()[:-1])


def test_tpm2b_attest_is_unwrapped() -> None:
    raw = blob("quote-ecc.msg")
    assert unwrap_attest(tpm2b(raw)) == raw
    assert unwrap_attest(raw) == raw
    with pytest.raises(WireTrailingDataError):
        unwrap_attest(tpm2b(raw) + b"\0")


def test_pcr_selection_helpers() -> None:
    sel = PcrSelection.of(TpmAlg.SHA256, [16, 0, 7, 7])
    assert sel.select == bytes([0x81, 0x00, 0x01]) and sel.indices == (0, 7, 16)
    data = marshal_pcr_selection_list([sel, PcrSelection.of(TpmAlg.SHA1, [])])
    assert parse_pcr_selection_list(data) == (sel, PcrSelection(TpmAlg.SHA1, b"\0\0\0"))
    with pytest.raises(WireValueError):
        PcrSelection.of(TpmAlg.SHA256, [-1])


def test_names() -> None:
    alg, digest = parse_name(blob("ak-ecc.name"))
    assert alg == TpmAlg.SHA256 and len(digest) == 32
    with pytest.raises(WireTruncatedError):
        parse_name(blob("ak-ecc.name")[:-1])
    with pytest.raises(WireTrailingDataError):
        parse_name(blob("ak-ecc.name") + b"\0")
    with pytest.raises(WireUnsupportedError):
        parse_name(b"\x00\x01" + bytes(32))  # TPM_ALG_RSA is not a hash


# --- malformed input: distinct, typed errors -------------------------------------------------


def test_truncated_and_trailing() -> None:
    pub = blob("ak-ecc.pub")
    with pytest.raises(WireTruncatedError) as exc:
        parse_tpm2b_public(pub[:-1])
    assert exc.value.code == "wire.truncated"
    with pytest.raises(WireTrailingDataError) as exc2:
        parse_tpm2b_public(pub + b"\0")
    assert exc2.value.code == "wire.trailing_data"
    # Inner size says more than the TPMT_PUBLIC holds: trailing bytes inside the TPM2B.
    inner = pub[2:] + b"\0"
    with pytest.raises(WireTrailingDataError):
        parse_tpm2b_public(tpm2b(inner))
    for cut in range(len(blob("quote-ecc.msg"))):
        with pytest.raises(WireFormatError):
            parse_attest(blob("quote-ecc.msg")[:cut])


def test_oversized_tpm2b_refused() -> None:
    pub = bytearray(blob("ak-ecc.pub")[2:])
    pub[8:10] = (65).to_bytes(2, "big")  # authPolicy size > 64 (largest digest)
    with pytest.raises(WireSizeError) as exc:
        parse_tpmt_public(bytes(pub))
    assert exc.value.code == "wire.bad_size"


def test_unknown_algorithms_refused() -> None:
    pub = bytearray(blob("ak-ecc.pub")[2:])
    pub[0:2] = b"\x77\x77"
    with pytest.raises(WireUnsupportedError) as exc:
        parse_tpmt_public(bytes(pub))
    assert exc.value.code == "wire.unsupported"
    att = bytearray(blob("quote-ecc.msg"))
    att[4:6] = b"\x80\x1b"  # not an attestation type
    with pytest.raises(WireUnsupportedError):
        parse_attest(bytes(att))
    with pytest.raises(WireUnsupportedError):
        parse_signature(b"\x00\x06\x00\x0b")  # AES is not a signature algorithm


def test_invalid_values_refused() -> None:
    att = bytearray(blob("quote-ecc.msg"))
    # clockInfo.safe sits after magic(4) type(2) qualifiedSigner(2+34) extraData(2+32) and 16
    safe_at = 4 + 2 + 2 + 34 + 2 + 32 + 16
    assert att[safe_at] in (0, 1)
    att[safe_at] = 2
    with pytest.raises(WireValueError):
        parse_attest(bytes(att))
    # An ECC point that is not on the curve.
    ecc = parse_tpm2b_public(blob("ak-ecc.pub"))
    raw = bytearray(ecc.raw)
    raw[-1] ^= 1
    with pytest.raises(WireValueError):
        parse_tpmt_public(bytes(raw)).to_crypto_key()


def test_non_bytes_refused() -> None:
    with pytest.raises(WireValueError):
        parse_attest("ff544347")  # type: ignore[arg-type]


def test_verifier_package_never_imports_a_tpm_library() -> None:
    """The verifier must stay pure (DESIGN §8): checked in a fresh interpreter."""
    import subprocess
    import sys

    code = (
        "import sys, ecash_tpm.attest\n"
        "bad = sorted(m for m in sys.modules if m.startswith(('tpm2_pytss', 'tss2')))\n"
        "print(','.join(bad))\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=60
    )
    assert out.stdout.strip() == ""
    package = Path(__file__).parents[3] / "ecash_tpm" / "attest"
    for source in package.rglob("*.py"):
        text = source.read_text()
        assert "import tpm2_pytss" not in text and "from tpm2_pytss" not in text, source


@pytest.mark.parametrize(
    ("doc", "marker"),
    [
        (ecash_tpm.attest.__doc__, "Example -- verify a quote"),
        (ecash_tpm.attest.wire.__doc__, "Example -- model a software key"),
    ],
    ids=["attest", "wire"],
)
def test_package_docstring_example_runs(doc: str | None, marker: str) -> None:
    """The examples in the package docstrings are what a newcomer copies: they must run."""
    assert doc is not None and marker in doc
    block = doc.split(marker, 1)[1].split("::\n", 1)[1]
    lines = []
    for line in block.splitlines():
        if line.strip() and not line.startswith("    "):
            break
        lines.append(line)
    code = textwrap.dedent("\n".join(lines))
    assert "verify_quote" in code or "parse_tpm2b_public" in code
    exec(compile(code, f"<{marker}>", "exec"), {})
