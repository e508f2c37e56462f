"""The central bank root CA and party-certificate verification (ecash_tpm.centralbank)."""

from __future__ import annotations

import datetime as dt
import json
import os
import stat
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecash_tpm.centralbank.ca import (
    CaExistsError,
    CaNotFoundError,
    CaStateError,
    CentralBankCA,
    UnknownSerialError,
)
from ecash_tpm.crypto.signing import (
    PartyKey,
    public_key_bytes,
    sign_object,
    verify_object,
)
from ecash_tpm.errors import ForbiddenError, InputError
from ecash_tpm.pki import (
    ROLE_OIDS,
    ROLES,
    CertificateExpiredError,
    CertificateMalformedError,
    CertificateRevokedError,
    CertificateUntrustedError,
    CertificateWrongNameError,
    CertificateWrongRoleError,
    CrlInvalidError,
    PkiError,
    UnknownRoleError,
    certificate_fingerprint,
    verify_party_certificate,
)
from ecash_tpm.protocol.keysets import KEYSET_DESCRIPTOR_KIND

UTC = dt.UTC


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> CentralBankCA:
    return CentralBankCA.create(tmp_path_factory.mktemp("cb") / "ca")


@pytest.fixture(scope="module")
def other_ca(tmp_path_factory: pytest.TempPathFactory) -> CentralBankCA:
    # Same subject name as `ca`: only the signature tells them apart.
    return CentralBankCA.create(tmp_path_factory.mktemp("cb2") / "ca")


@pytest.fixture(scope="module")
def merchant_key() -> PartyKey:
    return PartyKey.generate()


def _code(exc: pytest.ExceptionInfo[Exception]) -> str:
    return getattr(exc.value, "code", "")


# --- lifecycle -------------------------------------------------------------------------------


def test_root_certificate_shape(ca: CentralBankCA) -> None:
    root = ca.root_certificate
    bc = root.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and bc.value.ca and bc.value.path_length == 0
    ku = root.extensions.get_extension_for_class(x509.KeyUsage)
    assert ku.critical and ku.value.key_cert_sign and ku.value.crl_sign
    assert not ku.value.digital_signature
    assert root.issuer == root.subject
    lifetime = root.not_valid_after_utc - root.not_valid_before_utc
    assert dt.timedelta(days=3649) < lifetime < dt.timedelta(days=3651)
    root.verify_directly_issued_by(root)
    assert isinstance(root.public_key(), ec.EllipticCurvePublicKey)


def test_create_and_reload_keep_root(tmp_path: Path) -> None:
    data = tmp_path / "ca"
    created = CentralBankCA.create(data)
    assert stat.S_IMODE(os.stat(data / "root-key.pem").st_mode) == 0o600
    assert stat.S_IMODE(os.stat(data).st_mode) == 0o700
    cert = created.certify("merchant", "shop-1", PartyKey.generate().public_key)
    created.revoke(cert.serial_number, "keyCompromise")

    loaded = CentralBankCA.load(data)
    assert loaded.root_certificate == created.root_certificate
    assert loaded.root_pem() == (data / "root-cert.pem").read_bytes()
    assert [r.serial for r in loaded.issued()] == [cert.serial_number]
    assert loaded.is_revoked(cert.serial_number)
    assert loaded.get(cert.serial_number).revocation_reason == "keyCompromise"
    # The reloaded CA still signs under the same root.
    verify_party_certificate(
        loaded.certify("bank", "bank-1", PartyKey.generate().public_key),
        created.root_certificate,
        role="bank",
        crl=loaded.crl(),
    )
    assert CentralBankCA.open(data).root_certificate == created.root_certificate


def test_create_refuses_existing_and_load_refuses_missing(tmp_path: Path) -> None:
    CentralBankCA.create(tmp_path / "ca")
    with pytest.raises(CaExistsError):
        CentralBankCA.create(tmp_path / "ca")
    with pytest.raises(CaNotFoundError):
        CentralBankCA.load(tmp_path / "nothing")
    opened = CentralBankCA.open(tmp_path / "fresh")
    assert (tmp_path / "fresh" / "root-key.pem").exists()
    assert opened.issued() == []


