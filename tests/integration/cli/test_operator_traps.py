"""The operator traps of issue 15, each played as an operator met it deploying by hand.

1. Databases: read-only commands never create a database; a configured database that does not
   exist or holds no schema is an error; a URL naming an unset variable is an error; a forgotten
   database variable no longer registers a merchant in a stale SQLite file.
2. ``serve``: config, database and port are checked before the URL is announced; a failure is
   one error line with its code, and nothing is left behind.
3. ``bank init`` is all-or-nothing: Ctrl-C (or a kill) half-way, and the next ``init`` gives a
   complete bank.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.cli import main
from ecash_tpm.deploy.bootstrap import write_config
from ecash_tpm.storage import Database, sqlite_url

REPO = Path(__file__).resolve().parents[3]


def run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any]]:
    """Run one command in-process with ``--json``; its exit status and the printed object."""
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()
    return code, json.loads(out[-1])


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*")) if path.exists() else []


@pytest.fixture
def no_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An operator's shell without any configuration: defaults under $XDG_DATA_HOME."""
    home = tmp_path / "share"
    monkeypatch.setenv("XDG_DATA_HOME", str(home))
    for name in [n for n in os.environ if n.startswith("ECASH_TPM_")]:
        monkeypatch.delenv(name)
    return home


# --- 1. databases --------------------------------------------------------------------------------

READ_ONLY = [
    ["issuer", "members"],
    ["ttp", "stats"],
    ["ttp", "products"],
    ["ttp", "strikes"],
    ["ttp", "disputes"],
    ["merchant", "stats"],
    ["bank", "ledger"],
    ["bank", "keyset", "list"],
    ["bank", "blacklist", "list"],
    ["bank", "account", "show", "alice"],
]


