"""Measured boot at join: the device sends its TCG event log, the issuer replays it against the
quote and judges the boot (docs/protocol.md 3.4, step 4).

Real swtpm, real HTTP. The session swtpm booted the project's synthetic firmware at start
(ecash_tpm.swtpm.firmware: Secure Boot on), so its log replays to its PCRs; a second swtpm boots
the same firmware with Secure Boot off. Every refusal has its own code and burns the join.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.join_kit import (
    PCRS,
    booted_swtpm,
    current_policy,
    flip,
    issuer_env,
    swtpm_trust,
    synthetic_boot,
)

from ecash_tpm.attest import parse_event_log
from ecash_tpm.device import EkKind, TpmDevice
from ecash_tpm.issuer.boot_policy import BootPolicy
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.swtpm.firmware import (
    BOOT_LOADER_IMAGE,
    KERNEL_IMAGE,
    REVOKED_IMAGE,
    SYNTHETIC_BOOT,
    expected_log,
)
from ecash_tpm.wallet.join import (
    EventLogReadError,
    answer_challenge,
    prepare_keys,
    read_event_log,
    release_keys,
)

pytestmark = pytest.mark.swtpm

LOADER = hashlib.sha256(BOOT_LOADER_IMAGE).digest()
KERNEL = hashlib.sha256(KERNEL_IMAGE).digest()
REVOKED = hashlib.sha256(REVOKED_IMAGE).digest()
STRICT = BootPolicy(
    require_secure_boot=True,
    db_allowed=frozenset({LOADER, KERNEL}),
    dbx_required=frozenset({REVOKED}),
    boot_loaders=frozenset({LOADER}),
    kernels=frozenset({KERNEL}),
)
"""Everything the swtpm's synthetic boot shows, required."""


def finish_with(env: Any, tpm: TpmDevice, wallet: Path, event_log: bytes | None) -> Any:
    """One join of ``tpm`` against ``env`` sending ``event_log``; the join/finish call."""
    keys = prepare_keys(tpm, wallet, EkKind.RSA_2048)
    try:
        challenge = env.client.join_start(env.start_request(tpm, keys, "alice"))
        finish = answer_challenge(tpm, keys, challenge, event_log=event_log)
    finally:
        release_keys(tpm, keys)
    return lambda: env.client.join_finish(finish), finish.join_id


def refused(env: Any, code: str, call: Any, join_id: str) -> RemoteCallError:
    with pytest.raises(RemoteCallError) as err:
        call()
    assert err.value.code == code, (err.value.code, err.value.message)
    row = env.join_row(join_id)
    assert row is not None and row["outcome"] == code and env.member_rows() == []
    return err.value


@pytest.fixture
def log(swtpm: Any) -> bytes:
    data = swtpm.event_log_path.read_bytes()
    assert data == expected_log(tuple(parse_event_log(data).banks))  # the standard boot
    return data


def test_the_swtpm_log_replays_to_its_pcrs(swtpm: Any, tpm: TpmDevice, log: bytes) -> None:
    replay = parse_event_log(log).replay("sha256")
    assert set(replay) == {0, 2, 4, 7}
    assert tpm.pcr_read(list(range(8))) == {i: replay.get(i, bytes(32)) for i in range(8)}


def test_join_with_the_log_under_golden_values_shows_the_verdict(
    swtpm: Any, tpm: TpmDevice, log: bytes, tmp_path: Path
) -> None:
    with issuer_env(tmp_path / "i", trust=swtpm_trust(swtpm), policy=current_policy(tpm)) as env:
        call, _ = finish_with(env, tpm, tmp_path / "w", log)
        verdict = call().measured_boot
    assert verdict is not None and verdict.policy == "pcr-values"
    assert (verdict.bank, verdict.replayed_pcrs, verdict.events) == (
        "sha256",
        list(PCRS),
        len(SYNTHETIC_BOOT),
    )
    assert verdict.secure_boot is True and (verdict.db_entries, verdict.dbx_entries) == (2, 1)
    assert verdict.boot_applications == []  # PCR 4 is not quoted: its events are not read


def test_join_decided_by_the_measured_boot_policy(
    swtpm: Any, tpm: TpmDevice, log: bytes, tmp_path: Path
) -> None:
    policy = PcrPolicy([0, 2, 4, 7], {}, boot=STRICT)  # no golden values at all
    with issuer_env(tmp_path / "i", trust=swtpm_trust(swtpm), policy=policy) as env:
        call, _ = finish_with(env, tpm, tmp_path / "w", log)
        verdict = call().measured_boot
        assert env.member_rows()[0]["status"] == "active"
    assert verdict is not None and verdict.policy == "measured-boot"
    assert verdict.boot_applications == [LOADER.hex(), KERNEL.hex()]


