"""``ecash-tpm tpm bench`` against the session swtpm: the shape of the report, never timings."""

from __future__ import annotations

import json

import pytest

from ecash_tpm.cli import main
from ecash_tpm.device.bench import OPERATIONS

pytestmark = pytest.mark.swtpm


def test_bench_json_has_every_operation(swtpm, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tpm", "bench", "--tcti", swtpm.tcti, "--rounds", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] and out["rounds"] == 2 and out["ek"] == "rsa2048"
    assert out["tcti"] == swtpm.tcti and out["manufacturer"] == "IBM"
    assert [op["operation"] for op in out["operations"]] == list(OPERATIONS)
    for op in out["operations"]:
        assert op["samples"] == 2 and op["skipped"] is None, op
        assert 0 <= op["min_ms"] <= op["median_ms"] <= op["max_ms"], op
    by_name = {op["operation"]: op for op in out["operations"]}
    commit, sign = by_name["TPM2_Commit"], by_name["TPM2_Sign(ECDAA)"]
    assert out["per_coin_ms"] == pytest.approx(commit["median_ms"] + sign["median_ms"], abs=1e-2)


def test_bench_text_and_ek_choice(swtpm, capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["tpm", "bench", "--swtpm-state", str(swtpm.state_dir), "--rounds", "1"]
    assert main([*argv, "--ek", "ecc_p256"]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert "ActivateCredential with the ecc_p256 EK" in lines[1]
    for name in OPERATIONS:
        assert any(line.startswith(name) for line in lines), name
    assert "per coin of a payment" in lines[-1]
    assert "round 1 of 1" in captured.err  # progress goes to stderr


def test_bench_refuses_bad_rounds(swtpm, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["tpm", "bench", "--tcti", swtpm.tcti, "--rounds", "0", "--json"]) == 1
    err = json.loads(capsys.readouterr().out)["error"]
    assert err["code"] == "cli.bench_rounds_invalid"