def test_load_detects_mismatched_key(tmp_path: Path) -> None:
    CentralBankCA.create(tmp_path / "a").close()
    CentralBankCA.create(tmp_path / "b").close()
    (tmp_path / "a" / "root-cert.pem").write_bytes((tmp_path / "b" / "root-cert.pem").read_bytes())
    with pytest.raises(CaStateError):
        CentralBankCA.load(tmp_path / "a")
    # The issuance log (now in the database) must belong to the root next to it.
    CentralBankCA.create(tmp_path / "c").close()
    (tmp_path / "b" / "centralbank.db").write_bytes(
        (tmp_path / "c" / "centralbank.db").read_bytes()
    )
    with pytest.raises(CaStateError):
        CentralBankCA.load(tmp_path / "b")
    (tmp_path / "c" / "centralbank.db").write_bytes(b"not a database" * 100)
    with pytest.raises(CaStateError):
        CentralBankCA.load(tmp_path / "c")


def test_state_is_in_the_database_and_has_no_secrets(ca: CentralBankCA) -> None:
    ca.certify("ttp", "ttp-json", PartyKey.generate().public_key)
    assert not (ca.data_dir / "state.json").exists()
    with ca.store.db.read() as tx:
        rows = [
            tx.fetchall("SELECT * FROM " + table)
            for table in ("cb_root", "cb_certificate", "cb_revocation", "cb_crl")
        ]
    assert any(r["name"] == "ttp-json" for r in rows[1])
    assert "PRIVATE" not in json.dumps(rows, default=lambda b: b.hex())


# --- issuance and verification ---------------------------------------------------------------


@pytest.mark.parametrize("role", sorted(ROLES))
def test_certify_and_verify_each_role(ca: CentralBankCA, role: str) -> None:
    key = PartyKey.generate()
    cert = ca.certify(role, f"{role}-1", key.public_key)
    got = verify_party_certificate(cert, ca.root_certificate, role=role, name=f"{role}-1")
    assert public_key_bytes(got) == key.public_key_bytes()
    # PEM and DER inputs work too.
    pem = cert.public_bytes(serialization.Encoding.PEM)
    der = cert.public_bytes(serialization.Encoding.DER)
    verify_party_certificate(pem, ca.root_pem(), role=role, crl=ca.crl())
    verify_party_certificate(der, ca.root_certificate, role=role)

    assert cert.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == role
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert eku.critical and list(eku.value) == [ROLE_OIDS[role]]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    assert bc.ca is False
    ku = cert.extensions.get_extension_for_class(x509.KeyUsage).value
    assert ku.digital_signature and not ku.key_cert_sign and not ku.crl_sign
    assert 0 < cert.serial_number < 2**159
    assert ca.get(cert.serial_number).role == role
    assert ca.get(cert.serial_number).fingerprint == certificate_fingerprint(pem)


def test_role_oids_are_under_the_placeholder_arc() -> None:
    dotted = {oid.dotted_string for oid in ROLE_OIDS.values()}
    assert len(dotted) == len(ROLE_OIDS)
    assert all(d.startswith("1.3.6.1.4.1.55555.1.1.") for d in dotted)


def test_serials_are_random_and_distinct(ca: CentralBankCA) -> None:
    pub = PartyKey.generate().public_key
    serials = {ca.certify("merchant", "m", pub).serial_number for _ in range(5)}
    assert len(serials) == 5
    assert max(serials).bit_length() > 140


def test_bank_keyset_is_not_a_certificate_role(ca: CentralBankCA) -> None:
    with pytest.raises(UnknownRoleError) as info:
        ca.certify(KEYSET_DESCRIPTOR_KIND, "keyset", PartyKey.generate().public_key)
    assert _code(info) == "cert.unknown_role"
    # The documented path: the certified bank key signs the descriptor.
    bank = PartyKey.generate()
    bank_cert = ca.certify("bank", "bank-1", bank.public_key)
    descriptor = {"currency": "EUR", "value": 100, "keyset_id": "AAAA"}
    doc = sign_object(bank, KEYSET_DESCRIPTOR_KIND, descriptor)
    bank_pub = verify_party_certificate(bank_cert, ca.root_certificate, role="bank")
    assert verify_object(doc, bank_pub, KEYSET_DESCRIPTOR_KIND) == descriptor


@pytest.mark.parametrize("role", ["", "Bank", "root", "ca", 7])
def test_unknown_roles_refused(ca: CentralBankCA, role: object) -> None:
    with pytest.raises(UnknownRoleError):
        ca.certify(role, "x", PartyKey.generate().public_key)  # type: ignore[arg-type]


