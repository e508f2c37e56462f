"""``ecash-tpm dashboard --config FILE`` against a running deployment, as an operator runs it.

Every party is its own process on 127.0.0.1 (the demo's bootstrap, :class:`LocalDeployment`);
the dashboard is a subprocess reading the deployment's TOML file plus one ``--party``. Checked
through its ``/api/events`` history (the page draws the same events): every certificate chains
to the root and is not revoked, the bank's keysets and the group's parameters are shown, the
page says what it cannot see; then the central bank revokes merchant B's certificate and the
next poll shows it REVOKED. Ctrl-C stops it with status 0.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecash_tpm.deploy.bootstrap import write_config
from ecash_tpm.deploy.local import LocalDeployment

pytestmark = [pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _cards(url: str) -> dict[str, dict[str, Any]]:
    events = httpx.get(f"{url}api/events", timeout=10).json()
    return {e["card"]["id"]: e["card"] for e in events if e["kind"] == "card"}


def _until(url: str, check: Any, timeout: float = 60) -> dict[str, dict[str, Any]]:
    deadline = time.monotonic() + timeout
    while True:
        cards = _cards(url)
        if check(cards):
            return cards
        assert time.monotonic() < deadline, json.dumps(cards)[-4000:]
        time.sleep(0.3)


def _row(card: dict[str, Any], party: str) -> list[str]:
    table = next(b for b in card["blocks"] if b["type"] == "table")
    row = next(r for r in table["rows"] if r[0]["text"] == party)
    return [c["text"] for c in row]


def test_dashboard_watches_a_running_deployment(tmp_path: Path) -> None:
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.issuer.policy import PcrPolicy

    dep = LocalDeployment.create(tmp_path / "deployment")
    proc: subprocess.Popen[str] | None = None
    try:
        dep.start_central_bank()
        dep.init_parties(ek_trust=[], pcr_policy=PcrPolicy((0,), {0: [bytes(32)]}))
        dep.setup_bank()
        dep.start_parties()
        port = dep.ports
        root = tmp_path / "central-bank-root.pem"  # what the dashboard checks TLS against
        root.write_bytes(dep.root_pem())
        config = write_config(
            tmp_path / "ecash-tpm.toml",
            {
                "centralbank": {
                    "host": "0.0.0.0",  # noqa: S104
                    "port": port["centralbank"],
                    "central_bank_root": str(root),
                },
                "supervision": {"port": port["supervision"]},
                "issuer": {"port": port["bank"]},  # the group manager runs in the bank
                "bank": {"port": port["bank"]},
                "merchant": {"name": "merchant-a", "port": port["merchant-a"]},
            },
        )
        err = tmp_path / "dashboard.err"
        proc = subprocess.Popen(
            [sys.executable, "-m", "ecash_tpm", "dashboard", "--config", str(config),
             "--party", f"merchant-b={dep.url('merchant-b')}", "--interval", "0.5"],
            cwd=REPO,
            env={k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")},
            text=True,
            stderr=err.open("w"),
        )  # fmt: skip
        deadline = time.monotonic() + 60
        while not (found := re.search(r"(http://127\.0\.0\.1:\d+/)", err.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, err.read_text()
            time.sleep(0.05)
        url = found.group(1)

        cards = _until(url, lambda c: c.get("parties", {}).get("state") == "ok" and "keysets" in c)
        assert _cards(url)  # the history is there for a page opened late
        parties = cards["parties"]
        for name in ("supervision", "issuer"):  # not served over HTTP: said, not guessed
            assert "not served over HTTP" in _row(parties, name)[4]
        for name in ("bank", "merchant-a", "merchant-b"):
            assert _row(parties, name)[3:] == [
                "up",
                _row(parties, name)[4],
                "→ root",
                "not revoked",
            ]
        assert cards["keysets"]["state"] == "ok" and cards["keysets"]["badge"].endswith("keysets")
        group = json.dumps(cards["group"])
        assert "the same on both" in group
        assert cards["unavailable"]["state"] == "unavailable"
        assert "members_token" in json.dumps(cards["unavailable"])

        serial = dep.inits["merchant-b"].certificate["serial"]
        with CentralBankClient(
            dep.url("centralbank"), admin_token=dep.admin_token, **dep.client_kwargs("centralbank")
        ) as cb:
            cb.revoke(serial, "keyCompromise")
        cards = _until(url, lambda c: c["parties"]["state"] == "alarm")
        assert _row(cards["parties"], "merchant-b")[-1] == "REVOKED"
        assert _row(cards["parties"], "merchant-a")[-1] == "not revoked"

        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, err.read_text()
    finally:
        if proc is not None and proc.poll() is None:
            proc.kill()
            proc.wait(30)
        dep.close()
