"""UEFI structures inside event-log events: variables and signature databases (db, dbx).

A measured-boot policy reads these from events a verified replay vouches for (see
:mod:`ecash_tpm.attest.eventlog`). Layouts: UEFI_VARIABLE_DATA (TCG PC Client PFP 1.05,
section 10.4.6), EFI_SIGNATURE_LIST / EFI_SIGNATURE_DATA (UEFI 2.10, section 32.4.1). All
little-endian; every length is bounded by the bytes present, and a parse error is
``eventlog.malformed`` naming the event.
"""

from __future__ import annotations

import hashlib
import struct
import uuid
from dataclasses import dataclass

from ecash_tpm.attest.eventlog import Event, EventLogMalformedError

EFI_GLOBAL_VARIABLE = "8be4df61-93ca-11d2-aa0d-00e098032b8c"
"""Vendor GUID of SecureBoot, PK, KEK, BootOrder, Boot####."""

EFI_IMAGE_SECURITY_DATABASE = "d719b2cb-3d3a-4596-a3bc-dad00e67656f"
"""Vendor GUID of db and dbx."""

EFI_CERT_SHA256 = "c1c41626-504c-4092-aca9-41f936934328"
"""Signature type of a db/dbx entry that is an image's SHA-256 (Authenticode) hash."""

EFI_CERT_X509 = "a5c059a1-94e4-4aa7-87b5-ab155c2bf072"
"""Signature type of a db/dbx entry that is a DER X.509 certificate."""

_LIST_HEADER = 16 + 4 + 4 + 4


def guid_bytes(text: str) -> bytes:
    """The 16 bytes of an EFI_GUID (first three fields little-endian, as UEFI stores them)."""
    return uuid.UUID(text).bytes_le


def _guid(raw: bytes) -> str:
    return str(uuid.UUID(bytes_le=raw))


def _bad(event: Event, message: str) -> EventLogMalformedError:
    return EventLogMalformedError(
        f"event {event.number} ({event.type_name}): {message}", detail={"event": event.number}
    )


@dataclass(frozen=True)
class UefiVariable:
    """UEFI_VARIABLE_DATA: the variable's vendor GUID, name and value as measured."""

    guid: str
    name: str
    data: bytes

    def is_(self, guid: str, name: str) -> bool:
        return self.guid == guid and self.name == name


def parse_variable(event: Event) -> UefiVariable:
    """The UEFI_VARIABLE_DATA of an EV_EFI_VARIABLE_* event (PFP 10.4.6).

    Bytes after the value are tolerated (shim logs its EV_EFI_VARIABLE_AUTHORITY events with
    a few): the digest covers the whole event either way, so they cannot change the meaning.
    """
    raw = event.data
    if len(raw) < 32:
        raise _bad(event, f"UEFI_VARIABLE_DATA of {len(raw)} bytes is shorter than its header")
    name_chars, data_len = struct.unpack("<QQ", raw[16:32])
    end = 32 + 2 * name_chars + data_len
    if end > len(raw):
        raise _bad(event, "UEFI_VARIABLE_DATA lengths exceed the event size")
    try:
        name = raw[32 : 32 + 2 * name_chars].decode("utf-16-le")
    except UnicodeDecodeError:
        raise _bad(event, "the variable name is not UTF-16") from None
    return UefiVariable(_guid(raw[:16]), name.rstrip("\x00"), raw[end - data_len : end])


def variable_data(guid: str, name: str, value: bytes) -> bytes:
    """UEFI_VARIABLE_DATA for ``name`` (what firmware logs for a variable measurement)."""
    encoded = name.encode("utf-16-le")
    return guid_bytes(guid) + struct.pack("<QQ", len(name), len(value)) + encoded + value


@dataclass(frozen=True)
class SignatureEntry:
    """One EFI_SIGNATURE_DATA of a db/dbx list: its type, owner and bytes."""

    type: str
    owner: str
    data: bytes

    @property
    def fingerprint(self) -> bytes:
        """How a policy names the entry: the hash itself for EFI_CERT_SHA256 entries, else
        SHA-256 of the data (of the DER for an X.509 certificate)."""
        if self.type == EFI_CERT_SHA256 and len(self.data) == 32:
            return self.data
        return hashlib.sha256(self.data).digest()


def parse_signature_lists(event: Event, raw: bytes) -> tuple[SignatureEntry, ...]:
    """The entries of a sequence of EFI_SIGNATURE_LIST (a db or dbx value), strictly."""
    out: list[SignatureEntry] = []
    pos = 0
    while pos < len(raw):
        if len(raw) - pos < _LIST_HEADER:
            raise _bad(event, "EFI_SIGNATURE_LIST header truncated")
        sig_type = _guid(raw[pos : pos + 16])
        list_size, header_size, sig_size = struct.unpack("<III", raw[pos + 16 : pos + 28])
        body = list_size - _LIST_HEADER - header_size
        if list_size > len(raw) - pos or body < 0 or sig_size < 16 or body % sig_size:
            raise _bad(event, "EFI_SIGNATURE_LIST sizes are inconsistent")
        start = pos + _LIST_HEADER + header_size
        for at in range(start, start + body, sig_size):
            out.append(
                SignatureEntry(sig_type, _guid(raw[at : at + 16]), raw[at + 16 : at + sig_size])
            )
        pos += list_size
    return tuple(out)


def signature_list(sig_type: str, owner: str, entries: list[bytes]) -> bytes:
    """One EFI_SIGNATURE_LIST of equally sized entries (to build db/dbx values)."""
    size = 16 + (len(entries[0]) if entries else 0)
    body = b"".join(guid_bytes(owner) + e for e in entries)
    return guid_bytes(sig_type) + struct.pack("<III", _LIST_HEADER + len(body), 0, size) + body


__all__ = [
    "EFI_CERT_SHA256",
    "EFI_CERT_X509",
    "EFI_GLOBAL_VARIABLE",
    "EFI_IMAGE_SECURITY_DATABASE",
    "SignatureEntry",
    "UefiVariable",
    "guid_bytes",
    "parse_signature_lists",
    "parse_variable",
    "signature_list",
    "variable_data",
]
