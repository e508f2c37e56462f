"""Money-supply reports (issue 5 item 3): the bank computes outstanding value per keyset from its
ledger, signs a ``supply-report``, sends it to the central bank over HTTP; the supervision audit
fetches the latest report and compares it with its own figures as of the report's time.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld
from support.coinmint import KeyPool, Pki
from test_audit import build_audit_world

from ecash_tpm.bank.supply import (
    build_supply_report,
    outstanding_per_keyset,
    send_supply_report,
    supply_report_body,
)
from ecash_tpm.centralbank.certify import certify_issuer_epoch
from ecash_tpm.centralbank.service import create_centralbank_app
from ecash_tpm.centralbank.settings import CentralBankSettings
from ecash_tpm.cli import main as cli_main
from ecash_tpm.clients.centralbank import CentralBankClient
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import sign_object, verify_object
from ecash_tpm.errors import InputError
from ecash_tpm.protocol.supply import SUPPLY_REPORT_KIND, check_supply_report
from ecash_tpm.service.server import running_server
from ecash_tpm.service.settings import load_settings
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import AuditReport


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@dataclass
class Setting:
    world: BankWorld
    central_bank: str
    data_dir: Path

    def audit(self, **kwargs: Any) -> AuditReport:
        w = self.world
        return run_audit(
            w.db,
            bank_cert=w.pki.bank.cert_pem,
            central_bank_root=w.pki.root_pem,
            opener_public=w.issuer.hop,
            issuer_secrets=w.issuer,
            now=w.clock(),
            **kwargs,
        )

    def latest(self) -> dict[str, Any]:
        with CentralBankClient(self.central_bank) as client:
            return client.latest_supply_report("bank").model_dump(mode="json")


@pytest.fixture(scope="module")
def setting(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[Setting]:
    data_dir = tmp_path_factory.mktemp("bank")
    world = build_audit_world(sqlite_url(data_dir / "bank.db"), data_dir, pki, KeyPool(4))
    # the central bank as a service on the CA that certified the bank (Pki's directory)
    ca_dir = pki._ca.data_dir
    for e, secret in world.issuer.secrets.items():  # §3.6: what the audit CLI fetches (§7.4)
        certify_issuer_epoch(pki._ca, "issuer", e, secret.public)
    settings = load_settings(
        CentralBankSettings, environ={}, overrides={"data_dir": ca_dir, "port": 0}
    )
    with running_server(create_centralbank_app(settings)) as url:
        yield Setting(world, url, data_dir)
    world.db.close()


def test_report_body_comes_from_the_ledger(setting: Setting) -> None:
    w = setting.world
    body = supply_report_body(w.bank)
    assert body["bank_id"] == "bank" and body["as_of"] == w.clock()
    ledger = {k["keyset_id"]: k for k in w.bank.ledger_check()["keysets"]}
    assert len(body["keysets"]) == len(ledger) == 4
    for line in body["keysets"]:
        mine = ledger[b64u_decode(line["keyset_id"]).hex()]
        assert line["outstanding_value"] == mine["outstanding"]
        assert line["outstanding_count"] * line["value"] == mine["outstanding"]
    assert sum(k["outstanding_value"] for k in body["keysets"]) == 13
    # as of a moment before the bank existed, nothing was outstanding
    assert all(k["outstanding_value"] == 0 for k in outstanding_per_keyset(w.db, as_of=0))
    signed = build_supply_report(w.bank)
    assert verify_object(signed, w.pki.bank.cert, SUPPLY_REPORT_KIND) == signed["body"]
    with pytest.raises(InputError):
        supply_report_body(w.bank, as_of=-1)


def test_report_accepted_over_http_and_consistent_with_the_audit(setting: Setting) -> None:
    w = setting.world
    sent = send_supply_report(w.bank, setting.central_bank)
    assert sent["receipt"]["created"] is True and sent["receipt"]["bank_id"] == "bank"
    latest = setting.latest()
    assert latest["report"] == sent["report"]
    report = setting.audit(supply_report=latest)
    assert report.ok, report.summary()
    summary = report.supply_report
    assert summary is not None and summary["discrepancies"] == []
    assert summary["reported_total"] == summary["audited_total"] == 13
    assert check_supply_report(latest["report"]["body"], report.outstanding()) == []

    # later activity does not make the older report wrong: the audit compares as of its time
    w.clock.advance(5)
    w.pay(w.members["alice"], "shop-a", 3)
    w.withdraw(w.members["alice"], 4)
    report = setting.audit(supply_report=latest)
    assert report.ok, report.summary()
    assert report.outstanding_total() == 17  # 13 + 4 now; the report said 13 then
    assert report.supply_report is not None
    assert report.supply_report["audited_total"] == 13


def test_understated_report_is_flagged(setting: Setting) -> None:
    w = setting.world
    w.clock.advance(5)
    body = supply_report_body(w.bank)
    line = next(k for k in body["keysets"] if k["outstanding_count"] > 0)
    line["outstanding_count"] -= 1  # consistent with itself, so the central bank stores it
    line["outstanding_value"] -= line["value"]
    lie = sign_object(w.pki.bank.key, SUPPLY_REPORT_KIND, body)
    with CentralBankClient(setting.central_bank) as client:
        receipt = client.submit_supply_report(lie, w.pki.bank.cert_pem)
    assert receipt.created and receipt.as_of == body["as_of"]
    latest = setting.latest()
    assert latest["report_id"] == receipt.report_id

    audit = setting.audit(supply_report=latest)
    (found,) = check_supply_report(body, audit.outstanding())
    assert found.kind == "outstanding_mismatch" and found.keyset_id == line["keyset_id"]
    assert found.expected == found.reported + line["value"]
    assert audit.kinds() == {"supply_report.outstanding_mismatch"}
    (v,) = audit.violations
    assert v.table == "supply_report" and v.row_id == receipt.report_id
    assert (v.expected, v.found) == (found.expected, found.reported)
    assert v.detail["keyset_id"] == line["keyset_id"]


def test_report_signed_by_another_key_is_flagged(setting: Setting) -> None:
    w = setting.world
    stored = setting.latest()
    resigned = sign_object(w.pki.supervision.key, SUPPLY_REPORT_KIND, stored["report"]["body"])
    forged = dict(stored, report=resigned)
    audit = setting.audit(supply_report=forged)
    assert audit.kinds() == {"supply_report.bad_signature"}


def _bank_data(setting: Setting, directory: Path) -> Path:
    """A bank data directory as ``bank init`` leaves it, on the world's database."""
    w = setting.world
    directory.mkdir(mode=0o700)
    w.pki.bank.key.save(directory / "bank.key")
    (directory / "bank.crt").write_text(w.pki.bank.cert_pem)
    (directory / "central-bank-root.pem").write_text(w.pki.root_pem)
    return directory


