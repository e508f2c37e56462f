"""How fast this TPM runs the commands the wallet issues (``ecash-tpm tpm bench``).

A payment costs one TPM2_Commit and one TPM2_Sign(ECDAA) per coin; a join costs TPM2_Create (AK
and DAA key, first join only), TPM2_ActivateCredential, TPM2_Quote and the same ECDAA pair.
Discrete TPMs on SPI/LPC and firmware TPMs differ by orders of magnitude, and swtpm tells nothing
about either, so this measures the host's TPM. It prints figures only; nothing decides on them.

What each operation includes:

- ``TPM2_Commit``: on the DAA key with P1, s2 and y2, as in a spend proof (K, L and E computed);
- ``TPM2_Sign(ECDAA)``: with the counter of that commit;
- ``TPM2_Quote``: SHA-256 PCRs 0, 1, 2, 3, 7 (the issuer's default selection) with the AK;
- ``TPM2_Create``: an ECC P-256 signing key with the AK template under the storage key (the
  storage primary is created once, outside the measured time);
- ``TPM2_ActivateCredential``: as the join runs it: the EK primary re-created from its template,
  the EK policy session, then the command itself (the EK creation often dominates).
"""

from __future__ import annotations

import contextlib
import secrets
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tpm2_pytss import TSS2_Exception
from tpm2_pytss.constants import ESYS_TR
from tpm2_pytss.types import TPM2B_PUBLIC, TPM2B_SENSITIVE_CREATE

from ecash_tpm.attest import make_credential
from ecash_tpm.crypto.bn256 import G, tracing_base
from ecash_tpm.device.constants import EkKind
from ecash_tpm.device.errors import EcdaaUnsupportedError, TpmArgumentError
from ecash_tpm.device.models import KeyRef
from ecash_tpm.device.templates import child_template, srk_template
from ecash_tpm.device.tpm import TpmDevice
from ecash_tpm.device.tss import tpm_call
from ecash_tpm.errors import EcashError

COMMIT = "TPM2_Commit"
SIGN = "TPM2_Sign(ECDAA)"
QUOTE = "TPM2_Quote"
CREATE = "TPM2_Create"
ACTIVATE = "TPM2_ActivateCredential"
OPERATIONS = (COMMIT, SIGN, QUOTE, CREATE, ACTIVATE)

QUOTE_PCRS = (0, 1, 2, 3, 7)
MAX_ROUNDS = 1000
_EK_ORDER = (EkKind.RSA_2048, EkKind.ECC_P384, EkKind.ECC_P256)

Progress = Callable[[str, int, int], None]
"""``progress(message, done, total)`` as in :mod:`ecash_tpm.progress`."""


@dataclass
class OperationTiming:
    """The wall times of one operation over the rounds, or why it was not measured."""

    operation: str
    seconds: list[float] = field(default_factory=list)
    skipped: str | None = None

    def _ms(self, value: float) -> float:
        return round(value * 1000.0, 3)

    def median_ms(self) -> float | None:
        """Median in milliseconds (None when skipped)."""
        return self._ms(statistics.median(self.seconds)) if self.seconds else None

    def to_dict(self) -> dict[str, Any]:
        """``{operation, samples, min_ms, median_ms, max_ms, skipped}``."""
        have = bool(self.seconds)
        return {
            "operation": self.operation,
            "samples": len(self.seconds),
            "min_ms": self._ms(min(self.seconds)) if have else None,
            "median_ms": self.median_ms(),
            "max_ms": self._ms(max(self.seconds)) if have else None,
            "skipped": self.skipped,
        }


@dataclass
class BenchReport:
    """Result of :func:`run_bench`."""

    rounds: int
    ek_kind: EkKind
    operations: dict[str, OperationTiming]

    def per_coin_ms(self) -> float | None:
        """Median TPM time one coin of a payment costs (Commit + Sign), if measured."""
        commit = self.operations[COMMIT].median_ms()
        sign = self.operations[SIGN].median_ms()
        return None if commit is None or sign is None else round(commit + sign, 3)

    def to_dict(self) -> dict[str, Any]:
        """The JSON shape of ``ecash-tpm tpm bench --json`` (besides the TPM's identity)."""
        return {
            "rounds": self.rounds,
            "ek": self.ek_kind.value,
            "operations": [self.operations[name].to_dict() for name in OPERATIONS],
            "per_coin_ms": self.per_coin_ms(),
        }


