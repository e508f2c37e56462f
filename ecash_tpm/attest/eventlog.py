"""The TCG PC Client event log: parse it strictly, replay it, compare the replay with a quote.

A quote says what the PCRs hold; the event log (Linux:
``/sys/kernel/security/tpm0/binary_bios_measurements``) says what was measured into them. The
log itself is unauthenticated: only its *replay* -- every event's digest extended in order --
is checked against the quoted PCR values, and only then may a policy read its events (TCG PC
Client Platform Firmware Profile (PFP) 1.05, section 10; go-attestation and Keylime do the same).

Two formats (PFP 10.2):

* SHA-1 (``TCG_PCR_EVENT``): ``u32 pcrIndex, u32 eventType, digest[20], u32 eventDataSize,
  event``; little-endian, the only bank is SHA-1.
* crypto-agile: the first event is a ``TCG_PCR_EVENT`` of type EV_NO_ACTION whose data is
  ``TCG_EfiSpecIdEvent`` ("Spec ID Event03", with the digest size of every algorithm), then
  ``TCG_PCR_EVENT2``: ``u32 pcrIndex, u32 eventType, TPML_DIGEST_VALUES (u32 count, count x
  {u16 alg, digest}), u32 eventSize, event``.

Replay (PFP 10.4.5): PCRs start at zero, except that an EV_NO_ACTION "StartupLocality" event
puts the TPM2_Startup locality into the last byte of PCR 0's start value (PFP 10.4.5.3);
EV_NO_ACTION events are never extended; every other event does ``PCR = H(PCR || digest)``.

Every refusal is an :class:`~ecash_tpm.errors.EcashError` with a stable code:
``eventlog.malformed``, ``eventlog.too_large``, ``eventlog.unknown_algorithm``,
``eventlog.bank_unavailable`` and, for a replay that is not the quote,
``eventlog.replay_mismatch``.
"""

from __future__ import annotations

import hashlib
import hmac
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum
from types import MappingProxyType
from typing import Literal

from ecash_tpm.attest.wire.constants import TpmAlg
from ecash_tpm.errors import AttestationError, WireFormatError

MAX_EVENT_LOG_SIZE = 1 << 20
"""Largest log accepted (1 MiB: firmware logs are tens of KiB, with many option ROMs ~100 KiB)."""

MAX_PCR_INDEX = 23
MAX_ALGORITHMS = 16
SHA1_SIZE = 20

SPEC_ID_SIGNATURE = b"Spec ID Event03\x00"
STARTUP_LOCALITY_SIGNATURE = b"StartupLocality\x00"


# --- errors ----------------------------------------------------------------------------------


class EventLogMalformedError(WireFormatError):
    """The log is truncated, inconsistent, or breaks a rule of the PFP format."""

    code = "eventlog.malformed"


class EventLogTooLargeError(WireFormatError):
    """The log is larger than :data:`MAX_EVENT_LOG_SIZE` (or empty)."""

    code = "eventlog.too_large"


class EventLogAlgorithmError(WireFormatError):
    """A digest's algorithm is not declared by the log's Spec ID event, or a bank is unknown."""

    code = "eventlog.unknown_algorithm"


class EventLogBankError(AttestationError):
    """The log has no digests of the bank the verifier needs (e.g. a SHA-1 log for SHA-256)."""

    code = "eventlog.bank_unavailable"


class EventLogReplayMismatchError(AttestationError):
    """Replaying the log does not give the quoted PCR values: the log is not this boot's."""

    code = "eventlog.replay_mismatch"


# --- event types (PFP 10.4.1) ----------------------------------------------------------------


