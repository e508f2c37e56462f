"""A synthetic measured boot for swtpm, which has no firmware to measure anything.

On a real host the firmware extends PCRs 0-7 while it boots and writes the TCG event log the
kernel exposes as ``/sys/kernel/security/tpm0/binary_bios_measurements``. swtpm starts with all
PCRs zero, so the join's event-log path could never run in CI. Right after the emulator starts
(its PCRs fresh from TPM2_Startup(CLEAR)), :func:`measure_boot` plays firmware: it measures the
events of :data:`SYNTHETIC_BOOT` with TPM2_PCR_Event -- the TPM hashes the data into *every*
active bank and returns the digests -- and returns the crypto-agile log of exactly those
digests (TCG PC Client Platform Firmware Profile (PFP) 1.05, sections 10.2 and 10.4), which
:meth:`SwtpmInstance.start` writes next to the TPM state.

This is the firmware side: it writes the format with its own code and shares none with the
verifier (:mod:`ecash_tpm.attest.eventlog`), so each checks the other in the tests. Raw TPM
commands over the socket, as the readiness probe does, because this package may not import
the TPM stack.
"""

from __future__ import annotations

import hashlib
import socket
import struct
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ecash_tpm.swtpm.errors import SwtpmBootError

EVENT_LOG_FILE = "binary_bios_measurements"

# PFP 10.4.1 event types used here
EV_NO_ACTION = 0x00000003
EV_SEPARATOR = 0x00000004
EV_S_CRTM_VERSION = 0x00000008
EV_EFI_VARIABLE_DRIVER_CONFIG = 0x80000001
EV_EFI_BOOT_SERVICES_APPLICATION = 0x80000003
EV_EFI_ACTION = 0x80000007

# TPM 2.0 Part 2 constants for TPM2_PCR_Event
_ST_SESSIONS = 0x8002
_CC_PCR_EVENT = 0x0000013C
_RS_PW = 0x40000009
_MAX_EVENT = 1024  # TPM2B_EVENT
_HASHES: Mapping[int, tuple[str, int]] = {
    0x0004: ("sha1", 20),
    0x000B: ("sha256", 32),
    0x000C: ("sha384", 48),
    0x000D: ("sha512", 64),
}

_EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
_EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
_EFI_CERT_SHA256 = "c1c41626-504c-4092-aca9-41f936934328"
_OWNER = "6d5ba4a1-2a8e-4c1f-9e3b-ec0a5e000001"  # the project, as owner of db/dbx entries

BOOT_LOADER_IMAGE = b"ecash-tpm synthetic boot loader: swtpm has no firmware\n"
KERNEL_IMAGE = b"ecash-tpm synthetic kernel: swtpm has no firmware\n"
REVOKED_IMAGE = b"ecash-tpm synthetic revoked boot loader\n"


# --- UEFI structures (PFP 10.4.6, UEFI 2.10 section 32.4.1) ---------------------------------


def _guid(text: str) -> bytes:
    return uuid.UUID(text).bytes_le


def _variable(guid: str, name: str, value: bytes) -> bytes:
    """UEFI_VARIABLE_DATA: VariableName GUID, u64 name length (chars), u64 data length, ..."""
    return (
        _guid(guid) + struct.pack("<QQ", len(name), len(value)) + name.encode("utf-16-le") + value
    )


def _sha256_list(hashes: list[bytes]) -> bytes:
    """One EFI_SIGNATURE_LIST of EFI_CERT_SHA256 entries owned by the project."""
    body = b"".join(_guid(_OWNER) + h for h in hashes)
    return _guid(_EFI_CERT_SHA256) + struct.pack("<III", 28 + len(body), 0, 16 + 32) + body


def _image_load(path: str, image: bytes) -> bytes:
    """UEFI_IMAGE_LOAD_EVENT with a file-path device path (media type 4, subtype 4) + end."""
    name = (path + "\x00").encode("utf-16-le")
    device_path = struct.pack("<BBH", 4, 4, 4 + len(name)) + name + bytes([0x7F, 0xFF, 4, 0])
    return struct.pack("<QQQQ", 0x100000, len(image), 0, len(device_path)) + device_path


