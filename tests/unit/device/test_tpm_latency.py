"""The optional TPM latency injection of the device layer (benchmarks only): its parsing and
that it sleeps the configured delay. Not timed: the sleeps are recorded, not measured."""

from __future__ import annotations

import pytest

from ecash_tpm.device import TpmArgumentError
from ecash_tpm.device import latency as latency_mod
from ecash_tpm.device.latency import ENV_VAR, InjectedLatency


def test_parse_per_command_and_single_number() -> None:
    assert InjectedLatency.parse("commit=60,sign=90") == InjectedLatency(0.06, 0.09)
    assert InjectedLatency.parse(" sign=5 ") == InjectedLatency(0.0, 0.005)
    assert InjectedLatency.parse("75") == InjectedLatency(0.075, 0.075)


@pytest.mark.parametrize("text", ["commit", "quote=5", "commit=-1", "sign=x", "commit=nan", "1e9"])
def test_parse_refuses_bad_values(text: str) -> None:
    with pytest.raises(TpmArgumentError) as err:
        InjectedLatency.parse(text)
    assert err.value.code == "tpm.invalid_argument"


def test_from_env_off_by_default() -> None:
    assert InjectedLatency.from_env({}) is None
    assert InjectedLatency.from_env({ENV_VAR: " "}) is None
    assert InjectedLatency.from_env({ENV_VAR: "commit=1,sign=2"}) == InjectedLatency(0.001, 0.002)


def test_before_sleeps_the_configured_delay(monkeypatch: pytest.MonkeyPatch) -> None:
    slept: list[float] = []
    monkeypatch.setattr(latency_mod.time, "sleep", slept.append)
    delay = InjectedLatency(commit_s=0.05, sign_s=0.07)
    delay.before("commit")
    delay.before("sign")
    InjectedLatency().before("commit")  # zero: no sleep at all
    assert slept == [0.05, 0.07]
