"""The swtpm harness and its CLI against the real emulator."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from cryptography import x509

from ecash_tpm import swtpm as swtpm_mod
from ecash_tpm.cli import main as cli_main
from ecash_tpm.swtpm import (
    SwtpmInstance,
    SwtpmNotInstalledError,
    SwtpmNotRunningError,
    SwtpmProvisionError,
    _probe_tpm,
)

pytestmark = pytest.mark.swtpm


def _gone(pid: int) -> bool:
    """True if ``pid`` no longer runs (a zombie counts as gone)."""
    return not swtpm_mod._pid_alive(pid)


def test_lifecycle_start_status_stop(swtpm_factory) -> None:
    inst = swtpm_factory(start=False)
    assert inst.is_provisioned and not inst.is_running()
    st = inst.status()
    assert st["provisioned"] and not st["running"] and st["tcti"] is None
    with pytest.raises(SwtpmNotRunningError):
        _ = inst.tcti

    inst.start()
    assert inst.is_running()
    assert inst.ctrl_port == inst.port + 1  # the swtpm TCTI derives the control port
    assert inst.tcti == f"swtpm:host=127.0.0.1,port={inst.port}"
    assert _probe_tpm("127.0.0.1", inst.port, timeout=2.0)
    saved = json.loads(inst.info_path.read_text())
    assert saved["pid"] == inst.pid and saved["port"] == inst.port
    assert int(inst.pid_path.read_text().strip()) == inst.pid
    assert inst.start() is inst  # idempotent while running

    # another object (as another process would) sees and stops it by pid
    other = SwtpmInstance.load(inst.state_dir)
    assert other.is_running() and other.status()["accepting"]
    pid = inst.pid
    assert other.stop() is True
    assert _gone(pid)
    assert not inst.is_running()
    assert not inst.info_path.exists()
    assert SwtpmInstance.load(inst.state_dir).stop() is False

    # state survives a restart
    with inst:
        assert inst.is_running()
        pid = inst.pid
    assert _gone(pid)


def test_hermetic_ca_and_ek_certs(swtpm) -> None:
    roots, inters = swtpm.ca_certificates()
    assert len(roots) == 1 and len(inters) == 1
    assert swtpm.ca_root_path.is_relative_to(swtpm.state_dir)
    root, inter = roots[0], inters[0]
    root.verify_directly_issued_by(root)
    inter.verify_directly_issued_by(root)
    files = swtpm.ek_certificate_files()
    assert set(files) == {"rsa2048", "secp384r1"}
    for path in files.values():
        cert = x509.load_der_x509_certificate(path.read_bytes())
        cert.verify_directly_issued_by(inter)


def test_two_instances_at_once(swtpm, swtpm_factory) -> None:
    second = swtpm_factory()
    assert second.is_running() and swtpm.is_running()
    assert {second.port, second.ctrl_port}.isdisjoint({swtpm.port, swtpm.ctrl_port})
    assert second.pid != swtpm.pid
    assert _probe_tpm("127.0.0.1", second.port, 2.0) and _probe_tpm("127.0.0.1", swtpm.port, 2.0)
    # independent CAs and EKs
    assert second.ca_certificates()[0][0] != swtpm.ca_certificates()[0][0]
    a = swtpm.ek_certificate_files()["rsa2048"].read_bytes()
    b = second.ek_certificate_files()["rsa2048"].read_bytes()
    assert a != b
    pid = second.pid
    second.stop()
    assert _gone(pid) and swtpm.is_running()


def test_start_retries_when_port_is_taken(swtpm_factory, monkeypatch) -> None:
    inst = swtpm_factory(start=False)
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    taken = blocker.getsockname()[1]
    real = swtpm_mod._free_port_pair
    calls: list[tuple[int, int]] = []

    def first_taken() -> tuple[int, int]:
        pair = (taken, taken + 1) if not calls else real()
        calls.append(pair)
        return pair

    monkeypatch.setattr(swtpm_mod, "_free_port_pair", first_taken)
    try:
        inst.start()
        assert len(calls) == 2 and inst.port != taken and inst.is_running()
    finally:
        blocker.close()
        inst.stop()


def test_start_requires_provisioning(tmp_path: Path) -> None:
    with pytest.raises(SwtpmProvisionError):
        SwtpmInstance(tmp_path / "empty").start()


def test_missing_binaries_is_a_typed_error(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))
    assert set(swtpm_mod.missing_binaries()) == set(swtpm_mod.REQUIRED_BINARIES)
    with pytest.raises(SwtpmNotInstalledError) as err:
        SwtpmInstance(tmp_path / "x").provision()
    assert err.value.code == "swtpm.not_installed"


def test_cli_start_status_stop_across_processes(tmp_path: Path) -> None:
    state = tmp_path / "cli-swtpm"
    env = dict(os.environ)

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "ecash_tpm", "swtpm", *args, "--state", str(state)],
            capture_output=True,
            text=True,
            env=env,
            timeout=60,
        )

    started = run("start")
    try:
        assert started.returncode == 0, started.stderr
        tcti = started.stdout.strip()
        assert tcti.startswith("swtpm:host=127.0.0.1,port=")
        status = run("status", "--json")
        assert status.returncode == 0
        st = json.loads(status.stdout)
        assert st["ok"] and st["running"] and st["tcti"] == tcti
        pid = st["pid"]
        stopped = run("stop", "--json")
        assert stopped.returncode == 0 and json.loads(stopped.stdout)["stopped"] is True
        assert _gone(pid)
        after = run("status")
        assert after.returncode == 3 and "not running" in after.stdout
    finally:
        SwtpmInstance.load(state).stop()


def test_cli_status_in_process(swtpm, capsys) -> None:
    assert cli_main(["swtpm", "status", "--state", str(swtpm.state_dir), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["running"] and out["pid"] == swtpm.pid


def test_cli_tpm_info_on_unprovisioned_state_is_a_typed_error(tmp_path: Path, capsys) -> None:
    assert cli_main(["tpm", "info", "--swtpm-state", str(tmp_path), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["error"]["code"] == "swtpm.provision_failed"
