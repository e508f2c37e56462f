"""Every JSON file the CLI reads is refused with a typed error, never a traceback: malformed
JSON, JSON nested past the recursion limit (``json.loads`` raises ``RecursionError`` there, not
``ValueError``) and JSON nested deeper than ``MAX_JSON_DEPTH``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest

from ecash_tpm.cli import main
from ecash_tpm.cli.output import MAX_JSON_DEPTH, loads_json, read_json
from ecash_tpm.errors import ConfigError, EcashError, InputError

BAD = {
    "recursion": "[" * 200_000,
    "deep_objects": '{"a":' * 100_000 + "1" + "}" * 100_000,
    "too_deep": "[" * (MAX_JSON_DEPTH + 1) + "]" * (MAX_JSON_DEPTH + 1),
    "malformed": '{"format": ',
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_read_json_refuses_with_a_typed_error(tmp_path: Path, name: str) -> None:
    path = tmp_path / "doc.json"
    path.write_text(BAD[name])
    with pytest.raises(InputError) as info:
        read_json(path, "test file")
    assert info.value.code == "input.invalid" and info.value.detail["path"] == str(path)


def test_depth_limit_is_inclusive() -> None:
    ok = "[" * MAX_JSON_DEPTH + "]" * MAX_JSON_DEPTH
    assert loads_json(ok, "x") is not None
    with pytest.raises(ConfigError) as info:
        loads_json(BAD["recursion"], "x", error=ConfigError, code="wallet.settings_invalid")
    assert info.value.code == "wallet.settings_invalid"
    assert info.value.detail["max_depth"] == MAX_JSON_DEPTH


@pytest.mark.parametrize("kind", ["transcript", "receipt", "opening", "evidence"])
def test_verify_of_deeply_nested_json_exits_1_with_the_code(
    tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    path, root = tmp_path / "deep.json", tmp_path / "root.pem"
    path.write_text(BAD["recursion"])
    root.write_text("not a certificate")  # never reached: the file is refused first
    assert main(["verify", kind, str(path), "--root", str(root), "--json"]) == 1
    out = json.loads(capsys.readouterr().out)
    assert out["ok"] is False and out["error"]["code"] == "input.invalid"
    assert main(["verify", kind, str(path), "--root", str(root)]) == 1
    assert "[input.invalid]" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["recursion", "malformed", "list"])
def test_wallet_settings_file(tmp_path: Path, name: str) -> None:
    from ecash_tpm.cli.wallet_cmd import WALLET_SETTINGS_FILE, _coin_settings

    (tmp_path / WALLET_SETTINGS_FILE).write_text(BAD.get(name, "[]"))
    with pytest.raises(EcashError) as info:
        _coin_settings(argparse.Namespace(data=str(tmp_path)))
    assert info.value.code == "wallet.settings_invalid"
