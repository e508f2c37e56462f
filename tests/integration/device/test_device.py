"""The TPM device layer against a real swtpm: EKs, AK, PCRs, quotes, credential activation."""

from __future__ import annotations

import hashlib
import os
import struct
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.device import (
    EkCertificateMissingError,
    EkKind,
    KeyBlobError,
    TpmArgumentError,
    TpmCommandError,
    TpmConnectionError,
    TpmDevice,
)
from ecash_tpm.device.constants import (
    AK_ATTRIBUTES,
    POLICY_A_SHA256,
    POLICY_B_SHA384,
    policy_or,
)
from ecash_tpm.device.tpm import (
    ESYS_TR,
    TPM2_ALG,
    TPM2_SE,
    TPM2B_PUBLIC,
    TPM2B_SENSITIVE_CREATE,
    TPMT_PUBLIC,
    TPMT_SYM_DEF,
)

pytestmark = pytest.mark.swtpm


def _spki(public: bytes) -> bytes:
    pub, _ = TPM2B_PUBLIC.unmarshal(public)
    return pub.publicArea.to_der()


def _transients(dev: TpmDevice) -> list[int]:
    return dev._handles(0x80000000)


# --- constants -----------------------------------------------------------------------------


def test_ek_policy_digests_match_tcg_profile() -> None:
    assert POLICY_A_SHA256.hex() == (
        "837197674484b3f81a90cc8d46a5d724fd52d76e06520b64f2a1da1b331469aa"
    )
    assert POLICY_B_SHA384.hex() == (
        "b26e7d28d11a50bc53d882bcf5fd3a1a074148bb35d3b4e4cb1c0ad9bde419ca"
        "cb47ba09699646150f9fc000f3f80e12"
    )
    assert policy_or("sha256", b"\0" * 32) != policy_or("sha256", b"\1" * 32)


# --- info and EKs --------------------------------------------------------------------------


def test_info(tpm: TpmDevice) -> None:
    info = tpm.info()
    assert info.manufacturer == "IBM"
    assert "sha256" in info.pcr_banks
    assert info.ecdaa_supported and info.bn_p256_supported
    assert list(info.ek_certificates) == [EkKind.RSA_2048, EkKind.ECC_P384]
    d = info.to_dict()
    assert d["ek_types"] == ["rsa2048", "ecc_p384"] and d["spec_version"].startswith("2.0")


@pytest.mark.parametrize("kind", [EkKind.RSA_2048, EkKind.ECC_P384])
def test_ek_certificate_matches_template_key(tpm: TpmDevice, swtpm, kind: EkKind) -> None:
    raw = tpm.ek_certificate(kind)
    cert = x509.load_der_x509_certificate(raw)
    _roots, inters = swtpm.ca_certificates()
    cert.verify_directly_issued_by(inters[0])
    ek = tpm.ek(kind)
    assert ek.role == f"ek:{kind.value}"
    assert tpm.ek_public(kind) == ek.public
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert spki == _spki(ek.public)
    pub, _ = TPM2B_PUBLIC.unmarshal(ek.public)
    expected = 0x000300F2 if kind is EkKind.ECC_P384 else 0x000300B2
    assert int(pub.publicArea.objectAttributes) == expected


def test_ecc_p256_ek_without_certificate(tpm: TpmDevice) -> None:
    assert EkKind.ECC_P256 not in tpm.ek_kinds_present()
    with pytest.raises(EkCertificateMissingError) as err:
        tpm.ek_certificate(EkKind.ECC_P256)
    assert err.value.code == "tpm.ek_cert_missing"
    ek = tpm.ek(EkKind.ECC_P256)  # the template still works
    assert ek.point is not None and len(ek.point) == 65


def test_no_transients_left_behind(tpm: TpmDevice, tpm_data_dir: Path) -> None:
    tpm.ek(EkKind.RSA_2048)
    ak = tpm.load_or_create_ak(tpm_data_dir)
    assert len(_transients(tpm)) == 1  # only the AK stays loaded
    tpm.unload(ak)
    assert _transients(tpm) == []


def test_leftover_transients_are_flushed_at_open(swtpm) -> None:
    with TpmDevice(swtpm.tcti) as dev:
        dev.esys.create_primary(TPM2B_SENSITIVE_CREATE(), "ecc256", ESYS_TR.OWNER)
        for kind in (TPM2_SE.POLICY, TPM2_SE.HMAC):
            dev.esys.start_auth_session(
                ESYS_TR.NONE, ESYS_TR.NONE, kind, TPMT_SYM_DEF(algorithm=TPM2_ALG.NULL),
                TPM2_ALG.SHA256,
            )  # fmt: skip
    with TpmDevice(swtpm.tcti, flush_leftovers=False) as dev:
        assert len(_transients(dev)) == 1  # survived the connection (no resource manager)
        assert len(dev._handles(0x02000000)) == 2  # policy (0x03..) and HMAC (0x02..) sessions
        assert dev.flush_leftovers() == 3
        assert _transients(dev) == [] and dev._handles(0x02000000) == []