def test_certify_input_validation(ca: CentralBankCA) -> None:
    pub = PartyKey.generate().public_key
    for name in ("", " lead", "x" * 65, "new\nline"):
        with pytest.raises(InputError):
            ca.certify("merchant", name, pub)
    with pytest.raises(InputError):
        ca.certify("merchant", "m", ec.generate_private_key(ec.SECP384R1()).public_key())
    for days in (0, -1, 10_000, True):
        with pytest.raises(InputError):
            ca.certify("merchant", "m", pub, valid_days=days)
    with pytest.raises(InputError) as info:
        ca.certify(  # would outlive the root
            "merchant",
            "m",
            pub,
            valid_days=3650,
            not_before=dt.datetime.now(UTC) + dt.timedelta(days=1),
        )
    assert _code(info) == "cert.invalid_validity"
    with pytest.raises(InputError):
        ca.certify("merchant", "m", pub, not_before=dt.datetime(2030, 1, 1))  # naive


def test_wrong_role_refused(ca: CentralBankCA, merchant_key: PartyKey) -> None:
    cert = ca.certify("merchant", "shop-1", merchant_key.public_key)
    for other in sorted(ROLES - {"merchant"}):
        with pytest.raises(CertificateWrongRoleError) as info:
            verify_party_certificate(cert, ca.root_certificate, role=other)
        assert _code(info) == "cert.wrong_role"
    with pytest.raises(UnknownRoleError):
        verify_party_certificate(cert, ca.root_certificate, role=KEYSET_DESCRIPTOR_KIND)


def test_wrong_name_refused(ca: CentralBankCA, merchant_key: PartyKey) -> None:
    cert = ca.certify("merchant", "shop-1", merchant_key.public_key)
    with pytest.raises(CertificateWrongNameError) as info:
        verify_party_certificate(cert, ca.root_certificate, role="merchant", name="shop-2")
    assert _code(info) == "cert.wrong_name"


def test_cert_from_another_ca_refused(
    ca: CentralBankCA, other_ca: CentralBankCA, merchant_key: PartyKey
) -> None:
    foreign = other_ca.certify("merchant", "shop-1", merchant_key.public_key)
    assert foreign.issuer == ca.root_certificate.subject  # same name, different key
    with pytest.raises(CertificateUntrustedError) as info:
        verify_party_certificate(foreign, ca.root_certificate, role="merchant")
    assert _code(info) == "cert.untrusted"
    assert isinstance(info.value, ForbiddenError) and info.value.http_status == 403


def test_expired_and_not_yet_valid_refused(ca: CentralBankCA, merchant_key: PartyKey) -> None:
    cert = ca.certify("merchant", "shop-1", merchant_key.public_key, valid_days=1)
    later = dt.datetime.now(UTC) + dt.timedelta(days=2)
    with pytest.raises(CertificateExpiredError) as info:
        verify_party_certificate(cert, ca.root_certificate, role="merchant", now=later)
    assert _code(info) == "cert.expired"

    start = dt.datetime.now(UTC) + dt.timedelta(days=30)
    future = ca.certify("merchant", "shop-1", merchant_key.public_key, not_before=start)
    with pytest.raises(CertificateExpiredError) as info:
        verify_party_certificate(future, ca.root_certificate, role="merchant")
    assert _code(info) == "cert.not_yet_valid"
    verify_party_certificate(
        future, ca.root_certificate, role="merchant", now=start + dt.timedelta(hours=1)
    )
    # Past the root's own lifetime nothing verifies.
    with pytest.raises(CertificateExpiredError):
        verify_party_certificate(
            future,
            ca.root_certificate,
            role="merchant",
            now=dt.datetime.now(UTC) + dt.timedelta(days=4000),
        )


def test_revoked_refused_via_crl(ca: CentralBankCA, merchant_key: PartyKey) -> None:
    cert = ca.certify("merchant", "shop-revoked", merchant_key.public_key)
    keep = ca.certify("merchant", "shop-kept", merchant_key.public_key)
    verify_party_certificate(cert, ca.root_certificate, role="merchant", crl=ca.crl())
    ca.revoke(cert.serial_number, x509.ReasonFlags.key_compromise)
    ca.revoke(cert.serial_number, "superseded")  # idempotent; first reason stands
    crl = ca.crl()
    with pytest.raises(CertificateRevokedError) as info:
        verify_party_certificate(cert, ca.root_certificate, role="merchant", crl=crl)
    assert _code(info) == "cert.revoked"
    pem_crl = crl.public_bytes(serialization.Encoding.PEM)
    with pytest.raises(CertificateRevokedError):
        verify_party_certificate(cert, ca.root_certificate, role="merchant", crl=pem_crl)
    verify_party_certificate(keep, ca.root_certificate, role="merchant", crl=crl)

    entry = crl.get_revoked_certificate_by_serial_number(cert.serial_number)
    assert entry is not None
    reason = entry.extensions.get_extension_for_class(x509.CRLReason).value.reason
    assert reason is x509.ReasonFlags.key_compromise
    assert ca.get(cert.serial_number).revocation_reason == "keyCompromise"


