"""A hermetic swtpm emulator: provisioned with its own CA, started on free loopback ports.

Tests, demos and CI need a TPM with real EK certificates. ``swtpm_setup`` can make them, but by
default it uses the CA under the user's config directory (or the system one for root). We point
``XDG_CONFIG_HOME`` at the state directory so the CA, its keys and its config live *inside* that
directory and vanish with it; trust in that CA is then explicit
(see :meth:`SwtpmInstance.ca_certificates`).

Layout of a state directory::

    swtpm_setup.conf, swtpm-localca.conf, swtpm-localca.options   config written by swtpm_setup
    var/lib/swtpm-localca/                                        the hermetic CA (root + issuer)
    tpm/                                                          the TPM's NV state
    certs/                                                        copies of the EK certificates
    swtpm.log, swtpm.pid, instance.json                           the running server
    binary_bios_measurements                                      the synthetic boot's event log

swtpm has no firmware, so each start plays one (:mod:`ecash_tpm.swtpm.firmware`): it measures a
synthetic boot into PCRs 0, 2, 4 and 7 and writes the matching TCG event log, which a wallet
sends at join as a real host sends ``/sys/kernel/security/tpm0/binary_bios_measurements``.

This package does not import tpm2-pytss (only :mod:`ecash_tpm.device` does): readiness is
checked with a raw ``TPM2_GetRandom`` and the boot is measured with raw ``TPM2_PCR_Event``.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import socket
import struct
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from ecash_tpm.procutil import die_with_parent
from ecash_tpm.swtpm.errors import (
    SwtpmBootError,
    SwtpmNotInstalledError,
    SwtpmNotRunningError,
    SwtpmProvisionError,
    SwtpmStartError,
    SwtpmStateError,
    SwtpmStopError,
)
from ecash_tpm.swtpm.firmware import EVENT_LOG_FILE, measure_boot

LOOPBACK = "127.0.0.1"
REQUIRED_BINARIES: tuple[str, ...] = ("swtpm", "swtpm_setup", "swtpm_localca")

_STATE_FILE = "instance.json"
_PID_FILE = "swtpm.pid"
_LOG_FILE = "swtpm.log"
_SETUP_LOG_FILE = "swtpm_setup.log"
_TPM_DIR = "tpm"
_CERTS_DIR = "certs"
_CA_DIR = Path("var", "lib", "swtpm-localca")
_CA_ROOT = "swtpm-localca-rootca-cert.pem"
_CA_ISSUER = "issuercert.pem"

# TPM2_GetRandom(8): tag NO_SESSIONS, size 12, TPM_CC_GetRandom, bytesRequested.
_GET_RANDOM = struct.pack(">HIIH", 0x8001, 12, 0x0000017B, 8)


# --- helpers ---------------------------------------------------------------------------------


def missing_binaries() -> list[str]:
    """Names of the swtpm binaries not found on PATH (empty when all are there)."""
    return [name for name in REQUIRED_BINARIES if shutil.which(name) is None]


def _require_binaries() -> None:
    missing = missing_binaries()
    if missing:
        raise SwtpmNotInstalledError(
            "swtpm is not installed: " + ", ".join(missing) + " not found on PATH",
            detail={"missing": missing},
        )


def _free_port_pair(tries: int = 50) -> tuple[int, int]:
    """Two currently free consecutive loopback ports (server, control).

    They must be consecutive: the tpm2-tss ``swtpm`` TCTI only takes ``port=N`` and talks to
    the control channel on N+1. We release them before swtpm binds them, so another process
    can take one in between; :meth:`SwtpmInstance.start` detects that and retries.
    """
    for _ in range(tries):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as a:
            a.bind((LOOPBACK, 0))
            port = a.getsockname()[1]
            if port >= 65535:
                continue
            with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as b:
                try:
                    b.bind((LOOPBACK, port + 1))
                except OSError:
                    continue
                return port, port + 1
    raise SwtpmStartError("no two consecutive free loopback ports found")


def _pid_alive(pid: int) -> bool:
    """True if ``pid`` is a live (non-zombie) process."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no procfs: trust kill(0)
    # state is the field after the parenthesised command name
    state = stat.rsplit(")", 1)[-1].split()[0]
    return state not in ("Z", "X")