def test_connection_error_is_typed(tmp_path: Path) -> None:
    import socket

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    with pytest.raises(TpmConnectionError) as err:
        TpmDevice(f"swtpm:host=127.0.0.1,port={port}")
    assert err.value.code == "tpm.connect_failed"


# --- AK persistence ------------------------------------------------------------------------


def test_ak_blobs_persist(swtpm, tmp_path: Path) -> None:
    with TpmDevice(swtpm.tcti) as dev:
        ak = dev.load_or_create_ak(tmp_path)
        assert dev.load_or_create_ak(tmp_path) is ak  # cached while open
    assert (tmp_path / "ak.pub").read_bytes() == ak.public
    assert (tmp_path / "ak.priv").stat().st_mode & 0o077 == 0
    pub, _ = TPM2B_PUBLIC.unmarshal(ak.public)
    area: TPMT_PUBLIC = pub.publicArea
    assert int(area.objectAttributes) == AK_ATTRIBUTES
    assert len(ak.point) == 65
    with TpmDevice(swtpm.tcti) as dev:
        again = dev.load_or_create_ak(tmp_path)
        assert again.name == ak.name and again.public == ak.public


def test_ak_blob_errors(tpm: TpmDevice, tmp_path: Path) -> None:
    (tmp_path / "ak.pub").write_bytes(b"\x00\x01")
    with pytest.raises(KeyBlobError):  # missing pair
        tpm.load_or_create_ak(tmp_path)
    (tmp_path / "ak.priv").write_bytes(b"\x00\x01\x02")
    with pytest.raises(KeyBlobError) as err:  # garbage
        tpm.load_or_create_ak(tmp_path)
    assert err.value.code == "tpm.key_blob_invalid"
    # a DAA key's blobs renamed to AK blobs are refused by template
    daa_dir = tmp_path / "daa"
    daa = tpm.load_or_create_daa_key(daa_dir)
    tpm.unload(daa)
    (tmp_path / "ak.pub").write_bytes((daa_dir / "daa.pub").read_bytes())
    (tmp_path / "ak.priv").write_bytes((daa_dir / "daa.priv").read_bytes())
    with pytest.raises(KeyBlobError, match="template"):
        tpm.load_or_create_ak(tmp_path)


def test_ak_blob_foreign(swtpm, swtpm_factory, tmp_path: Path) -> None:
    other = swtpm_factory()
    try:
        with TpmDevice(other.tcti) as dev:
            dev.load_or_create_ak(tmp_path)
    finally:
        other.stop()
    with TpmDevice(swtpm.tcti) as dev, pytest.raises(KeyBlobError) as err:
        dev.load_or_create_ak(tmp_path)
    assert "rc" in err.value.detail


# --- PCRs and quotes -----------------------------------------------------------------------


def test_pcr_extend_changes_reads(tpm: TpmDevice) -> None:
    before = tpm.pcr_read([16, 23])
    data = hashlib.sha256(b"ecash-tpm test").digest()
    tpm.pcr_extend(16, data)
    after = tpm.pcr_read([16, 23])
    assert after[16] == hashlib.sha256(before[16] + data).digest()
    assert after[23] == before[23]
    assert len(tpm.pcr_read(range(24))) == 24
    with pytest.raises(TpmArgumentError):
        tpm.pcr_extend(16, b"short")
    with pytest.raises(TpmArgumentError):
        tpm.pcr_read([24])


