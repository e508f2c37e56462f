"""EK chains through CAs that are not DER-canonical, and trust stores with unusable entries.

No manufacturer key is at hand, so a test CA is made non-canonical the way Nuvoton's roots are
(support.ek_ca): its one multi-valued RDN written out of SET order, the TBS signed again.
"""

from __future__ import annotations

import datetime as dt

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from support.ek_ca import NOW, MakerCa, make_ca, make_ek, make_noncanonical, maker_name, nv_contents

from ecash_tpm.attest import (
    EkBadSignatureError,
    EkCertificateMalformedError,
    EkTrustStoreError,
    EkUnknownRootError,
    ek_public_matches_certificate,
    load_ek_certificate,
    verify_ek_certificate,
)
from ecash_tpm.attest.certparse import parse_der, parse_input
from ecash_tpm.attest.ek import TCG_NV_CERT_TAG, parse_ek_certificate, verify_ek_chain
from ecash_tpm.attest.ek_anchors import assess_anchor, read_anchor_file


@pytest.fixture(scope="module")
def nc_root() -> MakerCa:
    return make_ca(maker_name("Test TPM Root CA 2110"), noncanonical=True)


def test_test_ca_is_refused_by_cryptography_like_nuvoton(nc_root: MakerCa) -> None:
    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        x509.load_der_x509_certificate(nc_root.der)
    cert = parse_der(nc_root.der)
    assert cert.reencoded and cert.der == nc_root.der
    assert cert.certificate.subject == maker_name("Test TPM Root CA 2110")
    assert assess_anchor(cert, NOW) is None  # self-signature verifies over the original TBS


@pytest.mark.parametrize("framing", ["der", "nv-padding", "tcg-prefix", "pem"])
def test_ek_under_noncanonical_root_verifies(nc_root: MakerCa, framing: str) -> None:
    ek, area = make_ek(nc_root)
    with pytest.raises(ValueError):
        x509.load_der_x509_certificate(ek)  # the EK carries the same non-canonical issuer
    blob = {
        "der": ek,
        "nv-padding": nv_contents(ek),
        "tcg-prefix": TCG_NV_CERT_TAG + len(ek).to_bytes(2, "big") + ek + b"\x00" * 9,
        "pem": parse_der(ek).pem(),
    }[framing]
    for roots in ([nc_root.der], [parse_der(nc_root.der).pem()], [parse_der(nc_root.der)]):
        cert = verify_ek_certificate(blob, roots, now=NOW)
        assert cert.issuer == nc_root.name
    chain = verify_ek_chain(blob, [nc_root.der], now=NOW)
    assert chain.anchor.der == nc_root.der and chain.path == (chain.anchor,)
    assert chain.leaf.der == ek  # framing removed, original bytes kept
    assert ek_public_matches_certificate(load_ek_certificate(blob), area) == area


def test_signature_is_checked_over_the_original_bytes(nc_root: MakerCa) -> None:
    """The canonical copy of a non-canonical EK (what cryptography would read) is not what
    the CA signed: presented as such it fails with ek.bad_signature."""
    ek, _ = make_ek(nc_root)
    canonical = parse_der(ek).certificate.public_bytes(Encoding.DER)
    assert canonical != ek
    with pytest.raises(EkBadSignatureError) as exc:
        verify_ek_certificate(canonical, [nc_root.der], now=NOW)
    assert exc.value.code == "ek.bad_signature"
    # and an EK whose non-canonical TBS was signed by another key fails the same way
    other = make_ca(maker_name("Test TPM Root CA 2110"))
    forged = make_noncanonical(parse_der(ek).certificate.public_bytes(Encoding.DER), other.key)
    with pytest.raises(EkBadSignatureError):
        verify_ek_certificate(forged, [nc_root.der], now=NOW)


def test_noncanonical_intermediate_under_canonical_root() -> None:
    root = make_ca(x509.Name([x509.NameAttribute(x509.NameOID.COMMON_NAME, "Plain Root")]))
    inter = make_ca(maker_name("Test NPCT ECC LeafCA 9"), root, noncanonical=True)
    ek, _ = make_ek(inter)
    chain = verify_ek_chain(nv_contents(ek), [root.der], [inter.der], now=NOW)
    assert [c.der for c in chain.path] == [inter.der, root.der] and chain.anchor.der == root.der
    # the intermediate alone, given as a trusted entry, is an anchor too
    chain = verify_ek_chain(ek, [inter.der], now=NOW)
    assert chain.anchor.der == inter.der


def test_unusable_entries_never_disable_the_others(nc_root: MakerCa) -> None:
    plain = make_ca(maker_name("Other Maker Root", org="Other Maker"))
    ek_nc, _ = make_ek(nc_root)
    ek_plain, _ = make_ek(plain, noncanonical=False)
    garbage = b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"
    roots = [b"garbage", garbage, b"\x30\x03\x02\x01\x00", nc_root.der, plain.pem()]
    for ek in (ek_nc, ek_plain):
        verify_ek_certificate(nv_contents(ek), roots, now=NOW)
    stranger = make_ca(maker_name("Stranger Root"))
    ek_s, _ = make_ek(stranger)
    with pytest.raises(EkUnknownRootError) as exc:
        verify_ek_certificate(ek_s, roots, now=NOW)
    assert len(exc.value.detail["unusable_trust_entries"]) == 3
    with pytest.raises(EkTrustStoreError) as err:
        verify_ek_certificate(ek_plain, [b"garbage", garbage])
    assert err.value.code == "ek.trust_store_invalid" and len(err.value.detail["unusable"]) == 2


def test_anchor_reasons() -> None:
    expired = make_ca(maker_name("Old Root"), not_after=NOW - dt.timedelta(days=1))
    future = make_ca(maker_name("Future Root"), not_before=NOW + dt.timedelta(days=1))
    not_ca = make_ca(maker_name("Not A CA"), ca=False)
    good = make_ca(maker_name("Good Root"), noncanonical=True)
    bundle = b"".join(c.pem() for c in (expired, future, not_ca, good))
    bundle += b"-----BEGIN CERTIFICATE-----\nbm9wZQ==\n-----END CERTIFICATE-----\n"
    reasons = [s.reason for s in read_anchor_file(bundle, "bundle.pem", NOW)]
    assert reasons[0] and reasons[0].startswith("expired at")
    assert reasons[1] and reasons[1].startswith("not valid before")
    assert reasons[2] == "not a CA (basicConstraints cA is not TRUE)"
    assert reasons[3] is None
    assert reasons[4] and "does not parse" in reasons[4]
    # a corrupted self-signature is a reason too, found over the original bytes
    broken = bytearray(good.der)
    broken[-3] ^= 0x01
    (status,) = read_anchor_file(bytes(broken), "broken.der", NOW)
    assert status.reason == "self-signature does not verify"
    assert read_anchor_file(b"", "empty.pem", NOW)[0].reason


def test_malformed_ek_keeps_its_code() -> None:
    with pytest.raises(EkCertificateMalformedError) as exc:
        parse_ek_certificate(b"\x30\x03\x02\x01\x00")
    assert exc.value.code == "ek.cert_malformed"
    with pytest.raises(EkCertificateMalformedError):
        parse_input(b"-----BEGIN CERTIFICATE-----\n!!\n-----END CERTIFICATE-----\n")
