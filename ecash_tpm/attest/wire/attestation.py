"""TPMS_ATTEST: the structure a TPM signs for quotes, certify and the other attestations.

Parsing does not judge the magic or the nonce; :mod:`ecash_tpm.attest.quote` does, so that its
errors can say which check failed.
"""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.attest.errors import WireUnsupportedError, WireValueError
from ecash_tpm.attest.wire.codec import Reader, as_bytes, tpm2b, u16, u32, u64
from ecash_tpm.attest.wire.constants import (
    MAX_DATA,
    MAX_DIGEST,
    MAX_NAME,
    MAX_NV_BUFFER,
    TPM_GENERATED_VALUE,
    AttestType,
    TpmAlg,
)
from ecash_tpm.attest.wire.pcr import (
    PcrSelection,
    marshal_pcr_selection_list,
    read_pcr_selection_list,
)


@dataclass(frozen=True)
class ClockInfo:
    """TPMS_CLOCK_INFO."""

    clock: int
    reset_count: int
    restart_count: int
    safe: bool

    def marshal(self) -> bytes:
        """Wire form."""
        return (
            u64(self.clock)
            + u32(self.reset_count)
            + u32(self.restart_count)
            + bytes([int(self.safe)])
        )


@dataclass(frozen=True)
class TpmsQuoteInfo:
    """TPMS_QUOTE_INFO: which PCRs were quoted and the digest of their values."""

    pcr_select: tuple[PcrSelection, ...]
    pcr_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return marshal_pcr_selection_list(self.pcr_select) + tpm2b(self.pcr_digest)


@dataclass(frozen=True)
class TpmsCertifyInfo:
    """TPMS_CERTIFY_INFO: the certified object's Name and qualified Name."""

    name: bytes
    qualified_name: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.name) + tpm2b(self.qualified_name)


@dataclass(frozen=True)
class TpmsCreationInfo:
    """TPMS_CREATION_INFO."""

    object_name: bytes
    creation_hash: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.object_name) + tpm2b(self.creation_hash)


@dataclass(frozen=True)
class TpmsTimeAttestInfo:
    """TPMS_TIME_ATTEST_INFO."""

    time: int
    clock_info: ClockInfo
    firmware_version: int

    def marshal(self) -> bytes:
        """Wire form."""
        return u64(self.time) + self.clock_info.marshal() + u64(self.firmware_version)


@dataclass(frozen=True)
class TpmsCommandAuditInfo:
    """TPMS_COMMAND_AUDIT_INFO."""

    audit_counter: int
    digest_alg: TpmAlg
    audit_digest: bytes
    command_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return (
            u64(self.audit_counter)
            + u16(self.digest_alg)
            + tpm2b(self.audit_digest)
            + tpm2b(self.command_digest)
        )


@dataclass(frozen=True)
class TpmsSessionAuditInfo:
    """TPMS_SESSION_AUDIT_INFO."""

    exclusive_session: bool
    session_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return bytes([int(self.exclusive_session)]) + tpm2b(self.session_digest)


@dataclass(frozen=True)
class TpmsNvCertifyInfo:
    """TPMS_NV_CERTIFY_INFO."""

    index_name: bytes
    offset: int
    nv_contents: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.index_name) + u16(self.offset) + tpm2b(self.nv_contents)


@dataclass(frozen=True)
class TpmsNvDigestCertifyInfo:
    """TPMS_NV_DIGEST_CERTIFY_INFO."""

    index_name: bytes
    nv_digest: bytes

    def marshal(self) -> bytes:
        """Wire form."""
        return tpm2b(self.index_name) + tpm2b(self.nv_digest)


Attested = (
    TpmsQuoteInfo
    | TpmsCertifyInfo
    | TpmsCreationInfo
    | TpmsTimeAttestInfo
    | TpmsCommandAuditInfo
    | TpmsSessionAuditInfo
    | TpmsNvCertifyInfo
    | TpmsNvDigestCertifyInfo
)


@dataclass(frozen=True)
class Attest:
    """A parsed TPMS_ATTEST. ``raw`` is the exact signed byte string."""

    magic: int
    type: AttestType
    qualified_signer: bytes
    extra_data: bytes
    clock_info: ClockInfo
    firmware_version: int
    attested: Attested
    raw: bytes = b""

    def marshal(self) -> bytes:
        """Marshal the fields (not ``raw``): how tests build attestation data to sign."""
        return (
            u32(self.magic)
            + u16(self.type)
            + tpm2b(self.qualified_signer)
            + tpm2b(self.extra_data)
            + self.clock_info.marshal()
            + u64(self.firmware_version)
            + self.attested.marshal()
        )


