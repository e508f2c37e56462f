"""Which BN_P256 engine runs: the C extension ``_bn256`` or the pure-Python (gmpy2) code.

docs/native.md. The C engine is built by the normal install when a compiler is present; without
it (or with ``ECASH_TPM_NATIVE=0`` in the environment, read at import of
:mod:`ecash_tpm.crypto.bn256`) everything runs on the Python code, with the same results.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

__all__ = ["ENV_VAR", "backend_name", "load"]

ENV_VAR = "ECASH_TPM_NATIVE"
_NATIVE_NAME = "native (C, 4x64 Montgomery)"
_PYTHON_NAME = "python (gmpy2)"


def load() -> ModuleType | None:
    """The ``_bn256`` extension, or None when it is disabled or was not built."""
    if os.environ.get(ENV_VAR, "1").strip().lower() in ("0", "false", "no", "off"):
        return None
    try:
        return importlib.import_module("ecash_tpm.crypto._bn256")
    except ImportError:
        return None


def backend_name() -> str:
    """The engine the curve arithmetic uses in this process, for ``--version`` and ``tpm info``."""
    from ecash_tpm.crypto import bn256  # the choice made at its import is the one in use

    return _NATIVE_NAME if bn256.native_engine() is not None else _PYTHON_NAME
