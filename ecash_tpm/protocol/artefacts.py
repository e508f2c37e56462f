"""Self-contained files for ``ecash-tpm verify`` (docs/protocol.md §15.1): a deposit
transcript, a bank receipt, an opening and a double-spend evidence bundle, each with every
public item needed to check it offline except the central-bank root, which the verifier pins.

Every file is one JSON object ``{"format": "ecash-tpm/<kind>/v1", ...}`` with exactly the fields
of :data:`FIELDS`; signed objects are kept exactly as their signers made them (the signature
covers their bodies) and certificates are PEM. Pure code: parties build the files with the
functions below, :mod:`ecash_tpm.protocol.verify_artefacts` checks them.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.protocol.errors import VerifyFormatError
from ecash_tpm.protocol.redeem import REDEEM_REQUEST_KIND
from ecash_tpm.protocol.swap import SWAP_TRANSCRIPT_KIND

__all__ = [
    "EVIDENCE_FORMAT",
    "FIELDS",
    "OPENING_FORMAT",
    "RECEIPT_FORMAT",
    "TRANSCRIPT_FORMAT",
    "dumps_artefact",
    "evidence_artefact",
    "is_redeem_transcript",
    "is_swap_transcript",
    "request_merchants",
    "opening_artefact",
    "parse_artefact",
    "receipt_artefact",
    "transcript_artefact",
]

TRANSCRIPT_FORMAT = "ecash-tpm/transcript/v1"
RECEIPT_FORMAT = "ecash-tpm/receipt/v1"
OPENING_FORMAT = "ecash-tpm/opening/v1"
EVIDENCE_FORMAT = "ecash-tpm/evidence/v1"

#: The fields of each format (besides ``format``): a file with more or fewer is refused.
FIELDS: Mapping[str, frozenset[str]] = MappingProxyType(
    {
        # a bank-signed ``deposit-transcript`` (its body carries the merchant-signed request,
        # or the bank-signed redeem request of §9.4, and the bank-signed keyset descriptor), the
        # certificates of both signers (``merchant_cert`` null for a redeem), the central bank's
        # keyset list and issuer epoch key, the issuer's name and the opener key Hop
        TRANSCRIPT_FORMAT: frozenset(
            {
                "transcript",
                "bank_cert",
                "merchant_cert",
                "keyset_list",
                "issuer",
                "issuer_epoch",
                "opener_public",
            }
        ),
        # a bank-signed ``deposit-receipt`` and the merchant-signed request it answers
        RECEIPT_FORMAT: frozenset({"receipt", "bank_cert", "request", "merchant_cert"}),
        # one opening, and the supervision-signed ``double-spend-evidence`` that states it
        OPENING_FORMAT: frozenset(
            {"opening", "member_id", "opener_public", "statement", "supervision_cert"}
        ),
        # a supervision-signed bundle, the certificates of the merchants whose payment
        # requests it carries (none for a redeem), the certified keyset list, and the issuer
        # and its certified epoch key the coin is checked against
        EVIDENCE_FORMAT: frozenset(
            {
                "evidence",
                "supervision_cert",
                "merchant_certs",
                "keyset_list",
                "issuer",
                "issuer_epoch",
            }
        ),
    }
)


def _doc(fmt: str, **fields: Any) -> dict[str, Any]:
    # a JSON round trip: the file's parts share nothing (an opening is copied out of its
    # statement), as they will not once written and read back
    doc: dict[str, Any] = json.loads(json.dumps({"format": fmt, **fields}))
    parse_artefact(doc)  # never write a file the verifier cannot read
    return doc


def _epoch_of(issuer: str, issuer_epoch: Mapping[str, Any]) -> dict[str, Any]:
    """The epoch certificate, if it is ``issuer``'s (the verifier refuses it otherwise)."""
    body = issuer_epoch.get("body")
    if not isinstance(body, Mapping) or body.get("issuer") != issuer:
        raise VerifyFormatError(
            "the issuer epoch certificate is not the named issuer's", detail={"issuer": issuer}
        )
    return dict(issuer_epoch)


def request_merchants(transcripts: list[Any]) -> list[str | None]:
    """The merchant whose certificate each signed transcript needs: the one it names, or None
    for a redeem (§9.4: the bank signs the request), a swap (§9.3: no merchant, the request is
    the customer's) or a transcript that names none."""
    names: list[str | None] = []
    for signed in transcripts:
        body = signed.get("body") if isinstance(signed, Mapping) else None
        name = body.get("merchant_id") if isinstance(body, Mapping) else None
        bankside = is_redeem_transcript(signed) or is_swap_transcript(signed)
        names.append(None if bankside or not isinstance(name, str) else name)
    return names


def is_swap_transcript(signed: Any) -> bool:
    """Whether a signed transcript is a swapped coin's (§9.3: ``kind`` ``swap``, its request
    the customer's unsigned swap request body)."""
    body = signed.get("body") if isinstance(signed, Mapping) else None
    return isinstance(body, Mapping) and body.get("kind") == SWAP_TRANSCRIPT_KIND


