"""``ecash-tpm demo`` as a user runs it: a subprocess with real swtpm and party processes.

Checks the JSON report (schema, step names in order, the double spender named with a verified
proof), that nothing outlives the demo (no process whose command line names its work
directory, no listening port of its parties), and that killing it midway -- SIGTERM, which it
turns into an orderly shutdown, and SIGKILL, after which the kernel's parent-death signal
stops its children -- leaves no stray process either.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.demo.story import STEPS

pytestmark = [pytest.mark.swtpm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _demo(workdir: Path, *args: str, **kw: Any) -> subprocess.Popen[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    return subprocess.Popen(
        [sys.executable, "-m", "ecash_tpm", "demo", "--workdir", str(workdir), *args],
        cwd=REPO,
        env=env,
        text=True,
        **kw,
    )


def _processes_naming(path: Path) -> dict[int, str]:
    """Live processes whose command line mentions ``path`` (zombies have none)."""
    needle = str(path).encode()
    found = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if needle in cmdline:
            found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace")
    return found


def _wait_no_processes(path: Path, timeout: float = 8.0) -> dict[int, str]:
    deadline = time.monotonic() + timeout
    while True:
        left = _processes_naming(path)
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _listening(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_demo_json_report_and_nothing_left_behind(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    proc = _demo(workdir, "--json", "--keep", stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, err[-3000:]
    report = json.loads(out)  # exactly one JSON object on stdout
    assert set(report) == {"ok", "version", "steps"} and report["ok"] is True
    assert report["version"] == 1  # the --json shape version (cli.output.JSON_VERSION)
    names = [s["step"] for s in report["steps"]]
    assert names == list(STEPS)
    assert names[:13] == [  # the order the operator's checklist (issue 5) fixes
        "provision_tpm",
        "certify_parties",
        "join",
        "withdraw",
        "pay",
        "deposit",
        "change",  # issue 12: a payment that needs a swap
        "refund",  # issue 12 (#3)
        "double_spend_rejected",
        "double_spender_identified",
        "stolen_coin_rejected",
        "expired_coin_rejected",
        "audit",
    ]
    assert names[13:] == ["fair_exchange"]
    for step in report["steps"]:
        assert set(step) == {"step", "ok", "ms", "detail"}
        assert step["ok"] is True and isinstance(step["detail"], dict)
        assert isinstance(step["ms"], float) and step["ms"] >= 0
    steps = {s["step"]: s["detail"] for s in report["steps"]}
    # every party ran over TLS 1.3 (issue 11), each with the identity its role and name give,
    # and every party's URL is https
    from ecash_tpm.pki import tls_identity

    certified = steps["certify_parties"]
    tls = certified["tls"]
    assert set(tls) == set(certified["parties"]) | {"centralbank"}
    for party, seen in tls.items():
        assert seen["protocol"] == "TLSv1.3", (party, seen)
        role, name = (
            ("centralbank", "centralbank")
            if party == "centralbank"
            else ("merchant", party)
            if party.startswith("merchant-")
            else (party, party)
        )
        assert seen["identity"] == tls_identity(role, name), (party, seen)
        assert seen["mutual"] is True, (party, seen)  # each asks callers for a certificate
    assert all(p["url"].startswith("https://") for p in certified["parties"].values())
    assert certified["central_bank"]["url"].startswith("https://")
    named = steps["double_spender_identified"]
    assert named["member_id"] == named["joined_member_id"] == steps["join"]["member_id"]
    assert named["proof_verified"] is True
    assert steps["double_spend_rejected"]["code"] == "bank.double_spend"
    assert steps["double_spend_rejected"]["http_status"] == 409
    assert steps["stolen_coin_rejected"]["refused"] is True
    assert steps["expired_coin_rejected"]["merchant"]["code"] == "coin.keyset_expired"
    assert steps["expired_coin_rejected"]["bank"]["code"] == "bank.keyset_expired"
    assert steps["audit"]["ok"] is True
    assert steps["change"]["swap"]["inputs"] == [64] and steps["change"]["amount"] == 10
    refunded = steps["refund"]  # issue 12 (#3): claimed by the wallet, merchant A debited
    assert refunded["amount"] == refunded["merchant_a_debited"] == refunded["wallet_gained"] > 0
    fair = steps["fair_exchange"]
    assert fair["honest"]["ttp_contacted"] is False and fair["honest"]["bytes"] > 0
    assert fair["cheating"]["strike"] and fair["cheating"]["bytes"] == fair["honest"]["bytes"]

    # nothing it started outlives it: no process names the work dir, no party port listens
    assert _wait_no_processes(workdir, timeout=2.0) == {}
    record = json.loads((workdir / "run" / "parties.json").read_text())
    parties = {p["name"]: p for p in record["parties"]}
    assert {"centralbank", "supervision", "bank", "merchant-a", "merchant-b"} <= set(parties)
    for party in parties.values():
        assert party["returncode"] is not None, party
        assert not _listening(party["port"]), party
    assert (workdir / "logs" / "bank.log").stat().st_size > 0  # --keep kept the logs


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGKILL], ids=["SIGTERM", "SIGKILL"])
def test_killing_the_demo_midway_leaves_no_stray_process(
    tmp_path: Path, sig: signal.Signals
) -> None:
    workdir = tmp_path / "demo"
    progress = tmp_path / "progress.txt"
    with progress.open("w") as log:
        proc = _demo(workdir, "--keep", stdout=subprocess.DEVNULL, stderr=log)
        try:
            deadline = time.monotonic() + 60
            # "[ 3]" is printed once every party answers: kill it while all are up
            while "[ 3]" not in progress.read_text():
                assert proc.poll() is None, progress.read_text()[-3000:]
                assert time.monotonic() < deadline, "the demo did not start its parties"
                time.sleep(0.05)
            assert len(_processes_naming(workdir)) >= 7  # 2 swtpm + 5 parties
            proc.send_signal(sig)
            code = proc.wait(timeout=30)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert code == (130 if sig == signal.SIGTERM else -signal.SIGKILL)
    assert _wait_no_processes(workdir) == {}
    if sig == signal.SIGTERM:  # orderly shutdown: it says which step was interrupted
        text = progress.read_text()
        assert "interrupted" in text and "all parties and TPMs stopped" in text
