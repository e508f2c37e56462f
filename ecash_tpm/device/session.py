"""Connection handling: opening a TPM, flushing leftovers, closing, and capability queries.

Without a resource manager (swtpm, raw /dev/tpm0) transient objects and sessions survive the
process that made them, and libtpms has only 3 object slots. So opening flushes leftovers and
:meth:`TpmSession.close` flushes every key this device loaded.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import Any, Self

from tpm2_pytss import ESAPI, TSS2_Exception
from tpm2_pytss.constants import TPM2_ALG, TPM2_CAP, TPM2_ECC, TPM2_HT, TPM2_PT

from ecash_tpm.device.constants import EkKind
from ecash_tpm.device.errors import EcdaaUnsupportedError, TpmArgumentError, TpmConnectionError
from ecash_tpm.device.latency import InjectedLatency
from ecash_tpm.device.models import EccParameters, KeyRef
from ecash_tpm.device.tss import rc_detail, tpm_call

DEFAULT_TCTI = "device:/dev/tpmrm0"
_TRANSIENT_FIRST = int(TPM2_HT.TRANSIENT) << 24
_SESSION_RANGES = (int(TPM2_HT.LOADED_SESSION) << 24, int(TPM2_HT.SAVED_SESSION) << 24)


class TpmSession:
    """An open ESAPI connection and the keys loaded through it; base of :class:`TpmDevice`.

    ``tcti`` is a tpm2-tss TCTI string: ``swtpm:host=127.0.0.1,port=N``, ``device:/dev/tpmrm0``,
    ``tabrmd``. Opening flushes leftover transient objects and sessions unless
    ``flush_leftovers=False`` (they are garbage without a resource manager; with one, the list
    is empty). ``inject_latency`` (default: from ``ECASH_TPM_TPM_LATENCY_MS``, else none)
    delays TPM2_Commit and TPM2_Sign to mimic a hardware TPM in benchmarks (:mod:`.latency`).
    """

    def __init__(
        self,
        tcti: str = DEFAULT_TCTI,
        *,
        flush_leftovers: bool = True,
        inject_latency: InjectedLatency | None = None,
    ) -> None:
        os.environ.setdefault("TSS2_LOG", "esys+none")
        self.tcti = tcti
        self.injected_latency = inject_latency or InjectedLatency.from_env()
        self._loaded: dict[tuple[str, Path], KeyRef] = {}
        self._ek_cache: dict[EkKind, KeyRef] = {}
        self._nv_buffer_max: int | None = None
        try:
            self._esys: ESAPI | None = ESAPI(tcti)
        except TSS2_Exception as exc:
            raise TpmConnectionError(
                f"cannot open TPM via TCTI {tcti!r}: {exc}",
                detail={"tcti": tcti, **rc_detail("Esys_Initialize", exc)},
            ) from exc
        except (OSError, ValueError) as exc:
            raise TpmConnectionError(
                f"cannot open TPM via TCTI {tcti!r}: {exc}", detail={"tcti": tcti}
            ) from exc
        try:
            if flush_leftovers:
                self.flush_leftovers()
        except BaseException:
            self.close()
            raise

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def esys(self) -> ESAPI:
        """The ESAPI context; a typed error instead of a crash once the device is closed."""
        if self._esys is None:
            raise TpmConnectionError("the TPM device is closed", detail={"tcti": self.tcti})
        return self._esys

    def close(self) -> None:
        """Flush the keys we loaded and release the TCTI; safe to call twice."""
        if self._esys is None:
            return
        for ref in list(self._loaded.values()):
            with contextlib.suppress(TSS2_Exception):
                self._esys.flush_context(ref.esys_handle)
        self._loaded.clear()
        self._esys.close()
        self._esys = None

    def flush_leftovers(self) -> int:
        """Flush transient objects and sessions this device did not load; returns the count."""
        ours = set()
        for ref in self._loaded.values():
            with tpm_call("TR_GetTPMHandle"):
                ours.add(int(self.esys.tr_get_tpm_handle(ref.esys_handle)))
        count = 0
        seen: set[int] = set()
        for first in (_TRANSIENT_FIRST, *_SESSION_RANGES):
            for handle in self._handles(first):
                if handle in ours or handle in seen:
                    continue
                seen.add(handle)
                with tpm_call("FlushContext(leftover)"):
                    tr = self.esys.tr_from_tpmpublic(handle)
                    self.esys.flush_context(tr)
                count += 1
        return count

    # -- capabilities ---------------------------------------------------------------------

    def _handles(self, first: int) -> list[int]:
        """Handles listed for one handle type (given by its first handle), following moreData.

        Loaded sessions are listed under TPM_HT_LOADED_SESSION but policy sessions carry
        0x03xxxxxx handles, so both session types are accepted for the session ranges.
        """
        kinds = {first >> 24}
        if first in _SESSION_RANGES:
            kinds = {r >> 24 for r in _SESSION_RANGES}
        out: list[int] = []
        prop = first
        while True:
            with tpm_call("GetCapability(HANDLES)"):
                more, data = self.esys.get_capability(TPM2_CAP.HANDLES, prop, 64)
            handles = [int(h) for h in data.data.handles]
            new = [h for h in handles if (h >> 24) in kinds and h not in out]
            out.extend(new)
            if not more or not new:
                return out
            prop = max(new) + 1

    def properties(self, first: int = int(TPM2_PT.FIXED), count: int = 0x7F) -> dict[int, int]:
        """TPM properties (TPM_PT_*) from ``first``, as ints."""
        out: dict[int, int] = {}
        prop = first
        while len(out) < count:
            with tpm_call("GetCapability(TPM_PROPERTIES)"):
                more, data = self.esys.get_capability(
                    TPM2_CAP.TPM_PROPERTIES, prop, count - len(out)
                )
            props = data.data.tpmProperties  # keep `data` referenced while reading
            got = [(int(p.property), int(p.value)) for p in props]
            out.update(got)
            if not more or not got:
                break
            prop = got[-1][0] + 1
        return out

    def ecc_curves(self) -> list[int]:
        """TPM_ECC_CURVE ids the TPM implements."""
        with tpm_call("GetCapability(ECC_CURVES)"):
            _more, data = self.esys.get_capability(TPM2_CAP.ECC_CURVES, 0, 64)
        curves = data.data.eccCurves
        return [int(c) for c in curves]

    def has_algorithm(self, alg: int) -> bool:
        """Whether the TPM implements ``alg`` (TPM_ALG_ID), asked before relying on it."""
        with tpm_call("GetCapability(ALGS)"):
            _more, data = self.esys.get_capability(TPM2_CAP.ALGS, int(alg), 1)
        algs = data.data.algorithms
        return any(int(a.alg) == int(alg) for a in algs)

    def ecdaa_support(self) -> tuple[bool, bool]:
        """(ECDAA algorithm present, BN_P256 curve present)."""
        return self.has_algorithm(TPM2_ALG.ECDAA), int(TPM2_ECC.BN_P256) in self.ecc_curves()

    def require_ecdaa(self) -> None:
        """Raise ``tpm.ecdaa_unsupported`` unless ECDAA on BN_P256 is available."""
        ecdaa, bn = self.ecdaa_support()
        if not (ecdaa and bn):
            missing = [n for n, ok in (("ECDAA", ecdaa), ("BN_P256", bn)) if not ok]
            raise EcdaaUnsupportedError(
                "this TPM cannot do ECDAA on BN_P256 (missing: "
                + ", ".join(missing)
                + "); the anonymous credential needs it",
                detail={"missing": missing, "tcti": self.tcti},
            )

    def ecc_parameters(self, curve: str = "bn_p256") -> EccParameters:
        """TPM2_ECC_Parameters, so callers can check their curve constants against the TPM."""
        try:
            curve_id = TPM2_ECC.parse(curve)
        except (ValueError, TypeError) as exc:
            raise TpmArgumentError(f"unknown curve {curve!r}") from exc
        with tpm_call("ECC_Parameters"):
            d = self.esys.ecc_parameters(curve_id)

        def num(v: Any) -> int:
            return int.from_bytes(bytes(v), "big")

        return EccParameters(
            curve, num(d.p), num(d.a), num(d.b), num(d.gX), num(d.gY), num(d.n), num(d.h)
        )

    def pcr_banks(self) -> list[str]:
        """Hash algorithms with at least one allocated PCR."""
        with tpm_call("GetCapability(PCRS)"):
            _more, data = self.esys.get_capability(TPM2_CAP.PCRS, 0, 16)
        sels = data.data.assignedPCR
        banks = []
        for sel in sels.pcrSelections[: sels.count]:
            bits = bytes(sel.pcrSelect)[: sel.sizeofSelect]
            if any(bits):
                banks.append(str(TPM2_ALG(int(sel.hash))).lower())
        return banks

    def get_random(self, n: int) -> bytes:
        """``n`` bytes from the TPM RNG, in the 32-byte chunks every TPM accepts."""
        out = b""
        while len(out) < n:
            with tpm_call("GetRandom"):
                out += bytes(self.esys.get_random(min(32, n - len(out))))
        return out
