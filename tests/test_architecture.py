"""Rules of the code base that reviews would otherwise have to catch by eye (docs/architecture.md).

- The floors: a top-level package may import only the packages its row of :data:`ALLOWED` names.
  In particular the seven parties never import each other; they meet in ``protocol`` (the wire
  specification), ``pki`` and ``clients``, and only ``apps``, ``cli``, ``demo`` and ``deploy``
  compose several of them.
- Only ``ecash_tpm.device`` may import tpm2-pytss (verifier code stays pure, as in Keylime and
  go-attestation).
- ``import ecash_tpm.protocol`` loads no web framework, database driver or TPM stack; a party's
  ``__init__`` loads nothing at all.
- No ``assert`` in the package: asserts vanish under ``python -O`` and are no input validation.
- SQL only in a party's store module(s) (``store.py`` or a ``store/`` package) and in
  ``storage``; never built with f-strings (or %-formatting / .format): values go through
  placeholders.
- No module over 800 lines.
- ``mypy --strict ecash_tpm`` is clean.
"""

from __future__ import annotations

import ast
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "ecash_tpm"
PARTIES = frozenset({"wallet", "merchant", "bank", "issuer", "supervision", "centralbank", "ttp"})
MAX_LINES = 800

_BASE = frozenset({"errors"})
_FLOOR1 = _BASE | {"attest", "crypto", "pki", "procutil", "progress"}
_FLOOR2 = _FLOOR1 | {"protocol"}
_FLOOR3 = _FLOOR2 | {"storage", "service"}
_FLOOR4 = _FLOOR3 | {"clients"}
_COMPOSITION = _FLOOR4 | PARTIES | {"device", "swtpm", "apps", "deploy"}

#: Which top-level packages (and top-level modules) each one may import, besides itself.
ALLOWED: dict[str, frozenset[str]] = {
    # floor 0
    "errors": frozenset(),
    "procutil": frozenset(),
    "progress": frozenset(),
    "__init__": frozenset(),
    # floor 1: pure verifiers, curve and signatures, certificates; the TPM access layer
    "attest": _BASE,
    "crypto": _BASE,
    "pki": _BASE,
    "device": _BASE | {"attest", "crypto"},
    "swtpm": _BASE | {"procutil"},
    # floor 2: the wire specification
    "protocol": _BASE | {"attest", "crypto", "pki"},
    # floor 3: data layer and service framework
    "storage": _BASE,
    "service": _FLOOR2 | {"storage"},
    # floor 4: one HTTP client per party API
    "clients": _FLOOR3,
    # floor 5: the parties, which never import each other
    **{party: _FLOOR4 for party in PARTIES - {"wallet"}},
    "wallet": _FLOOR4 | {"device"},
    # floor 6: composition
    "apps": _FLOOR4 | PARTIES,
    "deploy": _COMPOSITION - {"deploy"},
    "demo": _COMPOSITION,
    "dashboard": _COMPOSITION,
    "cli": _COMPOSITION | {"demo", "dashboard"},
    "__main__": frozenset({"cli"}),
}

#: Not loaded by ``import ecash_tpm.protocol``: servers, databases, the TPM stack.
HEAVY = ("fastapi", "starlette", "uvicorn", "psycopg", "tpm2_pytss", "httpx")

SQL_SHAPE = re.compile(
    r"\bSELECT\b.*\bFROM\b|\bINSERT\s+INTO\b|\bUPDATE\s+\w+\s+SET\b|\bDELETE\s+FROM\b"
    r"|\b(CREATE|ALTER|DROP)\s+TABLE\b",
    re.IGNORECASE | re.DOTALL,
)


def _modules() -> list[Path]:
    return sorted(p for p in PACKAGE.rglob("*.py") if "__pycache__" not in p.parts)


def _top(rel: Path) -> str:
    return rel.parts[0] if len(rel.parts) > 1 else rel.stem


def _imported_modules(tree: ast.AST) -> set[str]:
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            if node.module == "ecash_tpm":  # `from ecash_tpm import bank` (not __version__)
                names.update(
                    f"ecash_tpm.{alias.name}"
                    for alias in node.names
                    if (PACKAGE / alias.name).is_dir() or (PACKAGE / f"{alias.name}.py").exists()
                )
    return names