def test_cli_supply_report_and_audit_against_it(
    setting: Setting, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _bank_data(setting, tmp_path / "bank")
    db_url = sqlite_url(setting.data_dir / "bank.db")
    base = ["bank", "supply-report", "--data-dir", str(data), "--database-url", db_url]
    assert cli_main([*base, "--dry-run", "--json"]) == 0
    dry = json.loads(capsys.readouterr().out)
    assert dry["report"]["kind"] == SUPPLY_REPORT_KIND and "receipt" not in dry
    assert cli_main(base) == 1  # neither --central-bank nor --dry-run
    capsys.readouterr()

    as_of = str(setting.world.clock.advance(5))  # newer than the test's earlier reports
    assert (
        cli_main(
            [
                *base,
                "--central-bank",
                setting.central_bank,
                "--as-of",
                as_of,
                "--json",
                "--insecure-http",
            ]
        )  # fmt: skip
        == 0
    )
    sent = json.loads(capsys.readouterr().out)
    assert sent["receipt"]["created"] is True

    hop = b64u_encode(setting.world.issuer.hop.encode())
    code = cli_main(
        [
            "supervision", "audit", "--bank-db", db_url, "--bank-data", str(data),
            "--opener-public", hop, "--data", str(tmp_path / "sup"),
            "--central-bank", setting.central_bank, "--json", "--insecure-http",
        ]
    )  # fmt: skip
    result = json.loads(capsys.readouterr().out)
    assert code == 0, result["violations"]
    assert result["supply_report"]["report_id"] == sent["receipt"]["report_id"]
    assert result["supply_report"]["discrepancies"] == []
    # the coins' epoch keys come from the central bank: credentials checked with pairings (§7.4)
    assert result["skipped"] == []
    assert result["credential_check"]["epochs_public"] == sorted(setting.world.issuer.secrets)