def _pid_is_our_swtpm(pid: int, state_dir: Path) -> bool:
    """Guard against pid reuse: the process must be swtpm serving *this* state dir."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:
        return False
    except OSError:
        return _pid_alive(pid)  # no procfs: best effort
    args = [a.decode(errors="replace") for a in raw.split(b"\0") if a]
    if not args or Path(args[0]).name != "swtpm":
        return False
    return any(str(state_dir / _TPM_DIR) in a for a in args)


def _probe_tpm(host: str, port: int, timeout: float) -> bool:
    """Send a raw TPM2_GetRandom and check for a success response."""
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            conn.sendall(_GET_RANDOM)
            header = b""
            while len(header) < 10:
                chunk = conn.recv(10 - len(header))
                if not chunk:
                    return False
                header += chunk
    except OSError:
        return False
    _tag, _size, rc = struct.unpack(">HII", header)
    return bool(rc == 0)


def _port_accepts(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


# --- the instance ----------------------------------------------------------------------------


@dataclass
class SwtpmInstance:
    """One emulator bound to a state directory; ports/pid are set while it runs."""

    state_dir: Path
    host: str = LOOPBACK
    port: int | None = None
    ctrl_port: int | None = None
    pid: int | None = None
    # The kernel stops the emulator when the starting process dies (tests, demo); the CLI's
    # `swtpm start` turns this off because its emulator must outlive the command.
    tie_to_parent: bool = True
    # Measure the synthetic boot at each start (see the module docstring); off leaves PCRs zero.
    measured_boot: bool = True
    _proc: subprocess.Popen[bytes] | None = field(default=None, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.state_dir = Path(self.state_dir).resolve()

    # -- paths -----------------------------------------------------------------------------

    @property
    def tpm_state_dir(self) -> Path:
        return self.state_dir / _TPM_DIR

    @property
    def ca_dir(self) -> Path:
        return self.state_dir / _CA_DIR

    @property
    def ca_root_path(self) -> Path:
        return self.ca_dir / _CA_ROOT

    @property
    def ca_intermediate_path(self) -> Path:
        return self.ca_dir / _CA_ISSUER

    @property
    def log_path(self) -> Path:
        return self.state_dir / _LOG_FILE

    @property
    def pid_path(self) -> Path:
        return self.state_dir / _PID_FILE

    @property
    def info_path(self) -> Path:
        return self.state_dir / _STATE_FILE

    @property
    def event_log_path(self) -> Path:
        """The TCG event log of the running emulator's synthetic boot."""
        return self.state_dir / EVENT_LOG_FILE

    @property
    def is_provisioned(self) -> bool:
        return (self.tpm_state_dir / "tpm2-00.permall").is_file() and self.ca_root_path.is_file()

    @property
    def tcti(self) -> str:
        """The tpm2-tss TCTI string (also understood by tpm2-tools)."""
        if self.port is None:
            raise SwtpmNotRunningError(
                "swtpm is not running", detail={"state_dir": str(self.state_dir)}
            )
        return f"swtpm:host={self.host},port={self.port}"

    # -- construction ----------------------------------------------------------------------

    @classmethod
    def load(cls, state_dir: str | os.PathLike[str]) -> SwtpmInstance:
        """An instance for ``state_dir``, with port/pid from instance.json if a server ran."""
        inst = cls(Path(state_dir))
        inst._read_info()
        return inst

    def _read_info(self) -> None:
        """Adopt host/ports/pid recorded by whichever process started the server."""
        if not self.info_path.exists():
            return
        try:
            data = json.loads(self.info_path.read_text())
            self.host = str(data.get("host", LOOPBACK))
            self.port = int(data["port"]) if data.get("port") is not None else None
            self.ctrl_port = int(data["ctrl_port"]) if data.get("ctrl_port") is not None else None
            self.pid = int(data["pid"]) if data.get("pid") is not None else None
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise SwtpmStateError(
                f"unreadable {self.info_path}: {exc}", detail={"path": str(self.info_path)}
            ) from exc

    def provision(
        self,
        *,
        overwrite: bool = False,
        platform_cert: bool = False,
        pcr_banks: str = "sha256",
        timeout: float = 120.0,
    ) -> SwtpmInstance:
        """Create the hermetic CA and a manufactured TPM with RSA-2048 and ECC P-384 EK certs.

        A provisioned directory is left alone unless ``overwrite``; a running emulator must be
        stopped first because swtpm_setup needs the state exclusively.
        """
        _require_binaries()
        if self.is_provisioned and not overwrite:
            return self
        if self.pid is None:
            self._read_info()
        if self.is_running():
            raise SwtpmProvisionError(
                "cannot provision while swtpm is running", detail={"pid": self.pid}
            )
        self.state_dir.mkdir(parents=True, exist_ok=True)
        if overwrite:
            for sub in (_TPM_DIR, _CERTS_DIR, "var"):
                shutil.rmtree(self.state_dir / sub, ignore_errors=True)
        tmp = self.state_dir / "tmp"
        for d in (self.tpm_state_dir, self.state_dir / _CERTS_DIR, tmp):
            d.mkdir(parents=True, exist_ok=True)
        env = dict(os.environ)
        env["XDG_CONFIG_HOME"] = str(self.state_dir)  # the CA and its config stay in here
        env["TMPDIR"] = str(tmp)
        log = self.state_dir / _SETUP_LOG_FILE
        config = self.state_dir / "swtpm_setup.conf"
        steps = [
            ["swtpm_setup", "--create-config-files", "overwrite,root"],
            [
                "swtpm_setup",
                "--tpm2",
                "--config",
                str(config),
                "--tpmstate",
                str(self.tpm_state_dir),
                "--create-ek-cert",  # RSA-2048 EK (0x01c00002) + ECC P-384 EK (0x01c00016)
                "--pcr-banks",
                pcr_banks,
                "--write-ek-cert-files",
                str(self.state_dir / _CERTS_DIR),
                "--overwrite",
                "--logfile",
                str(log),
                *(["--create-platform-cert"] if platform_cert else []),
            ],
        ]
        try:
            for cmd in steps:
                try:
                    res = subprocess.run(
                        cmd,
                        env=env,
                        cwd=self.state_dir,
                        capture_output=True,
                        timeout=timeout,
                        check=False,
                    )
                except subprocess.TimeoutExpired as exc:
                    raise SwtpmProvisionError(
                        f"{cmd[0]} timed out after {timeout} s", detail={"command": cmd[:3]}
                    ) from exc
                if res.returncode != 0:
                    out = (res.stdout + res.stderr).decode(errors="replace")
                    if log.exists():
                        out += log.read_text(errors="replace")
                    raise SwtpmProvisionError(
                        f"swtpm_setup failed with exit status {res.returncode}",
                        detail={"command": " ".join(cmd[:2]), "output": out[-2000:]},
                    )
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        if not self.is_provisioned:
            raise SwtpmProvisionError(
                "swtpm_setup finished but the state or CA is missing",
                detail={"state_dir": str(self.state_dir)},
            )
        return self

    # -- lifecycle -------------------------------------------------------------------------

    def start(self, *, timeout: float = 10.0, attempts: int = 5) -> SwtpmInstance:
        """Start ``swtpm socket`` on free loopback ports; no-op if already running.

        Port choice races with other processes, so a bind failure is retried with new ports.
        The server runs in its own session so that it outlives a CLI ``start``.
        """
        _require_binaries()
        if self.pid is None:
            self._read_info()
        if self.is_running():
            return self
        if not self.is_provisioned:
            raise SwtpmProvisionError(
                "state directory is not provisioned", detail={"state_dir": str(self.state_dir)}
            )
        last_output = ""
        for _ in range(attempts):
            port, ctrl_port = _free_port_pair()
            proc = self._spawn(port, ctrl_port)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if proc.poll() is not None:
                    break
                if _probe_tpm(self.host, port, timeout=1.0):
                    self.port, self.ctrl_port, self.pid, self._proc = (
                        port,
                        ctrl_port,
                        proc.pid,
                        proc,
                    )
                    self._boot()
                    self._write_info()
                    return self
                time.sleep(0.02)
            else:
                self._terminate(proc.pid, proc, timeout=2.0)
                raise SwtpmStartError(
                    f"swtpm did not answer within {timeout} s",
                    detail={"port": port, "log": self._log_tail()},
                )
            last_output = self._log_tail()
            if "in use" not in last_output.lower():
                raise SwtpmStartError(
                    f"swtpm exited with status {proc.returncode}",
                    detail={"log": last_output},
                )
        raise SwtpmStartError(
            f"no free port pair after {attempts} attempts", detail={"log": last_output}
        )

    def _boot(self) -> None:
        """Play firmware on the fresh PCRs and write the event log; stop the emulator if not."""
        with contextlib.suppress(FileNotFoundError):
            self.event_log_path.unlink()  # a previous boot's log no longer matches
        if not self.measured_boot or self.port is None:
            return
        try:
            log = measure_boot(self.host, self.port)
            tmp = self.event_log_path.with_suffix(".tmp")
            tmp.write_bytes(log)
            os.replace(tmp, self.event_log_path)
        except (SwtpmBootError, OSError) as exc:
            pid, proc = self.pid, self._proc
            self._clear_info()
            if pid is not None:
                self._terminate(pid, proc, timeout=2.0)
            if isinstance(exc, SwtpmBootError):
                raise
            raise SwtpmBootError(f"cannot write the event log: {exc}") from exc

    def _spawn(self, port: int, ctrl_port: int) -> subprocess.Popen[bytes]:
        cmd = [
            "swtpm",
            "socket",
            "--tpm2",
            "--tpmstate",
            f"dir={self.tpm_state_dir}",
            "--server",
            f"type=tcp,port={port},bindaddr={self.host}",
            "--ctrl",
            f"type=tcp,port={ctrl_port},bindaddr={self.host}",
            "--flags",
            "not-need-init,startup-clear",
            "--pid",
            f"file={self.pid_path}",
            "--log",
            f"file={self.log_path},level=1,truncate",
        ]
        with contextlib.suppress(FileNotFoundError):
            self.pid_path.unlink()
        with open(os.devnull, "rb") as devnull:
            return subprocess.Popen(
                cmd,
                stdin=devnull,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
                cwd=self.state_dir,
                start_new_session=True,
                preexec_fn=die_with_parent if self.tie_to_parent else None,
            )

    def _log_tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-2000:]
        except OSError:
            return ""

    def _write_info(self) -> None:
        data = {
            "host": self.host,
            "port": self.port,
            "ctrl_port": self.ctrl_port,
            "pid": self.pid,
            "tcti": self.tcti,
            "started_at": int(time.time()),
        }
        tmp = self.info_path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=2) + "\n")
        os.replace(tmp, self.info_path)

    def _clear_info(self) -> None:
        for p in (self.info_path, self.pid_path):
            with contextlib.suppress(FileNotFoundError):
                p.unlink()
        self.port = self.ctrl_port = self.pid = None
        self._proc = None

    def is_running(self) -> bool:
        """True if our recorded pid is alive and is swtpm serving this state dir."""
        if self.pid is None:
            return False
        if self._proc is not None and self._proc.poll() is not None:
            return False
        return _pid_alive(self.pid) and _pid_is_our_swtpm(self.pid, self.state_dir)

    @staticmethod
    def _terminate(pid: int, proc: subprocess.Popen[bytes] | None, timeout: float) -> None:
        """SIGTERM, wait, then SIGKILL: by pid only."""
        for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5.0)):
            try:
                os.kill(pid, sig)
            except ProcessLookupError:
                break
            if proc is not None:
                try:
                    proc.wait(timeout=wait)
                    return
                except subprocess.TimeoutExpired:
                    continue
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline:
                if not _pid_alive(pid):
                    return
                time.sleep(0.02)
        if proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=1.0)
        if _pid_alive(pid):
            raise SwtpmStopError(f"swtpm pid {pid} survived SIGKILL", detail={"pid": pid})

    def stop(self, *, timeout: float = 5.0) -> bool:
        """Stop the server by its recorded pid; returns False if it was not running."""
        if self.pid is None:
            self._clear_info()
            return False
        was_running = self.is_running()
        if was_running:
            self._terminate(self.pid, self._proc, timeout)
        elif self._proc is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=1.0)  # reap
        self._clear_info()
        return was_running

    def status(self) -> dict[str, Any]:
        """A JSON-ready summary for ``ecash-tpm swtpm status``."""
        running = self.is_running()
        return {
            "state_dir": str(self.state_dir),
            "provisioned": self.is_provisioned,
            "running": running,
            "pid": self.pid if running else None,
            "port": self.port if running else None,
            "ctrl_port": self.ctrl_port if running else None,
            "tcti": self.tcti if running else None,
            "accepting": running and self.port is not None and _port_accepts(self.host, self.port),
            "ca_root": str(self.ca_root_path) if self.is_provisioned else None,
        }

    def cleanup(self) -> None:
        """Stop the server and delete the whole state directory (CA included)."""
        self.stop()
        shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> SwtpmInstance:
        if not self.is_provisioned:
            self.provision()
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- trust material --------------------------------------------------------------------

    def ca_certificates(self) -> tuple[list[x509.Certificate], list[x509.Certificate]]:
        """(roots, intermediates) of this instance's hermetic CA: its EK trust store."""
        try:
            roots = x509.load_pem_x509_certificates(self.ca_root_path.read_bytes())
            inter = x509.load_pem_x509_certificates(self.ca_intermediate_path.read_bytes())
        except (OSError, ValueError) as exc:
            raise SwtpmProvisionError(
                f"cannot read the swtpm CA: {exc}", detail={"ca_dir": str(self.ca_dir)}
            ) from exc
        return roots, inter

    def ek_certificate_files(self) -> dict[str, Path]:
        """EK certificate copies written at provisioning, keyed by swtpm's name (rsa2048...)."""
        out: dict[str, Path] = {}
        certs = self.state_dir / _CERTS_DIR
        if certs.is_dir():
            for p in sorted(certs.glob("ek-*.crt")):
                out[p.stem.removeprefix("ek-")] = p
        return out