@pytest.mark.parametrize("argv", READ_ONLY, ids=[" ".join(a) for a in READ_ONLY])
def test_read_only_commands_never_create_a_database(
    argv: list[str], no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_json(capsys, *argv)
    assert code == 1
    assert out["error"]["code"] == "storage.database_missing"
    assert "--config" in out["error"]["detail"]["hint"]
    assert files_under(no_config) == []  # used to be ~/.local/share/ecash-tpm/<party>/<party>.db


def test_administrative_bank_command_needs_an_initialised_bank(
    no_config: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_json(capsys, "bank", "account", "fund", "alice", "5")
    assert code == 1 and out["error"]["code"] == "storage.database_missing"
    assert "bank init" in out["error"]["detail"]["hint"]
    assert files_under(no_config) == []


def test_a_database_without_the_party_schema_is_an_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    other = tmp_path / "other.db"  # exists, but no issuer ever migrated it
    Database.open(sqlite_url(other)).close()
    config = write_config(
        tmp_path / "ecash.toml",
        {"issuer": {"data_dir": tmp_path / "issuer", "database_url": sqlite_url(other)}},
    )
    code, out = run_json(capsys, "issuer", "members", "--config", str(config))
    assert code == 1 and out["error"]["code"] == "storage.schema_missing"
    with Database.open(sqlite_url(other)) as db, db.read() as tx:  # not even schema_migrations
        assert tx.fetchall("SELECT name FROM sqlite_master") == []


def test_bank_ledger_on_an_empty_postgresql_is_an_error(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out = run_json(
        capsys, "bank", "ledger", "--data-dir", str(tmp_path / "bank"), "--database-url", pg_url
    )
    assert code == 1, out  # used to say "ledger OK: 0 transactions"
    assert out["error"]["code"] == "storage.schema_missing"
    with Database.open(pg_url) as db, db.read() as tx:
        assert tx.fetchval("SELECT count(*) FROM information_schema.tables"
                           " WHERE table_schema = 'public'") == 0  # fmt: skip


def test_a_missing_postgresql_database_has_its_own_code(
    pg_url: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = pg_url.rpartition("/")[0] + "/no_such_database"
    code, out = run_json(
        capsys, "ttp", "stats", "--data", str(tmp_path / "ttp"), "--config",
        str(write_config(tmp_path / "e.toml", {"ttp": {"database_url": missing}})),
    )  # fmt: skip
    assert code == 1 and out["error"]["code"] == "storage.database_missing"


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://bank:${ECASH_TEST_UNSET_PW}@127.0.0.1:1/bank",
        "sqlite:///$ECASH_TEST_UNSET/b.db",
    ],
)
def test_a_database_url_naming_an_unset_variable_is_an_error(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ECASH_TEST_UNSET_PW", raising=False)
    monkeypatch.setenv("ECASH_TEST_UNSET", "")  # set but empty counts as unset
    config = write_config(tmp_path / "ecash.toml", {"bank": {"data_dir": tmp_path / "bank",
                                                             "database_url": url}})  # fmt: skip
    code, out = run_json(capsys, "bank", "ledger", "--config", str(config))
    assert code == 1 and out["error"]["code"] == "config.unset_variable"
    assert out["error"]["detail"]["variable"].startswith("ECASH_TEST_UNSET")
    assert files_under(tmp_path) == ["ecash.toml"]  # no "$ECASH_TEST_UNSET" directory


def test_a_database_url_expands_set_variables(tmp_path: Path) -> None:
    from ecash_tpm.bank.settings import BankSettings
    from ecash_tpm.service.settings import load_settings

    config = write_config(
        tmp_path / "ecash.toml", {"bank": {"database_url": "postgresql://bank:${PW}@db/bank"}}
    )
    settings = load_settings(BankSettings, path=config, environ={"PW": "s3cret"})
    assert settings.database_url == "postgresql://bank:s3cret@db/bank"
    env = {"ECASH_TPM_BANK_DATABASE_URL": "sqlite:///$$literal.db"}
    assert load_settings(BankSettings, environ=env).database_url == "sqlite:///$literal.db"


def test_register_merchant_with_a_forgotten_database_variable_is_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from ecash_tpm.bank.settings import BankSettings
    from ecash_tpm.bank.store import MIGRATIONS
    from ecash_tpm.centralbank.ca import CentralBankCA
    from ecash_tpm.crypto.signing import PartyKey
    from ecash_tpm.deploy.bootstrap import register_merchant
    from ecash_tpm.service.settings import load_settings

    data = tmp_path / "bank"
    config = write_config(tmp_path / "ecash.toml", {"bank": {"data_dir": data,
                                                             "denominations": [1]}})  # fmt: skip
    real = {"ECASH_TPM_BANK_DATABASE_URL": sqlite_url(tmp_path / "db-server" / "bank.db")}
    monkeypatch.setenv("ECASH_TPM_BANK_DATABASE_URL", real["ECASH_TPM_BANK_DATABASE_URL"])
    with CentralBankCA.create(tmp_path / "cb") as ca:
        shop_cert = ca.certify("merchant", "shop-1", PartyKey.generate().public_key)
    assert main(["bank", "init", "--config", str(config), "--central-bank-dir",
                 str(tmp_path / "cb"), "--json"]) == 0  # fmt: skip
    stale = data / "bank.db"  # an earlier SQLite try in the same data directory
    with Database.open(sqlite_url(stale)) as db:
        db.migrate(MIGRATIONS, component="bank")

    from cryptography.hazmat.primitives.serialization import Encoding

    pem = shop_cert.public_bytes(Encoding.PEM)
    forgotten = load_settings(BankSettings, path=config, environ={})  # a new shell
    with pytest.raises(Exception) as caught:
        register_merchant(forgotten, pem)
    assert getattr(caught.value, "code", None) == "config.database_mismatch"
    assert "ECASH_TPM_BANK_DATABASE_URL" in str(caught.value)
    with Database.open(sqlite_url(stale)) as db, db.read() as tx:
        assert tx.fetchval("SELECT count(*) FROM merchant") == 0
    remembered = load_settings(BankSettings, path=config, environ=real)
    assert register_merchant(remembered, pem)["merchant_id"] == "shop-1"


# --- 2. serve ------------------------------------------------------------------------------------

PARTIES = ["centralbank", "issuer", "bank", "merchant", "supervision", "ttp"]


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


def serve_once(tmp_path: Path, party: str, port: int) -> subprocess.CompletedProcess[str]:
    """``ecash-tpm <party> serve`` on a fresh data directory (nothing initialised)."""
    sections: dict[str, dict[str, Any]] = {
        party: {"data_dir": tmp_path / "data" / party, "port": port}
    }
    if party == "bank":
        sections["bank"]["opener_public"] = "not-checked-before-the-database"
    config = write_config(tmp_path / "ecash.toml", sections)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "ecash_tpm",
            party,
            "serve",
            "--config",
            str(config),
            "--insecure-http",
        ],
        env={**env, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=120,
    )


def assert_one_clean_error(result: subprocess.CompletedProcess[str], code: str | None) -> None:
    lines = result.stderr.splitlines()
    assert result.returncode == 1, result.stderr
    assert lines and lines[0].startswith("ecash-tpm: error ["), result.stderr
    if code is not None:
        assert lines[0].startswith(f"ecash-tpm: error [{code}]"), result.stderr
    assert all(line.startswith("  ") for line in lines[1:]), result.stderr  # detail lines only
    assert "Traceback" not in result.stderr and "on http://" not in result.stderr
    assert result.stdout == ""


@pytest.mark.slow
@pytest.mark.parametrize("party", PARTIES)
def test_serve_on_a_busy_port_is_one_error_line_and_leaves_nothing(
    party: str, tmp_path: Path, busy_port: int
) -> None:
    result = serve_once(tmp_path, party, busy_port)
    assert_one_clean_error(result, "service.port_in_use")
    assert files_under(tmp_path / "data") == []


@pytest.mark.slow
@pytest.mark.parametrize("party", PARTIES)
def test_serve_with_a_bad_setup_is_one_error_line_and_leaves_nothing(
    party: str, tmp_path: Path
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    result = serve_once(tmp_path, party, port)  # no keys, no certificates, no database
    assert_one_clean_error(result, "storage.database_missing" if party == "bank" else None)
    assert files_under(tmp_path / "data") == []  # used to leave an empty <party>.db


# --- 3. bank init is all-or-nothing ---------------------------------------------------------------


def keyset_files(data: Path) -> list[str]:
    return sorted(p.name for p in (data / "keysets").glob("*.pem"))


@pytest.mark.slow
@pytest.mark.parametrize("how", [signal.SIGINT, signal.SIGKILL], ids=["ctrl-c", "killed"])
def test_interrupted_bank_init_is_completed_by_the_next_init(
    how: signal.Signals, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ecash_tpm.centralbank.ca import CentralBankCA

    CentralBankCA.create(tmp_path / "cb").close()
    data = tmp_path / "bank"
    config = write_config(tmp_path / "ecash.toml", {"bank": {"rsa_bits": 3072}})  # slower keys
    argv = ["bank", "init", "--config", str(config), "--data-dir", str(data),
            "--central-bank-dir", str(tmp_path / "cb")]  # fmt: skip
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ecash_tpm", *argv],
        env={**env, "PYTHONPATH": str(REPO)},
        stderr=subprocess.PIPE,
        text=True,
    )
    assert proc.stderr is not None
    try:
        deadline = time.monotonic() + 300
        seen: list[str] = []
        for line in proc.stderr:  # "[k/13] generating RSA-3072 keys", one line per key
            seen.append(line)
            if line.startswith("[2/13]"):
                break
            assert time.monotonic() < deadline
        assert seen and seen[-1].startswith("[2/13]"), "".join(seen)
        proc.send_signal(how)
        proc.wait(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if how == signal.SIGINT:
        assert proc.returncode == 130
        assert files_under(data) == []  # Ctrl-C took back everything the init had made
    else:
        assert (data / "bank-init.incomplete").exists()  # killed: the next init must know
        code, out = run_json(capsys, "bank", "keyset", "list", "--data-dir", str(data))
        assert code == 1 and out["error"]["code"] == "bank.init_incomplete"

    code, out = run_json(capsys, *argv)  # used to refuse: bank.already_initialized
    assert code == 0, out
    assert len(out["keysets_created"]) == 13
    code, listed = run_json(capsys, "bank", "keyset", "list", "--data-dir", str(data))
    assert code == 0 and len(listed["keysets"]) == 13
    assert len(keyset_files(data)) == 13  # no orphaned key of the interrupted run
    assert not (data / "bank-init.incomplete").exists()
    code, _ = run_json(capsys, "bank", "ledger", "--data-dir", str(data))
    assert code == 0


def test_a_rotation_interrupted_half_way_records_nothing(tmp_path: Path) -> None:
    from ecash_tpm.bank.keysets import KeysetStore
    from ecash_tpm.bank.store import MIGRATIONS
    from ecash_tpm.crypto import blindrsa
    from ecash_tpm.crypto.signing import PartyKey

    made = 0

    def keygen(bits: int) -> Any:
        nonlocal made
        made += 1
        if made == 3:
            raise KeyboardInterrupt
        return blindrsa.generate_key(bits)

    with Database.open(sqlite_url(tmp_path / "bank.db")) as db:
        db.migrate(MIGRATIONS, component="bank")
        store = KeysetStore(db, tmp_path / "keysets", PartyKey.generate(), keygen=keygen)
        with pytest.raises(KeyboardInterrupt):
            store.rotate(denominations=[1, 2, 5, 10], currency="EUR", now=1_000,
                         withdraw_period_s=100, deposit_period_s=100)  # fmt: skip
        assert store.list_keysets() == []
        assert list((tmp_path / "keysets").glob("*.pem")) == []