def is_redeem_transcript(signed: Any) -> bool:
    """Whether a signed transcript answers a bank-signed redeem request (§9.4), not a
    merchant's payment request."""
    body = signed.get("body") if isinstance(signed, Mapping) else None
    req = body.get("request") if isinstance(body, Mapping) else None
    return isinstance(req, Mapping) and req.get("kind") == REDEEM_REQUEST_KIND


def transcript_artefact(
    *,
    transcript: Mapping[str, Any],
    bank_cert: str,
    merchant_cert: str | None,
    keyset_list: Mapping[str, Any],
    issuer: str,
    issuer_epoch: Mapping[str, Any],
    opener_public: bytes,
) -> dict[str, Any]:
    """A deposit transcript as the bank signed it (``deposit-transcript``), ready to verify;
    ``merchant_cert`` is dropped (null) for a redeem transcript (§9.4: the bank signs the
    request) and a swap's (§9.3: no merchant), ``issuer`` names whose epoch key the coin is
    under."""
    return _doc(
        TRANSCRIPT_FORMAT,
        transcript=dict(transcript),
        bank_cert=bank_cert,
        merchant_cert=None
        if is_redeem_transcript(transcript) or is_swap_transcript(transcript)
        else merchant_cert,
        keyset_list=dict(keyset_list),
        issuer=issuer,
        issuer_epoch=_epoch_of(issuer, issuer_epoch),
        opener_public=b64u_encode(opener_public),
    )


def receipt_artefact(
    *,
    receipt: Mapping[str, Any],
    bank_cert: str,
    request: Mapping[str, Any],
    merchant_cert: str,
) -> dict[str, Any]:
    """A bank receipt and the payment request it answers."""
    return _doc(
        RECEIPT_FORMAT,
        receipt=dict(receipt),
        bank_cert=bank_cert,
        request=dict(request),
        merchant_cert=merchant_cert,
    )


def opening_artefact(
    *, statement: Mapping[str, Any], supervision_cert: str, index: int
) -> dict[str, Any]:
    """Opening number ``index`` of a supervision-signed evidence bundle, copied out so that the
    file says which opening it is about (the verifier requires the copy to match)."""
    body = statement.get("body")
    if not isinstance(body, Mapping) or not isinstance(body.get("openings"), list):
        raise VerifyFormatError("the statement is not a signed evidence bundle")
    openings = body["openings"]
    if not 0 <= index < len(openings):
        raise VerifyFormatError("no such opening in the statement", detail={"index": index})
    return _doc(
        OPENING_FORMAT,
        opening=dict(openings[index]),
        member_id=body.get("member_id"),
        opener_public=body.get("opener_public"),
        statement=dict(statement),
        supervision_cert=supervision_cert,
    )


def evidence_artefact(
    *,
    evidence: Mapping[str, Any],
    supervision_cert: str,
    merchant_certs: Mapping[str, str],
    keyset_list: Mapping[str, Any],
    issuer: str,
    issuer_epoch: Mapping[str, Any],
) -> dict[str, Any]:
    """A double-spend evidence bundle and the certificates of the merchants whose payment
    requests its transcripts carry (merchant name -> PEM; others given are left out, the
    verifier refuses certificates no transcript needs; a redeem transcript needs none)."""
    body = evidence.get("body")
    docs = body.get("transcripts") if isinstance(body, Mapping) else None
    if not isinstance(docs, list):
        raise VerifyFormatError("the evidence is not a signed double-spend bundle")
    needed = set(request_merchants(docs))
    return _doc(
        EVIDENCE_FORMAT,
        evidence=dict(evidence),
        supervision_cert=supervision_cert,
        merchant_certs={m: pem for m, pem in merchant_certs.items() if m in needed},
        keyset_list=dict(keyset_list),
        issuer=issuer,
        issuer_epoch=_epoch_of(issuer, issuer_epoch),
    )


def parse_artefact(doc: Any, expected: str | None = None) -> tuple[str, Mapping[str, Any]]:
    """``(format, doc)`` after checking the format name and the exact field set
    (``verify.format``); ``expected`` is the format the caller asked for, if any."""
    if not isinstance(doc, Mapping):
        raise VerifyFormatError("an artefact must be a JSON object")
    fmt = doc.get("format")
    if not isinstance(fmt, str) or fmt not in FIELDS:
        raise VerifyFormatError(
            "unknown artefact format", detail={"format": repr(fmt)[:80], "known": sorted(FIELDS)}
        )
    if expected is not None and fmt != expected:
        raise VerifyFormatError(
            "the file is another kind of artefact", detail={"expected": expected, "got": fmt}
        )
    fields = set(doc) - {"format"}
    if fields != FIELDS[fmt]:
        raise VerifyFormatError(
            "the artefact has the wrong fields",
            detail={
                "missing": sorted(FIELDS[fmt] - fields),
                "unexpected": sorted(fields - FIELDS[fmt]),
            },
        )
    return fmt, doc


def dumps_artefact(doc: Mapping[str, Any]) -> str:
    """The file's text: indented, keys sorted (stable, diff-friendly)."""
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"