# --- module-level conveniences -----------------------------------------------------------


def provision(state_dir: str | os.PathLike[str], **kwargs: Any) -> SwtpmInstance:
    """Provision ``state_dir`` (see :meth:`SwtpmInstance.provision`)."""
    return SwtpmInstance.load(state_dir).provision(**kwargs)


def start(state_dir: str | os.PathLike[str], **kwargs: Any) -> SwtpmInstance:
    """Provision if needed, then start; returns the running instance."""
    inst = SwtpmInstance.load(state_dir)
    if not inst.is_provisioned:
        inst.provision()
    return inst.start(**kwargs)


def stop(state_dir: str | os.PathLike[str]) -> bool:
    """Stop the instance recorded in ``state_dir`` (may have been started by another process)."""
    return SwtpmInstance.load(state_dir).stop()


def is_running(state_dir: str | os.PathLike[str]) -> bool:
    return SwtpmInstance.load(state_dir).is_running()


__all__ = [
    "LOOPBACK",
    "REQUIRED_BINARIES",
    "SwtpmBootError",
    "SwtpmInstance",
    "SwtpmNotInstalledError",
    "SwtpmNotRunningError",
    "SwtpmProvisionError",
    "SwtpmStartError",
    "SwtpmStateError",
    "SwtpmStopError",
    "is_running",
    "missing_binaries",
    "provision",
    "start",
    "stop",
]
