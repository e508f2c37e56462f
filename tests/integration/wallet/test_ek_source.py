"""EK certificates that are not in NV: from a file or from a URL keyed by the EK's hash.

The URL cases run against a real HTTP server on 127.0.0.1 started here; the swtpm has RSA-2048
and P-384 certificates in NV and none for its P-256 EK, which plays the firmware TPM.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import json
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from support.join_kit import (
    current_policy,
    fake_bank,
    issuer_env,
    make_ca,
    make_ek_cert,
    swtpm_trust,
)

from ecash_tpm.attest import load_ek_certificate, parse_tpm2b_public
from ecash_tpm.cli import main
from ecash_tpm.device import EkKind, TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import certificate_fingerprint
from ecash_tpm.wallet.ek_source import EkCertificateSource, check_url_template

pytestmark = pytest.mark.swtpm

Routes = dict[str, tuple[int, bytes]]


@contextmanager
def cert_server(routes: Routes, *, delay: float = 0.0) -> Iterator[tuple[str, list[str]]]:
    """(base URL, paths requested) of a server answering ``routes`` (else 404) on 127.0.0.1."""
    requested: list[str] = []

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            requested.append(self.path)
            time.sleep(delay)
            status, body = routes.get(self.path, (404, b"no such certificate"))
            self.send_response(status)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            with suppress(BrokenPipeError, ConnectionResetError):  # the client gave up
                self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}", requested
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class NoNvCertificates:
    """The TPM as a firmware TPM sees it: the same EKs, no certificate in NV."""

    def __init__(self, device: TpmDevice) -> None:
        self._device = device

    def ek_kinds_present(self) -> list[EkKind]:
        return []

    def ek_certificate(self, kind: EkKind | str) -> bytes:
        raise AssertionError("NV must not be read")

    def ek_public(self, kind: EkKind | str) -> bytes:
        return self._device.ek_public(kind)


def spki_sha256(ek_public: bytes) -> str:
    key = parse_tpm2b_public(ek_public).to_crypto_key()
    return hashlib.sha256(
        key.public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    ).hexdigest()


def refused(code: str, fn: object) -> EcashError:
    with pytest.raises(EcashError) as err:
        fn()  # type: ignore[operator]
    assert err.value.code == code, err.value.to_dict()
    return err.value


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def test_join_with_a_certificate_from_a_url(swtpm, tpm: TpmDevice, tmp_path: Path) -> None:
    """The P-256 EK has no certificate in NV; an operator's mirror serves it by {ek_hash}."""
    assert EkKind.ECC_P256 not in tpm.ek_kinds_present()
    ca, ca_key = make_ca("Firmware TPM EK CA")
    ek_public = tpm.ek_public(EkKind.ECC_P256)
    cert = make_ek_cert(
        ek_public, ca, ca_key, not_before=_now(), not_after=_now() + dt.timedelta(days=1)
    )
    path = f"/ek/{spki_sha256(ek_public)}"
    # the TPM's other EKs (NV, the swtpm's CA) are presented too: the issuer trusts both CAs
    roots, inter = swtpm.ca_certificates()
    trust = EkTrustStore((ca, *roots), tuple(inter))
    with (
        cert_server({path: (200, cert)}) as (base, requested),
        issuer_env(tmp_path / "i", trust=trust, policy=current_policy(tpm)) as env,
    ):
        source = EkCertificateSource(url_template=base + "/ek/{ek_hash}")
        m = env.join(tpm, tmp_path / "w", "url", ek_kind="ecc_p256", ek_source=source)
    assert requested == [path]
    assert m.ek_kind == "ecc_p256"
    assert m.ek_fingerprint == certificate_fingerprint(load_ek_certificate(cert))