def test_crl_numbers_increase_and_crl_expires(ca: CentralBankCA) -> None:
    first = ca.crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    second = ca.crl().extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
    assert second == first + 1
    cert = ca.certify("ttp", "ttp-1", PartyKey.generate().public_key)
    crl = ca.crl(valid_for=dt.timedelta(hours=1))
    with pytest.raises(CrlInvalidError) as info:
        verify_party_certificate(
            cert,
            ca.root_certificate,
            role="ttp",
            crl=crl,
            now=dt.datetime.now(UTC) + dt.timedelta(hours=2),
        )
    assert _code(info) == "crl.stale" and info.value.http_status == 503


def test_revoke_errors(ca: CentralBankCA) -> None:
    with pytest.raises(UnknownSerialError):
        ca.revoke(12345)
    cert = ca.certify("opener", "opener-1", PartyKey.generate().public_key)
    with pytest.raises(InputError) as info:
        ca.revoke(cert.serial_number, "because")
    assert _code(info) == "crl.invalid_reason"
    with pytest.raises(InputError):
        ca.revoke(cert.serial_number, x509.ReasonFlags.remove_from_crl)
    assert not ca.is_revoked(cert.serial_number)


def test_forged_crl_refused(
    ca: CentralBankCA, other_ca: CentralBankCA, merchant_key: PartyKey
) -> None:
    cert = ca.certify("merchant", "shop-1", merchant_key.public_key)
    # other_ca has the same subject name, so only the signature check can catch this.
    forged = other_ca.crl()
    with pytest.raises(CrlInvalidError) as info:
        verify_party_certificate(cert, ca.root_certificate, role="merchant", crl=forged)
    assert _code(info) == "crl.invalid"
    with pytest.raises(CrlInvalidError):
        verify_party_certificate(cert, ca.root_certificate, role="merchant", crl=b"garbage")


def _forge_leaf(
    issuer_key: ec.EllipticCurvePrivateKey,
    issuer_name: x509.Name,
    subject_key: ec.EllipticCurvePublicKey,
    role: str,
    *,
    ou: str | None = None,
    eku_critical: bool = True,
    ca_flag: bool = False,
    ekus: list[x509.ObjectIdentifier] | None = None,
) -> x509.Certificate:
    now = dt.datetime.now(UTC)
    subject = x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "ecash-tpm"),
            x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, ou or role),
            x509.NameAttribute(NameOID.COMMON_NAME, "forged"),
        ]
    )
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer_name)
        .public_key(subject_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca_flag, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(True, False, False, False, False, ca_flag, ca_flag, False, False),
            critical=True,
        )
        .add_extension(
            x509.ExtendedKeyUsage(ekus if ekus is not None else [ROLE_OIDS[role]]),
            critical=eku_critical,
        )
        .sign(issuer_key, hashes.SHA256())
    )


def test_leaf_cannot_act_as_ca(ca: CentralBankCA, merchant_key: PartyKey) -> None:
    merchant_cert = ca.certify("merchant", "shop-1", merchant_key.public_key)
    victim = PartyKey.generate()
    # Issued "by" the merchant, with the merchant's subject as issuer name.
    by_merchant = _forge_leaf(
        merchant_key.private_key, merchant_cert.subject, victim.public_key, "bank"
    )
    with pytest.raises(CertificateUntrustedError):
        verify_party_certificate(by_merchant, ca.root_certificate, role="bank")
    # ... and with the root's name as issuer: the signature still gives it away.
    spoofed = _forge_leaf(
        merchant_key.private_key, ca.root_certificate.subject, victim.public_key, "bank"
    )
    with pytest.raises(CertificateUntrustedError):
        verify_party_certificate(spoofed, ca.root_certificate, role="bank")
    # A merchant leaf is no trust anchor either.
    with pytest.raises(CertificateUntrustedError):
        verify_party_certificate(by_merchant, merchant_cert, role="bank")