def default_ek(device: TpmDevice) -> EkKind:
    """The EK the join would use: the first with a certificate in NV, else RSA-2048."""
    present = device.ek_kinds_present()
    return next((k for k in _EK_ORDER if k in present), EkKind.RSA_2048)


def _time(timing: OperationTiming, action: Callable[..., Any], *args: Any) -> Any:
    """``action(*args)``, its wall time appended to ``timing``."""
    start = time.perf_counter()
    result = action(*args)
    timing.seconds.append(time.perf_counter() - start)
    return result


def _time_creates(device: TpmDevice, timing: OperationTiming, rounds: int, say: Progress) -> None:
    """TPM2_Create of AK-template keys under one storage primary made outside the timing.

    Runs before the AK and DAA key are loaded: without a resource manager (swtpm: three object
    slots) Create needs a free slot besides the primary.
    """
    esys = device.esys
    with tpm_call("CreatePrimary(SRK)"):
        srk, *_ = esys.create_primary(
            TPM2B_SENSITIVE_CREATE(), TPM2B_PUBLIC(srk_template()), ESYS_TR.OWNER
        )
    try:
        template = TPM2B_PUBLIC(child_template("ak"))
        for done in range(rounds):
            say(f"{CREATE} {done + 1} of {rounds}", done, 2 * rounds)
            with tpm_call("Create"):
                _time(timing, esys.create, srk, TPM2B_SENSITIVE_CREATE(), template)
    finally:
        with contextlib.suppress(TSS2_Exception):
            esys.flush_context(srk)


def run_bench(
    device: TpmDevice,
    key_dir: Path,
    *,
    rounds: int,
    ek_kind: EkKind | str | None = None,
    progress: Progress | None = None,
) -> BenchReport:
    """Measure each of :data:`OPERATIONS` ``rounds`` times; keys go to ``key_dir`` (throwaway).

    ECDAA operations are reported as skipped (with the error code) on a TPM without ECDAA or
    BN_P256; every other failure is raised.
    """
    if not isinstance(rounds, int) or not 1 <= rounds <= MAX_ROUNDS:
        raise TpmArgumentError(f"rounds must be 1..{MAX_ROUNDS}", detail={"rounds": rounds})
    kind = EkKind(ek_kind) if ek_kind is not None else default_ek(device)
    timings = {name: OperationTiming(name) for name in OPERATIONS}
    say = progress or (lambda _m, _d, _t: None)
    _time_creates(device, timings[CREATE], rounds, say)
    ak = device.load_or_create_ak(key_dir)
    daa: KeyRef | None = None
    try:
        daa = device.load_or_create_daa_key(key_dir)
    except EcdaaUnsupportedError as exc:
        for name in (COMMIT, SIGN):
            timings[name].skipped = f"{exc.code}: {exc.message}"
    ek_public = device.ek_public(kind)
    s2, j0 = tracing_base()
    p1, y2 = G.encode(), j0.y_bytes()
    try:
        for done in range(rounds):
            say(f"round {done + 1} of {rounds}", rounds + done, 2 * rounds)
            if daa is not None:
                res = _time(timings[COMMIT], device.commit, daa, p1, s2, y2)
                digest = secrets.token_bytes(32)
                _time(timings[SIGN], device.ecdaa_sign, daa, digest, res.counter)
            nonce = secrets.token_bytes(32)
            _time(timings[QUOTE], device.quote, ak, QUOTE_PCRS, nonce)
            blob, secret = make_credential(ek_public, ak.name, secrets.token_bytes(32))
            _time(timings[ACTIVATE], device.activate_credential, ak, kind, blob, secret)
        say("done", 2 * rounds, 2 * rounds)
    finally:
        for ref in (ak, daa):
            if ref is not None:
                with contextlib.suppress(EcashError):
                    device.unload(ref)
    return BenchReport(rounds, kind, timings)
