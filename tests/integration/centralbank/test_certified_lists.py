"""The central bank certifies issuer epoch keys and bank keyset lists, over real HTTP (issue 10,
#6 and #7; docs/protocol.md 3.6 and 4.1): one key per epoch, an append-only list per bank."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from cryptography import x509

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.service import create_centralbank_app
from ecash_tpm.centralbank.settings import CentralBankSettings, hash_admin_token
from ecash_tpm.clients.centralbank import CentralBankClient
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import IssuerSecret
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.protocol.certified import CertifiedKeysetList, IssuerEpochCertificate
from ecash_tpm.protocol.keysets import KEYSET_DESCRIPTOR_KIND, keyset_id_for, spki
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import load_settings

TOKEN = "test-admin-token-" + "y" * 32


@dataclass
class Server:
    url: str
    root: x509.Certificate
    bank_key: PartyKey
    bank_cert: str
    other_key: PartyKey
    merchant_cert: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    data_dir = tmp_path_factory.mktemp("cb") / "ca"
    bank_key, merchant_key = PartyKey.generate(), PartyKey.generate()
    with CentralBankCA.create(data_dir) as ca:
        root = ca.root_certificate
        bank_cert = ca.certify("bank", "bank", bank_key.public_key)
        merchant_cert = ca.certify("merchant", "shop", merchant_key.public_key)
    settings = load_settings(
        CentralBankSettings,
        environ={},
        overrides={
            "data_dir": data_dir,
            "port": 0,
            "admin_token_sha256": hash_admin_token(TOKEN),
        },
    )
    with running_server(create_centralbank_app(settings)) as url:
        yield Server(url, root, bank_key, _pem(bank_cert), merchant_key, _pem(merchant_cert))


def _pem(cert: x509.Certificate) -> str:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM).decode("ascii")


@pytest.fixture(scope="module")
def client(server: Server) -> Iterator[CentralBankClient]:
    with CentralBankClient(server.url, admin_token=TOKEN) as c:
        yield c


def _descriptor(key: PartyKey, value: int, *, deposit_for: int = 86400) -> dict[str, Any]:
    now = int(dt.datetime.now(dt.UTC).timestamp())
    body: dict[str, Any] = {
        "value": value,
        "currency": "EUR",
        "withdraw_from": now - 60,
        "withdraw_until": now + 3600,
        "deposit_until": now + deposit_for,
        "public_key": b64u_encode(spki(blindrsa.generate_key(2048).public_key())),
        "variant": blindrsa.DEFAULT_VARIANT.name,
    }
    body["keyset_id"] = b64u_encode(keyset_id_for(body))
    return sign_object(key, KEYSET_DESCRIPTOR_KIND, body)


def test_one_key_per_issuer_epoch(server: Server, client: CentralBankClient) -> None:
    honest, tag = IssuerSecret.generate(), IssuerSecret.generate()
    doc = client.certify_issuer_epoch("issuer", 7, honest.public)
    cert = IssuerEpochCertificate.from_signed(doc, server.root)
    assert (cert.issuer, cert.epoch, cert.public) == ("issuer", 7, honest.public)
    # the same key again: the same certificate (idempotent); published for anyone
    assert client.certify_issuer_epoch("issuer", 7, honest.public) == doc
    assert client.issuer_epoch("issuer", 7) == doc
    # another key for the same epoch: refused, so no member can be shown a key of its own
    with pytest.raises(RemoteCallError) as exc:
        client.certify_issuer_epoch("issuer", 7, tag.public)
    assert (exc.value.status, exc.value.code) == (409, "centralbank.issuer_epoch_conflict")
    with pytest.raises(RemoteCallError) as missing:
        client.issuer_epoch("issuer", 8)
    assert (missing.value.status, missing.value.code) == (404, "centralbank.issuer_epoch_not_found")


def test_issuer_epoch_needs_the_admin_token(server: Server) -> None:
    with (
        CentralBankClient(server.url, admin_token="wrong-" + "z" * 32) as anon,
        pytest.raises(RemoteCallError) as exc,
    ):
        anon.certify_issuer_epoch("issuer", 1, IssuerSecret.generate().public)
    assert (exc.value.status, exc.value.code) == (401, "auth.admin_token_invalid")


def test_keyset_list_is_append_only_and_the_same_for_everyone(
    server: Server, client: CentralBankClient
) -> None:
    first = _descriptor(server.bank_key, 1)
    doc1 = client.certify_keyset_list(server.bank_cert, [first])
    list1 = CertifiedKeysetList.from_signed(doc1, server.root, bank_name="bank")
    # resubmitting the same keysets changes nothing
    assert client.certify_keyset_list(server.bank_cert, [first]) == doc1
    second = _descriptor(server.bank_key, 2)
    doc2 = client.certify_keyset_list(server.bank_cert, [second])  # first stays on the list
    list2 = CertifiedKeysetList.from_signed(doc2, server.root, bank_name="bank")
    assert list2.sequence == list1.sequence + 1
    assert list1.keyset_ids < list2.keyset_ids and len(list2.keyset_ids) == 2
    assert client.keyset_list("bank") == doc2  # the one current list, public
    with pytest.raises(RemoteCallError) as exc:
        client.keyset_list("nobank")
    assert (exc.value.status, exc.value.code) == (404, "centralbank.keyset_list_not_found")


def test_keyset_list_refuses_foreign_descriptors_and_non_bank_certificates(
    server: Server, client: CentralBankClient
) -> None:
    forged = _descriptor(server.other_key, 4)  # not signed by the bank's key
    with pytest.raises(RemoteCallError) as exc:
        client.certify_keyset_list(server.bank_cert, [forged])
    assert (exc.value.status, exc.value.code) == (400, "keyset.descriptor_invalid")
    with pytest.raises(RemoteCallError) as role:
        client.certify_keyset_list(server.merchant_cert, [_descriptor(server.other_key, 4)])
    assert role.value.code == "cert.wrong_role"


def test_issuer_epoch_g2_keys_must_match(server: Server, client: CentralBankClient) -> None:
    """docs/protocol.md 3.6: the central bank certifies (X, Y) only with X2 = x*P2, Y2 = y*P2,
    checked with pairings; swapped or missing G2 keys are refused."""
    key = IssuerSecret.generate().public.to_dict()
    for body, code in (
        ({**key, "X2": key["Y2"], "Y2": key["X2"]}, "centralbank.issuer_epoch_g2_mismatch"),
        ({"X": key["X"], "Y": key["Y"]}, "input.invalid"),
    ):
        with pytest.raises(RemoteCallError) as exc:
            client.post_json(
                "/v1/certify-issuer-epoch",
                {"issuer": "issuer", "epoch": 9, **body},
                headers=client.auth_headers(),
            )
        assert (exc.value.status, exc.value.code) == (400, code)
