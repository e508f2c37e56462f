"""The issuer's measured-boot policy (ecash_tpm.issuer.boot_policy) and its place in PcrPolicy.

What the real-world logs say (tests/data/eventlogs) and what the swtpm's synthetic boot says,
every rule with its own code, and the rules a device could try to dodge by editing what the
replay does not cover: event data whose digest no longer matches is not believed, a relabelled
boot application is still a boot application.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from support.join_kit import synthetic_boot

from ecash_tpm.attest import EventLogReplayMismatchError, EventType, parse_event_log
from ecash_tpm.issuer.boot_policy import (
    BootApplicationError,
    BootEventLogMissingError,
    BootPolicy,
    BootVariableMissingError,
    DbEntryForbiddenError,
    DbEntryNotAllowedError,
    DbxEntryMissingError,
    KernelNotMeasuredError,
    SecureBootDisabledError,
    boot_facts,
)
from ecash_tpm.issuer.errors import PcrPolicyConfigError, PcrPolicyError
from ecash_tpm.issuer.policy import SWTPM_BOOT_PCRS, PcrPolicy
from ecash_tpm.swtpm.firmware import BOOT_LOADER_IMAGE, KERNEL_IMAGE, REVOKED_IMAGE, expected_log

LOGS = Path(__file__).parents[2] / "data" / "eventlogs"
ALL = frozenset(range(24))
LOADER = hashlib.sha256(BOOT_LOADER_IMAGE).digest()
KERNEL = hashlib.sha256(KERNEL_IMAGE).digest()
REVOKED = hashlib.sha256(REVOKED_IMAGE).digest()


def shared(name: str):  # type: ignore[no-untyped-def]
    return parse_event_log((LOGS / name).read_bytes())


def swtpm_log(secure_boot: bool = True):  # type: ignore[no-untyped-def]
    return parse_event_log(expected_log(events=synthetic_boot(secure_boot=secure_boot)))


# --- what the logs say ----------------------------------------------------------------------------


def test_facts_of_the_shared_logs() -> None:
    agile = boot_facts(shared("crypto_agile_eventlog"), "sha256", ALL)
    assert agile.secure_boot is False  # SecureBoot measured with an empty value: off
    assert (len(agile.db or ()), len(agile.dbx or ()), len(agile.applications)) == (3, 77, 2)
    certs = boot_facts(shared("sb_cert_eventlog"), "sha256", ALL)
    assert certs.secure_boot is True and len(certs.applications) == 3
    assert (len(certs.db or ()), len(certs.dbx or ())) == (4, 77)
    rom = boot_facts(shared("option_rom_eventlog"), "sha1", ALL)
    assert rom.secure_boot is True and (len(rom.db or ()), len(rom.dbx or ())) == (3, 78)
    assert rom.ignored == ()  # every PCR 7 variable's data matches its digest


def test_facts_of_the_swtpm_boot() -> None:
    facts = boot_facts(swtpm_log(), "sha256", ALL)
    assert facts.secure_boot is True and facts.applications == (LOADER, KERNEL)
    assert facts.db == {LOADER, KERNEL} and facts.dbx == {REVOKED}
    assert boot_facts(swtpm_log(secure_boot=False), "sha256", ALL).secure_boot is False
    unquoted = boot_facts(swtpm_log(), "sha256", {0, 1, 2, 3})  # PCRs 4 and 7 not verified
    assert unquoted.secure_boot is None and unquoted.db is None and unquoted.applications == ()


# --- the rules ----------------------------------------------------------------------------------


def test_secure_boot_disabled_has_its_own_code() -> None:
    for log, state in (
        (swtpm_log(secure_boot=False), "disabled"),
        (shared("crypto_agile_eventlog"), "disabled"),
    ):
        with pytest.raises(SecureBootDisabledError) as err:
            BootPolicy().check(boot_facts(log, "sha256", ALL))
        assert err.value.code == "boot.secure_boot_disabled" and err.value.http_status == 403
        assert err.value.detail["secure_boot"] == state
    with pytest.raises(SecureBootDisabledError) as unmeasured:
        BootPolicy().check(boot_facts(swtpm_log(), "sha256", {0}))
    assert unmeasured.value.detail["secure_boot"] == "not measured"
    BootPolicy(require_secure_boot=False).check(boot_facts(swtpm_log(False), "sha256", ALL))


def test_variable_data_that_does_not_match_its_digest_is_not_believed() -> None:
    off = parse_event_log(expected_log(events=synthetic_boot(secure_boot=False)))
    on = swtpm_log()
    # The Secure-Boot-off log with the data (not the digest) of the "on" event: the replay is
    # that of the off boot, the data claims on. The policy must not believe it.
    forged = [
        ev.data if ev.type != EventType.EV_EFI_VARIABLE_DRIVER_CONFIG else on_ev.data
        for ev, on_ev in zip(off.events, on.events, strict=True)
    ]
    raw = expected_log(events=synthetic_boot(secure_boot=False))
    for ev, data in zip(off.events, forged, strict=True):
        raw = raw.replace(ev.data, data) if ev.data != data else raw
    lied = parse_event_log(raw)
    assert lied.replay("sha256") == off.replay("sha256")  # the digests still match the quote
    facts = boot_facts(lied, "sha256", ALL)
    assert facts.secure_boot is None and facts.ignored
    with pytest.raises(SecureBootDisabledError):
        BootPolicy().check(facts)


def test_db_and_dbx_rules() -> None:
    facts = boot_facts(swtpm_log(), "sha256", ALL)
    BootPolicy(db_allowed=frozenset({LOADER, KERNEL}), dbx_required=frozenset({REVOKED})).check(
        facts
    )
    cases: list[tuple[BootPolicy, type[Exception], str]] = [
        (
            BootPolicy(db_allowed=frozenset({LOADER})),
            DbEntryNotAllowedError,
            "boot.db_entry_not_allowed",
        ),
        (
            BootPolicy(db_forbidden=frozenset({KERNEL})),
            DbEntryForbiddenError,
            "boot.db_entry_forbidden",
        ),
        (
            BootPolicy(dbx_required=frozenset({LOADER})),
            DbxEntryMissingError,
            "boot.dbx_entry_missing",
        ),
    ]
    for policy, error, code in cases:
        with pytest.raises(error) as err:
            policy.check(facts)
        assert err.value.code == code  # type: ignore[attr-defined]
    with pytest.raises(BootVariableMissingError) as missing:
        BootPolicy(require_secure_boot=False, dbx_required=frozenset({REVOKED})).check(
            boot_facts(swtpm_log(), "sha256", {4})
        )
    assert missing.value.code == "boot.variable_not_measured"


def test_boot_application_rules() -> None:
    facts = boot_facts(swtpm_log(), "sha256", ALL)
    BootPolicy(boot_loaders=frozenset({LOADER}), kernels=frozenset({KERNEL})).check(facts)
    with pytest.raises(BootApplicationError) as err:
        BootPolicy(boot_loaders=frozenset({LOADER})).check(facts)
    assert err.value.code == "boot.application_not_allowed"
    assert err.value.detail["applications"] == [KERNEL.hex()]
    with pytest.raises(KernelNotMeasuredError) as kernel:
        BootPolicy(boot_loaders=frozenset({LOADER, KERNEL}), kernels=frozenset({REVOKED})).check(
            facts
        )
    assert kernel.value.code == "boot.kernel_not_measured"


def test_a_relabelled_boot_application_is_still_one() -> None:
    # Event types are not measured: turning the kernel's EV_EFI_BOOT_SERVICES_APPLICATION into
    # an EV_EFI_ACTION keeps the replay, but the data is no action string of that digest.
    raw = bytearray(expected_log())
    log = parse_event_log(bytes(raw))
    kernel = log.events[-1]
    pos = bytes(raw).rindex(kernel.digests["sha256"]) - 2 - 4 - 4  # back to its eventType
    raw[pos : pos + 4] = int(EventType.EV_EFI_ACTION).to_bytes(4, "little")
    relabelled = parse_event_log(bytes(raw))
    assert relabelled.events[-1].type == EventType.EV_EFI_ACTION
    assert relabelled.replay("sha256") == log.replay("sha256")
    facts = boot_facts(relabelled, "sha256", ALL)
    assert facts.applications == (LOADER, KERNEL)
    with pytest.raises(BootApplicationError):
        BootPolicy(boot_loaders=frozenset({LOADER})).check(facts)


# --- in the policy file and in PcrPolicy.check ----------------------------------------------------


def test_policy_file_round_trip_and_config_errors(tmp_path: Path) -> None:
    boot = BootPolicy(kernels=frozenset({KERNEL}), dbx_required=frozenset({REVOKED}))
    policy = PcrPolicy([0, 4, 7], {0: [bytes(32)]}, boot=boot)
    policy.save(tmp_path / "p.json")
    again = PcrPolicy.load(tmp_path / "p.json")
    assert again.boot == boot and again.to_dict() == policy.to_dict()
    data = json.loads((tmp_path / "p.json").read_text())
    assert data["measured_boot"]["kernels"] == [KERNEL.hex()]
    for bad in (
        {"require_secure_boot": "yes"},
        {"kernels": ["00"]},
        {"kernel": []},
        [],
    ):
        with pytest.raises(PcrPolicyConfigError) as err:
            PcrPolicy.from_dict({**data, "measured_boot": bad})
        assert err.value.code == "issuer.pcr_policy_invalid"
    with pytest.raises(PcrPolicyConfigError):  # Secure Boot lives in PCR 7, which is not quoted
        PcrPolicy([0, 1], {}, boot=BootPolicy())
    with pytest.raises(PcrPolicyConfigError):  # without measured boot every PCR needs values
        PcrPolicy([0, 7], {0: [bytes(32)]})


def test_pcr_policy_check_order() -> None:
    log = swtpm_log()
    values = {i: log.replay("sha256").get(i, bytes(32)) for i in (0, 1, 2, 3, 7)}
    golden = PcrPolicy(list(values), {i: [v] for i, v in values.items()})
    assert golden.check(values) is None  # no log: golden values alone, as before
    facts = golden.check(values, log)
    assert facts is not None and facts.secure_boot is True
    with pytest.raises(EventLogReplayMismatchError):  # a log of another boot
        golden.check(values, swtpm_log(secure_boot=False))
    measured = PcrPolicy(list(values), {}, boot=BootPolicy())
    with pytest.raises(BootEventLogMissingError) as missing:
        measured.check(values)
    assert missing.value.code == "boot.event_log_missing"
    assert measured.check(values, log) is not None
    other = swtpm_log(secure_boot=False)
    other_values = {i: other.replay("sha256").get(i, bytes(32)) for i in values}
    with pytest.raises(SecureBootDisabledError):
        measured.check(other_values, other)
    both = PcrPolicy(list(values), {0: [bytes(32)]}, boot=BootPolicy())
    with pytest.raises(PcrPolicyError):  # PCR 0 has golden values, and this is not one
        both.check(values, log)


def test_default_policy_accepts_the_swtpm_with_and_without_its_boot() -> None:
    policy = PcrPolicy.default()
    booted = {i: SWTPM_BOOT_PCRS.get(i, (bytes(32),))[0] for i in policy.pcrs}
    policy.check(booted, swtpm_log())
    policy.check({i: bytes(32) for i in policy.pcrs})
