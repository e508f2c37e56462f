"""The TCG event log parser and replay (ecash_tpm.attest.eventlog) against an independent reference.

* The shared real-world logs (tests/data/eventlogs, from go-attestation) replay to the PCR values
  tpm2-tools' ``tpm2_eventlog`` computes for them, per bank (SHA-1 and SHA-256, SHA-384 too);
  where tpm2_eventlog 5.4 cannot (it crashes on the option-ROM log's last event and refuses the
  short EV_NO_ACTION log) the reference is the events it printed, or the PFP rule itself.
* The swtpm's synthetic boot log (ecash_tpm.swtpm.firmware, written by code that shares nothing
  with the parser) replays to the same values in our parser and in tpm2_eventlog.
* A log edited by one byte no longer matches the quote it matched: every edit is refused as
  malformed, or replays to other values, or breaks the digest of the event data it touched --
  except the bytes the PFP format leaves unmeasured (event types, data whose digest is of
  something else, EV_NO_ACTION), which the boot policy is built not to trust
  (tests/unit/issuer/test_boot_policy.py).
* Every malformation has its typed error, and fuzzed input raises nothing else.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ecash_tpm.attest import (
    MAX_EVENT_LOG_SIZE,
    EventLog,
    EventLogAlgorithmError,
    EventLogBankError,
    EventLogMalformedError,
    EventLogReplayMismatchError,
    EventLogTooLargeError,
    EventType,
    parse_event_log,
    replay_event_log,
    verify_replay,
)
from ecash_tpm.attest.efi import parse_signature_lists, parse_variable
from ecash_tpm.errors import EcashError
from ecash_tpm.swtpm.firmware import expected_log

LOGS = Path(__file__).parents[2] / "data" / "eventlogs"
SHARED = ("crypto_agile_eventlog", "sb_cert_eventlog", "option_rom_eventlog")
TOOL = shutil.which("tpm2_eventlog")
needs_tool = pytest.mark.skipif(TOOL is None, reason="tpm2-tools' tpm2_eventlog is not installed")
PARSE_ERRORS = (EventLogMalformedError, EventLogAlgorithmError, EventLogTooLargeError)


def raw(name: str) -> bytes:
    return (LOGS / name).read_bytes()


# --- the reference: tpm2_eventlog ---------------------------------------------------------------


def run_tool(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(TOOL), str(path)], capture_output=True, text=True, timeout=60, check=False
    )


def tool_pcrs(out: str) -> dict[str, dict[int, bytes]]:
    """The ``pcrs:`` section tpm2_eventlog prints: bank -> PCR -> value."""
    banks: dict[str, dict[int, bytes]] = {}
    bank = None
    for line in out.split("\npcrs:\n", 1)[1].splitlines() if "\npcrs:\n" in out else []:
        if m := re.fullmatch(r"  (\w+):", line):
            bank = banks.setdefault(m.group(1), {})
        elif (m := re.fullmatch(r"\s+(\d+)\s*: 0x([0-9a-f]+)", line)) and bank is not None:
            bank[int(m.group(1))] = bytes.fromhex(m.group(2))
    return banks


def tool_events_replay(out: str) -> dict[str, dict[int, bytes]]:
    """Replay, here and by hand, the events tpm2_eventlog printed (its parse of the binary)."""
    pcrs: dict[str, dict[int, bytes]] = {}
    for chunk in re.split(r"\n\s*-? ?PCRIndex: ", out)[1:]:
        index = int(chunk.split("\n", 1)[0])
        event_type = re.search(r"EventType: (\w+)", chunk)
        if event_type is None or event_type.group(1) == "EV_NO_ACTION":
            continue
        for alg, digest in re.findall(r"AlgorithmId: (\w+)\n\s+Digest: \"([0-9a-f]+)\"", chunk):
            bank = pcrs.setdefault(alg, {})
            old = bank.get(index, bytes(len(digest) // 2))
            bank[index] = hashlib.new(alg, old + bytes.fromhex(digest)).digest()
    return pcrs


@needs_tool
@pytest.mark.tpm2tools
@pytest.mark.parametrize("name", ["crypto_agile_eventlog", "sb_cert_eventlog"])
def test_shared_logs_replay_like_tpm2_eventlog(name: str) -> None:
    done = run_tool(LOGS / name)
    assert done.returncode == 0, done.stderr
    reference = tool_pcrs(done.stdout)
    assert "sha256" in reference
    for bank, values in reference.items():
        assert replay_event_log(raw(name), bank) == values, bank
    if "sha1" in reference:  # sb_cert_eventlog carries SHA-1, SHA-256 and SHA-384
        assert replay_event_log(raw(name), "sha1") == reference["sha1"]
    else:  # crypto_agile_eventlog carries SHA-256 only
        with pytest.raises(EventLogBankError) as err:
            replay_event_log(raw(name), "sha1")
        assert err.value.code == "eventlog.bank_unavailable"


@needs_tool
@pytest.mark.tpm2tools
def test_sha1_option_rom_log_replays_like_the_events_tpm2_eventlog_reads() -> None:
    done = run_tool(LOGS / "option_rom_eventlog")
    # tpm2-tools 5.4 prints every event, then dies on the last one (EV_NO_ACTION in PCR
    # 0xffffffff, Windows' boot counter); a version that gets through prints the PCRs itself.
    reference = tool_pcrs(done.stdout) or tool_events_replay(done.stdout)
    assert set(reference) == {"sha1"} and len(reference["sha1"]) == 12
    assert replay_event_log(raw("option_rom_eventlog"), "sha1") == reference["sha1"]
    log = parse_event_log(raw("option_rom_eventlog"))
    assert log.format == "sha1" and log.events[-1].pcr == 0xFFFFFFFF
    assert log.events[-1].type == EventType.EV_NO_ACTION  # not extended, hence not in the PCRs


def test_short_no_action_log_sets_pcr0_from_startup_locality() -> None:
    # A SHA-1 log whose only event is EV_NO_ACTION "StartupLocality" with locality 3: shorter
    # than a Spec ID event, so not a crypto-agile header (tpm2_eventlog 5.4 refuses the log:
    # "invalid eventDataSize in specid event"). PFP 10.4.5.3: PCR 0 starts at the locality.
    log = parse_event_log(raw("short_no_action_eventlog"))
    assert log.format == "sha1" and log.startup_locality == 3 and len(log.events) == 1
    assert log.replay("sha1") == {0: bytes(19) + b"\x03"}
    assert log.events_in(frozenset({0})) == ()  # EV_NO_ACTION is never extended


@needs_tool
@pytest.mark.tpm2tools
def test_swtpm_synthetic_log_replays_like_tpm2_eventlog(tmp_path: Path) -> None:
    path = tmp_path / "binary_bios_measurements"
    path.write_bytes(expected_log(("sha1", "sha256")))
    done = run_tool(path)
    assert done.returncode == 0, done.stderr
    reference = tool_pcrs(done.stdout)
    assert set(reference) == {"sha1", "sha256"} and set(reference["sha256"]) == {0, 2, 4, 7}
    for bank, values in reference.items():
        assert replay_event_log(path.read_bytes(), bank) == values


def test_swtpm_synthetic_log_is_what_the_default_policy_expects() -> None:
    from ecash_tpm.issuer.policy import SWTPM_BOOT_PCRS

    replay = replay_event_log(expected_log(), "sha256")
    assert {i: (v,) for i, v in replay.items()} == dict(SWTPM_BOOT_PCRS)
    log = parse_event_log(expected_log())
    assert log.format == "crypto-agile" and log.startup_locality is None


# --- one byte edited ----------------------------------------------------------------------------


def _edit_outcome(
    original: EventLog, quoted: dict[str, dict[int, bytes]], data: bytes, pos: int
) -> str:
    edited = data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]
    try:
        log = parse_event_log(edited)
        for bank, values in quoted.items():
            verify_replay(log, bank, values)
    except PARSE_ERRORS + (EventLogBankError,):
        return "refused"
    except EventLogReplayMismatchError:
        return "replay differs"
    changed = [
        (a, b) for a, b in zip(original.events, log.events, strict=True) if a != b
    ]  # same number of events, else the replay would differ or the parse fail
    if not changed:  # informational fields of the Spec ID event (platformClass, version, ...)
        assert original.format == "crypto-agile" and pos < 32 + data[28], pos
        return "uncovered data"
    assert len(changed) == 1, pos
    before, after = changed[0]
    if before.type == after.type == EventType.EV_NO_ACTION:  # informational, never extended
        return "uncovered data"
    assert (before.pcr, before.digests) == (after.pcr, after.digests)
    if before.type != after.type:  # the type is logged, not measured (PFP 10.2): a policy
        assert before.data == after.data  # must not let a relabelled event escape its rules
        return "event type (not measured)"
    if any(before.data_matches(b) and not after.data_matches(b) for b in original.banks):
        return "data no longer matches its digest"
    # Only data no digest covers: EV_NO_ACTION (never extended) or an event whose digest is of
    # something else (a boot application's image, not its load event).
    assert before.type == EventType.EV_NO_ACTION or not any(
        before.data_matches(b) for b in original.banks
    ), pos
    return "uncovered data"


@pytest.mark.parametrize(
    "name", ["swtpm", "crypto_agile_eventlog", "sb_cert_eventlog", "short_no_action_eventlog"]
)
def test_a_log_edited_by_one_byte_no_longer_matches(name: str) -> None:
    data = expected_log(("sha1", "sha256")) if name == "swtpm" else raw(name)
    original = parse_event_log(data)
    quoted = {bank: original.replay(bank) for bank in original.banks}
    outcomes: dict[str, int] = {}
    for pos in range(len(data)):
        outcome = _edit_outcome(original, quoted, data, pos)
        outcomes[outcome] = outcomes.get(outcome, 0) + 1
    assert outcomes.get("replay differs", 0) > 0 or name == "short_no_action_eventlog"
    assert outcomes.get("refused", 0) > 0
    assert set(outcomes) <= {
        "refused",
        "replay differs",
        "data no longer matches its digest",
        "event type (not measured)",
        "uncovered data",
    }


def test_every_digest_byte_of_the_swtpm_log_is_checked_against_the_quote() -> None:
    data = expected_log()
    log = parse_event_log(data)
    quoted = log.replay("sha256")
    pos = 0
    for ev in log.events_in(frozenset(range(24))):
        pos = data.index(ev.digests["sha256"], pos + 1)  # in log order (separators repeat)
        edited = data[:pos] + bytes([data[pos] ^ 0x80]) + data[pos + 1 :]
        with pytest.raises(EventLogReplayMismatchError) as err:
            verify_replay(parse_event_log(edited), "sha256", quoted)
        assert err.value.code == "eventlog.replay_mismatch"
        assert str(ev.pcr) in err.value.detail["pcrs"]


# --- replay against a quote -----------------------------------------------------------------------


def test_verify_replay_covers_every_quoted_pcr() -> None:
    log = parse_event_log(expected_log())
    quoted = {i: v for i, v in log.replay("sha256").items()}
    quoted[1] = bytes(32)  # untouched by the log: must hold the reset value
    quoted[17] = b"\xff" * 32  # a DRTM PCR resets to all ones
    assert verify_replay(log, "sha256", quoted) == log.replay("sha256")
    with pytest.raises(EventLogReplayMismatchError) as err:
        verify_replay(log, "sha256", {**quoted, 3: b"\x01" * 32})
    assert set(err.value.detail["pcrs"]) == {"3"}
    assert err.value.detail["pcrs"]["3"]["replayed"] == "00" * 32


# --- typed refusals -----------------------------------------------------------------------------


def sha1_event(pcr: int, event_type: int, digest: bytes, data: bytes) -> bytes:
    return struct.pack("<II", pcr, event_type) + digest + struct.pack("<I", len(data)) + data


def spec_id(algs: list[tuple[int, int]], *, uintn: int = 2, vendor: bytes = b"") -> bytes:
    body = b"Spec ID Event03\x00" + struct.pack("<IBBBBI", 0, 0, 2, 0, uintn, len(algs))
    body += b"".join(struct.pack("<HH", a, s) for a, s in algs)
    body += bytes([len(vendor)]) + vendor
    return sha1_event(0, 3, bytes(20), body)


def event2(pcr: int, event_type: int, digests: list[tuple[int, bytes]], data: bytes) -> bytes:
    out = struct.pack("<III", pcr, event_type, len(digests))
    out += b"".join(struct.pack("<H", a) + d for a, d in digests)
    return out + struct.pack("<I", len(data)) + data


SHA256 = [(0x000B, 32)]
SEP = event2(0, 4, [(0x000B, hashlib.sha256(bytes(4)).digest())], bytes(4))


@pytest.mark.parametrize(
    ("log", "error", "code"),
    [
        (b"", EventLogTooLargeError, "eventlog.too_large"),
        (bytes(MAX_EVENT_LOG_SIZE + 1), EventLogTooLargeError, "eventlog.too_large"),
        (bytes(31), EventLogMalformedError, "eventlog.malformed"),  # truncated first event
        (spec_id(SHA256) + SEP[:-1], EventLogMalformedError, "eventlog.malformed"),
        (spec_id(SHA256) + SEP + b"\x00", EventLogMalformedError, "eventlog.malformed"),
        (spec_id([(0x000B, 20)]), EventLogMalformedError, "eventlog.malformed"),  # wrong size
        (spec_id([(0x000B, 32), (0x000B, 32)]), EventLogMalformedError, "eventlog.malformed"),
        (spec_id([]), EventLogMalformedError, "eventlog.malformed"),
        (spec_id(SHA256, uintn=3), EventLogMalformedError, "eventlog.malformed"),
        (spec_id(SHA256)[:-1], EventLogMalformedError, "eventlog.malformed"),
        (
            spec_id(SHA256) + event2(0, 4, [(0x0004, bytes(20))], bytes(4)),
            EventLogAlgorithmError,
            "eventlog.unknown_algorithm",  # SHA-1 digest, undeclared by the Spec ID event
        ),
        (
            spec_id(SHA256) + event2(24, 4, [(0x000B, bytes(32))], bytes(4)),
            EventLogMalformedError,
            "eventlog.malformed",  # PCR 24 does not exist
        ),
        (
            spec_id(SHA256) + event2(0, 4, [(0x000B, bytes(32))] * 2, bytes(4)),
            EventLogMalformedError,
            "eventlog.malformed",  # more digests than declared algorithms
        ),
        (
            spec_id(SHA256) + SEP + event2(0, 3, [(0x000B, bytes(32))], b"StartupLocality\x00\x03"),
            EventLogMalformedError,
            "eventlog.malformed",  # StartupLocality after PCR 0 was extended
        ),
        (
            spec_id(SHA256) + event2(0, 3, [(0x000B, bytes(32))], b"StartupLocality\x00\x02"),
            EventLogMalformedError,
            "eventlog.malformed",  # locality 2 is not a startup locality
        ),
        (
            sha1_event(0, 3, b"\x01" + bytes(19), spec_id(SHA256)[32:]),
            EventLogMalformedError,
            "eventlog.malformed",  # the Spec ID event's digest must be zero
        ),
    ],
)
def test_malformed_logs_are_refused_with_their_code(
    log: bytes, error: type[EcashError], code: str
) -> None:
    with pytest.raises(error) as err:
        replay_event_log(log, "sha256")
    assert err.value.code == code


def test_banks_that_are_missing_or_unknown() -> None:
    with pytest.raises(EventLogBankError) as err:
        replay_event_log(raw("option_rom_eventlog"), "sha256")  # a SHA-1 log
    assert err.value.code == "eventlog.bank_unavailable" and err.value.http_status == 403
    with pytest.raises(EventLogAlgorithmError) as unknown:
        replay_event_log(expected_log(), "md5")
    assert unknown.value.code == "eventlog.unknown_algorithm"
    missing = spec_id([(0x0004, 20), (0x000B, 32)]) + event2(0, 4, [(0x0004, bytes(20))], b"")
    assert set(replay_event_log(missing, "sha1")) == {0}
    with pytest.raises(EventLogMalformedError):  # the event lacks its SHA-256 digest
        replay_event_log(missing, "sha256")
    with pytest.raises(EventLogMalformedError):
        parse_event_log("not bytes")  # type: ignore[arg-type]


def test_unknown_algorithms_declared_with_their_size_are_skipped() -> None:
    algs = [(0x000B, 32), (0x7777, 40)]  # a vendor algorithm: its digests are skipped by size
    log = spec_id(algs, vendor=b"v") + event2(
        0, 4, [(0x000B, hashlib.sha256(b"x").digest()), (0x7777, bytes(40))], b"x"
    )
    parsed = parse_event_log(log)
    assert set(parsed.banks) == {"sha256", "alg_0x7777"}
    assert parsed.replay("sha256") == {
        0: hashlib.sha256(bytes(32) + hashlib.sha256(b"x").digest()).digest()
    }
    with pytest.raises(EventLogAlgorithmError):
        parsed.replay("alg_0x7777")


# --- fuzz ---------------------------------------------------------------------------------------


def _exercise(data: bytes) -> None:
    """Everything a verifier does with a log; only typed errors may come out."""
    try:
        log = parse_event_log(data)
    except EcashError:
        return
    for bank in [*log.banks, "sha1", "sha256", "md5"]:
        with contextlib.suppress(EcashError):
            log.replay(bank)
    for ev in log.events:
        try:
            if ev.type in (EventType.EV_EFI_VARIABLE_DRIVER_CONFIG, EventType.EV_EFI_VARIABLE_BOOT):
                var = parse_variable(ev)
                parse_signature_lists(ev, var.data)
            for bank in log.banks:
                ev.data_matches(bank)
        except EcashError:
            pass


SEEDS = [expected_log(("sha1", "sha256")), raw("sb_cert_eventlog"), raw("short_no_action_eventlog")]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_fuzz_random_bytes_raise_only_typed_errors(data: bytes) -> None:
    _exercise(data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(range(len(SEEDS))),
    st.lists(
        st.tuples(
            st.sampled_from(["set", "insert", "delete", "cut"]),
            st.integers(0, 1 << 20),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=6,
    ),
)
def test_fuzz_mutated_logs_raise_only_typed_errors(
    seed: int, edits: list[tuple[str, int, int]]
) -> None:
    data = bytearray(SEEDS[seed])
    for op, where, value in edits:
        pos = where % (len(data) + 1)
        if op == "set" and pos < len(data):
            data[pos] = value
        elif op == "insert":
            data[pos:pos] = bytes([value]) * (1 + value % 8)
        elif op == "delete":
            del data[pos : pos + 1 + value % 8]
        elif op == "cut":
            del data[pos:]
    _exercise(bytes(data))