def _checkquote(
    tmp: Path,
    ak_point: bytes,
    attest: bytes,
    sig: bytes,
    values: bytes,
    pcrs: list[int],
    nonce: bytes,
) -> subprocess.CompletedProcess[bytes]:
    key = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), ak_point)
    (tmp / "ak.pem").write_bytes(
        key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    (tmp / "msg").write_bytes(attest)
    (tmp / "sig").write_bytes(sig)
    (tmp / "pcrs").write_bytes(values)
    return subprocess.run(
        ["tpm2_checkquote", "-u", str(tmp / "ak.pem"), "-m", str(tmp / "msg"),
         "-s", str(tmp / "sig"), "-f", str(tmp / "pcrs"), "-F", "values",
         "-l", "sha256:" + ",".join(map(str, pcrs)), "-g", "sha256", "-q", nonce.hex()],
        capture_output=True,
        timeout=30,
    )  # fmt: skip


@pytest.mark.tpm2tools
def test_quote_passes_tpm2_checkquote(tpm: TpmDevice, tpm_data_dir: Path, tmp_path: Path) -> None:
    ak = tpm.load_or_create_ak(tpm_data_dir)
    pcrs = [0, 7, 16]
    nonce = os.urandom(32)
    attest, sig = tpm.quote(ak, pcrs, nonce)
    assert attest[:4] == b"\xffTCG" and attest[4:6] == b"\x80\x18"  # magic, TPM_ST_ATTEST_QUOTE
    values = tpm.pcr_read(pcrs)
    good = _checkquote(tmp_path, ak.point, attest, sig, b"".join(values[i] for i in pcrs),
                       pcrs, nonce)  # fmt: skip
    assert good.returncode == 0, good.stderr
    wrong_nonce = _checkquote(tmp_path, ak.point, attest, sig,
                              b"".join(values[i] for i in pcrs), pcrs, os.urandom(32))  # fmt: skip
    assert wrong_nonce.returncode != 0
    wrong_pcr = _checkquote(tmp_path, ak.point, attest, sig, bytes(32 * 3), pcrs, nonce)
    assert wrong_pcr.returncode != 0


def test_quote_and_certify_shapes(tpm: TpmDevice, tpm_data_dir: Path) -> None:
    ak = tpm.load_or_create_ak(tpm_data_dir)
    daa = tpm.load_or_create_daa_key(tpm_data_dir)
    with pytest.raises(TpmArgumentError):
        tpm.quote(ak, [0], bytes(33))
    with pytest.raises(TpmArgumentError):
        tpm.quote(daa, [0], b"")  # not the AK
    attest, sig = tpm.certify(daa, ak, b"q" * 32)
    assert attest[:4] == b"\xffTCG" and attest[4:6] == b"\x80\x17"  # TPM_ST_ATTEST_CERTIFY
    assert daa.name in attest
    assert sig[:2] == b"\x00\x18" and sig[2:4] == b"\x00\x0b"  # ECDSA, SHA-256


# --- credential activation -----------------------------------------------------------------


def _make_credential(
    tmp: Path, ek_public: bytes, ak_name: bytes, secret: bytes
) -> tuple[bytes, bytes]:
    """tpm2_makecredential offline; returns (TPM2B_ID_OBJECT, TPM2B_ENCRYPTED_SECRET) bytes."""
    (tmp / "ek.pub").write_bytes(ek_public)
    (tmp / "secret").write_bytes(secret)
    res = subprocess.run(
        ["tpm2_makecredential", "-T", "none", "-u", str(tmp / "ek.pub"), "-s", str(tmp / "secret"),
         "-n", ak_name.hex(), "-o", str(tmp / "cred")],
        capture_output=True,
        timeout=30,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    raw = (tmp / "cred").read_bytes()
    magic, version = struct.unpack(">II", raw[:8])
    assert (magic, version) == (0xBADCC0DE, 1)
    size = int.from_bytes(raw[8:10], "big")
    return raw[8 : 10 + size], raw[10 + size :]


@pytest.mark.tpm2tools
@pytest.mark.parametrize("kind", [EkKind.RSA_2048, EkKind.ECC_P384, EkKind.ECC_P256])
def test_activate_credential_round_trip(
    tpm: TpmDevice, tpm_data_dir: Path, tmp_path: Path, kind: EkKind
) -> None:
    ak = tpm.load_or_create_ak(tpm_data_dir)
    secret = os.urandom(32)
    blob, enc = _make_credential(tmp_path, tpm.ek_public(kind), ak.name, secret)
    assert tpm.activate_credential(ak, kind, blob, enc) == secret
    assert tpm.activate_credential(ak, tpm.ek(kind), blob, enc) == secret
    assert _transients(tpm) == [int(tpm.esys.tr_get_tpm_handle(ak.esys_handle))]


@pytest.mark.tpm2tools
def test_activate_credential_refuses_other_name(
    tpm: TpmDevice, tpm_data_dir: Path, tmp_path: Path
) -> None:
    ak = tpm.load_or_create_ak(tpm_data_dir)
    wrong_name = ak.name[:2] + hashlib.sha256(b"another key").digest()
    blob, enc = _make_credential(tmp_path, tpm.ek_public(EkKind.RSA_2048), wrong_name, b"s" * 16)
    with pytest.raises(TpmCommandError) as err:
        tpm.activate_credential(ak, EkKind.RSA_2048, blob, enc)
    assert err.value.detail["operation"] == "ActivateCredential"
    assert err.value.detail["rc_hex"].startswith("0x")
    with pytest.raises(TpmArgumentError):
        tpm.activate_credential(ak, EkKind.RSA_2048, blob + b"x", enc)


# --- CLI -----------------------------------------------------------------------------------


def test_cli_tpm_info(swtpm, capsys) -> None:
    import json

    from ecash_tpm.cli import main

    assert main(["tpm", "info", "--swtpm-state", str(swtpm.state_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["manufacturer"] == "IBM" and out["ecdaa_supported"]
    assert [e["type"] for e in out["eks"]] == ["rsa2048", "ecc_p384"]
    for e in out["eks"]:
        assert e["chain"]["status"] in ("valid", "unavailable"), e["chain"]
    assert main(["tpm", "info", "--tcti", swtpm.tcti]) == 0
    text = capsys.readouterr().out
    assert "ECDAA          yes" in text and "chain unchecked" in text