def test_measured_boot_policy_needs_the_log(swtpm: Any, tpm: TpmDevice, tmp_path: Path) -> None:
    policy = PcrPolicy(list(PCRS), {}, boot=BootPolicy())
    with issuer_env(tmp_path / "i", trust=swtpm_trust(swtpm), policy=policy) as env:
        call, join_id = finish_with(env, tpm, tmp_path / "w", None)
        refused(env, "boot.event_log_missing", call, join_id)


def test_a_log_edited_by_one_byte_no_longer_matches_the_quote(
    swtpm: Any, tpm: TpmDevice, log: bytes, tmp_path: Path
) -> None:
    secure_boot = next(e for e in parse_event_log(log).events if e.pcr == 7)
    pos = log.index(secure_boot.digests["sha256"])
    with issuer_env(tmp_path / "i", trust=swtpm_trust(swtpm), policy=current_policy(tpm)) as env:
        call, join_id = finish_with(env, tpm, tmp_path / "w", flip(log, pos))
        err = refused(env, "eventlog.replay_mismatch", call, join_id)
        assert set(err.detail["pcrs"]) == {"7"}
        call, join_id = finish_with(env, tpm, tmp_path / "w2", log[:-1])
        refused(env, "eventlog.malformed", call, join_id)
        other = expected_log(events=synthetic_boot(secure_boot=False))  # another boot's log
        call, join_id = finish_with(env, tpm, tmp_path / "w3", other)
        refused(env, "eventlog.replay_mismatch", call, join_id)


@pytest.fixture(scope="module")
def sb_off(swtpm_factory: Any) -> Any:
    """A TPM that booted the synthetic firmware with Secure Boot off."""
    return booted_swtpm(swtpm_factory, synthetic_boot(secure_boot=False))


@pytest.fixture
def sb_off_tpm(sb_off: Any) -> Iterator[TpmDevice]:
    with TpmDevice(sb_off.tcti) as dev:
        yield dev


def test_secure_boot_disabled_is_refused_where_required(
    sb_off: Any, sb_off_tpm: TpmDevice, tmp_path: Path
) -> None:
    log = sb_off.event_log_path.read_bytes()
    required = PcrPolicy(list(PCRS), {}, boot=BootPolicy(require_secure_boot=True))
    with issuer_env(tmp_path / "i", trust=swtpm_trust(sb_off), policy=required) as env:
        call, join_id = finish_with(env, sb_off_tpm, tmp_path / "w", log)
        err = refused(env, "boot.secure_boot_disabled", call, join_id)
        assert err.detail["secure_boot"] == "disabled"
    # Under golden values alone the same platform joins, and the verdict tells what it ran.
    golden = current_policy(sb_off_tpm)
    with issuer_env(tmp_path / "j", trust=swtpm_trust(sb_off), policy=golden) as env:
        call, _ = finish_with(env, sb_off_tpm, tmp_path / "w2", log)
        verdict = call().measured_boot
    assert verdict is not None and verdict.secure_boot is False


def test_wallet_join_sends_the_log(swtpm: Any, tpm: TpmDevice, log: bytes, tmp_path: Path) -> None:
    policy = PcrPolicy(list(PCRS), {}, boot=BootPolicy())
    with issuer_env(tmp_path / "i", trust=swtpm_trust(swtpm), policy=policy) as env:
        event_log = read_event_log(swtpm.event_log_path)
        membership = env.join(tpm, tmp_path / "w", account_id="bob", event_log=event_log)
        assert membership.member_id == env.member_rows()[0]["member_id"]
    with pytest.raises(EventLogReadError) as err:
        read_event_log(tmp_path / "missing")
    assert err.value.code == "wallet.event_log_unreadable"


def test_wallet_join_cli_picks_the_event_log(swtpm: Any, log: bytes, tmp_path: Path) -> None:
    import argparse

    from ecash_tpm.cli.wallet_cmd import _event_log

    def args(**kw: Any) -> argparse.Namespace:
        base = {"no_event_log": False, "event_log": None, "swtpm_state": None, "tcti": None}
        return argparse.Namespace(**{**base, **kw})

    state = str(swtpm.state_dir)
    assert _event_log(args(swtpm_state=state), swtpm.tcti) == log  # the swtpm's synthetic boot
    assert _event_log(args(swtpm_state=state, no_event_log=True), swtpm.tcti) is None
    (tmp_path / "log").write_bytes(b"x")
    assert _event_log(args(event_log=tmp_path / "log"), swtpm.tcti) == b"x"
    assert _event_log(args(tcti=swtpm.tcti), swtpm.tcti) is None  # not the host's TPM