def test_intel_and_amd_url_encodings(tpm: TpmDevice) -> None:
    """Intel answers JSON with a base64url certificate, AMD DER; both keyed their own way."""
    rsa_public = tpm.ek_public(EkKind.RSA_2048)
    area = parse_tpm2b_public(rsa_public)
    intel = hashlib.sha256(area.unique + b"\x01\x00\x01").digest()  # type: ignore[operator]
    intel_key = base64.urlsafe_b64encode(intel).decode().replace("=", "%3D")
    rsa_der = load_ek_certificate(tpm.ek_certificate(EkKind.RSA_2048)).public_bytes(Encoding.DER)
    intel_body = json.dumps(
        {
            "pubhash": intel_key,
            "certificate": base64.urlsafe_b64encode(rsa_der).decode().rstrip("="),
        }
    ).encode()
    p384_public = tpm.ek_public(EkKind.ECC_P384)
    pt = parse_tpm2b_public(p384_public).ecc_point()
    amd_key = hashlib.sha256(b"\0\0\x44\x44" + pt.x + pt.y).digest()[:16].hex()
    p384_nv = tpm.ek_certificate(EkKind.ECC_P384)
    routes = {
        f"/ekcertservice/{intel_key}": (200, intel_body),
        f"/pki/aia/{amd_key}": (200, p384_nv),
    }
    firmware_tpm = NoNvCertificates(tpm)
    with cert_server(routes) as (base, requested):
        got = EkCertificateSource(url_template=base + "/ekcertservice/{intel_ek_hash}").choose(
            firmware_tpm
        )
        assert (got.kind, got.origin, got.certificate) == (EkKind.RSA_2048, "url", rsa_der)
        amd = EkCertificateSource(url_template=base + "/pki/aia/{amd_ek_hash}").choose(firmware_tpm)
    assert (amd.kind, amd.certificate) == (EkKind.ECC_P384, p384_nv)
    assert requested[0] == f"/ekcertservice/{intel_key}"
    # AMD: the RSA EK is tried first (404 here), then the P-384 EK
    amd_rsa = b"\0\0\x22\x22\0\x01\0\x01" + area.unique  # type: ignore[operator]
    amd_rsa_key = hashlib.sha256(amd_rsa).digest()[:16].hex()
    assert requested[1:] == [f"/pki/aia/{amd_rsa_key}", f"/pki/aia/{amd_key}"]


def test_nv_comes_before_the_url(tpm: TpmDevice) -> None:
    with cert_server({}) as (base, requested):
        got = EkCertificateSource(url_template=base + "/{ek_hash}").choose(tpm)
    assert (got.kind, got.origin, got.location) == (EkKind.RSA_2048, "nv", "0x01c00002")
    assert requested == []


def test_url_refusals(tpm: TpmDevice) -> None:
    rsa_nv = tpm.ek_certificate(EkKind.RSA_2048)
    firmware_tpm = NoNvCertificates(tpm)
    routes: Routes = {
        "/wrong/key": (200, rsa_nv),
        "/broken/key": (500, b"oops"),
        "/garbage/key": (200, b"\x30\x03junk"),
        "/big/key": (200, b"\x30" * 5000),
    }
    with cert_server(routes) as (base, requested):

        def choose(path: str, kind: str = "ecc_p256", **kw: float) -> object:
            source = EkCertificateSource(url_template=base + path, **kw)  # type: ignore[arg-type]
            return lambda: source.choose(firmware_tpm, kind)

        # the RSA EK's certificate offered for the P-256 EK: the wallet refuses before the issuer
        err = refused("wallet.ek_certificate_mismatch", choose("/wrong/key"))
        assert err.detail == {"source": base + "/wrong/key", "ek": "ecc_p256"}
        refused("wallet.ek_certificate_fetch_failed", choose("/broken/key"))
        refused("wallet.ek_certificate_invalid", choose("/garbage/key"))
        err = refused("wallet.ek_certificate_fetch_failed", choose("/big/key", max_bytes=4096))
        assert err.detail["max_bytes"] == 4096
        err = refused("wallet.ek_certificate_missing", choose("/none/{ek_hash}"))
        assert err.detail["urls_tried"] == [base + requested[-1]]
        assert "--ek-cert FILE" in err.message and "--ek-cert-url" in err.message
    with cert_server({"/slow": (200, rsa_nv)}, delay=2.0) as (base, _):
        refused("wallet.ek_certificate_fetch_failed", choose("/slow", timeout=0.3))
    # nobody listens there any more
    refused("wallet.ek_certificate_fetch_failed", choose("/slow"))
    for bad in ("ftp://host/{ek_hash}", "https://host/{ek_sha1}", "/relative/{ek_hash}"):
        refused("wallet.ek_certificate_url_invalid", lambda b=bad: check_url_template(b))


