"""EK certificate chains: the recorded swtpm chain, and synthetic chains for each failure."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID

from ecash_tpm.attest import (
    EkBadSignatureError,
    EkCertificateExpiredError,
    EkCertificateMalformedError,
    EkCertificateNotYetValidError,
    EkIssuerNotCaError,
    EkPathLengthError,
    EkPublicMismatchError,
    EkTrustStoreError,
    EkUnknownRootError,
    ek_public_matches_certificate,
    load_ek_certificate,
    public_area_from_key,
    verify_ek_certificate,
)
from ecash_tpm.attest.wire import ObjectAttributes
from ecash_tpm.errors import EkCertificateError

DATA = Path(__file__).parents[2] / "data" / "attest"
ROOT = x509.load_pem_x509_certificate((DATA / "ca-root.pem").read_bytes())
INTERMEDIATE = x509.load_pem_x509_certificate((DATA / "ca-intermediate.pem").read_bytes())
EK_RSA_NV = (DATA / "ek-rsa.nv").read_bytes()
EK_ECC_NV = (DATA / "ek-ecc.nv").read_bytes()
# A fixed verification time inside every recorded certificate's validity: hermetic, whatever
# the clock of the machine running the tests says.
RECORDED_NOW = max(
    c.not_valid_before_utc
    for c in (ROOT, INTERMEDIATE, load_ek_certificate(EK_RSA_NV), load_ek_certificate(EK_ECC_NV))
) + dt.timedelta(seconds=1)


def blob(name: str) -> bytes:
    return (DATA / name).read_bytes()


# --- the recorded swtpm chain (root -> swtpm-localca -> EK) -----------------------------------


@pytest.mark.parametrize(("nv", "pub"), [("ek-rsa.nv", "ek-rsa.pub"), ("ek-ecc.nv", "ek-ecc.pub")])
def test_recorded_chain_accepted(nv: str, pub: str) -> None:
    cert = verify_ek_certificate(blob(nv), [ROOT], [INTERMEDIATE], now=RECORDED_NOW)
    area = ek_public_matches_certificate(cert, blob(pub))
    assert area.attributes & ObjectAttributes.RESTRICTED


def test_recorded_chain_accepts_der_and_pem_trust_inputs() -> None:
    der_root = ROOT.public_bytes(serialization.Encoding.DER)
    pem_inter = INTERMEDIATE.public_bytes(serialization.Encoding.PEM)
    verify_ek_certificate(EK_RSA_NV, [der_root], [pem_inter], now=RECORDED_NOW)


def test_recorded_chain_at_current_time() -> None:
    if dt.datetime.now(dt.UTC) < RECORDED_NOW:
        pytest.skip("this machine's clock is before the recording time")
    verify_ek_certificate(EK_ECC_NV, [ROOT], [INTERMEDIATE])


def test_nv_trailing_bytes_and_tcg_prefix_tolerated() -> None:
    padded = EK_RSA_NV + b"\xff" * 37
    assert load_ek_certificate(padded) == load_ek_certificate(EK_RSA_NV)
    verify_ek_certificate(padded, [ROOT], [INTERMEDIATE], now=RECORDED_NOW)
    prefixed = b"\x10\x01" + len(EK_ECC_NV).to_bytes(2, "big") + EK_ECC_NV + b"\0" * 5
    assert load_ek_certificate(prefixed) == load_ek_certificate(EK_ECC_NV)
    verify_ek_certificate(prefixed, [ROOT], [INTERMEDIATE], now=RECORDED_NOW)


def test_truncated_or_garbage_cert_malformed() -> None:
    for data in (EK_RSA_NV[:200], b"", b"\x30", b"not a cert", b"\x10\x01\x05\x00abc"):
        with pytest.raises(EkCertificateMalformedError) as exc:
            verify_ek_certificate(data, [ROOT], [INTERMEDIATE], now=RECORDED_NOW)
        assert exc.value.code == "ek.cert_malformed"


def test_other_root_rejected() -> None:
    other = make_ca("Some Other Root")
    with pytest.raises(EkUnknownRootError) as exc:
        verify_ek_certificate(EK_RSA_NV, [other.cert], [INTERMEDIATE], now=RECORDED_NOW)
    assert exc.value.code == "ek.unknown_root"


def test_same_name_other_key_root_rejected() -> None:
    # A second swtpm CA has the same names but another key: the key identifiers tell them apart.
    impostor = make_ca(ROOT.subject.rfc4514_string().split("=", 1)[1])
    with pytest.raises(EkUnknownRootError):
        verify_ek_certificate(EK_RSA_NV, [impostor.cert], [INTERMEDIATE], now=RECORDED_NOW)


def test_missing_intermediate_is_unknown_root() -> None:
    with pytest.raises(EkUnknownRootError):
        verify_ek_certificate(EK_RSA_NV, [ROOT], [], now=RECORDED_NOW)


def test_intermediate_alone_is_not_trusted_but_can_be_an_anchor() -> None:
    with pytest.raises(EkUnknownRootError):
        verify_ek_certificate(EK_RSA_NV, [make_ca("x").cert], [INTERMEDIATE, ROOT])
    # Pinning the intermediate as a trust anchor is the verifier's choice, and works.
    verify_ek_certificate(EK_RSA_NV, [INTERMEDIATE], [], now=RECORDED_NOW)


def test_recorded_chain_not_yet_valid() -> None:
    with pytest.raises(EkCertificateNotYetValidError) as exc:
        verify_ek_certificate(
            EK_RSA_NV, [ROOT], [INTERMEDIATE], now=RECORDED_NOW - dt.timedelta(days=1)
        )
    assert exc.value.code == "ek.cert_not_yet_valid"


def test_tampered_signature_rejected() -> None:
    cert = bytearray(EK_RSA_NV)
    cert[-5] ^= 0x01  # inside the signature BIT STRING at the end of the certificate
    with pytest.raises(EkBadSignatureError) as exc:
        verify_ek_certificate(bytes(cert), [ROOT], [INTERMEDIATE], now=RECORDED_NOW)
    assert exc.value.code == "ek.bad_signature"


def test_ek_public_mismatch() -> None:
    rsa_cert = load_ek_certificate(EK_RSA_NV)
    with pytest.raises(EkPublicMismatchError) as exc:
        ek_public_matches_certificate(rsa_cert, blob("ek-ecc.pub"))
    assert exc.value.code == "ek.public_mismatch"
    with pytest.raises(EkPublicMismatchError):
        ek_public_matches_certificate(EK_ECC_NV, blob("ek-rsa.pub"))
    other_rsa = public_area_from_key(
        rsa.generate_private_key(65537, 2048).public_key(),
        attributes=ObjectAttributes.RESTRICTED | ObjectAttributes.DECRYPT,
    )
    with pytest.raises(EkPublicMismatchError):
        ek_public_matches_certificate(rsa_cert, other_rsa)
    other_p384 = public_area_from_key(
        ec.generate_private_key(ec.SECP384R1()).public_key(),
        attributes=ObjectAttributes.RESTRICTED | ObjectAttributes.DECRYPT,
    )
    with pytest.raises(EkPublicMismatchError):
        ek_public_matches_certificate(EK_ECC_NV, other_p384)


def test_trust_store_errors_are_config_errors() -> None:
    with pytest.raises(EkTrustStoreError):
        verify_ek_certificate(EK_RSA_NV, [], [INTERMEDIATE])
    with pytest.raises(EkTrustStoreError):
        verify_ek_certificate(EK_RSA_NV, [b"garbage"], [INTERMEDIATE])


# --- synthetic chains built with cryptography ----------------------------------------------


NOW = dt.datetime(2030, 6, 1, tzinfo=dt.UTC)


class Ca:
    def __init__(
        self, cert: x509.Certificate, key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
    ) -> None:
        self.cert = cert
        self.key = key


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]) if cn else x509.Name([])


def _build(
    subject: str,
    public_key: rsa.RSAPublicKey | ec.EllipticCurvePublicKey,
    issuer: Ca | None,
    signing_key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey,
    *,
    ca: bool,
    path_length: int | None = None,
    key_cert_sign: bool = True,
    not_before: dt.datetime = NOW - dt.timedelta(days=365),
    not_after: dt.datetime = NOW + dt.timedelta(days=365),
    basic_constraints: bool = True,
    pss: bool = False,
) -> x509.Certificate:
    issuer_name = issuer.cert.subject if issuer else _name(subject)
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(subject))
        .issuer_name(issuer_name)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
    )
    if issuer is not None:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer.key.public_key()),
            critical=False,
        )
    if basic_constraints:
        builder = builder.add_extension(
            x509.BasicConstraints(ca=ca, path_length=path_length if ca else None), critical=True
        )
    builder = builder.add_extension(
        x509.KeyUsage(
            digital_signature=False,
            content_commitment=False,
            key_encipherment=not ca,
            data_encipherment=False,
            key_agreement=False,
            key_cert_sign=ca and key_cert_sign,
            crl_sign=False,
            encipher_only=False,
            decipher_only=False,
        ),
        critical=True,
    )
    if not ca:  # like swtpm: a critical SAN carrying TPM manufacturer attributes, empty subject
        builder = builder.add_extension(
            x509.SubjectAlternativeName(
                [
                    x509.DirectoryName(
                        x509.Name(
                            [x509.NameAttribute(x509.ObjectIdentifier("2.23.133.2.1"), "id:1014")]
                        )
                    )
                ]
            ),
            critical=True,
        )
    if pss and isinstance(signing_key, rsa.RSAPrivateKey):
        return builder.sign(
            signing_key,
            hashes.SHA256(),
            rsa_padding=padding.PSS(mgf=padding.MGF1(hashes.SHA256()), salt_length=32),
        )
    return builder.sign(signing_key, hashes.SHA256())


def make_ca(cn: str, issuer: Ca | None = None, *, ecc: bool = False, **kw: object) -> Ca:
    key: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey = (
        ec.generate_private_key(ec.SECP384R1()) if ecc else rsa.generate_private_key(65537, 2048)
    )
    signer = issuer.key if issuer else key
    cert = _build(cn, key.public_key(), issuer, signer, ca=True, **kw)  # type: ignore[arg-type]
    return Ca(cert, key)


def make_ek(issuer: Ca, **kw: object) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    key = ec.generate_private_key(ec.SECP256R1())
    cert = _build("", key.public_key(), issuer, issuer.key, ca=False, **kw)  # type: ignore[arg-type]
    return cert, key


def der(cert: x509.Certificate) -> bytes:
    return cert.public_bytes(serialization.Encoding.DER)


def verify(ek: x509.Certificate, roots: Sequence[Ca], inters: Sequence[Ca] = ()) -> None:
    verify_ek_certificate(der(ek), [r.cert for r in roots], [i.cert for i in inters], now=NOW)


@pytest.fixture(scope="module")
def chain() -> tuple[Ca, Ca]:
    root = make_ca("Test Root")
    return root, make_ca("Test Intermediate", root, ecc=True)


def test_synthetic_chain_ok_with_ecdsa_and_pss(chain: tuple[Ca, Ca]) -> None:
    root, inter = chain
    ek, key = make_ek(inter)  # signed with ECDSA P-384
    verify(ek, [root], [inter])
    pss_inter = make_ca("PSS Intermediate", root, pss=True)
    ek2, _ = make_ek(pss_inter)
    verify(ek2, [root], [pss_inter])
    area = public_area_from_key(
        key.public_key(), attributes=ObjectAttributes.RESTRICTED | ObjectAttributes.DECRYPT
    )
    ek_public_matches_certificate(ek, area.marshal_tpm2b())


def test_expired_ek(chain: tuple[Ca, Ca]) -> None:
    root, inter = chain
    ek, _ = make_ek(inter, not_after=NOW - dt.timedelta(days=1))
    with pytest.raises(EkCertificateExpiredError) as exc:
        verify(ek, [root], [inter])
    assert exc.value.code == "ek.cert_expired"


def test_expired_intermediate_and_root(chain: tuple[Ca, Ca]) -> None:
    root, _ = chain
    old_inter = make_ca("Old Intermediate", root, not_after=NOW - dt.timedelta(seconds=1))
    ek, _ = make_ek(old_inter)
    with pytest.raises(EkCertificateExpiredError):
        verify(ek, [root], [old_inter])
    old_root = make_ca("Old Root", not_after=NOW - dt.timedelta(days=2))
    ek2, _ = make_ek(old_root)
    with pytest.raises(EkCertificateExpiredError):
        verify(ek2, [old_root])


def test_far_future_now_expires_everything(chain: tuple[Ca, Ca]) -> None:
    root, inter = chain
    ek, _ = make_ek(inter)
    with pytest.raises(EkCertificateExpiredError):
        verify_ek_certificate(der(ek), [root.cert], [inter.cert], now=NOW + dt.timedelta(days=3650))


def test_not_yet_valid_ek(chain: tuple[Ca, Ca]) -> None:
    root, inter = chain
    ek, _ = make_ek(inter, not_before=NOW + dt.timedelta(hours=1))
    with pytest.raises(EkCertificateNotYetValidError):
        verify(ek, [root], [inter])


def test_issuer_not_ca(chain: tuple[Ca, Ca]) -> None:
    root, _ = chain
    # An end-entity certificate (cA=FALSE) used as an intermediate.
    leafish_key = rsa.generate_private_key(65537, 2048)
    leafish = Ca(
        _build("Not A CA", leafish_key.public_key(), root, root.key, ca=False), leafish_key
    )
    ek, _ = make_ek(leafish)
    with pytest.raises(EkIssuerNotCaError) as exc:
        verify(ek, [root], [leafish])
    assert exc.value.code == "ek.issuer_not_ca"
    no_bc = make_ca("No BasicConstraints", root, basic_constraints=False)
    ek2, _ = make_ek(no_bc)
    with pytest.raises(EkIssuerNotCaError):
        verify(ek2, [root], [no_bc])


def test_issuer_without_key_cert_sign(chain: tuple[Ca, Ca]) -> None:
    root, _ = chain
    inter = make_ca("No keyCertSign", root, key_cert_sign=False)
    ek, _ = make_ek(inter)
    with pytest.raises(EkIssuerNotCaError):
        verify(ek, [root], [inter])


def test_path_length() -> None:
    root = make_ca("PathLen0 Root", path_length=0)
    inter = make_ca("Under PathLen0", root)
    ek, _ = make_ek(inter)
    with pytest.raises(EkPathLengthError) as exc:
        verify(ek, [root], [inter])
    assert exc.value.code == "ek.path_length_exceeded"
    ek_direct, _ = make_ek(root)  # no intermediate: pathLen 0 is fine
    verify(ek_direct, [root])
    root1 = make_ca("PathLen1 Root", path_length=1)
    i1 = make_ca("I1", root1)
    i2 = make_ca("I2", i1)
    ek3, _ = make_ek(i2)
    with pytest.raises(EkPathLengthError):
        verify(ek3, [root1], [i1, i2])
    verify(make_ek(i1)[0], [root1], [i1])


def test_bad_signature_from_named_issuer(chain: tuple[Ca, Ca]) -> None:
    root, inter = chain
    ek, _ = make_ek(inter)
    raw = bytearray(der(ek))
    raw[-3] ^= 0x40
    with pytest.raises(EkBadSignatureError):
        verify_ek_certificate(bytes(raw), [root.cert], [inter.cert], now=NOW)


def test_wrong_ca_with_same_name_and_no_key_ids(chain: tuple[Ca, Ca]) -> None:
    root, _ = chain
    # Without key identifiers the name matches but the key does not verify: bad signature.
    key = rsa.generate_private_key(65537, 2048)
    bare = (
        x509.CertificateBuilder()
        .subject_name(_name("Bare"))
        .issuer_name(root.cert.subject)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=1))
        .sign(make_ca("imposter").key, hashes.SHA256())
    )
    with pytest.raises(EkBadSignatureError):
        verify_ek_certificate(der(bare), [root.cert], now=NOW)


def test_all_failures_are_ek_certificate_errors(chain: tuple[Ca, Ca]) -> None:
    root, inter = chain
    ek, _ = make_ek(inter)
    with pytest.raises(EkCertificateError):
        verify(ek, [make_ca("nobody")], [inter])
