"""``serve(..., workers=N)`` (issue 13 item 4): N processes answer on one port, SIGTERM to the
parent stops them all, a worker that dies stops the rest. Each case runs in a child Python (it
forks), bounded in time, and is stopped by its pid."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import httpx

SERVER = textwrap.dedent(
    """
    import os, sys
    from fastapi import FastAPI
    from ecash_tpm.service.server import serve

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, int]:
        return {"pid": os.getpid()}

    serve(app, "127.0.0.1", int(sys.argv[1]), workers=int(sys.argv[2]), log_level="warning",
          graceful_timeout_s=2)
    """
)

CRASHING = textwrap.dedent(
    """
    import os, sys
    from ecash_tpm.errors import EcashError
    from ecash_tpm.service.workers import run_workers

    def run(index: int) -> None:
        if index == 1:
            raise RuntimeError("worker 1 cannot start")
        import time
        time.sleep(60)

    try:
        run_workers(3, run, grace_s=5)
    except EcashError as exc:
        print(exc.code, file=sys.stderr)
        sys.exit(3)
    """
)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:
        return "\nState:\tZ" not in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False


def _children(pid: int) -> set[int]:
    found: set[int] = set()
    for task in Path(f"/proc/{pid}/task").glob("*"):
        text = (task / "children").read_text() if (task / "children").exists() else ""
        found |= {int(x) for x in text.split()}
    return found


def test_two_workers_share_the_port_and_stop_on_sigterm(tmp_path: Path) -> None:
    port = _free_port()
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(port), "2"], cwd=tmp_path)
    try:
        pids: set[int] = set()
        deadline = time.monotonic() + 60
        while len(pids) < 2 and time.monotonic() < deadline:
            try:  # a new connection each time: the kernel spreads them over the workers
                with httpx.Client(timeout=2.0) as client:
                    pids.add(client.get(f"http://127.0.0.1:{port}/healthz").json()["pid"])
            except httpx.TransportError:
                time.sleep(0.1)
        workers = _children(proc.pid)
        assert len(workers) == 2 and pids <= workers
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
        assert not any(_alive(pid) for pid in workers)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def test_a_worker_that_dies_stops_the_others(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", CRASHING],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 3
    assert "worker 1: RuntimeError: worker 1 cannot start" in proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "service.start_failed"


def test_every_party_serve_takes_workers() -> None:
    from ecash_tpm.cli import build_parser
    from ecash_tpm.cli.tls_certs import serve_options, workers_override
    from ecash_tpm.service.settings import ServiceSettings

    parser = build_parser()
    for role in ("bank", "issuer", "merchant", "supervision", "ttp"):
        args = parser.parse_args([role, "serve", "--workers", "3"])
        assert workers_override(args) == 3, role
    settings = ServiceSettings(workers=2, insecure_http=True)
    assert serve_options(settings, Path("/nonexistent/root.pem"))["workers"] == 2