class EventType(IntEnum):
    """The event types the PFP defines (a log may carry others; they are kept as ints)."""

    EV_PREBOOT_CERT = 0x00000000
    EV_POST_CODE = 0x00000001
    EV_UNUSED = 0x00000002
    EV_NO_ACTION = 0x00000003
    EV_SEPARATOR = 0x00000004
    EV_ACTION = 0x00000005
    EV_EVENT_TAG = 0x00000006
    EV_S_CRTM_CONTENTS = 0x00000007
    EV_S_CRTM_VERSION = 0x00000008
    EV_CPU_MICROCODE = 0x00000009
    EV_PLATFORM_CONFIG_FLAGS = 0x0000000A
    EV_TABLE_OF_DEVICES = 0x0000000B
    EV_COMPACT_HASH = 0x0000000C
    EV_IPL = 0x0000000D
    EV_IPL_PARTITION_DATA = 0x0000000E
    EV_NONHOST_CODE = 0x0000000F
    EV_NONHOST_CONFIG = 0x00000010
    EV_NONHOST_INFO = 0x00000011
    EV_OMIT_BOOT_DEVICE_EVENTS = 0x00000012
    EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
    EV_EFI_VARIABLE_BOOT = 0x80000002
    EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
    EV_EFI_BOOT_SERVICES_DRIVER = 0x80000004
    EV_EFI_RUNTIME_SERVICES_DRIVER = 0x80000005
    EV_EFI_GPT_EVENT = 0x80000006
    EV_EFI_ACTION = 0x80000007
    EV_EFI_PLATFORM_FIRMWARE_BLOB = 0x80000008
    EV_EFI_HANDOFF_TABLES = 0x80000009
    EV_EFI_PLATFORM_FIRMWARE_BLOB2 = 0x8000000A
    EV_EFI_HANDOFF_TABLES2 = 0x8000000B
    EV_EFI_VARIABLE_BOOT2 = 0x8000000C
    EV_EFI_HCRTM_EVENT = 0x80000010
    EV_EFI_VARIABLE_AUTHORITY = 0x800000E0
    EV_EFI_SPDM_FIRMWARE_BLOB = 0x800000E1
    EV_EFI_SPDM_FIRMWARE_CONFIG = 0x800000E2


def event_type_name(event_type: int) -> str:
    """``EV_...`` for a PFP type, else the hex value (vendor types are legal)."""
    try:
        return EventType(event_type).name
    except ValueError:
        return f"0x{event_type:08x}"


# --- banks -----------------------------------------------------------------------------------

_BANKS: Mapping[TpmAlg, tuple[str, int]] = MappingProxyType(
    {
        TpmAlg.SHA1: ("sha1", 20),
        TpmAlg.SHA256: ("sha256", 32),
        TpmAlg.SHA384: ("sha384", 48),
        TpmAlg.SHA512: ("sha512", 64),
        TpmAlg.SM3_256: ("sm3_256", 32),
        TpmAlg.SHA3_256: ("sha3_256", 32),
        TpmAlg.SHA3_384: ("sha3_384", 48),
        TpmAlg.SHA3_512: ("sha3_512", 64),
    }
)
_HASHLIB = {"sm3_256": "sm3"}


def _known(alg: int) -> tuple[str, int] | None:
    try:
        return _BANKS.get(TpmAlg(alg))
    except ValueError:
        return None


def bank_name(alg: int) -> str:
    """tpm2-tools' name of a hash algorithm (``sha256``), or ``alg_0x....`` if unknown."""
    known = _known(alg)
    return known[0] if known else f"alg_0x{alg:04x}"


def bank_hash(bank: str, data: bytes) -> bytes:
    """H_bank(data); ``eventlog.unknown_algorithm`` for a bank this verifier cannot compute."""
    if bank not in {name for name, _ in _BANKS.values()}:
        raise EventLogAlgorithmError(f"unknown PCR bank {bank!r}", detail={"bank": str(bank)})
    try:
        return hashlib.new(_HASHLIB.get(bank, bank), data).digest()
    except ValueError:
        raise EventLogAlgorithmError(
            f"this verifier cannot compute {bank}", detail={"bank": bank}
        ) from None


def pcr_reset_value(index: int, size: int) -> bytes:
    """A PCR's value after TPM2_Startup(CLEAR): zero, all-ones for the DRTM PCRs 17..22."""
    return (b"\xff" if 17 <= index <= 22 else b"\x00") * size


