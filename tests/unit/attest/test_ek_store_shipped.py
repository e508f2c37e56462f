"""The shipped EK trust store: every certificate usable or reported, the 7 non-canonical roots
read correctly, package data declared, and the docs table in step with the files."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import importlib.machinery
import importlib.util
import re
import tomllib
from pathlib import Path
from types import ModuleType

import pytest
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from support.ek_ca import MakerCa, make_ek, maker_name, nv_contents

from ecash_tpm.attest import EkBadSignatureError, EkUnknownRootError, verify_ek_certificate
from ecash_tpm.attest.certparse import parse_input, signature_verifies
from ecash_tpm.attest.ek_anchors import shipped_ek_anchors, shipped_ek_ca_files

REPO = Path(__file__).parents[3]
NONCANONICAL = {
    "NTC1.pem": ("NTC TPM EK Root CA 01", "rsa"),
    "NTC2.pem": ("NTC TPM EK Root CA 02", "rsa"),
    "NUVO_0100.pem": ("Nuvoton TPM Root CA 0100", "ec"),
    "NUVO_1110.pem": ("Nuvoton TPM Root CA 1110", "ec"),
    "NUVO_1111.pem": ("Nuvoton TPM Root CA 1111", "ec"),
    "NUVO_2110.pem": ("Nuvoton TPM Root CA 2110", "ec"),
    "NUVO_2111.pem": ("Nuvoton TPM Root CA 2111", "ec"),
}
# Hermetic: inside every shipped certificate's validity except the two copies of IFX CA 01.
AT = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)


def _files() -> dict[str, bytes]:
    return dict(shipped_ek_ca_files())


def test_shipped_store_has_every_file() -> None:
    files = _files()
    assert len(files) == 51
    assert set(NONCANONICAL) <= set(files)
    assert (REPO / "ecash_tpm" / "attest" / "ek_ca_store" / "README.md").is_file()


@pytest.mark.parametrize("now", [AT, None], ids=["fixed-date", "today"])
def test_every_certificate_is_usable_or_reported(now: dt.datetime | None) -> None:
    statuses = shipped_ek_anchors(now)
    assert len(statuses) == 51 and {s.source for s in statuses} == set(_files())
    for s in statuses:
        assert s.cert is not None, s.source  # all 51 parse, the non-canonical ones included
        assert s.usable or (s.reason and s.reason.strip()), s.source
    if now is AT:
        unusable = {s.source: s.reason for s in statuses if not s.usable}
        assert set(unusable) == {"IFX1.pem", "IFX_RSA_01I.pem"}
        assert all(r and r.startswith("expired at 2025-10-20") for r in unusable.values())


@pytest.mark.parametrize("name", sorted(NONCANONICAL))
def test_noncanonical_root_is_read_and_self_signature_checked_over_original(name: str) -> None:
    data = _files()[name]
    with pytest.raises(ValueError, match="InvalidSetOrdering"):
        x509.load_pem_x509_certificate(data)  # why this needs care
    (cert,) = parse_input(data)
    assert cert.reencoded
    cn, kind = NONCANONICAL[name]
    subject = cert.certificate.subject
    assert len(subject.rdns) == 1 and len(subject.rdns[0]) == 3  # one multi-valued RDN
    attrs = {a.oid: a.value for a in subject}
    assert attrs == {
        NameOID.COUNTRY_NAME: "TW",
        NameOID.ORGANIZATION_NAME: "Nuvoton Technology Corporation",
        NameOID.COMMON_NAME: cn,
    }
    assert cert.certificate.issuer == subject  # a root
    key = cert.certificate.public_key()
    if kind == "rsa":
        assert isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048
    else:
        assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    # fingerprint and TBS are the original bytes, not the re-encoded copy's
    b64 = re.search(rb"-----BEGIN CERTIFICATE-----(.+?)-----END", data, re.DOTALL)
    assert b64 is not None and cert.der == base64.b64decode(b"".join(b64.group(1).split()))
    assert cert.fingerprint == hashlib.sha256(cert.der).hexdigest()
    assert cert.der[4 : 4 + len(cert.tbs)] == cert.tbs
    assert cert.tbs != cert.certificate.tbs_certificate_bytes
    assert signature_verifies(cert, key)
    # ... while the same signature over the canonical copy does not verify
    canonical_tbs, sig = cert.certificate.tbs_certificate_bytes, cert.certificate.signature
    h = cert.certificate.signature_hash_algorithm
    assert h is not None
    with pytest.raises(InvalidSignature):
        if isinstance(key, rsa.RSAPublicKey):
            key.verify(sig, canonical_tbs, padding.PKCS1v15(), h)
        else:
            key.verify(sig, canonical_tbs, ec.ECDSA(h))


def test_real_noncanonical_anchor_is_found_by_name() -> None:
    """An EK naming Nuvoton Root CA 2110 as issuer is checked against that real root's key:
    signed by another key it is refused with ek.bad_signature, not ek.unknown_root."""
    (root,) = parse_input(_files()["NUVO_2110.pem"])
    impostor = MakerCa(b"", ec.generate_private_key(ec.SECP256R1()), root.certificate.subject)
    ek, _ = make_ek(impostor, now=AT)
    roots = [data for _, data in shipped_ek_ca_files()]
    with pytest.raises(EkBadSignatureError) as exc:
        verify_ek_certificate(nv_contents(ek), roots, now=AT)
    assert exc.value.code == "ek.bad_signature"
    assert "Nuvoton TPM Root CA 2110" in exc.value.detail["issuer"]
    stranger = MakerCa(b"", impostor.key, maker_name("Unknown Maker Root CA"))
    ek2, _ = make_ek(stranger, now=AT)
    with pytest.raises(EkUnknownRootError):
        verify_ek_certificate(ek2, roots, now=AT)


# --- package data and docs -----------------------------------------------------------------------


def test_package_data_is_declared() -> None:
    data = tomllib.loads((REPO / "pyproject.toml").read_text())
    globs = data["tool"]["setuptools"]["package-data"]["ecash_tpm.attest"]
    assert "ek_ca_store/*.pem" in globs and "ek_ca_store/README.md" in globs
    deps = " ".join(data["project"]["dependencies"])
    assert "asn1crypto" in deps


def _table_script() -> ModuleType:
    path = REPO / "scripts" / "ek_store_table"
    loader = importlib.machinery.SourceFileLoader("ek_store_table", str(path))
    spec = importlib.util.spec_from_loader("ek_store_table", loader)
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    loader.exec_module(module)
    return module


def test_docs_table_matches_shipped_files() -> None:
    script = _table_script()
    doc = (REPO / "docs" / "real-tpm.md").read_text(encoding="utf-8")
    assert "### Default EK trust store" in doc
    documented = script.documented_table(doc)
    assert documented is not None, "run scripts/ek_store_table --write"
    assert documented == script.render_table(), "run scripts/ek_store_table --write"
    for name, data in shipped_ek_ca_files():
        for cert in parse_input(data):
            assert f"| `{name}`" in documented and f"`{cert.fingerprint}`" in documented
    assert script.main(["--check"]) == 0
