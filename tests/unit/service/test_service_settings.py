"""Settings: defaults < TOML section < ECASH_TPM_<SECTION>_<KEY> < overrides; ConfigError with
the offending key and its source for bad values, unknown keys and unreadable files."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import Field, ValidationError

from ecash_tpm.errors import ConfigError
from ecash_tpm.service.settings import ServiceSettings, load_settings


class BankSettings(ServiceSettings):
    section: ClassVar[str] = "bank"
    port: int = Field(default=8082, ge=0, le=65535)
    lock_period_s: int = Field(default=300, ge=1)
    strict_pcr: bool = False
    trusted_roots: list[str] = []
    key_file: Path | None = None


TOML = """
[bank]
port = 9000
data_dir = "state/bank"
lock_period_s = 10
trusted_roots = ["a.pem"]
key_file = "keys/bank.pem"

[merchant]
port = 1
unknown_for_bank = "ignored: other section"
"""


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "conf" / "ecash-tpm.toml"
    path.parent.mkdir()
    path.write_text(TOML)
    return path


def test_defaults(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    s = load_settings(BankSettings, environ={})
    assert s.host == "127.0.0.1"
    assert s.port == 8082
    assert s.data_dir == tmp_path / "xdg" / "ecash-tpm" / "bank"
    assert s.database_url == f"sqlite:///{tmp_path}/xdg/ecash-tpm/bank/bank.db"
    assert s.log_level == "info"
    assert s.max_body_bytes == 256 * 1024
    assert s.trusted_roots == []


def test_toml_then_env_then_overrides(config: Path) -> None:
    env = {
        "ECASH_TPM_BANK_PORT": "9100",
        "ECASH_TPM_BANK_STRICT_PCR": "true",
        "ECASH_TPM_BANK_TRUSTED_ROOTS": '["x.pem", "y.pem"]',
        "ECASH_TPM_BANK_LOG_LEVEL": "DEBUG",
        "ECASH_TPM_MERCHANT_PORT": "1234",  # another party's variable: not ours
        "UNRELATED": "1",
    }
    s = load_settings(
        BankSettings, config, environ=env, overrides={"lock_period_s": 20, "host": None}
    )
    assert s.port == 9100  # env beats file
    assert s.lock_period_s == 20  # override beats file
    assert s.strict_pcr is True
    assert s.trusted_roots == ["x.pem", "y.pem"]
    assert s.log_level == "debug"
    base = config.parent
    assert s.data_dir == base / "state" / "bank"  # relative to the config file
    assert s.key_file == base / "keys" / "bank.pem"
    assert s.database_url == f"sqlite:///{base}/state/bank/bank.db"


def test_config_path_from_environment(config: Path) -> None:
    s = load_settings(BankSettings, environ={"ECASH_TPM_CONFIG": str(config)})
    assert s.port == 9000


def test_database_url_override(tmp_path: Path) -> None:
    s = load_settings(
        BankSettings,
        environ={"ECASH_TPM_BANK_DATABASE_URL": "postgresql://bank@db:5432/bank"},
        overrides={"data_dir": tmp_path},
    )
    assert s.database_url == "postgresql://bank@db:5432/bank"


@pytest.mark.parametrize(
    ("env", "key"),
    [
        ({"ECASH_TPM_BANK_PORT": "eighty"}, "port"),
        ({"ECASH_TPM_BANK_PORT": "70000"}, "port"),
        ({"ECASH_TPM_BANK_LOCK_PERIOD_S": "0"}, "lock_period_s"),
        ({"ECASH_TPM_BANK_STRICT_PCR": "maybe"}, "strict_pcr"),
        ({"ECASH_TPM_BANK_LOG_LEVEL": "loud"}, "log_level"),
        ({"ECASH_TPM_BANK_DATABASE_URL": "mysql://x"}, "database_url"),
        ({"ECASH_TPM_BANK_MAX_BODY_BYTES": "10"}, "max_body_bytes"),
    ],
)
def test_bad_env_values_are_config_errors(tmp_path: Path, env: dict[str, str], key: str) -> None:
    env = {**env, "ECASH_TPM_BANK_DATA_DIR": str(tmp_path)}
    with pytest.raises(ConfigError) as info:
        load_settings(BankSettings, environ=env)
    err = info.value
    assert err.code == "config.invalid"
    assert [e["key"] for e in err.detail["errors"]] == [key]
    (var,) = [name for name in env if name.endswith(key.upper())]
    assert err.detail["errors"][0]["source"] == f"${var}"
    assert key in err.message


def test_bad_json_env_value(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="JSON"):
        load_settings(BankSettings, environ={"ECASH_TPM_BANK_TRUSTED_ROOTS": "a.pem,b.pem"})


def test_bad_toml_value_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[bank]\nport = "high"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(BankSettings, path, environ={})
    assert info.value.detail["errors"][0]["source"] == f"{path} [bank]"


def test_unknown_keys_are_errors(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text("[bank]\nprot = 1\n")
    with pytest.raises(ConfigError, match="prot") as info:
        load_settings(BankSettings, path, environ={})
    assert info.value.detail["unknown"] == [{"key": "prot", "source": f"{path} [bank]"}]
    with pytest.raises(ConfigError, match="lock_periods"):
        load_settings(BankSettings, environ={"ECASH_TPM_BANK_LOCK_PERIODS": "5"})
    with pytest.raises(ConfigError, match="nope"):
        load_settings(BankSettings, environ={}, overrides={"nope": 1})


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(BankSettings, tmp_path / "missing.toml", environ={})
    bad = tmp_path / "bad.toml"
    bad.write_text("[bank\nport = 1")
    with pytest.raises(ConfigError, match="TOML"):
        load_settings(BankSettings, bad, environ={})
    not_table = tmp_path / "scalar.toml"
    not_table.write_text('bank = "x"\n')
    with pytest.raises(ConfigError, match="table"):
        load_settings(BankSettings, not_table, environ={})


def test_settings_are_immutable(tmp_path: Path) -> None:
    s = load_settings(BankSettings, environ={}, overrides={"data_dir": tmp_path})
    with pytest.raises(ValidationError):
        s.port = 1