# --- parsed log ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Event:
    """One event as logged: its position (0 = first), PCR, type, digests by bank, and data.

    The data is what the firmware *says* it measured: trust it only after the replay matched a
    quote, and for types whose digest is the hash of the data, only if :meth:`data_matches`.
    """

    number: int
    pcr: int
    type: int
    digests: Mapping[str, bytes]
    data: bytes

    @property
    def type_name(self) -> str:
        return event_type_name(self.type)

    def data_matches(self, bank: str) -> bool:
        """True when the digest of ``bank`` is H_bank(data) (PFP: most event types)."""
        digest = self.digests.get(bank)
        return digest is not None and hmac.compare_digest(digest, bank_hash(bank, self.data))


@dataclass(frozen=True)
class EventLog:
    """A parsed log: its format, the banks it carries (name -> digest size) and its events."""

    format: Literal["sha1", "crypto-agile"]
    banks: Mapping[str, int]
    events: tuple[Event, ...]
    startup_locality: int | None

    def replay(self, bank: str) -> dict[int, bytes]:
        """The PCR values the log gives for ``bank``: every PCR it extends or initialises.

        PCRs absent from the result were not touched by the log (see :func:`pcr_reset_value`).
        """
        size = self.banks.get(bank)
        if size is None:
            bank_hash(bank, b"")  # a bank name nobody knows is eventlog.unknown_algorithm
            raise EventLogBankError(
                f"the event log has no {bank} digests",
                detail={"bank": bank, "banks": sorted(self.banks), "format": self.format},
            )
        pcrs: dict[int, bytes] = {}
        if self.startup_locality is not None:  # PFP 10.4.5.3: PCR 0 starts at the locality
            pcrs[0] = bytes(size - 1) + bytes([self.startup_locality])
        for ev in self.events:
            if ev.type == EventType.EV_NO_ACTION:  # PFP 10.4.1: informational, not extended
                continue
            digest = ev.digests.get(bank)
            if digest is None:
                raise EventLogMalformedError(
                    f"event {ev.number} has no {bank} digest",
                    detail={"event": ev.number, "bank": bank},
                )
            old = pcrs.get(ev.pcr, pcr_reset_value(ev.pcr, size))
            pcrs[ev.pcr] = bank_hash(bank, old + digest)
        return pcrs

    def events_in(self, pcrs: set[int] | frozenset[int]) -> tuple[Event, ...]:
        """The events extended into ``pcrs`` (EV_NO_ACTION excluded), in log order."""
        return tuple(e for e in self.events if e.pcr in pcrs and e.type != EventType.EV_NO_ACTION)


# --- parsing ---------------------------------------------------------------------------------


class _Cursor:
    """Little-endian, bounds-checked reads over the log (PFP structures are little-endian)."""

    __slots__ = ("data", "pos", "event")

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.pos = 0
        self.event = 0

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, field: str) -> bytes:
        if n < 0 or n > self.remaining:
            raise EventLogMalformedError(
                f"event log truncated in event {self.event} reading {field} "
                f"({n} bytes at offset {self.pos}, {self.remaining} left)",
                detail={"event": self.event, "field": field, "offset": self.pos},
            )
        chunk = self.data[self.pos : self.pos + n]
        self.pos += n
        return chunk

    def u8(self, field: str) -> int:
        return self.take(1, field)[0]

    def u16(self, field: str) -> int:
        return int(struct.unpack("<H", self.take(2, field))[0])

    def u32(self, field: str) -> int:
        return int(struct.unpack("<I", self.take(4, field))[0])


def _malformed(cur: _Cursor, message: str, **detail: object) -> EventLogMalformedError:
    return EventLogMalformedError(
        f"event {cur.event}: {message}", detail={"event": cur.event, **detail}
    )


