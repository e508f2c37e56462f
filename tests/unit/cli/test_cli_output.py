"""What the one ``ecash-tpm`` command prints, the same for every role.

With ``--json`` stdout is exactly one object ``{"ok": true, ...payload}`` (payload at the top
level) or ``{"ok": false, "error": {code, message, detail}}``; progress and narration go to
stderr only (and not at all with ``--json`` unless stderr is a terminal); expected failures
(missing files, unreachable servers, wrong password) are ``[code]`` lines, never tracebacks.
"""

from __future__ import annotations

import argparse
import io
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.cli import build_parser, main
from ecash_tpm.cli.output import Progress, emit

Capsys = pytest.CaptureFixture[str]


def run_json(capsys: Capsys, *argv: str, code: int = 0) -> dict[str, Any]:
    """Run in-process with ``--json``: stdout must be exactly one JSON object, stderr empty."""
    assert main([*argv, "--json"]) == code
    out, err = capsys.readouterr()
    assert out.endswith("\n") and out.count("\n") == 1, out  # one line, one object
    assert err == ""  # no progress or narration: stderr is not a terminal here
    doc = json.loads(out)
    assert isinstance(doc, dict)
    assert "result" not in doc
    return doc


def assert_error(doc: dict[str, Any], code: str) -> None:
    assert doc["ok"] is False and set(doc) == {"ok", "version", "error"}, doc
    assert doc["version"] == 1
    assert set(doc["error"]) == {"code", "message", "detail"}
    assert doc["error"]["code"] == code and isinstance(doc["error"]["detail"], dict)


def closed_port_url() -> str:
    """A loopback URL nothing listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


# --- every command ------------------------------------------------------------------------


def _leaves(parser: argparse.ArgumentParser, path: tuple[str, ...] = ()) -> list[Any]:
    subs = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    if not subs:
        return [(path, parser)]
    out = []
    for name, child in subs[0].choices.items():
        out += _leaves(child, (*path, name))
    return out


def test_every_reporting_command_takes_json() -> None:
    leaves = _leaves(build_parser())
    assert len(leaves) > 40
    missing = [
        " ".join(path)
        for path, p in leaves
        # `serve` and `dashboard` run a server until stopped: nothing to report as JSON
        if path[-1] not in {"serve", "dashboard"}
        and not any("--json" in a.option_strings for a in p._actions)
    ]
    assert missing == []


# --- success shape across roles -------------------------------------------------------------


def test_centralbank_init_json(tmp_path: Path, capsys: Capsys) -> None:
    doc = run_json(capsys, "centralbank", "init", "--data", str(tmp_path / "cb"))
    assert doc["ok"] is True
    assert {"data_dir", "root_cert", "fingerprint", "not_after"} <= set(doc)
    assert Path(doc["root_cert"]).exists()
    # the same CA again is a project error, in the same shape
    assert_error(
        run_json(capsys, "centralbank", "init", "--data", str(tmp_path / "cb"), code=1),
        "ca.exists",
    )
    token = run_json(capsys, "centralbank", "admin-token")
    assert set(token) == {"ok", "version", "token", "admin_token_sha256"}


def test_swtpm_status_json(tmp_path: Path, capsys: Capsys) -> None:
    doc = run_json(capsys, "swtpm", "status", "--state", str(tmp_path / "sw"), code=3)
    assert doc["ok"] is True and doc["running"] is False and doc["provisioned"] is False


def test_supervision_init_json(tmp_path: Path, capsys: Capsys) -> None:
    doc = run_json(capsys, "supervision", "init", "--data", str(tmp_path / "sup"))
    assert doc["ok"] is True and doc["created"] is True and doc["opener_public"]


@pytest.fixture
def bank_dir(tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An initialised bank (two denominations: two RSA keys) certified by a local CA."""
    monkeypatch.setenv("ECASH_TPM_BANK_DENOMINATIONS", "[1, 5]")
    assert main(["centralbank", "init", "--data", str(tmp_path / "cb")]) == 0
    capsys.readouterr()
    data = tmp_path / "bank"
    init = run_json(
        capsys, "bank", "init", "--central-bank-dir", str(tmp_path / "cb"), "--data-dir", str(data)
    )
    assert init["ok"] is True and len(init["keysets_created"]) == 2
    return data