@dataclass(frozen=True)
class SyntheticEvent:
    """One measurement: the PCR, the event type, the logged data and what is hashed.

    For most types the digest is of the data itself; a boot application's digest is of its
    image (the Authenticode hash on real hardware), while the log holds its load event.
    """

    pcr: int
    type: int
    data: bytes
    measured: bytes | None = None

    @property
    def hashed(self) -> bytes:
        return self.data if self.measured is None else self.measured


SYNTHETIC_BOOT: tuple[SyntheticEvent, ...] = (
    SyntheticEvent(0, EV_S_CRTM_VERSION, "ecash-tpm swtpm firmware 1.0\x00".encode("utf-16-le")),
    SyntheticEvent(
        7, EV_EFI_VARIABLE_DRIVER_CONFIG, _variable(_EFI_GLOBAL_VARIABLE, "SecureBoot", b"\x01")
    ),
    SyntheticEvent(
        7,
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        _variable(
            _EFI_IMAGE_SECURITY_DATABASE,
            "db",
            _sha256_list([hashlib.sha256(i).digest() for i in (BOOT_LOADER_IMAGE, KERNEL_IMAGE)]),
        ),
    ),
    SyntheticEvent(
        7,
        EV_EFI_VARIABLE_DRIVER_CONFIG,
        _variable(
            _EFI_IMAGE_SECURITY_DATABASE,
            "dbx",
            _sha256_list([hashlib.sha256(REVOKED_IMAGE).digest()]),
        ),
    ),
    SyntheticEvent(4, EV_EFI_ACTION, b"Calling EFI Application from Boot Option"),
    *(SyntheticEvent(pcr, EV_SEPARATOR, bytes(4)) for pcr in (0, 2, 4, 7)),
    SyntheticEvent(
        4,
        EV_EFI_BOOT_SERVICES_APPLICATION,
        _image_load("\\EFI\\ecash\\bootx64.efi", BOOT_LOADER_IMAGE),
        BOOT_LOADER_IMAGE,
    ),
    SyntheticEvent(
        4,
        EV_EFI_BOOT_SERVICES_APPLICATION,
        _image_load("\\EFI\\ecash\\vmlinuz.efi", KERNEL_IMAGE),
        KERNEL_IMAGE,
    ),
)
"""The boot :func:`measure_boot` plays: S-CRTM version (PCR 0), Secure Boot on with a db that
allows the two images by hash and a dbx (PCR 7), separators (PCRs 0, 2, 4, 7), boot loader and
kernel (PCR 4)."""


# --- the log (PFP 10.2) ----------------------------------------------------------------------


def _spec_id_event(algs: Mapping[int, int]) -> bytes:
    """TCG_PCR_EVENT (SHA-1 format) carrying TCG_EfiSpecIdEvent "Spec ID Event03"."""
    spec = b"Spec ID Event03\x00" + struct.pack("<IBBBBI", 0, 0, 2, 0, 2, len(algs))
    spec += b"".join(struct.pack("<HH", alg, size) for alg, size in sorted(algs.items()))
    spec += b"\x00"  # vendorInfoSize
    return struct.pack("<II", 0, EV_NO_ACTION) + bytes(20) + struct.pack("<I", len(spec)) + spec


def _event2(pcr: int, event_type: int, digests: Mapping[int, bytes], data: bytes) -> bytes:
    """TCG_PCR_EVENT2: pcrIndex, eventType, TPML_DIGEST_VALUES, eventSize, event."""
    out = struct.pack("<III", pcr, event_type, len(digests))
    out += b"".join(struct.pack("<H", alg) + d for alg, d in sorted(digests.items()))
    return out + struct.pack("<I", len(data)) + data


def event_log(
    digests: Sequence[Mapping[int, bytes]],
    algs: Mapping[int, int],
    events: Sequence[SyntheticEvent] = SYNTHETIC_BOOT,
) -> bytes:
    """The crypto-agile log of ``events`` with one digest map (alg -> digest) per event.

    No StartupLocality event: swtpm starts the TPM at locality 0, which leaves PCR 0 at zero
    (PFP 10.4.5.3), and tpm2-tools 5.4 would extend such an event, which it must not.
    """
    out = _spec_id_event(algs)
    for ev, dig in zip(events, digests, strict=True):
        out += _event2(ev.pcr, ev.type, dig, ev.data)
    return out