def _check_pcr(cur: _Cursor, pcr: int, event_type: int) -> None:
    if pcr > MAX_PCR_INDEX and event_type != EventType.EV_NO_ACTION:
        raise _malformed(cur, f"PCR index {pcr} out of range 0..{MAX_PCR_INDEX}", pcr=pcr)


def _read_sha1_event(cur: _Cursor) -> Event:
    """TCG_PCR_EVENT (PFP 10.2.1)."""
    pcr = cur.u32("pcrIndex")
    event_type = cur.u32("eventType")
    _check_pcr(cur, pcr, event_type)
    digest = cur.take(SHA1_SIZE, "digest")
    data = cur.take(cur.u32("eventDataSize"), "event")
    return Event(cur.event, pcr, event_type, MappingProxyType({"sha1": digest}), data)


def _parse_spec_id(cur: _Cursor, data: bytes) -> dict[int, int]:
    """TCG_EfiSpecIdEvent (PFP 10.4.5.1): algorithm id -> digest size, checked exactly."""
    spec = _Cursor(data)
    spec.event = cur.event
    spec.take(16, "signature")
    spec.take(4 + 4, "platformClass, specVersion, specErrata, uintnSize")
    uintn = data[23]
    if uintn not in (1, 2):
        raise _malformed(cur, f"Spec ID uintnSize {uintn} is neither 1 nor 2")
    count = spec.u32("numberOfAlgorithms")
    if not 1 <= count <= MAX_ALGORITHMS:
        raise _malformed(cur, f"Spec ID lists {count} algorithms (1..{MAX_ALGORITHMS})")
    sizes: dict[int, int] = {}
    for _ in range(count):
        alg, size = spec.u16("algorithmId"), spec.u16("digestSize")
        known = _known(alg)
        if alg in sizes or size == 0 or size > 64 or (known is not None and known[1] != size):
            raise _malformed(cur, f"Spec ID algorithm 0x{alg:04x} with digest size {size}")
        sizes[alg] = size
    vendor = spec.u8("vendorInfoSize")
    spec.take(vendor, "vendorInfo")
    if spec.remaining:
        raise _malformed(cur, f"{spec.remaining} bytes after the Spec ID event's vendorInfo")
    return sizes


def _read_agile_event(cur: _Cursor, sizes: Mapping[int, int]) -> Event:
    """TCG_PCR_EVENT2 (PFP 10.2.2), digest sizes from the Spec ID event."""
    pcr = cur.u32("pcrIndex")
    event_type = cur.u32("eventType")
    _check_pcr(cur, pcr, event_type)
    count = cur.u32("digests.count")
    if count > len(sizes):
        raise _malformed(cur, f"{count} digests, the Spec ID event declares {len(sizes)}")
    digests: dict[str, bytes] = {}
    for _ in range(count):
        alg = cur.u16("digests.hashAlg")
        if alg not in sizes:
            raise EventLogAlgorithmError(
                f"event {cur.event}: digest algorithm 0x{alg:04x} is not declared by the "
                "Spec ID event",
                detail={"event": cur.event, "alg": alg},
            )
        name = bank_name(alg)
        if name in digests:
            raise _malformed(cur, f"two {name} digests")
        digests[name] = cur.take(sizes[alg], "digests.digest")
    data = cur.take(cur.u32("eventSize"), "event")
    return Event(cur.event, pcr, event_type, MappingProxyType(digests), data)


def _startup_locality(cur: _Cursor, ev: Event, pcr0_extended: bool, seen: int | None) -> int:
    """PFP 10.4.5.3: once, before anything is extended into PCR 0, locality 0, 3 or 4."""
    if seen is not None or pcr0_extended or ev.pcr != 0 or len(ev.data) != 17:
        raise _malformed(cur, "StartupLocality event is repeated, late, or not 17 bytes")
    locality = ev.data[16]
    if locality not in (0, 3, 4):
        raise _malformed(cur, f"StartupLocality {locality} is not 0, 3 or 4")
    return locality


