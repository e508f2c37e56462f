"""The swap request: anonymous change and refresh (docs/protocol.md §9.3, issue 12).

A wallet gives coins back to the bank and gets blind signatures on new coins of the same total
(minus the inputs' refresh fees, docs/protocol.md 4.2), with no account involved. The TPM spend
proofs of the input coins sign ``preq = Hash("ecash-tpm/v1/swap", canonical_encode(body))`` where
the body commits to the bank, the request id, the input serials, every output (keyset and
blinded message) and a deadline. So the proofs cannot be replayed to a merchant (a payment's
``preq`` is the SHA-256 of a payment-request body, another domain), and no one on the path can
swap the outputs out.

The body (every field required, nothing else)::

    {bank, request_id, inputs: [b64u sigma], outputs: [{keyset_id, blinded_msg}], deadline}

Wire form at ``POST /v1/swap``: ``{request: <body>, spends: [{coin, proof}]}`` (spends in the
order of ``inputs``); answer ``{request_id, blind_signatures}`` in the order of ``outputs``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.crypto.groupsig import KEYSET_ID_LEN, SIGMA_LEN
from ecash_tpm.crypto.signing import canonical_encode
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.protocol.keysets import Keyset, refresh_fee

__all__ = [
    "MAX_SWAP_ITEMS",
    "SWAP_PREQ_TAG",
    "SWAP_SPENDER",
    "SWAP_TRANSCRIPT_KIND",
    "SwapRequest",
    "swap_fee",
]

SWAP_PREQ_TAG = "ecash-tpm/v1/swap"
#: The ``merchant_id`` a coin status, refusal or transcript names for a swapped coin (§9.3).
SWAP_SPENDER = "bank:swap"
#: The ``kind`` field of a swapped coin's stored transcript (§9.3, read by §12.1's evidence).
SWAP_TRANSCRIPT_KIND = "swap"
#: At most this many inputs and this many outputs per swap.
MAX_SWAP_ITEMS = 64

_FIELDS = frozenset({"bank", "request_id", "inputs", "outputs", "deadline"})
_REQUEST_ID_RE = re.compile(r"^[A-Za-z0-9_-]{8,64}$")


def swap_fee(inputs: Sequence[Keyset]) -> int:
    """The refresh fee of a swap whose input coins are under ``inputs`` (one keyset per coin):
    the sum of their ``fee_refresh`` (docs/protocol.md 4.2); outputs must add up to the inputs'
    value minus it."""
    return refresh_fee(inputs)


def _b64(value: object, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise InputError(f"{what} must be base64url text")
    try:
        raw = b64u_decode(value)
    except EcashError as exc:
        raise InputError(f"{what} must be base64url") from exc
    if length is not None and len(raw) != length:
        raise InputError(f"{what} must be {length} bytes")
    return raw


@dataclass(frozen=True, slots=True)
class SwapRequest:
    """A parsed, validated swap request body (see the module docstring)."""

    bank: str
    request_id: str
    inputs: tuple[bytes, ...]
    outputs: tuple[tuple[bytes, bytes], ...]
    deadline: int

    def to_body(self) -> dict[str, Any]:
        return {
            "bank": self.bank,
            "request_id": self.request_id,
            "inputs": [b64u_encode(s) for s in self.inputs],
            "outputs": [
                {"keyset_id": b64u_encode(k), "blinded_msg": b64u_encode(m)}
                for k, m in self.outputs
            ],
            "deadline": self.deadline,
        }

    @property
    def preq(self) -> bytes:
        """What the input coins' spend proofs sign (§9.3)."""
        return tagged_hash(SWAP_PREQ_TAG, canonical_encode(self.to_body()))

    @classmethod
    def from_body(cls, body: Any) -> SwapRequest:
        """Validate the wire body (``input.invalid`` for anything malformed)."""
        if not isinstance(body, Mapping) or set(body) != _FIELDS:
            raise InputError("swap request must have exactly " + ", ".join(sorted(_FIELDS)))
        bank, rid, deadline = body["bank"], body["request_id"], body["deadline"]
        if not isinstance(bank, str) or not 0 < len(bank) <= 128:
            raise InputError("swap request: bad bank name")
        if not isinstance(rid, str) or not _REQUEST_ID_RE.match(rid):
            raise InputError("request_id must be 8..64 characters of [A-Za-z0-9_-]")
        if isinstance(deadline, bool) or not isinstance(deadline, int) or deadline < 0:
            raise InputError("swap request: deadline must be a non-negative integer")
        ins, outs = body["inputs"], body["outputs"]
        if not isinstance(ins, list) or not 0 < len(ins) <= MAX_SWAP_ITEMS:
            raise InputError(f"a swap has 1..{MAX_SWAP_ITEMS} inputs")
        if not isinstance(outs, list) or not 0 < len(outs) <= MAX_SWAP_ITEMS:
            raise InputError(f"a swap has 1..{MAX_SWAP_ITEMS} outputs")
        inputs = tuple(_b64(s, "input serial", SIGMA_LEN) for s in ins)
        if len(set(inputs)) != len(inputs):
            raise InputError("swap input serials must be distinct")
        outputs = []
        for item in outs:
            if not isinstance(item, Mapping) or set(item) != {"keyset_id", "blinded_msg"}:
                raise InputError("a swap output is {keyset_id, blinded_msg}")
            outputs.append(
                (
                    _b64(item["keyset_id"], "keyset_id", KEYSET_ID_LEN),
                    _b64(item["blinded_msg"], "blinded_msg"),
                )
            )
        return cls(bank, rid, inputs, tuple(outputs), deadline)

    @classmethod
    def build(
        cls,
        *,
        bank: str,
        request_id: str,
        inputs: Sequence[bytes],
        outputs: Sequence[tuple[bytes, bytes]],
        deadline: int,
    ) -> SwapRequest:
        """The wallet's side: a request checked exactly as the bank will check it."""
        return cls.from_body(
            cls(bank, request_id, tuple(inputs), tuple(outputs), deadline).to_body()
        )