def _cli_join(swtpm: object, wallet: Path, issuer: str, *extra: str) -> list[str]:
    tcti = swtpm.tcti  # type: ignore[attr-defined]
    return ["wallet", "join", "--issuer", issuer, "--tcti", tcti, "--data", str(wallet),
            "--insecure-http", *extra]  # fmt: skip


def _error(capsys: pytest.CaptureFixture[str]) -> dict[str, object]:
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False
    return out["error"]  # type: ignore[no-any-return]


def test_cli_certificate_file_missing_and_mismatch(
    swtpm, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    with TpmDevice(swtpm.tcti) as dev:
        rsa = load_ek_certificate(dev.ek_certificate(EkKind.RSA_2048))
        policy = current_policy(dev)
    pem = tmp_path / "ek-rsa.pem"
    pem.write_bytes(rsa.public_bytes(Encoding.PEM))
    foreign = tmp_path / "foreign.der"
    foreign.write_bytes(make_ca("Some other TPM")[0].public_bytes(Encoding.DER))
    nowhere = "http://127.0.0.1:9"  # never contacted: these refusals come before the issuer

    # no P-256 certificate anywhere: the error names both options
    assert main(_cli_join(swtpm, tmp_path / "w0", nowhere, "--ek", "ecc_p256", "--json")) == 1
    err = _error(capsys)
    assert err["code"] == "wallet.ek_certificate_missing"
    assert "--ek-cert FILE" in str(err["message"]) and "--ek-cert-url" in str(err["message"])
    assert err["detail"]["in_nv"] == ["rsa2048", "ecc_p384"]  # type: ignore[index]
    # ... also after asking the operator's URL (from the environment)
    with cert_server({}) as (base, requested):
        monkeypatch.setenv("ECASH_TPM_EK_CERT_URL", base + "/ek/{ek_hash}")
        assert main(_cli_join(swtpm, tmp_path / "w0", nowhere, "--ek", "ecc_p256", "--json")) == 1
        monkeypatch.delenv("ECASH_TPM_EK_CERT_URL")
    err = _error(capsys)
    assert err["code"] == "wallet.ek_certificate_missing"
    assert err["detail"]["urls_tried"] == [base + requested[0]]  # type: ignore[index]

    # a file: for another EK type than requested, or for another TPM's key
    argv = _cli_join(swtpm, tmp_path / "w1", nowhere, "--ek-cert", str(pem), "--ek", "ecc_p384")
    assert main([*argv, "--json"]) == 1
    assert _error(capsys)["code"] == "wallet.ek_certificate_mismatch"
    assert main([*_cli_join(swtpm, tmp_path / "w1", nowhere, "--ek-cert", str(foreign))]) == 1
    assert "[wallet.ek_certificate_mismatch]" in capsys.readouterr().err
    argv = _cli_join(swtpm, tmp_path / "w1", nowhere, "--ek-cert", str(tmp_path / "nope.pem"))
    assert main([*argv, "--json"]) == 1
    assert _error(capsys)["code"] == "wallet.ek_certificate_invalid"
    argv = _cli_join(swtpm, tmp_path / "w1", nowhere, "--ek-cert-url", "https://x/{serial}")
    assert main([*argv, "--json"]) == 1
    assert _error(capsys)["code"] == "wallet.ek_certificate_url_invalid"

    # the right file (PEM): the type follows from its key, and the issuer admits the TPM
    with (
        issuer_env(tmp_path / "issuer", trust=swtpm_trust(swtpm), policy=policy) as env,
        fake_bank(env.authority, tmp_path / "pw") as bank,
    ):
        argv = _cli_join(swtpm, tmp_path / "w2", env.url, "--ek-cert", str(pem), "--json")
        assert main([*argv, "--account", "file", *bank]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["ek_kind"] == "rsa2048"
