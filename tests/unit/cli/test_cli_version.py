"""``ecash-tpm --version`` names the curve engine (docs/native.md)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from ecash_tpm import __version__
from ecash_tpm.cli import main
from ecash_tpm.crypto import native


def test_version_names_the_engine(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code in (0, None)
    out = capsys.readouterr().out
    assert out.splitlines() == [
        f"ecash-tpm {__version__}",
        f"curve engine: {native.backend_name()}",
    ]


def test_version_without_the_engine() -> None:
    env = {**os.environ, "ECASH_TPM_NATIVE": "0"}
    run = subprocess.run(
        [sys.executable, "-c", "from ecash_tpm.cli import main; main(['--version'])"],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert run.returncode == 0, run.stderr
    assert "curve engine: python (gmpy2)" in run.stdout