def test_role_fields_must_agree_and_be_strict(tmp_path: Path) -> None:
    """Even root-signed certificates are refused when OU/EKU disagree or look like a CA.

    The CA never issues these; the checks defend against a mis-issued or hand-made cert.
    """
    ca = CentralBankCA.create(tmp_path / "ca")
    root_key = PartyKey.load(tmp_path / "ca" / "root-key.pem").private_key
    root = ca.root_certificate
    pub = PartyKey.generate().public_key
    cases = {
        "ou_mismatch": _forge_leaf(root_key, root.subject, pub, "bank", ou="merchant"),
        "eku_not_critical": _forge_leaf(root_key, root.subject, pub, "bank", eku_critical=False),
        "ca_true": _forge_leaf(root_key, root.subject, pub, "bank", ca_flag=True),
        "two_roles": _forge_leaf(
            root_key, root.subject, pub, "bank", ekus=[ROLE_OIDS["bank"], ROLE_OIDS["merchant"]]
        ),
        "foreign_eku": _forge_leaf(
            root_key,
            root.subject,
            pub,
            "bank",
            ekus=[x509.ObjectIdentifier("1.3.6.1.5.5.7.3.1")],
        ),
    }
    for label, cert in cases.items():
        with pytest.raises(CertificateWrongRoleError):
            verify_party_certificate(cert, root, role="bank")
            pytest.fail(label)
    # Sanity: the same helper with consistent fields is accepted.
    verify_party_certificate(_forge_leaf(root_key, root.subject, pub, "bank"), root, role="bank")


def test_malformed_inputs(ca: CentralBankCA) -> None:
    for bad in (
        b"",
        b"not a cert",
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----",
    ):
        with pytest.raises(CertificateMalformedError) as info:
            verify_party_certificate(bad, ca.root_certificate, role="bank")
        assert _code(info) == "cert.malformed"
        assert info.value.http_status == 400
    with pytest.raises(InputError):
        verify_party_certificate(
            ca.certify("bank", "b", PartyKey.generate().public_key),
            ca.root_certificate,
            role="bank",
            now=dt.datetime(2030, 1, 1),  # naive
        )


def test_all_pki_errors_are_forbidden_errors() -> None:
    for cls in (
        CertificateUntrustedError,
        CertificateExpiredError,
        CertificateWrongRoleError,
        CertificateWrongNameError,
        CertificateRevokedError,
        CertificateMalformedError,
        CrlInvalidError,
    ):
        assert issubclass(cls, PkiError) and issubclass(cls, ForbiddenError)
    codes = {
        c.code
        for c in (
            CertificateUntrustedError,
            CertificateExpiredError,
            CertificateWrongRoleError,
            CertificateWrongNameError,
            CertificateRevokedError,
            CertificateMalformedError,
            CrlInvalidError,
        )
    }
    assert len(codes) == 7


# --- TLS certificates ----------------------------------------------------------------------------


def test_tls_identity_names_role_and_party() -> None:
    from ecash_tpm.pki import tls_identity

    assert tls_identity("bank", "bank-1") == "bank-1.bank.parties.ecash-tpm.internal"
    for bad in ("Bank", "bank.evil", "-bank", "bank-", "", "a" * 64, "shop 1"):
        with pytest.raises(InputError) as refused:
            tls_identity("bank", bad)
        assert _code(refused) == "pki.name_not_dns"
    with pytest.raises(UnknownRoleError):
        tls_identity("bank-keyset", "bank-1")


def test_tls_certificate_shape(ca: CentralBankCA, merchant_key: PartyKey) -> None:
    cert = ca.certify_tls(
        "merchant", "shop-1", merchant_key.public_key, hosts=("127.0.0.1", "Shop.Example", "::1")
    )
    subject = cert.subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)] == [
        "merchant"
    ]
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == ["shop-1"]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert not eku.critical  # TLS stacks must accept it
    assert set(eku.value) == {
        x509.oid.ExtendedKeyUsageOID.SERVER_AUTH,
        x509.oid.ExtendedKeyUsageOID.CLIENT_AUTH,
        ROLE_OIDS["merchant"],
    }
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == [
        "shop-1.merchant.parties.ecash-tpm.internal",
        "shop.example",
    ]
    assert [str(ip) for ip in san.get_values_for_type(x509.IPAddress)] == ["127.0.0.1", "::1"]
    bc = cert.extensions.get_extension_for_class(x509.BasicConstraints)
    assert bc.critical and not bc.value.ca
    # Logged, revocable, on the CRL like every certificate.
    assert cert.serial_number in {c.serial for c in ca.issued()}