def expected_log(
    banks: Sequence[str] = ("sha256",), events: Sequence[SyntheticEvent] = SYNTHETIC_BOOT
) -> bytes:
    """The log :func:`measure_boot` writes for a TPM with these active banks (computed here)."""
    algs = {alg: size for alg, (name, size) in _HASHES.items() if name in banks}
    digests = [
        {alg: hashlib.new(_HASHES[alg][0], ev.hashed).digest() for alg in algs} for ev in events
    ]
    return event_log(digests, algs, events)


# --- talking to the TPM ----------------------------------------------------------------------


def _recv_exact(conn: socket.socket, n: int) -> bytes:
    out = b""
    while len(out) < n:
        chunk = conn.recv(n - len(out))
        if not chunk:
            raise SwtpmBootError("swtpm closed the connection during PCR_Event")
        out += chunk
    return out


def _pcr_event(conn: socket.socket, pcr: int, data: bytes) -> dict[int, bytes]:
    """TPM2_PCR_Event(pcr, data) with an empty password session -> digest per active bank."""
    if len(data) > _MAX_EVENT:
        raise SwtpmBootError(f"event data of {len(data)} bytes exceeds TPM2B_EVENT")
    auth = struct.pack(">IHBH", _RS_PW, 0, 0, 0)
    body = struct.pack(">II", pcr, len(auth)) + auth + struct.pack(">H", len(data)) + data
    conn.sendall(struct.pack(">HII", _ST_SESSIONS, 10 + len(body), _CC_PCR_EVENT) + body)
    _tag, size, rc = struct.unpack(">HII", _recv_exact(conn, 10))
    if not 10 <= size <= 4096:
        raise SwtpmBootError(f"PCR_Event answer of {size} bytes")
    rest = _recv_exact(conn, size - 10)
    if rc != 0:
        raise SwtpmBootError(
            f"PCR_Event on PCR {pcr} failed with TPM rc {rc:#x}", detail={"rc": rc}
        )
    try:
        (count,) = struct.unpack_from(">I", rest, 4)  # after parameterSize
        pos, out = 8, {}
        for _ in range(count):
            (alg,) = struct.unpack_from(">H", rest, pos)
            size_alg = _HASHES[alg][1]
            out[alg] = rest[pos + 2 : pos + 2 + size_alg]
            pos += 2 + size_alg
    except (struct.error, KeyError) as exc:
        raise SwtpmBootError(f"unexpected PCR_Event answer: {exc}") from exc
    return out


def measure_boot(
    host: str,
    port: int,
    *,
    events: Sequence[SyntheticEvent] = SYNTHETIC_BOOT,
    timeout: float = 10.0,
) -> bytes:
    """Measure ``events`` into a freshly started TPM; return their event log.

    Each digest the TPM reports is checked against the one computed here, so the log is exactly
    what went into the PCRs.
    """
    digests: list[Mapping[int, bytes]] = []
    try:
        with socket.create_connection((host, port), timeout=timeout) as conn:
            for ev in events:
                got = _pcr_event(conn, ev.pcr, ev.hashed)
                for alg, digest in got.items():
                    if digest != hashlib.new(_HASHES[alg][0], ev.hashed).digest():
                        raise SwtpmBootError("the TPM's PCR_Event digest is not H(data)")
                digests.append(got)
    except OSError as exc:
        raise SwtpmBootError(f"cannot reach swtpm at {host}:{port}: {exc}") from exc
    if not digests or not digests[0]:
        raise SwtpmBootError("the TPM reported no active PCR bank")
    algs = {alg: _HASHES[alg][1] for alg in digests[0]}
    return event_log(digests, algs, events)


__all__ = [
    "BOOT_LOADER_IMAGE",
    "EVENT_LOG_FILE",
    "KERNEL_IMAGE",
    "REVOKED_IMAGE",
    "SYNTHETIC_BOOT",
    "SwtpmBootError",
    "SyntheticEvent",
    "event_log",
    "expected_log",
    "measure_boot",
]