def parse_event_log(raw: bytes) -> EventLog:
    """Parse a TCG PC Client event log (SHA-1 or crypto-agile format); see the module docs.

    Nothing is trusted here: sizes are bounded by the bytes left, digests by the Spec ID event,
    and bytes after the last event are refused.
    """
    if not isinstance(raw, bytes | bytearray | memoryview):
        raise EventLogMalformedError(f"the event log must be bytes, not {type(raw).__name__}")
    data = bytes(raw)
    if not 0 < len(data) <= MAX_EVENT_LOG_SIZE:
        raise EventLogTooLargeError(
            f"the event log is {len(data)} bytes (1..{MAX_EVENT_LOG_SIZE})",
            detail={"size": len(data), "max": MAX_EVENT_LOG_SIZE},
        )
    cur = _Cursor(data)
    first = _read_sha1_event(cur)  # PFP 10.2: every log starts with a TCG_PCR_EVENT
    agile = first.type == EventType.EV_NO_ACTION and first.data.startswith(SPEC_ID_SIGNATURE)
    events: list[Event] = []
    sizes: dict[int, int] = {TpmAlg.SHA1: SHA1_SIZE}
    if agile:
        if first.pcr != 0 or any(first.digests["sha1"]):
            raise _malformed(cur, "the Spec ID event must be in PCR 0 with a zero digest")
        sizes = _parse_spec_id(cur, first.data)
    else:
        events.append(first)
    while cur.remaining:
        cur.event += 1
        events.append(_read_agile_event(cur, sizes) if agile else _read_sha1_event(cur))
    locality: int | None = None
    pcr0_extended = False
    for ev in events:
        cur.event = ev.number
        if ev.type == EventType.EV_NO_ACTION:
            if ev.data.startswith(STARTUP_LOCALITY_SIGNATURE):
                locality = _startup_locality(cur, ev, pcr0_extended, locality)
        elif ev.pcr == 0:
            pcr0_extended = True
    banks = {bank_name(alg): size for alg, size in sizes.items()}
    return EventLog(
        "crypto-agile" if agile else "sha1", MappingProxyType(banks), tuple(events), locality
    )


def replay_event_log(raw: bytes, bank: str) -> dict[int, bytes]:
    """Parse ``raw`` and replay it in ``bank`` (``"sha256"``, ``"sha1"``, ...): PCR -> value.

    Only PCRs the log extends (or, for PCR 0, initialises with StartupLocality) are returned.
    """
    return parse_event_log(raw).replay(bank)


def verify_replay(log: EventLog, bank: str, quoted: Mapping[int, bytes]) -> dict[int, bytes]:
    """Check that ``log`` replays to the (verified) quoted PCR values; return the replay.

    Every quoted PCR is covered: one the log does not touch must still hold its reset value,
    so a log cannot leave a quoted PCR unexplained. Raises ``eventlog.replay_mismatch`` naming
    the PCRs that differ (go-attestation's and Keylime's replay check, stricter).
    """
    replay = log.replay(bank)
    size = log.banks[bank]
    bad: dict[str, dict[str, str]] = {}
    for index, value in sorted(quoted.items()):
        expected = replay.get(index, pcr_reset_value(index, size))
        if not hmac.compare_digest(expected, value):
            bad[str(index)] = {"quoted": value.hex(), "replayed": expected.hex()}
    if bad:
        raise EventLogReplayMismatchError(
            f"the event log does not replay to the quoted {bank} PCRs {sorted(map(int, bad))}",
            detail={"bank": bank, "pcrs": bad},
        )
    return replay


__all__ = [
    "MAX_EVENT_LOG_SIZE",
    "Event",
    "EventLog",
    "EventLogAlgorithmError",
    "EventLogBankError",
    "EventLogMalformedError",
    "EventLogReplayMismatchError",
    "EventLogTooLargeError",
    "EventType",
    "bank_hash",
    "bank_name",
    "event_type_name",
    "parse_event_log",
    "pcr_reset_value",
    "replay_event_log",
    "verify_replay",
]