def test_bank_json_is_flat(bank_dir: Path, tmp_path: Path, capsys: Capsys) -> None:
    data = ["--data-dir", str(bank_dir)]
    pw = tmp_path / "pw"
    pw.write_text("a long password\n")
    created = run_json(
        capsys, "bank", "account", "create", "alice", "--balance", "9", "--password-file", str(pw),
        *data,
    )  # fmt: skip
    assert created["ok"] is True and created["account_id"] == "alice"
    assert created["balance"] == 9 and created["totp_secret"]
    shown = run_json(capsys, "bank", "account", "show", "alice", *data)
    assert shown["balance"] == 9 and shown["kind"] == "customer"
    keysets = run_json(capsys, "bank", "keyset", "list", *data)
    assert sorted(k["value"] for k in keysets["keysets"]) == [1, 5]
    assert run_json(capsys, "bank", "blacklist", "list", *data)["entries"] == []
    ledger = run_json(capsys, "bank", "ledger", *data)
    assert ledger["ledger"]["customers_total"] == 9


def test_bank_keyset_rotate_progress_goes_to_stderr(bank_dir: Path, capsys: Capsys) -> None:
    data = ["--data-dir", str(bank_dir)]
    assert main(["bank", "keyset", "rotate", *data]) == 0
    out, err = capsys.readouterr()
    assert "[" not in out and len(out.strip().splitlines()) == 2  # one line per keyset
    assert err.splitlines() == [
        "[0/2] generating RSA-2048 keys",
        "[1/2] generating RSA-2048 keys",
        "[2/2] generating RSA-2048 keys",
    ]
    rotated = run_json(capsys, "bank", "keyset", "rotate", *data)  # and none with --json
    assert len(rotated["keysets"]) == 2


def test_bank_keyset_rotate_with_fees(bank_dir: Path, capsys: Capsys) -> None:
    """docs/protocol.md 4.2: ``--fee VALUE=W,D,R,F`` signs fees into the new descriptors."""
    data = ["--data-dir", str(bank_dir)]
    rotated = run_json(capsys, "bank", "keyset", "rotate", "--fee", "5=1,2,3,4", *data)
    fees = {k["value"]: k["fees"] for k in rotated["keysets"]}
    assert fees[5] == {"fee_withdraw": 1, "fee_deposit": 2, "fee_refresh": 3, "fee_refund": 4}
    assert set(fees[1].values()) == {0}
    bad = run_json(capsys, "bank", "keyset", "rotate", "--fee", "5=5,0,0,0", *data, code=1)
    assert_error(bad, "input.invalid")
    bad = run_json(capsys, "bank", "keyset", "rotate", "--fee", "5=1,1", *data, code=1)
    assert_error(bad, "input.invalid")


# --- errors -----------------------------------------------------------------------------------