def test_tls_and_signing_certificates_do_not_stand_in_for_each_other(
    ca: CentralBankCA, merchant_key: PartyKey
) -> None:
    from ecash_tpm.pki import verify_tls_peer

    tls = ca.certify_tls("merchant", "shop-1", merchant_key.public_key)
    signing = ca.certify("merchant", "shop-1", merchant_key.public_key)
    root = ca.root_pem()
    with pytest.raises(CertificateWrongRoleError):
        verify_party_certificate(tls, root, role="merchant", name="shop-1")
    assert verify_tls_peer(tls.public_bytes(serialization.Encoding.DER), root, role="merchant") == (
        "shop-1"
    )
    with pytest.raises(CertificateWrongRoleError) as wrong:
        verify_tls_peer(tls, root, role="bank")
    assert _code(wrong) == "cert.wrong_role"
    with pytest.raises(CertificateWrongRoleError):
        verify_tls_peer(signing, root, role="merchant")  # no TLS purposes


def test_verify_tls_peer_checks_root_validity_and_crl(
    ca: CentralBankCA, other_ca: CentralBankCA, merchant_key: PartyKey
) -> None:
    from ecash_tpm.pki import verify_tls_peer

    tls = ca.certify_tls("merchant", "shop-2", merchant_key.public_key)
    with pytest.raises(CertificateUntrustedError):
        verify_tls_peer(tls, other_ca.root_pem(), role="merchant")
    later = tls.not_valid_after_utc + dt.timedelta(seconds=1)
    with pytest.raises(CertificateExpiredError):
        verify_tls_peer(tls, ca.root_pem(), role="merchant", now=later)
    ca.revoke(tls.serial_number)
    with pytest.raises(CertificateRevokedError):
        verify_tls_peer(tls, ca.root_pem(), role="merchant", crl=ca.crl())


def test_certify_tls_refuses_names_and_hosts_it_cannot_encode(
    ca: CentralBankCA, merchant_key: PartyKey
) -> None:
    with pytest.raises(InputError) as not_dns:
        ca.certify_tls("merchant", "Shop One", merchant_key.public_key)
    assert _code(not_dns) == "pki.name_not_dns"
    for host in ("", "bücher.example"):
        with pytest.raises(InputError) as bad_host:
            ca.certify_tls("merchant", "shop-1", merchant_key.public_key, hosts=(host,))
        assert _code(bad_host) == "cert.invalid_host"


@pytest.mark.parametrize(
    "host",
    [
        "bank.bank.parties.ecash-tpm.internal",  # another party's identity
        "BANK.bank.parties.ecash-tpm.internal.",  # the same, in other case and rooted
        "*.bank.parties.ecash-tpm.internal",
        "*.example",
        "parties.ecash-tpm.internal",
    ],
)
def test_a_party_cannot_get_a_tls_certificate_that_answers_for_another(
    ca: CentralBankCA, merchant_key: PartyKey, host: str
) -> None:
    """Clients verify a server by its identity name only (role and party in one DNS name), so
    the central bank never puts a wildcard or a name of the identity domain into a certificate
    besides the party's own identity: a merchant's certificate can never pass as the bank's."""
    with pytest.raises(InputError) as refused:
        ca.certify_tls("merchant", "shop-1", merchant_key.public_key, hosts=(host,))
    assert _code(refused) == "cert.invalid_host"


def test_only_the_bank_may_also_answer_as_its_group_manager(
    ca: CentralBankCA, merchant_key: PartyKey
) -> None:
    """``bank serve --with-issuer`` serves the issuer from the bank's process, so the bank's
    certificate may carry the issuer's identity too; no other role and no other identity."""
    issuer = "issuer.issuer.parties.ecash-tpm.internal"
    cert = ca.certify_tls("bank", "bank", merchant_key.public_key, hosts=(issuer,))
    names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert set(names.get_values_for_type(x509.DNSName)) == {
        "bank.bank.parties.ecash-tpm.internal",
        issuer,
    }
    for role, host in (
        ("merchant", issuer),
        ("bank", "shop-1.merchant.parties.ecash-tpm.internal"),
    ):
        with pytest.raises(InputError) as refused:
            ca.certify_tls(role, "x", merchant_key.public_key, hosts=(host,))
        assert _code(refused) == "cert.invalid_host"