def _is_store(rel: Path) -> bool:
    return rel.parts[0] == "storage" or rel.name == "store.py" or "store" in rel.parts[:-1]


def _sql_literals(tree: ast.AST) -> list[int]:
    return [
        node.lineno
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and SQL_SHAPE.search(node.value)
        and not node.value.lstrip().startswith(("Read", "The ", "A ", "One "))  # docstrings
    ]


def _docstring_lines(tree: ast.AST) -> set[int]:
    lines: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                lines.add(body[0].value.lineno)
    return lines


def test_the_table_names_every_top_level_package() -> None:
    tops = {_top(p.relative_to(PACKAGE)) for p in _modules()}
    assert tops <= set(ALLOWED), f"add {sorted(tops - set(ALLOWED))} to ALLOWED"
    for name, allowed in ALLOWED.items():
        if name in PARTIES:
            assert not allowed & PARTIES, f"party {name} may not import another party"


@pytest.mark.parametrize("path", _modules(), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_module_follows_the_rules(path: Path) -> None:
    rel = path.relative_to(PACKAGE)
    text = path.read_text()
    tree = ast.parse(text, filename=str(path))
    imports = _imported_modules(tree)
    top = _top(rel)

    used = {m.split(".")[1] for m in imports if m.startswith("ecash_tpm.")}  # + __version__
    forbidden = sorted(used - ALLOWED[top] - {top})
    assert not forbidden, f"{rel} ({top}) imports {forbidden}; allowed: {sorted(ALLOWED[top])}"

    if top != "device":
        bad = sorted(n for n in imports if n.split(".")[0] == "tpm2_pytss")
        assert not bad, f"{rel} imports tpm2-pytss ({bad}); only ecash_tpm.device may"

    if top in PARTIES and rel.name == "__init__.py" and len(rel.parts) == 2:
        assert not imports, f"{rel} imports {sorted(imports)}; a party __init__ holds names only"

    asserts = [n.lineno for n in ast.walk(tree) if isinstance(n, ast.Assert)]
    assert not asserts, f"{rel} uses assert at lines {asserts}; raise a typed error instead"

    lines = text.count("\n")
    assert lines <= MAX_LINES, f"{rel} has {lines} lines; split it along its sections"

    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            pieces = [v.value for v in node.values if isinstance(v, ast.Constant)]
            literal = " ? ".join(p for p in pieces if isinstance(p, str))
            if SQL_SHAPE.search(literal) and any(
                isinstance(v, ast.FormattedValue) for v in node.values
            ):
                pytest.fail(f"{rel}:{node.lineno} builds SQL with an f-string")

    if not _is_store(rel):
        sql = sorted(set(_sql_literals(tree)) - _docstring_lines(tree))
        assert not sql, f"{rel} holds SQL at lines {sql}; a party's SQL lives in its store"


def _fresh_import(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, cwd=ROOT
    )


def test_the_wire_specification_loads_nothing_heavy() -> None:
    done = _fresh_import(
        "import sys, ecash_tpm.protocol, ecash_tpm.protocol.kinds, ecash_tpm.pki;"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {HEAVY!r}))"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_verifier_import_does_not_load_tpm2_pytss() -> None:
    done = _fresh_import(
        "import sys, ecash_tpm.attest, ecash_tpm.crypto.groupsig, ecash_tpm.crypto.blindrsa;"
        "sys.exit(any(m.startswith('tpm2_pytss') for m in sys.modules))"
    )
    assert done.returncode == 0, done.stderr


@pytest.mark.slow
def test_mypy_strict_is_clean() -> None:
    mypy = shutil.which("mypy", path=str(Path(sys.executable).parent)) or shutil.which("mypy")
    if mypy is None:
        pytest.skip("mypy is not installed (it is a dev dependency)")
    env = {**os.environ, "MYPY_CACHE_DIR": str(ROOT / ".mypy_cache")}
    done = subprocess.run(
        [mypy, "--strict", "ecash_tpm"],
        check=False,
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