def test_error_shape_json_and_text(bank_dir: Path, capsys: Capsys) -> None:
    data = ["--data-dir", str(bank_dir)]
    assert_error(
        run_json(capsys, "bank", "account", "show", "nobody", *data, code=1),
        "bank.unknown_account",
    )
    assert main(["bank", "account", "show", "nobody", *data]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err.startswith("ecash-tpm: error [bank.unknown_account]: ")
    assert "Traceback" not in err


def test_expected_failures_are_coded(tmp_path: Path, capsys: Capsys) -> None:
    missing = str(tmp_path / "missing")
    cases: list[tuple[list[str], str]] = [
        (["wallet", "balance", "--data", missing], "wallet.not_found"),
        (["wallet", "history", "--data", missing], "wallet.not_found"),
        (["bank", "account", "show", "x", "--config", missing + ".toml"], "config.invalid"),
        (["bank", "merchant", "add", missing + ".crt", "--data-dir", missing], "cli.file_error"),
        (
            ["merchant", "init", "--data", str(tmp_path / "m"), "--name", "m", "--root", missing],
            "cli.file_error",
        ),
        (
            ["merchant", "request", "--url", closed_port_url(), "--amount", "5", "--insecure-http"],
            "remote.unreachable",
        ),
    ]
    for argv, code in cases:
        assert_error(run_json(capsys, *argv, code=1), code)
        assert main(argv) == 1
        out, err = capsys.readouterr()
        assert out == "" and err.startswith(f"ecash-tpm: error [{code}]: "), (argv, err)
    assert not Path(missing).exists()  # read-only wallet commands create nothing

    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    argv = ["supervision", "open", "--data", str(tmp_path / "sup"), "--spend", str(bad)]
    assert_error(run_json(capsys, *argv, "--reason", "x", code=1), "input.invalid")


# --- the helpers ----------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_rewrites_one_line() -> None:
    term = _Terminal()
    with Progress(argparse.Namespace(json=True), stream=term) as progress:
        for done in range(4):
            progress("signing coins", done, 3)
        progress("x", 0, 2)  # left open: ended by the context manager
    assert term.getvalue() == (
        "\r[0/3] signing coins\r[1/3] signing coins\r[2/3] signing coins"
        "\r[3/3] signing coins\n\r[0/2] x\n"
    )
    term = _Terminal()
    progress = Progress(argparse.Namespace(json=False), stream=term)
    progress("a longer message", 0, 2)
    progress("short", 1, 2)  # padded over the longer line
    progress.note("done")  # ends the open line first
    progress("short", 1, 1)
    pad = " " * (len("[0/2] a longer message") - len("[1/2] short"))
    assert term.getvalue() == (
        f"\r[0/2] a longer message\r[1/2] short{pad}\n... done\n\r[1/1] short\n"
    )


def test_progress_elsewhere_plain_lines_and_silent_with_json() -> None:
    pipe = io.StringIO()
    progress = Progress(argparse.Namespace(json=False), stream=pipe)
    progress("proofs", 1, 2)
    progress.note("paying")
    assert pipe.getvalue() == "[1/2] proofs\n... paying\n"
    quiet = io.StringIO()
    progress = Progress(argparse.Namespace(json=True), stream=quiet)
    progress("proofs", 1, 2)
    progress.note("paying")
    progress.close()
    assert quiet.getvalue() == ""


def test_emit(capsys: Capsys) -> None:
    emit(argparse.Namespace(json=True), {"a": 1, "path": Path("/x")}, "text")
    assert json.loads(capsys.readouterr().out) == {"ok": True, "version": 1, "a": 1, "path": "/x"}
    emit(argparse.Namespace(json=False), {"a": 1}, lambda: "lazy text")
    assert capsys.readouterr().out == "lazy text\n"
    with pytest.raises(ValueError):
        emit(argparse.Namespace(json=True), {"ok": False}, "")


# --- a real wallet against a running system ---------------------------------------------------


@pytest.mark.swtpm
def test_wallet_withdraw_progress_and_errors(
    swtpm: Any, tmp_path: Path, capsys: Capsys, monkeypatch: pytest.MonkeyPatch
) -> None:
    from support.system import start_system

    from ecash_tpm.device import TpmDevice

    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        wallet = tmp_path / "wallet"
        s.join(dev, wallet)
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        base = ["wallet", "withdraw", "--data", str(wallet), "--password-file", str(pw)]
        bank = ["--bank", s.bank_url, "--bank-name", "bank", "--root", str(s.root_path)]

        # text mode: the result on stdout, per-coin progress on stderr
        assert main([*base, "3", *bank, "--totp", s.customer.totp()]) == 0
        out, err = capsys.readouterr()
        assert out.startswith("withdrew 0.03 EUR") and out.count("\n") == 1
        lines = err.splitlines()
        assert "... logging in at the bank" in lines
        assert "[0/2] blinding coins" in lines and "[2/2] blinding coins" in lines
        assert "[2/2] the bank signs blindly" in lines
        assert lines[-1] == "[2/2] unblinding and verifying signatures"

        # --json: one object on stdout, nothing on stderr
        doc = run_json(capsys, *base, "1", *bank, "--totp", s.customer.totp())
        assert [w["amount"] for w in doc["withdrawals"]] == [1]

        # wrong password (after a logout: the stored session would be used): the bank's code
        assert run_json(capsys, "wallet", "logout", "--data", str(wallet))["logged_out"] is True
        wrong = tmp_path / "wrong"
        wrong.write_text("not the password")
        argv = ["wallet", "withdraw", "1", "--data", str(wallet), "--password-file", str(wrong)]
        doc = run_json(capsys, *argv, "--totp", s.customer.totp(), code=1)
        assert_error(doc, "auth.invalid_credentials")

        # TOTP asked on a closed stdin: a coded error, and the prompt is not on stdout
        monkeypatch.setattr("sys.stdin", io.StringIO(""))
        assert main([*base, "1", "--json"]) == 1
        out, err = capsys.readouterr()
        assert_error(json.loads(out), "input.invalid")
        assert err == "TOTP code: "

    # the bank is gone: unreachable, no traceback
    argv = [*base, "1", "--bank", closed_port_url(), "--totp", "123456", "--insecure-http"]
    assert_error(run_json(capsys, *argv, code=1), "remote.unreachable")
    not_joined = ["wallet", "withdraw", "1", "--data", str(tmp_path / "w2"), *bank]
    assert_error(run_json(capsys, *not_joined, code=1), "wallet.not_joined")
