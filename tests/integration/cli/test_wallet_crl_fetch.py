"""The wallet CLI keeps the central bank's CRL current (docs/protocol.md 13.2; issue 10,
attack 10): with ``--centralbank URL`` every run fetches it, checks it against the root and
replaces ``<data>/central-bank-crl.pem``; an unreachable central bank leaves the file on hand."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
from cryptography import x509

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.service import create_centralbank_app
from ecash_tpm.centralbank.settings import CentralBankSettings, hash_admin_token
from ecash_tpm.cli.wallet_cmd import WALLET_CRL_FILE, WALLET_ROOT_FILE, _coin_settings
from ecash_tpm.clients.centralbank import CentralBankClient
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import EcashError
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import load_settings

TOKEN = "test-admin-token-" + "z" * 32


def _args(data: Path, url: str | None) -> argparse.Namespace:
    return argparse.Namespace(
        data=str(data),
        centralbank=url,
        insecure_http=True,  # this test's central bank serves plain HTTP on 127.0.0.1
        bank=None,
        bank_name=None,
        currency=None,
        max_deadline=None,
        root=None,
    )


def test_every_run_fetches_the_current_crl(tmp_path: Path) -> None:
    ca_dir = tmp_path / "ca"
    with CentralBankCA.create(ca_dir) as ca:
        root_pem = ca.root_pem()
        shop = ca.certify("merchant", "shop", PartyKey.generate().public_key)
    settings = load_settings(
        CentralBankSettings,
        environ={},
        overrides={"data_dir": ca_dir, "port": 0, "admin_token_sha256": hash_admin_token(TOKEN)},
    )
    wallet = tmp_path / "wallet"
    wallet.mkdir(mode=0o700)
    (wallet / WALLET_ROOT_FILE).write_bytes(root_pem)
    crl_file = wallet / WALLET_CRL_FILE
    with running_server(create_centralbank_app(settings)) as url:
        cfg = _coin_settings(_args(wallet, url))
        assert cfg["centralbank_url"] == url  # remembered
        assert (
            x509.load_pem_x509_crl(crl_file.read_bytes()).get_revoked_certificate_by_serial_number(
                shop.serial_number
            )
            is None
        )
        with CentralBankClient(url, admin_token=TOKEN) as admin:
            admin.revoke(shop.serial_number)
        _coin_settings(_args(wallet, None))  # the remembered URL: the next run sees it
        crl = x509.load_pem_x509_crl(crl_file.read_bytes())
        assert crl.get_revoked_certificate_by_serial_number(shop.serial_number) is not None
    before = crl_file.read_bytes()
    _coin_settings(_args(wallet, None))  # central bank gone: the CRL on hand stays
    assert crl_file.read_bytes() == before
    crl_file.unlink()
    with pytest.raises(EcashError):  # nothing on hand and nothing to fetch: no silent "fine"
        _coin_settings(_args(wallet, None))
