"""TPM latency injection on a real (emulated) TPM: TpmDevice sleeps before TPM2_Commit and
TPM2_Sign(ECDAA) when asked (parameter or environment), and not otherwise. Sleeps are recorded,
not timed."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_tpm.crypto.bn256 import G
from ecash_tpm.device import TpmDevice
from ecash_tpm.device import latency as latency_mod
from ecash_tpm.device.latency import ENV_VAR, InjectedLatency
from ecash_tpm.swtpm import SwtpmInstance

pytestmark = pytest.mark.swtpm


def _commit_and_sign(dev: TpmDevice, key_dir: Path) -> None:
    key = dev.load_or_create_daa_key(key_dir)
    res = dev.commit(key, G.encode())
    dev.ecdaa_sign(key, bytes(32), res.counter)


def test_injected_delay_before_commit_and_sign(
    swtpm: SwtpmInstance, tpm_data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    slept: list[float] = []
    monkeypatch.setattr(latency_mod.time, "sleep", slept.append)
    monkeypatch.delenv(ENV_VAR, raising=False)
    with TpmDevice(swtpm.tcti) as dev:
        assert dev.injected_latency is None
        _commit_and_sign(dev, tpm_data_dir)
    assert slept == []
    with TpmDevice(swtpm.tcti, inject_latency=InjectedLatency(0.03, 0.04)) as dev:
        _commit_and_sign(dev, tpm_data_dir)
    assert slept == [0.03, 0.04]
    monkeypatch.setenv(ENV_VAR, "commit=10,sign=20")
    with TpmDevice(swtpm.tcti) as dev:
        assert dev.injected_latency == InjectedLatency(0.01, 0.02)
        _commit_and_sign(dev, tpm_data_dir)
    assert slept[2:] == [0.01, 0.02]
