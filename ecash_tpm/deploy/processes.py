"""Start every party as its own process on 127.0.0.1 and make sure none outlives the demo.

Three layers of cleanup: ``ProcessGroup.close`` stops children by pid (SIGTERM, then SIGKILL);
SIGTERM/SIGHUP to the demo are turned into ``KeyboardInterrupt`` so that ``finally`` blocks run;
and every child gets ``PR_SET_PDEATHSIG`` so that even a SIGKILL of the demo takes them down.
Children are started from the calling thread: the kernel ties PDEATHSIG to the thread that
forked, so starting them from a short-lived worker thread would kill them when it ends.

The pids and ports of running children are kept in ``<workdir>/run/parties.json`` so that
tests and operators can check afterwards that nothing was left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

import httpx

from ecash_tpm.errors import EcashError
from ecash_tpm.procutil import die_with_parent

LOOPBACK = "127.0.0.1"
#: Where the running children are recorded, relative to the work directory.
PIDS_FILE = Path("run", "parties.json")


class PartyStartError(EcashError):
    """A party process exited or never answered its health check."""

    code = "demo.party_start_failed"


def free_port() -> int:
    """A currently free TCP port on loopback (the party binds it a moment later)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def port_is_free(port: int) -> bool:
    """True if nothing listens on ``127.0.0.1:port``: a bind succeeds (with SO_REUSEADDR, as
    servers bind, so connections of a stopped server in TIME_WAIT do not count)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((LOOPBACK, port))
        except OSError:
            return False
        return True


def child_environment(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The environment of a party process: ours without ``ECASH_TPM_*`` (the demo's parties
    read only the configuration the demo wrote), plus ``extra``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    env.update(PYTHONUNBUFFERED="1", TSS2_LOG="all+none")
    env.update(extra or {})
    return env


def _child_setup(parent_pid: int) -> Callable[[], None]:
    """``preexec_fn``: PDEATHSIG, and exit at once if the parent died before it was set."""

    def setup() -> None:
        die_with_parent()
        if os.getppid() != parent_pid:
            os._exit(1)

    return setup


@dataclass
class PartyProcess:
    """One ``ecash-tpm <role> serve`` child with its log file."""

    name: str
    argv: list[str]
    port: int
    log_path: Path
    proc: subprocess.Popen[bytes] | None = None
    #: ``https`` unless the party was started with ``--insecure-http``.
    scheme: str = "https"

    @property
    def url(self) -> str:
        return f"{self.scheme}://{LOOPBACK}:{self.port}"

    @property
    def pid(self) -> int | None:
        return None if self.proc is None else self.proc.pid

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def log_tail(self, chars: int = 2000) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-chars:]
        except OSError:
            return ""


@dataclass
class ProcessGroup:
    """The demo's children; stop them all with :meth:`close` (idempotent).

    ``tls`` is the client context their health checks use (the central bank's root): the
    parties serve HTTPS, and a health check that accepted any certificate would report a
    stranger on the port as our party. ``None``: the parties serve plain HTTP.
    """

    workdir: Path
    tls: ssl.SSLContext | None = None
    parties: list[PartyProcess] = field(default_factory=list)
    _started: list[PartyProcess] = field(default_factory=list, repr=False)

    def spawn(
        self, name: str, role_args: Sequence[str], port: int, *, module: str = "ecash_tpm"
    ) -> PartyProcess:
        """Run ``python -m <module> <role_args...>`` without waiting for it to answer."""
        log_path = self.workdir / "logs" / f"{name}.log"
        log_path.parent.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-m", module, *role_args]
        scheme = "http" if self.tls is None else "https"
        party = PartyProcess(name, argv, port, log_path, scheme=scheme)
        with open(log_path, "ab") as log, open(os.devnull, "rb") as devnull:
            party.proc = subprocess.Popen(
                party.argv,
                stdin=devnull,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.workdir,
                env=child_environment(),
                start_new_session=True,  # Ctrl-C reaches the demo, which stops them in order
                preexec_fn=_child_setup(os.getpid()),
            )
        self.parties.append(party)
        self._started.append(party)
        self._record()
        return party

    def start(
        self, name: str, role_args: Sequence[str], port: int, *, timeout: float = 30.0
    ) -> PartyProcess:
        """Run ``python -m ecash_tpm <role_args...>`` and wait until ``/healthz`` answers."""
        party = self.spawn(name, role_args, port)
        self.wait_healthy([party], timeout=timeout)
        return party

    def wait_healthy(self, parties: Sequence[PartyProcess], *, timeout: float = 30.0) -> None:
        """Wait until every one of ``parties`` answers ``/healthz`` (they start in parallel)."""
        deadline = time.monotonic() + timeout
        waiting = list(parties)
        verify: ssl.SSLContext | bool = True if self.tls is None else self.tls
        with httpx.Client(timeout=1.0, verify=verify) as client:
            while waiting:
                for party in list(waiting):
                    if party.proc is not None and party.proc.poll() is not None:
                        raise PartyStartError(
                            f"{party.name} exited with status {party.proc.returncode}",
                            detail={"party": party.name, "log": party.log_tail()},
                        )
                    with contextlib.suppress(httpx.HTTPError):
                        if client.get(f"{party.url}/healthz").status_code == 200:
                            waiting.remove(party)
                if not waiting:
                    return
                if time.monotonic() > deadline:
                    party = waiting[0]
                    raise PartyStartError(
                        f"{party.name} did not answer on {party.url} within {timeout:.0f} s",
                        detail={"party": party.name, "log": party.log_tail()},
                    )
                time.sleep(0.05)

    def get(self, name: str) -> PartyProcess | None:
        return next((p for p in self.parties if p.name == name), None)

    def close(self, timeout: float = 5.0) -> None:
        """Stop every child by pid: SIGTERM, then SIGKILL for those that do not exit."""
        for party in reversed(self.parties):
            if party.running() and party.proc is not None:
                with contextlib.suppress(ProcessLookupError):
                    party.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for party in reversed(self.parties):
            if party.proc is None:
                continue
            try:
                party.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    party.proc.kill()
                party.proc.wait()
        self.parties.clear()
        self._record()

    def _record(self) -> None:
        """Write every child's name, pid, port and exit status (for leak checks)."""
        path = self.workdir / PIDS_FILE
        rows = [
            {
                "name": p.name,
                "pid": p.pid,
                "port": p.port,
                "returncode": None if p.proc is None else p.proc.returncode,
            }
            for p in self._started
        ]
        with contextlib.suppress(OSError):
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(".tmp")
            tmp.write_text(json.dumps({"parent": os.getpid(), "parties": rows}, indent=2))
            os.replace(tmp, path)


class Termination:
    """Whether a termination signal arrived: the one ``KeyboardInterrupt`` it raises can be
    swallowed or wrapped by the code it lands in, the flag cannot."""

    def __init__(self) -> None:
        self.received = False


@contextlib.contextmanager
def termination_as_interrupt() -> Iterator[Termination]:
    """Treat SIGTERM, SIGHUP and Ctrl-C as one ``KeyboardInterrupt`` for the duration, so
    cleanup code runs; later signals are ignored, so they cannot cut that cleanup short."""
    sigs = (signal.SIGTERM, signal.SIGHUP, signal.SIGINT)
    state = Termination()

    def handler(signum: int, frame: FrameType | None) -> None:
        if state.received:
            return
        state.received = True
        raise KeyboardInterrupt(f"signal {signum}")

    previous = {sig: signal.signal(sig, handler) for sig in sigs}
    try:
        yield state
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)