def _read_yes_no(r: Reader, field: str) -> bool:
    value = r.u8(field)
    if value > 1:
        raise WireValueError(f"{r.what}: {field} is {value}, not YES (1) or NO (0)")
    return value == 1


def _read_clock_info(r: Reader, field: str) -> ClockInfo:
    return ClockInfo(
        clock=r.u64(field + ".clock"),
        reset_count=r.u32(field + ".resetCount"),
        restart_count=r.u32(field + ".restartCount"),
        safe=_read_yes_no(r, field + ".safe"),
    )


def _read_attested(r: Reader, st: AttestType) -> Attested:
    if st == AttestType.QUOTE:
        return TpmsQuoteInfo(
            read_pcr_selection_list(r, "quote.pcrSelect"), r.tpm2b(MAX_DIGEST, "quote.pcrDigest")
        )
    if st == AttestType.CERTIFY:
        return TpmsCertifyInfo(
            r.tpm2b(MAX_NAME, "certify.name"), r.tpm2b(MAX_NAME, "certify.qualifiedName")
        )
    if st == AttestType.CREATION:
        return TpmsCreationInfo(
            r.tpm2b(MAX_NAME, "creation.objectName"),
            r.tpm2b(MAX_DIGEST, "creation.creationHash"),
        )
    if st == AttestType.TIME:
        return TpmsTimeAttestInfo(
            r.u64("time.time"),
            _read_clock_info(r, "time.clockInfo"),
            r.u64("time.firmwareVersion"),
        )
    if st == AttestType.COMMAND_AUDIT:
        return TpmsCommandAuditInfo(
            r.u64("commandAudit.auditCounter"),
            r.hash_alg("commandAudit.digestAlg"),
            r.tpm2b(MAX_DIGEST, "commandAudit.auditDigest"),
            r.tpm2b(MAX_DIGEST, "commandAudit.commandDigest"),
        )
    if st == AttestType.SESSION_AUDIT:
        return TpmsSessionAuditInfo(
            _read_yes_no(r, "sessionAudit.exclusiveSession"),
            r.tpm2b(MAX_DIGEST, "sessionAudit.sessionDigest"),
        )
    if st == AttestType.NV:
        return TpmsNvCertifyInfo(
            r.tpm2b(MAX_NAME, "nv.indexName"),
            r.u16("nv.offset"),
            r.tpm2b(MAX_NV_BUFFER, "nv.nvContents"),
        )
    return TpmsNvDigestCertifyInfo(
        r.tpm2b(MAX_NAME, "nvDigest.indexName"), r.tpm2b(MAX_DIGEST, "nvDigest.nvDigest")
    )


def read_attest_header(data: bytes) -> tuple[int, int]:
    """``(magic, type)`` of a TPMS_ATTEST, read before the rest so errors can say which is wrong."""
    r = Reader(data, "TPMS_ATTEST")
    return r.u32("magic"), r.u16("type")


def parse_attest(data: bytes) -> Attest:
    """Parse a marshalled TPMS_ATTEST that fills ``data`` exactly (magic is not judged here)."""
    raw = as_bytes(data, "TPMS_ATTEST")
    r = Reader(raw, "TPMS_ATTEST")
    magic = r.u32("magic")
    st_value = r.u16("type")
    try:
        st = AttestType(st_value)
    except ValueError:
        raise WireUnsupportedError(
            f"TPMS_ATTEST: unknown attestation type {st_value:#06x}", detail={"type": st_value}
        ) from None
    qualified_signer = r.tpm2b(MAX_NAME, "qualifiedSigner")
    extra_data = r.tpm2b(MAX_DATA, "extraData")
    clock_info = _read_clock_info(r, "clockInfo")
    firmware_version = r.u64("firmwareVersion")
    attested = _read_attested(r, st)
    r.done()
    return Attest(
        magic, st, qualified_signer, extra_data, clock_info, firmware_version, attested, raw
    )


def unwrap_attest(data: bytes) -> bytes:
    """The TPMS_ATTEST inside ``data``: accepted as is, or unwrapped from a TPM2B_ATTEST.

    tpm2-tools writes TPMS_ATTEST (``-m``); tpm2-pytss ``TPM2B_ATTEST.marshal()`` adds a size.
    The magic makes the two unambiguous: no TPM2B_ATTEST is 0xFF54 bytes long.
    """
    raw = as_bytes(data, "TPMS_ATTEST")
    if (
        len(raw) >= 6
        and raw[:4] != u32(TPM_GENERATED_VALUE)
        and raw[2:6] == u32(TPM_GENERATED_VALUE)
    ):
        r = Reader(raw, "TPM2B_ATTEST")
        inner = r.tpm2b(0xFFFF, "attestationData")
        r.done()
        return inner
    return raw
