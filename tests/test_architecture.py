"""Rules of the code base that reviews would otherwise have to catch by eye.

- Only ``ecash_tpm.device`` may import tpm2-pytss (verifier code stays pure, as in Keylime and
  go-attestation), and pure packages may not import the device layer either.
- No ``assert`` in the package: asserts vanish under ``python -O`` and are no input validation.
- No f-string (or %-formatted / .format) SQL: values go through placeholders.
"""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "ecash_tpm"
PURE_PACKAGES = ("attest", "crypto", "storage", "centralbank")
SQL_SHAPE = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|ALTER|DROP)\s+TABLE\b",
    re.IGNORECASE | re.DOTALL,
)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _imported_names(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_follows_the_rules(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    tree = ast.parse(path.read_text(), filename=str(path))
    imports = _imported_names(tree)

    if rel.parts[0] != "device":
        bad = sorted(n for n in imports if n.split(".")[0] == "tpm2_pytss")
        assert not bad, f"{rel} imports tpm2-pytss ({bad}); only ecash_tpm.device may"
    if rel.parts[0] in PURE_PACKAGES:
        bad = sorted(n for n in imports if n.startswith("ecash_tpm.device"))
        assert not bad, f"pure module {rel} imports the device layer ({bad})"

    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert not asserts, f"{rel} uses assert at lines {asserts}; raise a typed error instead"

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            pieces = [v.value for v in node.values if isinstance(v, ast.Constant)]
            literal = " ? ".join(p for p in pieces if isinstance(p, str))
            if SQL_SHAPE.search(literal) and any(
                isinstance(v, ast.FormattedValue) for v in node.values
            ):
                pytest.fail(f"{rel}:{node.lineno} builds SQL with an f-string")


def test_verifier_import_does_not_load_tpm2_pytss() -> None:
    import subprocess
    import sys

    code = (
        "import sys, ecash_tpm.attest, ecash_tpm.crypto.groupsig, ecash_tpm.crypto.blindrsa;"
        "sys.exit(any(m.startswith('tpm2_pytss') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
