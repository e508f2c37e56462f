"""TPM 2.0 device layer: EK, AK, quotes, credential activation and ECDAA via tpm2-pytss.

This package is the only place the project imports tpm2-pytss. Constants and errors are
importable on their own; :class:`TpmDevice` and its result types are loaded lazily so that
``from ecash_tpm.device import EkKind`` works where tpm2-pytss is not installed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ecash_tpm.device.constants import EK_SPECS, EkKind, EkSpec
from ecash_tpm.device.errors import (
    EcdaaUnsupportedError,
    EkCertificateMissingError,
    EkUnsupportedError,
    KeyBlobError,
    TpmArgumentError,
    TpmCommandError,
    TpmConnectionError,
)

if TYPE_CHECKING:
    from ecash_tpm.device.tpm import (
        CommitResult,
        EccParameters,
        KeyRef,
        TpmDevice,
        TpmInfo,
    )

_LAZY = {"TpmDevice", "KeyRef", "CommitResult", "EccParameters", "TpmInfo", "DEFAULT_TCTI"}


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        from ecash_tpm.device import tpm

        return getattr(tpm, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "EK_SPECS",
    "CommitResult",
    "EccParameters",
    "EcdaaUnsupportedError",
    "EkCertificateMissingError",
    "EkKind",
    "EkSpec",
    "EkUnsupportedError",
    "KeyBlobError",
    "KeyRef",
    "TpmArgumentError",
    "TpmCommandError",
    "TpmConnectionError",
    "TpmDevice",
    "TpmInfo",
]
