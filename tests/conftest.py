"""Shared fixtures: a hermetic swtpm per test session, more on demand, and an open TpmDevice.

Tests marked ``swtpm`` / ``tpm2tools`` are skipped only when the binaries are missing (CI has
them); everything else about the emulator must work or fail loudly.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ecash_tpm.swtpm import SwtpmInstance, missing_binaries

if TYPE_CHECKING:
    from ecash_tpm.device import TpmDevice

TPM2_TOOLS = ("tpm2_checkquote", "tpm2_makecredential")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    missing_sw = missing_binaries()
    missing_tools = [b for b in TPM2_TOOLS if shutil.which(b) is None]
    skip_sw = pytest.mark.skip(reason=f"swtpm not installed ({', '.join(missing_sw)} missing)")
    skip_tools = pytest.mark.skip(
        reason=f"tpm2-tools not installed ({', '.join(missing_tools)} missing)"
    )
    for item in items:
        if missing_sw and "swtpm" in item.keywords:
            item.add_marker(skip_sw)
        if missing_tools and "tpm2tools" in item.keywords:
            item.add_marker(skip_tools)


SwtpmFactory = Callable[..., SwtpmInstance]


@pytest.fixture(scope="session")
def swtpm_factory(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SwtpmFactory]:
    """``factory(start=True)`` -> a new independent provisioned swtpm (e.g. a second TPM).

    Every instance is stopped and its directory (CA included) removed at session end.
    """
    made: list[SwtpmInstance] = []

    def factory(*, start: bool = True, provision: bool = True) -> SwtpmInstance:
        inst = SwtpmInstance(tmp_path_factory.mktemp("swtpm"))
        made.append(inst)
        if provision:
            inst.provision()
        if start:
            inst.start()
        return inst

    yield factory
    for inst in made:
        inst.cleanup()


@pytest.fixture(scope="session")
def swtpm(swtpm_factory: SwtpmFactory) -> SwtpmInstance:
    """The session's running emulator (RSA-2048 and ECC P-384 EKs with certificates)."""
    if missing_binaries():
        pytest.skip(f"swtpm not installed ({', '.join(missing_binaries())} missing)")
    return swtpm_factory()


@pytest.fixture
def tpm(swtpm: SwtpmInstance) -> Iterator[TpmDevice]:
    """An open TpmDevice on the session swtpm, closed after the test.

    swtpm serves one connection at a time: do not open a second device on ``swtpm.tcti``
    while this one is in use (it would wait forever).
    """
    from ecash_tpm.device import TpmDevice

    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="session")
def tpm_data_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data dir for AK/DAA blobs shared by the session (keys are created once)."""
    return tmp_path_factory.mktemp("tpm-keys")


# --- PostgreSQL test server --------------------------------------------------------------------
# ECASH_TPM_TEST_PG=0 skips it; ECASH_TPM_TEST_PG_URL names an existing server instead.


def _pg_bindir() -> Path | None:
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True)
    found = shutil.which("initdb")
    if found:
        candidates.append(str(Path(found).resolve().parent))
    for cand in candidates:
        if (Path(cand) / "initdb").exists() and (Path(cand) / "pg_ctl").exists():
            return Path(cand)
    return None


def free_port() -> int:
    """A TCP port free on loopback right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie (nobody reaps it in some containers) counts as stopped
        status = Path(f"/proc/{pid}/status").read_text()
        return "\nState:\tZ" not in status
    except OSError:
        return True


@pytest.fixture(scope="session")
def pg_server() -> Iterator[str]:
    """URL of a PostgreSQL server for the whole session, or skip with the reason."""
    existing = os.environ.get("ECASH_TPM_TEST_PG_URL")
    if existing:
        yield existing
        return
    if os.environ.get("ECASH_TPM_TEST_PG") == "0":
        pytest.skip("PostgreSQL tests disabled by ECASH_TPM_TEST_PG=0")
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.skip("psycopg not installed (pip install 'ecash-tpm[postgres]')")
    bindir = _pg_bindir()
    if bindir is None:
        pytest.skip("PostgreSQL binaries (initdb, pg_ctl) not found in /usr/lib/postgresql/*/bin")
    user: str | None = None
    if os.geteuid() == 0:  # initdb refuses to run as root
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            pytest.skip("running as root and no 'postgres' user to run initdb as")
        user = "postgres"
    tmp = Path(tempfile.mkdtemp(prefix="ecash-tpm-pg-"))
    pid: int | None = None
    try:
        if user is not None:
            shutil.chown(tmp, user=user)
        data = tmp / "data"

        def run(args: list[str]) -> None:
            subprocess.run(args, user=user, check=True, capture_output=True, timeout=120)

        run(
            [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
            + ["--no-sync", "-E", "UTF8", "--locale=C"]
        )
        port = free_port()
        options = (
            f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c fsync=off"
            " -c synchronous_commit=off -c full_page_writes=off -c max_connections=100"
        )
        run(
            [str(bindir / "pg_ctl"), "-D", str(data), "-l", str(tmp / "log"), "-w", "-t", "60"]
            + ["-o", options, "start"]
        )
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    except subprocess.CalledProcessError as exc:
        pytest.skip(f"could not start PostgreSQL: {exc.stderr.decode(errors='replace')[-500:]}")
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)  # fast shutdown
            deadline = time.monotonic() + 30
            while _pid_alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if _pid_alive(pid):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGQUIT)
        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture
def pg_url(pg_server: str) -> Iterator[str]:
    """A fresh, empty database on the test server, dropped afterwards."""
    import psycopg
    from psycopg import sql

    name = "t_" + uuid.uuid4().hex[:16]
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    base, _, _ = pg_server.rpartition("/")
    yield f"{base}/{name}"
    with psycopg.connect(pg_server, autocommit=True) as conn:
        conn.execute(
            sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
        )
