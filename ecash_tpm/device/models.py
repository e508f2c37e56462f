"""Plain result types of the device layer: key references, commit outputs, curve and TPM info.

Free of tpm2-pytss, so code that only passes these around (the wallet, the CLI) can name them
without loading a TPM stack.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, NamedTuple

from ecash_tpm.device.constants import EkKind


@dataclass(frozen=True)
class KeyRef:
    """A key known to one open :class:`TpmDevice`.

    ``public`` is the marshalled TPM2B_PUBLIC (what tpm2-tools writes with ``-u``), ``name`` the
    TPM Name (nameAlg || digest), ``point`` the ECC public point ``04||X||Y`` (None for RSA).
    The ESYS handle is opaque and valid only while the device is open.
    """

    role: str
    public: bytes
    name: bytes
    point: bytes | None
    esys_handle: Any = field(default=None, repr=False, compare=False)
    owner: Any = field(default=None, repr=False, compare=False)


class CommitResult(NamedTuple):
    """TPM2_Commit outputs; a point is ``04||X(32)||Y(32)`` or None when the TPM omitted it."""

    K: bytes | None
    L: bytes | None
    E: bytes | None
    counter: int


@dataclass(frozen=True)
class EccParameters:
    """TPM2_ECC_Parameters of one curve, as integers."""

    curve: str
    p: int
    a: int
    b: int
    gx: int
    gy: int
    n: int
    h: int


@dataclass
class TpmInfo:
    """What ``ecash-tpm tpm info`` reports."""

    manufacturer: str
    vendor: str
    firmware_version: str
    spec_version: str
    ek_certificates: dict[EkKind, bytes]
    pcr_banks: list[str]
    ecc_curves: list[str]
    ecdaa_supported: bool
    bn_p256_supported: bool

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape ``ecash-tpm tpm info --json`` prints (EK kinds, not certificates)."""
        return {
            "manufacturer": self.manufacturer,
            "vendor": self.vendor,
            "firmware_version": self.firmware_version,
            "spec_version": self.spec_version,
            "ek_types": [k.value for k in self.ek_certificates],
            "pcr_banks": list(self.pcr_banks),
            "ecc_curves": list(self.ecc_curves),
            "ecdaa_supported": self.ecdaa_supported,
            "bn_p256_supported": self.bn_p256_supported,
        }
