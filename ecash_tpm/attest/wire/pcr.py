"""TPMS_PCR_SELECTION / TPML_PCR_SELECTION: which PCRs of which bank a quote covers."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from ecash_tpm.attest.errors import WireSizeError, WireValueError
from ecash_tpm.attest.wire.codec import Reader, u16, u32
from ecash_tpm.attest.wire.constants import MAX_PCR_BANKS, MAX_PCR_SELECT, TpmAlg


@dataclass(frozen=True)
class PcrSelection:
    """TPMS_PCR_SELECTION: one bank and its bitmap (bit i of byte i//8 selects PCR i)."""

    hash_alg: TpmAlg
    select: bytes

    @property
    def indices(self) -> tuple[int, ...]:
        """The selected PCR indices, ascending."""
        return tuple(
            8 * i + bit for i, byte in enumerate(self.select) for bit in range(8) if byte >> bit & 1
        )

    @classmethod
    def of(cls, hash_alg: TpmAlg, indices: Iterable[int], size: int = 3) -> PcrSelection:
        """A selection of ``indices`` in a bitmap of at least ``size`` bytes."""
        idx = sorted(set(indices))
        if any(i < 0 or i >= 8 * MAX_PCR_SELECT for i in idx):
            raise WireValueError("PCR index out of range")
        nbytes = max(size, (idx[-1] // 8 + 1) if idx else 0)
        bitmap = bytearray(nbytes)
        for i in idx:
            bitmap[i // 8] |= 1 << (i % 8)
        return cls(hash_alg, bytes(bitmap))

    def marshal(self) -> bytes:
        """Wire form."""
        return u16(self.hash_alg) + bytes([len(self.select)]) + self.select


def read_pcr_selection_list(r: Reader, field: str) -> tuple[PcrSelection, ...]:
    """Read a TPML_PCR_SELECTION in place (also the start of a TPMS_QUOTE_INFO)."""
    count = r.u32(field + ".count")
    if count > MAX_PCR_BANKS:
        raise WireSizeError(f"{r.what}: {count} PCR banks in {field}, at most {MAX_PCR_BANKS}")
    out = []
    for i in range(count):
        hash_alg = r.hash_alg(f"{field}[{i}].hash")
        size = r.u8(f"{field}[{i}].sizeofSelect")
        if size > MAX_PCR_SELECT:
            raise WireSizeError(f"{r.what}: sizeofSelect {size} in {field}[{i}] is too large")
        out.append(PcrSelection(hash_alg, r.take(size, f"{field}[{i}].pcrSelect")))
    return tuple(out)


def marshal_pcr_selection_list(selections: Iterable[PcrSelection]) -> bytes:
    """Marshal a TPML_PCR_SELECTION."""
    items = list(selections)
    return u32(len(items)) + b"".join(s.marshal() for s in items)


def parse_pcr_selection_list(data: bytes) -> tuple[PcrSelection, ...]:
    """Parse a TPML_PCR_SELECTION that fills ``data`` exactly."""
    r = Reader(data, "TPML_PCR_SELECTION")
    out = read_pcr_selection_list(r, "pcrSelections")
    r.done()
    return out
