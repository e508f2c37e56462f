"""Loader of the optional native BN_P256 module ``ecash_tpm.crypto._bn256`` (stub).

The native build (another branch) replaces this file; here it only reports whether the
extension can be imported, so :mod:`ecash_tpm.crypto.pairing` falls back to the pure-Python
reference otherwise.
"""

from __future__ import annotations

import importlib
from types import ModuleType

__all__ = ["load"]


def load() -> ModuleType | None:
    """The native module, or None when it is not built."""
    try:
        return importlib.import_module("ecash_tpm.crypto._bn256")
    except ImportError:
        return None
