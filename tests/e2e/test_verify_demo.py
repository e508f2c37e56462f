"""``ecash-tpm verify`` on what the demo produces (docs/protocol.md §15.1): one demo run, then
every artefact it wrote is accepted by the command line and a tampered copy of each is refused
with its code."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from support.artefact_world import leaves, tampered

pytestmark = [pytest.mark.swtpm, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]


def _run(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ECASH_TPM_")}
    return subprocess.run(
        [sys.executable, "-m", "ecash_tpm", *args],
        cwd=REPO,
        env=env,
        text=True,
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def _verify(kind: str, path: Path, root: Path) -> dict[str, Any]:
    done = _run("verify", kind, str(path), "--root", str(root), "--json")
    out: dict[str, Any] = json.loads(done.stdout)
    assert (done.returncode == 0) == out["ok"], done.stderr
    return out


def test_verify_accepts_the_demo_artefacts_and_refuses_tampered_copies(tmp_path: Path) -> None:
    workdir = tmp_path / "demo"
    demo = _run("demo", "--json", "--keep", "--workdir", str(workdir), timeout=180)
    assert demo.returncode == 0, demo.stderr[-3000:]
    steps = {s["step"]: s["detail"] for s in json.loads(demo.stdout)["steps"]}
    paths = {
        **steps["deposit"]["artefacts"],
        **steps["double_spender_identified"]["artefacts"],
    }
    assert sorted(paths) == [
        "evidence",
        "opening",
        "opening_2",
        "receipt",
        "transcript",
        "transcript_2",
    ]
    root = next(workdir.rglob("root-cert.pem"))
    for key, name in sorted(paths.items()):
        kind, path = key.split("_")[0], Path(name)
        assert path.parent == workdir / "artefacts"
        out = _verify(kind, path, root)
        assert out["ok"] is True and out["format"] == f"ecash-tpm/{kind}/v1", out
        assert out["proven"]
        doc = json.loads(path.read_text())
        # one leaf in the middle of the file (a signed value) changed
        middle = list(leaves(doc))[len(list(leaves(doc))) // 2]
        bad = tmp_path / f"{key}-tampered.json"
        bad.write_text(json.dumps(tampered(doc, middle)))
        refused = _verify(kind, bad, root)
        assert refused["ok"] is False
        assert refused["error"]["code"].startswith("verify."), (middle, refused)
    # and in process, every single-field change of every file the demo wrote is refused
    from ecash_tpm.errors import EcashError
    from ecash_tpm.protocol.verify_artefacts import verify_artefact

    root_pem = root.read_bytes()
    for key, name in paths.items():
        kind, doc = key.split("_")[0], json.loads(Path(name).read_text())
        for leaf in leaves(doc):
            with pytest.raises(EcashError) as info:
                verify_artefact(tampered(doc, leaf), root_pem)
            assert info.value.code.startswith("verify."), (kind, leaf, info.value.code)
    human = _run("verify", "receipt", paths["receipt"], "--root", str(root))
    assert human.returncode == 0 and "proven:" in human.stdout
    other = _run("verify", "transcript", paths["receipt"], "--root", str(root))
    assert other.returncode == 1 and "[verify.format]" in other.stderr
