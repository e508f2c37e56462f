"""The issuer's PCR policy: which PCRs a joining platform must quote and their golden values.

File format (JSON)::

    {
      "version": 1,
      "bank": "sha256",
      "pcrs": [0, 1, 2, 3, 7],
      "allowed": {"0": ["<64 hex>", ...], "1": [...], ...}
    }

Every selected PCR must have an allow-list (go-attestation/Keylime lesson: every quoted PCR is
covered by policy), and a quote passes only when *each* PCR's value is in its list.

Measured boot instead of (or besides) golden values: an optional ``"measured_boot": {...}``
object (:class:`~ecash_tpm.issuer.boot_policy.BootPolicy`) makes the device's TCG event log
mandatory; the log must replay to the quoted PCRs and its events must pass those rules. PCRs
without an allow-list are then covered by the replay instead. A device may send its log under
a golden-values policy too: it must still replay to the quote (docs/protocol.md 3.4, step 4).

Trust on first use (``tofu=True``) exists for demos only and is off by default: values outside
the lists are then accepted, appended to the file so the operator can review them, and logged at
WARNING every time, because a TOFU issuer admits any platform state.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from ecash_tpm.attest.eventlog import EventLog, verify_replay
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.issuer.boot_policy import BootEventLogMissingError, BootFacts, BootPolicy, boot_facts
from ecash_tpm.issuer.errors import PcrPolicyConfigError, PcrPolicyError

POLICY_VERSION = 1
DEFAULT_PCRS: tuple[int, ...] = (0, 1, 2, 3, 7)
PCR_BANK = "sha256"
PCR_SIZE = 32
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")

SWTPM_BOOT_PCRS: Mapping[int, tuple[bytes, ...]] = {
    i: (bytes.fromhex(v),)
    for i, v in {
        0: "e297b8623d49d9d2f4a730ac57b9c89c11a68f9fca2a2d29a16c8ea8c9fc5343",
        2: "3d458cfe55cc03ea1f443f1562beec8df51c75e14a9fcf9a7234a13f198e7969",
        4: "e5347af544ce94c04f211865d2e55510fc9eeadae6081829367e2ffed8d32aed",
        7: "4f5d2f0ed232e814d41cd9d47fa00e8f8b2356556e8d6b415c62170596e95a0e",
    }.items()
}
"""SHA-256 PCRs of the swtpm's synthetic boot (the replay of ``swtpm.firmware.expected_log()``;
a test keeps them equal)."""

logger = logging.getLogger("ecash_tpm.issuer.policy")


def _check_indices(pcrs: Iterable[object]) -> tuple[int, ...]:
    out = []
    for i in pcrs:
        if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i <= 23:
            raise PcrPolicyConfigError(f"PCR index {i!r} is not in 0..23")
        out.append(i)
    if not out:
        raise PcrPolicyConfigError("the PCR selection is empty")
    if len(set(out)) != len(out):
        raise PcrPolicyConfigError("the PCR selection lists an index twice")
    return tuple(sorted(out))


class PcrPolicy:
    """Selection + per-PCR allow-lists, optionally backed by a file (for TOFU updates)."""

    def __init__(
        self,
        pcrs: Iterable[int],
        allowed: Mapping[int, Iterable[bytes]],
        *,
        tofu: bool = False,
        path: str | os.PathLike[str] | None = None,
        boot: BootPolicy | None = None,
    ) -> None:
        self.pcrs = _check_indices(pcrs)
        self.boot = boot
        self._allowed: dict[int, set[bytes]] = {}
        for i, values in allowed.items():
            if i not in self.pcrs:
                raise PcrPolicyConfigError(f"allow-list for PCR {i}, which is not selected")
            vals = set()
            for v in values:
                if not isinstance(v, bytes) or len(v) != PCR_SIZE:
                    raise PcrPolicyConfigError(f"PCR {i}: allowed values are {PCR_SIZE} bytes")
                vals.add(v)
            self._allowed[i] = vals
        uncovered = [i for i in self.pcrs if not self._allowed.get(i)]
        if boot is not None and not boot.required_pcrs() <= set(self.pcrs):
            raise PcrPolicyConfigError(
                f"the measured-boot rules need PCRs {sorted(boot.required_pcrs())} quoted",
                detail={"selected": list(self.pcrs), "needed": sorted(boot.required_pcrs())},
            )
        if uncovered and not tofu and boot is None:
            raise PcrPolicyConfigError(
                f"selected PCRs {uncovered} have no allowed values (and TOFU is off)",
                detail={"uncovered": uncovered},
            )
        self.tofu = tofu
        self.path = Path(path) if path is not None else None
        self._lock = threading.Lock()
        if tofu:
            logger.warning(
                "PCR policy in TRUST-ON-FIRST-USE mode: ANY platform state will be accepted "
                "and recorded. Demo use only; never enable this in production."
            )

    # -- file I/O -----------------------------------------------------------------------------

    @classmethod
    def load(cls, path: str | os.PathLike[str], *, tofu: bool = False) -> PcrPolicy:
        """Read a policy file (format in the module docstring)."""
        p = Path(path)
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise PcrPolicyConfigError(
                f"PCR policy file {p} does not exist (run `ecash-tpm issuer init`)",
                detail={"path": str(p)},
            ) from None
        except (OSError, ValueError) as exc:
            raise PcrPolicyConfigError(
                f"cannot read PCR policy {p}: {exc}", detail={"path": str(p)}
            ) from exc
        return cls.from_dict(data, tofu=tofu, path=p)

    @classmethod
    def from_dict(
        cls, data: Any, *, tofu: bool = False, path: str | os.PathLike[str] | None = None
    ) -> PcrPolicy:
        if not isinstance(data, dict) or data.get("version") != POLICY_VERSION:
            raise PcrPolicyConfigError(
                f"PCR policy must be an object with version {POLICY_VERSION}"
            )
        if data.get("bank", PCR_BANK) != PCR_BANK:
            raise PcrPolicyConfigError("only the sha256 PCR bank is supported")
        pcrs = data.get("pcrs")
        if not isinstance(pcrs, list):
            raise PcrPolicyConfigError("'pcrs' must be a list of PCR indices")
        raw_allowed = data.get("allowed", {})
        if not isinstance(raw_allowed, dict):
            raise PcrPolicyConfigError("'allowed' must map PCR index strings to lists of hex")
        allowed: dict[int, list[bytes]] = {}
        for key, values in raw_allowed.items():
            if not isinstance(key, str) or not key.isdigit() or not isinstance(values, list):
                raise PcrPolicyConfigError(f"bad allow-list entry {key!r}")
            vals = []
            for v in values:
                if not isinstance(v, str) or not _HEX_RE.match(v.lower()):
                    raise PcrPolicyConfigError(f"PCR {key}: {v!r} is not 64 hex digits")
                vals.append(bytes.fromhex(v))
            allowed[int(key)] = vals
        boot = data.get("measured_boot")
        return cls(
            pcrs,
            allowed,
            tofu=tofu,
            path=path,
            boot=None if boot is None else BootPolicy.from_dict(boot),
        )

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            allowed = {str(i): sorted(v.hex() for v in vals) for i, vals in self._allowed.items()}
        out: dict[str, Any] = {
            "version": POLICY_VERSION,
            "bank": PCR_BANK,
            "pcrs": list(self.pcrs),
            "allowed": allowed,
        }
        if self.boot is not None:
            out["measured_boot"] = self.boot.to_dict()
        return out

    def save(self, path: str | os.PathLike[str] | None = None) -> None:
        target = Path(path) if path is not None else self.path
        if target is None:
            raise PcrPolicyConfigError("no file to save the PCR policy to")
        data = (json.dumps(self.to_dict(), indent=2, sort_keys=True) + "\n").encode()
        try:
            write_file_atomic(target, data, mode=0o644)
        except OSError as exc:
            raise PcrPolicyConfigError(f"cannot write {target}: {exc}") from exc

    # -- checking -----------------------------------------------------------------------------

    def selection(self) -> dict[str, Any]:
        """The selection the device must quote, as sent in join/start and /v1/issuer/info."""
        return {"bank": PCR_BANK, "pcrs": list(self.pcrs)}

    def check(
        self, values: Mapping[int, bytes], event_log: EventLog | None = None
    ) -> BootFacts | None:
        """Judge the platform: event log replay, golden values, measured-boot rules.

        ``values`` must already be authenticated (a verified quote over exactly the selection).
        In order (docs/protocol.md 3.4, step 4): a log, if any, must replay to ``values``
        (``eventlog.replay_mismatch``); every PCR with an allow-list must hold an allowed value
        (``join.pcr_policy_violation``; all PCRs without measured boot); a measured-boot policy
        needs the log (``boot.event_log_missing``) and its rules (``boot.*``). Returns what the
        log says (None without a log).
        """
        if set(values) != set(self.pcrs):
            raise PcrPolicyError(
                "reported PCRs are not the policy's selection",
                detail={"selected": list(self.pcrs), "reported": sorted(values)},
            )
        facts = None
        if event_log is not None:
            verify_replay(event_log, PCR_BANK, values)  # PFP 10.4.5: the log is this boot's
            facts = boot_facts(event_log, PCR_BANK, values)
        self._check_golden(values)
        if self.boot is not None:
            if facts is None:
                raise BootEventLogMissingError(
                    "the issuer's policy judges the boot's event log, and none was sent "
                    "(wallet join --event-log FILE, or run it where "
                    "/sys/kernel/security/tpm0/binary_bios_measurements is readable)"
                )
            self.boot.check(facts)
        return facts

    def _check_golden(self, values: Mapping[int, bytes]) -> None:
        with self._lock:
            covered = [i for i in self.pcrs if self.boot is None or self._allowed.get(i)]
            bad = [i for i in covered if values[i] not in self._allowed.get(i, set())]
            if not bad:
                return
            if not self.tofu:
                raise PcrPolicyError(
                    f"PCR values outside the policy for PCRs {bad}",
                    detail={"pcrs": bad, "values": {str(i): values[i].hex() for i in bad}},
                )
            for i in bad:
                self._allowed.setdefault(i, set()).add(values[i])
        logger.warning(
            "TOFU: accepting and recording PCR values outside the allow-list for PCRs %s: %s",
            bad,
            {i: values[i].hex() for i in bad},
        )
        if self.path is not None:
            self.save()

    @classmethod
    def default(cls, pcrs: Iterable[int] = DEFAULT_PCRS) -> PcrPolicy:
        """The PCR values of the project's swtpm: after its synthetic boot, or all zero.

        (An emulator has no firmware; :mod:`ecash_tpm.swtpm.firmware` measures a fixed boot
        at each start, and one started without it keeps all-zero PCRs.)
        """
        idx = _check_indices(pcrs)
        return cls(
            idx,
            {i: [bytes(PCR_SIZE), *SWTPM_BOOT_PCRS.get(i, ())] for i in idx},
        )
