"""An optional delay before TPM2_Commit and TPM2_Sign(ECDAA), so a fast swtpm can stand in for
a slow hardware TPM in benchmarks (issue 13 item 7). Off unless asked for.

Asked for either by the ``inject_latency`` parameter of :class:`~ecash_tpm.device.TpmDevice`
or, for processes a benchmark spawns, by the environment variable ``ECASH_TPM_TPM_LATENCY_MS``:
``"commit=60,sign=90"`` (milliseconds per command) or one number for both. The delay is a
sleep before the command is sent, so what the TPM computes is unchanged.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ecash_tpm.device.errors import TpmArgumentError

ENV_VAR = "ECASH_TPM_TPM_LATENCY_MS"
MAX_MS = 10_000.0
_COMMANDS = ("commit", "sign")


@dataclass(frozen=True)
class InjectedLatency:
    """Seconds slept before each TPM2_Commit and each TPM2_Sign(ECDAA)."""

    commit_s: float = 0.0
    sign_s: float = 0.0

    @classmethod
    def parse(cls, text: str) -> InjectedLatency:
        """``"commit=60,sign=90"`` or ``"75"`` (milliseconds); refuses anything else."""
        values = dict.fromkeys(_COMMANDS, 0.0)
        items = [p.strip() for p in text.split(",") if p.strip()]
        if len(items) == 1 and "=" not in items[0]:
            items = [f"{c}={items[0]}" for c in _COMMANDS]
        for item in items:
            name, sep, number = item.partition("=")
            name = name.strip().lower()
            if not sep or name not in values:
                raise TpmArgumentError(
                    f"{ENV_VAR}: expected 'commit=MS,sign=MS' or one number",
                    detail={"value": text},
                )
            try:
                ms = float(number)
            except ValueError:
                ms = -1.0
            if not 0.0 <= ms <= MAX_MS:  # also refuses nan
                raise TpmArgumentError(
                    f"{ENV_VAR}: a delay must be 0..{MAX_MS:.0f} ms", detail={"value": text}
                )
            values[name] = ms / 1000.0
        return cls(values["commit"], values["sign"])

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> InjectedLatency | None:
        """The delay named by :data:`ENV_VAR`, or ``None`` when it is unset or empty."""
        text = (os.environ if environ is None else environ).get(ENV_VAR, "").strip()
        return cls.parse(text) if text else None

    def before(self, command: str) -> None:
        """Sleep the delay configured for ``command`` (``"commit"`` or ``"sign"``)."""
        seconds = self.commit_s if command == "commit" else self.sign_s
        if seconds > 0:
            time.sleep(seconds)
