"""Glue between tpm2-pytss and the device layer's plain bytes: errors, points, PCR selections.

Every ESAPI call goes through :func:`tpm_call`, so a TSS2_Exception leaves the device layer only
as a :class:`~ecash_tpm.device.errors.TpmCommandError` that names the command and the TPM rc.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from typing import Any

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import TPM2_ALG
from tpm2_pytss.types import TPM2B_ECC_POINT, TPML_PCR_SELECTION, TPMS_ECC_POINT

from ecash_tpm.device.errors import TpmArgumentError, TpmCommandError

MAX_QUALIFYING_DATA = 32
PCR_COUNT = 24


def rc_detail(op: str, exc: TSS2_Exception) -> dict[str, Any]:
    """The ``detail`` of a TpmCommandError: which command failed and with which TPM rc."""
    rc = int(exc.rc)
    return {
        "operation": op,
        "rc": rc,
        "rc_hex": f"0x{rc:08x}",
        "error_hex": f"0x{int(exc.error):x}",
    }


@contextlib.contextmanager
def tpm_call(op: str) -> Iterator[None]:
    """Turn TSS2_Exception into TpmCommandError naming the command and the TPM rc."""
    try:
        yield
    except TSS2_Exception as exc:
        raise TpmCommandError(f"{op} failed: {exc}", detail=rc_detail(op, exc)) from exc


def unmarshal_exact(cls: Any, data: bytes, what: str) -> Any:
    """Unmarshal ``data`` as ``cls`` and require that it is consumed exactly."""
    if not isinstance(data, bytes | bytearray):
        raise TpmArgumentError(f"{what} must be bytes")
    try:
        obj, used = cls.unmarshal(bytes(data))
    except TSS2_Exception as exc:
        raise TpmArgumentError(f"{what} is not a valid {cls.__name__}") from exc
    if used != len(data):
        raise TpmArgumentError(
            f"{what} has {len(data) - used} trailing bytes after the {cls.__name__}",
            detail={"length": len(data), "consumed": used},
        )
    return obj


def point_bytes(pt: Any, size: int = 32) -> bytes | None:
    """TPMS_ECC_POINT -> ``04||X||Y`` (fixed width), None when the TPM returned no point."""
    x, y = bytes(pt.x), bytes(pt.y)
    if not x and not y:
        return None
    return b"\x04" + x.rjust(size, b"\0") + y.rjust(size, b"\0")


def parse_point(data: bytes, what: str) -> TPM2B_ECC_POINT:
    """``04||X||Y`` (32-byte coordinates) -> TPM2B_ECC_POINT, refusing anything else."""
    if not isinstance(data, bytes | bytearray) or len(data) != 65 or data[0] != 4:
        raise TpmArgumentError(f"{what} must be an uncompressed point 04||X(32)||Y(32)")
    return TPM2B_ECC_POINT(point=TPMS_ECC_POINT(x=bytes(data[1:33]), y=bytes(data[33:])))


def pcr_selection(bank: str, indices: Sequence[int]) -> TPML_PCR_SELECTION:
    """TPML_PCR_SELECTION of one bank, refusing indices a PC-client TPM does not have."""
    idx = sorted(set(indices))
    for i in idx:
        if not isinstance(i, int) or not 0 <= i < PCR_COUNT:
            raise TpmArgumentError(f"PCR index {i!r} out of range 0..{PCR_COUNT - 1}")
    if not idx:
        return TPML_PCR_SELECTION()
    return TPML_PCR_SELECTION.parse(f"{bank}:{','.join(str(i) for i in idx)}")


def hash_alg(bank: str) -> TPM2_ALG:
    """The TPM2_ALG of a PCR bank name, refusing banks the device layer does not use."""
    try:
        alg = TPM2_ALG.parse(bank)
    except (ValueError, TypeError) as exc:
        raise TpmArgumentError(f"unknown hash algorithm {bank!r}") from exc
    if alg not in (TPM2_ALG.SHA1, TPM2_ALG.SHA256, TPM2_ALG.SHA384, TPM2_ALG.SHA512):
        raise TpmArgumentError(f"unsupported PCR bank {bank!r}")
    return alg


def check_qualifying(data: bytes) -> bytes:
    """Qualifying data as bytes, at most one digest long (what TPM2B_DATA holds)."""
    if not isinstance(data, bytes | bytearray):
        raise TpmArgumentError("qualifying data must be bytes")
    if len(data) > MAX_QUALIFYING_DATA:
        raise TpmArgumentError(
            f"qualifying data is {len(data)} bytes; at most {MAX_QUALIFYING_DATA} (hash it)",
        )
    return bytes(data)
