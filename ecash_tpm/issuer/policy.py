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

from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.issuer.errors import PcrPolicyConfigError, PcrPolicyError

POLICY_VERSION = 1
DEFAULT_PCRS: tuple[int, ...] = (0, 1, 2, 3, 7)
PCR_BANK = "sha256"
PCR_SIZE = 32
_HEX_RE = re.compile(r"^[0-9a-f]{64}$")

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
    ) -> None:
        self.pcrs = _check_indices(pcrs)
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
        if uncovered and not tofu:
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
        return cls(pcrs, allowed, tofu=tofu, path=path)

    def to_dict(self) -> dict[str, Any]:
        with self._lock:
            allowed = {str(i): sorted(v.hex() for v in vals) for i, vals in self._allowed.items()}
        return {
            "version": POLICY_VERSION,
            "bank": PCR_BANK,
            "pcrs": list(self.pcrs),
            "allowed": allowed,
        }

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

    def check(self, values: Mapping[int, bytes]) -> None:
        """Raise ``join.pcr_policy_violation`` unless every selected PCR has an allowed value.

        ``values`` must already be authenticated (a verified quote over exactly the selection).
        """
        if set(values) != set(self.pcrs):
            raise PcrPolicyError(
                "reported PCRs are not the policy's selection",
                detail={"selected": list(self.pcrs), "reported": sorted(values)},
            )
        with self._lock:
            bad = [i for i in self.pcrs if values[i] not in self._allowed.get(i, set())]
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
        """All-zero golden values: what a freshly started swtpm (no firmware) reports."""
        idx = _check_indices(pcrs)
        return cls(idx, {i: [bytes(PCR_SIZE)] for i in idx})
