"""The central bank as a service, over real HTTP (uvicorn on 127.0.0.1 via running_server):
root and CRL, admin-authenticated certify/revoke, supply reports, the CLI round trip."""

from __future__ import annotations

import contextlib
import io
import json
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.service import create_centralbank_app
from ecash_tpm.centralbank.settings import CentralBankSettings, hash_admin_token
from ecash_tpm.cli import main as cli_main
from ecash_tpm.clients.centralbank import CentralBankClient
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object
from ecash_tpm.errors import InputError
from ecash_tpm.pki import (
    CertificateRevokedError,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.protocol.supply import SUPPLY_REPORT_KIND, Discrepancy, check_supply_report
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import load_settings

TOKEN = "test-admin-token-" + "x" * 32
KEYSET_A = b64u_encode(bytes(range(16)))
KEYSET_B = b64u_encode(bytes(range(16, 32)))


def _settings(data_dir: Path, **extra: Any) -> CentralBankSettings:
    overrides = {"data_dir": data_dir, "port": 0, **extra}
    return load_settings(CentralBankSettings, environ={}, overrides=overrides)


@dataclass
class Server:
    url: str
    data_dir: Path
    root: x509.Certificate

    def client(self, token: str | None = TOKEN) -> CentralBankClient:
        return CentralBankClient(self.url, admin_token=token)


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cb") / "ca"
    with CentralBankCA.create(data_dir) as ca:
        root = ca.root_certificate
    app = create_centralbank_app(_settings(data_dir, admin_token_sha256=hash_admin_token(TOKEN)))
    with running_server(app) as url:
        yield Server(url, data_dir, root)


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[CentralBankClient]:
    with server.client() as c:
        yield c


def _remote_code(info: pytest.ExceptionInfo[RemoteCallError]) -> tuple[int | None, str]:
    return info.value.status, info.value.code


# --- root and CRL ----------------------------------------------------------------------------


def test_root_and_crl(server: Server, client: CentralBankClient) -> None:
    response = httpx.get(server.url + "/v1/root")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/x-pem-file")
    assert response.content == (server.data_dir / "root-cert.pem").read_bytes()
    assert client.root_certificate() == server.root

    der = httpx.get(server.url + "/v1/crl")
    assert der.headers["content-type"].startswith("application/pkix-crl")
    crl = x509.load_der_x509_crl(der.content)
    assert crl.is_signature_valid(server.root.public_key())  # type: ignore[arg-type]
    pem = httpx.get(server.url + "/v1/crl", params={"format": "pem"})
    assert pem.content.startswith(b"-----BEGIN X509 CRL-----")
    # Anonymous fetches reuse the current CRL instead of signing a new number each time.
    numbers = {
        c.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number
        for c in (crl, x509.load_pem_x509_crl(pem.content), client.crl())
    }
    assert len(numbers) == 1
    bad = httpx.get(server.url + "/v1/crl", params={"format": "xml"})
    assert bad.status_code == 400 and bad.json()["code"] == "input.invalid"
    assert httpx.get(server.url + "/healthz").json()["service"] == "centralbank"


# --- certify / revoke ------------------------------------------------------------------------


def test_certify_needs_the_admin_token(server: Server) -> None:
    key = PartyKey.generate()
    for token in (None, "wrong-token"):
        with server.client(token) as anonymous, pytest.raises(RemoteCallError) as info:
            anonymous.certify("merchant", "shop-x", key.public_key)
        assert _remote_code(info) == (401, "auth.admin_token_invalid")
    raw = httpx.post(
        server.url + "/v1/certify",
        json={"role": "bank", "name": "b", "public_key": b64u_encode(key.public_key_bytes())},
        headers={"Authorization": "Basic " + TOKEN},
    )
    assert raw.status_code == 401

    with server.client() as admin:
        issued = admin.certify("merchant", "shop-x", key.public_key, valid_days=30)
    cert = load_certificate(issued.cert)
    verify_party_certificate(cert, server.root, role="merchant", name="shop-x")
    assert issued.serial == format(cert.serial_number, "x")
    assert issued.not_after - issued.not_before == 30 * 86400 + 300


def test_certify_input_errors(client: CentralBankClient, server: Server) -> None:
    key = PartyKey.generate()
    with pytest.raises(RemoteCallError) as info:
        client.certify("bank-keyset", "k", key.public_key)
    assert _remote_code(info) == (400, "cert.unknown_role")
    headers = {"Authorization": f"Bearer {TOKEN}"}
    bad_key = httpx.post(
        server.url + "/v1/certify",
        json={"role": "bank", "name": "b", "public_key": b64u_encode(b"\x30\x03junk")},
        headers=headers,
    )
    assert bad_key.status_code == 400 and bad_key.json()["code"] == "key.invalid_public"
    padded = httpx.post(
        server.url + "/v1/certify",
        json={"role": "bank", "name": "b", "public_key": "AAAA=="},
        headers=headers,
    )
    assert padded.status_code == 400 and padded.json()["code"] == "encoding.invalid"


def test_admin_routes_disabled_without_a_hash(tmp_path: Path) -> None:
    CentralBankCA.create(tmp_path / "ca").close()
    app = create_centralbank_app(_settings(tmp_path / "ca"))
    with running_server(app) as url, CentralBankClient(url, admin_token=TOKEN) as c:
        with pytest.raises(RemoteCallError) as info:
            c.certify("bank", "b", PartyKey.generate().public_key)
        assert _remote_code(info) == (403, "centralbank.admin_disabled")
        assert c.root_certificate().subject.rfc4514_string().endswith("O=ecash-tpm")


def test_revoke_shows_in_the_crl(server: Server, client: CentralBankClient) -> None:
    key = PartyKey.generate()
    issued = client.certify("merchant", "shop-revoked", key.public_key)
    cert = load_certificate(issued.cert)
    verify_party_certificate(cert, server.root, role="merchant", crl=client.crl())

    with server.client(None) as anonymous, pytest.raises(RemoteCallError) as info:
        anonymous.revoke(issued.serial, "keyCompromise")
    assert _remote_code(info) == (401, "auth.admin_token_invalid")

    first = client.revoke(issued.serial, "keyCompromise")
    again = client.revoke(cert.serial_number, "superseded")  # idempotent: first reason stands
    assert first == again and first.reason == "keyCompromise"
    with pytest.raises(CertificateRevokedError):
        verify_party_certificate(cert, server.root, role="merchant", crl=client.crl())

    with pytest.raises(RemoteCallError) as info:
        client.revoke("ffff")
    assert _remote_code(info) == (404, "cert.not_found")
    with pytest.raises(RemoteCallError) as info:
        client.revoke("not-hex")
    assert _remote_code(info) == (400, "input.invalid")
    with pytest.raises(RemoteCallError) as info:
        client.revoke(issued.serial, "because")
    assert _remote_code(info) == (400, "crl.invalid_reason")


# --- supply reports --------------------------------------------------------------------------


def _body(bank_id: str, as_of: int, *, outstanding: int = 3) -> dict[str, Any]:
    return {
        "bank_id": bank_id,
        "as_of": as_of,
        "keysets": [
            {
                "keyset_id": KEYSET_A,
                "value": 100,
                "currency": "EUR",
                "outstanding_count": outstanding,
                "outstanding_value": 100 * outstanding,
            },
            {
                "keyset_id": KEYSET_B,
                "value": 500,
                "currency": "EUR",
                "outstanding_count": 0,
                "outstanding_value": 0,
            },
        ],
    }


@pytest.fixture(scope="module")
def bank(client: CentralBankClient) -> tuple[PartyKey, str]:
    key = PartyKey.generate()
    return key, client.certify("bank", "bank-1", key.public_key).cert


def test_supply_report_accepted_from_the_bank(
    client: CentralBankClient, bank: tuple[PartyKey, str]
) -> None:
    key, cert = bank
    as_of = int(time.time()) - 60
    report = sign_object(key, SUPPLY_REPORT_KIND, _body("bank-1", as_of))
    receipt = client.submit_supply_report(report, cert)
    assert receipt.created and receipt.bank_id == "bank-1" and receipt.as_of == as_of
    assert receipt.digest == canonical_digest(report["body"])

    # A retry (even re-signed: ECDSA is randomized) is the same report, not a new one.
    again = client.submit_supply_report(
        sign_object(key, SUPPLY_REPORT_KIND, _body("bank-1", as_of)), cert
    )
    assert not again.created and again.report_id == receipt.report_id
    # A different body for the same as_of is evidence tampering: refused, original kept.
    with pytest.raises(RemoteCallError) as info:
        client.submit_supply_report(
            sign_object(key, SUPPLY_REPORT_KIND, _body("bank-1", as_of, outstanding=4)), cert
        )
    assert _remote_code(info) == (409, "supply_report.conflict")
    assert info.value.detail["report_id"] == receipt.report_id

    newer = client.submit_supply_report(
        sign_object(key, SUPPLY_REPORT_KIND, _body("bank-1", as_of + 30)), cert
    )
    latest = client.latest_supply_report("bank-1")
    assert latest.report_id == newer.report_id and latest.as_of == as_of + 30
    assert latest.report["body"] == _body("bank-1", as_of + 30)
    assert load_certificate(latest.cert) == load_certificate(cert)
    assert client.latest_supply_report().bank_id == "bank-1"
    with pytest.raises(RemoteCallError) as info:
        client.latest_supply_report("bank-unknown")
    assert _remote_code(info) == (404, "supply_report.not_found")


def test_supply_report_refused_from_a_merchant(client: CentralBankClient) -> None:
    key = PartyKey.generate()
    cert = client.certify("merchant", "bank-1", key.public_key).cert  # CN looks like the bank
    report = sign_object(key, SUPPLY_REPORT_KIND, _body("bank-1", int(time.time())))
    with pytest.raises(RemoteCallError) as info:
        client.submit_supply_report(report, cert)
    assert _remote_code(info) == (403, "cert.wrong_role")


def test_supply_report_refused_when_tampered(
    client: CentralBankClient, bank: tuple[PartyKey, str]
) -> None:
    key, cert = bank
    report = sign_object(key, SUPPLY_REPORT_KIND, _body("bank-1", int(time.time()) - 7))
    report["body"]["keysets"][0]["outstanding_count"] = 2
    report["body"]["keysets"][0]["outstanding_value"] = 200
    with pytest.raises(RemoteCallError) as info:
        client.submit_supply_report(report, cert)
    assert _remote_code(info) == (400, "signature.invalid")

    wrong_kind = sign_object(key, "deposit-receipt", _body("bank-1", int(time.time())))
    with pytest.raises(RemoteCallError) as info:
        client.submit_supply_report(wrong_kind, cert)
    assert _remote_code(info) == (400, "signed_object.wrong_kind")


def test_supply_report_other_refusals(
    server: Server, client: CentralBankClient, bank: tuple[PartyKey, str], tmp_path: Path
) -> None:
    key, cert = bank
    now = int(time.time())

    def submit(body: dict[str, Any], signer: PartyKey = key, with_cert: str | bytes = cert) -> None:
        client.submit_supply_report(sign_object(signer, SUPPLY_REPORT_KIND, body), with_cert)

    cases: list[tuple[dict[str, Any], tuple[int, str]]] = [
        (_body("bank-2", now), (403, "cert.wrong_name")),
        (_body("bank-1", now + 3600), (400, "supply_report.from_future")),
        ({**_body("bank-1", now), "extra": 1}, (400, "input.invalid")),
    ]
    inconsistent = _body("bank-1", now)
    inconsistent["keysets"][0]["outstanding_value"] = 1
    cases.append((inconsistent, (400, "supply_report.invalid")))
    duplicate = _body("bank-1", now)
    duplicate["keysets"].append(dict(duplicate["keysets"][0]))
    cases.append((duplicate, (400, "supply_report.invalid")))
    for body, expected in cases:
        with pytest.raises(RemoteCallError) as info:
            submit(body)
        assert _remote_code(info) == expected, body

    # A certificate from another CA (same subject names) and a key that does not match.
    with CentralBankCA.create(tmp_path / "other") as other:
        foreign = other.certify("bank", "bank-1", key.public_key)
    with pytest.raises(RemoteCallError) as info:
        submit(_body("bank-1", now), with_cert=foreign.public_bytes(serialization.Encoding.PEM))
    assert _remote_code(info) == (403, "cert.untrusted")
    with pytest.raises(RemoteCallError) as info:
        submit(_body("bank-1", now), signer=PartyKey.generate())
    assert _remote_code(info) == (400, "signature.invalid")
    raw = httpx.post(
        server.url + "/v1/supply-reports", json={"report": {}, "cert": "garbage"}, timeout=5
    )
    assert raw.status_code == 400 and raw.json()["code"] == "cert.malformed"

    # Revoked bank certificate: refused even though it chains to the root.
    revoked_key = PartyKey.generate()
    issued = client.certify("bank", "bank-1", revoked_key.public_key)
    client.revoke(issued.serial, "keyCompromise")
    with pytest.raises(RemoteCallError) as info:
        submit(_body("bank-1", now), signer=revoked_key, with_cert=issued.cert)
    assert _remote_code(info) == (403, "cert.revoked")


# --- reconciliation with the audit -----------------------------------------------------------


def test_check_supply_report_against_the_audit() -> None:
    body = _body("bank-1", 1000)
    assert check_supply_report(body, {KEYSET_A: 300}) == []
    mixed: dict[str | bytes, int] = {bytes(range(16)): 300, KEYSET_B: 0}
    assert check_supply_report(body, mixed) == []
    keyset_c = b64u_encode(b"\xcc" * 16)
    found = check_supply_report(body, {KEYSET_A: 200, KEYSET_B: 500, keyset_c: 0})
    assert found == sorted(
        [
            Discrepancy("outstanding_mismatch", KEYSET_A, 300, 200),
            Discrepancy("outstanding_mismatch", KEYSET_B, 0, 500),
        ],
        key=lambda d: (d.keyset_id, d.kind),
    )
    without_b = {**body, "keysets": body["keysets"][:1]}
    assert check_supply_report(without_b, {KEYSET_A: 300, KEYSET_B: 500}) == [
        Discrepancy("not_reported", KEYSET_B, None, 500)
    ]
    assert check_supply_report(body, {})[0].to_dict() == {
        "kind": "not_audited",
        "keyset_id": KEYSET_A,
        "reported": 300,
        "expected": None,
    }
    broken = _body("bank-1", 1000)
    broken["keysets"][0]["outstanding_value"] = 301
    broken["keysets"].append(dict(broken["keysets"][1]))
    kinds = {(d.kind, d.keyset_id) for d in check_supply_report(broken, {KEYSET_A: 301})}
    assert kinds == {("inconsistent", KEYSET_A), ("duplicate_keyset", KEYSET_B)}
    with pytest.raises(InputError):
        check_supply_report(body, {KEYSET_A: -1})
    with pytest.raises(InputError):
        check_supply_report({"bank_id": "b"}, {})


# --- start-up ----------------------------------------------------------------------------------


def test_startup_needs_a_ca_unless_init_if_missing(tmp_path: Path) -> None:
    app = create_centralbank_app(_settings(tmp_path / "none"))
    with pytest.raises(Exception) as info, running_server(app):  # noqa: B017 - code checked below
        pass
    assert getattr(info.value, "code", "") == "ca.not_found"

    settings = _settings(tmp_path / "fresh", init_if_missing=True, root_name="demo root")
    with running_server(create_centralbank_app(settings)) as url, CentralBankClient(url) as c:
        root = c.root_certificate()
    assert root.subject.rfc4514_string() == "CN=demo root,O=ecash-tpm"
    assert (tmp_path / "fresh" / "centralbank.db").exists()


# --- CLI -------------------------------------------------------------------------------------


def _cli(*argv: str) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = cli_main(list(argv))
    return code, out.getvalue()


def test_cli_init_certify_revoke_round_trip(tmp_path: Path) -> None:
    data = str(tmp_path / "ca")
    code, out = _cli("centralbank", "init", "--data", data, "--json", "--name", "cli root")
    assert code == 0
    info = json.loads(out)
    root = load_certificate(Path(info["root_cert"]).read_bytes())
    assert info["ok"] and root.subject.rfc4514_string() == "CN=cli root,O=ecash-tpm"

    key = PartyKey.generate()
    key_file = tmp_path / "bank.pub.pem"
    key_file.write_bytes(
        key.public_key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    der_file = tmp_path / "bank.pub.der"
    der_file.write_bytes(key.public_key_bytes())
    out_file = tmp_path / "bank.pem"
    code, out = _cli(
        "centralbank", "certify", "--data", data, "--role", "bank", "--name", "bank-1",
        "--public-key", str(key_file), "--out", str(out_file), "--json",
    )  # fmt: skip
    assert code == 0
    result = json.loads(out)
    cert = load_certificate(out_file.read_bytes())
    verify_party_certificate(cert, root, role="bank", name="bank-1")
    assert result["serial"] == format(cert.serial_number, "x")

    code, out = _cli(
        "centralbank", "certify", "--data", data, "--role", "ttp", "--name", "ttp-1",
        "--public-key", str(der_file),
    )  # fmt: skip
    assert code == 0 and out.startswith("-----BEGIN CERTIFICATE-----")

    code, out = _cli(
        "centralbank", "revoke", "--data", data, "--serial", result["serial"].upper(),
        "--reason", "superseded", "--json",
    )  # fmt: skip
    assert code == 0 and json.loads(out)["reason"] == "superseded"
    with CentralBankCA.load(data) as ca:
        # init issued the central bank's own TLS certificate first
        assert [r.name for r in ca.issued()] == ["centralbank", "bank-1", "ttp-1"]
        with pytest.raises(CertificateRevokedError):
            verify_party_certificate(cert, root, role="bank", crl=ca.crl())

    # Errors: stable code in JSON, exit status 1.
    code, out = _cli(
        "centralbank", "certify", "--data", data, "--role", "root", "--name", "x",
        "--public-key", str(key_file), "--json",
    )  # fmt: skip
    assert code == 1 and json.loads(out)["error"]["code"] == "cert.unknown_role"
    code, out = _cli("centralbank", "init", "--data", data, "--json")
    assert code == 1 and json.loads(out)["error"]["code"] == "ca.exists"
    code, out = _cli("centralbank", "revoke", "--data", str(tmp_path / "no"), "--serial", "1")
    assert code == 1


def test_cli_admin_token_matches_its_hash() -> None:
    code, out = _cli("centralbank", "admin-token", "--json")
    assert code == 0
    result = json.loads(out)
    assert hash_admin_token(result["token"]) == result["admin_token_sha256"]
    assert len(result["token"]) >= 43
