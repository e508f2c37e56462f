"""Double-spend evidence: bank transcripts, openings, and the bundle the group manager checks.

Pure code (no database, no HTTP), shared by the supervision department, which builds evidence,
and the issuer, which re-checks it before revoking: an opening is publicly checkable, so the
issuer does not have to take the supervision department's word for anything.

What counts as a double spend: two bank transcripts with the *same serial* sigma, *different
payment requests* (preq), and spend proofs that both verify. A spend proof can only be made by
the TPM holding the coin's key, so this is self-authenticating: a merchant replaying one payment
twice produces the same preq and is not evidence against the customer.

Bank transcript (a bank-signed object of kind ``deposit-transcript``), body::

    {"transcript_id": int | str, "merchant_id": str, "preq": b64(32),
     "spend": {"coin": {...}, "proof": {...}}, "deposited_at": int, ...}

``coin`` and ``proof`` are the shared encodings of docs/api.md; other body fields are allowed
and ignored. :func:`transcript_body` builds one.

A swapped coin's transcript (``"kind": "swap"``, docs/protocol.md §9.3) names no merchant (it
reads as ``bank:swap``), carries ``swapped_at`` for ``deposited_at`` and the customer's unsigned
swap request body as ``request``: that body is authenticated by its hash, the swap's ``preq``
(``Hash("ecash-tpm/v1/swap", body)``), which the coin's spend proof signs.
"""

from __future__ import annotations

import hmac
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    KEYSET_ID_LEN,
    PREQ_LEN,
    SIGMA_LEN,
    OpeningProof,
    RandomizedCredential,
    SpendProof,
    verify_opening,
    verify_spend_proof,
)
from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import PAYMENT_REQUEST_KIND, TRANSCRIPT_KIND, Coin, PaymentRequest
from ecash_tpm.protocol.errors import (
    DifferentCoinsError,
    EvidenceCoinSignatureError,
    EvidenceInvalidError,
    FirstDepositLateError,
    NotDoubleSpendError,
    OpeningsDisagreeError,
    TranscriptMalformedError,
)
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.protocol.redeem import REDEEM_REQUEST_KIND, RedeemRequest
from ecash_tpm.protocol.spend import verify_coin_signature
from ecash_tpm.protocol.swap import SWAP_SPENDER, SWAP_TRANSCRIPT_KIND, SwapRequest

#: What a transcript's spend answered: a merchant's payment request, the bank's redeem request
#: (§9.4) or the customer's swap request (§9.3).
SpentRequest = PaymentRequest | RedeemRequest | SwapRequest

EVIDENCE_KIND = "double-spend-evidence"
REGISTRATION_KIND = "member-registration"


def _b64(value: object, what: str, length: int | None = None) -> bytes:
    if not isinstance(value, str):
        raise TranscriptMalformedError(f"{what} must be a base64url string", detail={"field": what})
    try:
        data = b64u_decode(value)
    except EcashError as exc:
        raise TranscriptMalformedError(f"{what} is not base64url", detail={"field": what}) from exc
    if length is not None and len(data) != length:
        raise TranscriptMalformedError(
            f"{what} must be {length} bytes", detail={"field": what, "length": len(data)}
        )
    return data


def _field(data: Mapping[str, Any], key: str, what: str) -> Any:
    if not isinstance(data, Mapping) or key not in data:
        raise TranscriptMalformedError(f"{what} lacks {key!r}", detail={"field": key})
    return data[key]


@dataclass(frozen=True)
class Transcript:
    """The parts of a deposit transcript that opening and evidence checks need."""

    transcript_id: int | str
    merchant_id: str
    preq: bytes
    keyset_id: bytes
    epoch: int
    sigma: bytes
    coin: RandomizedCredential
    proof: SpendProof
    #: when the bank booked (or refused) this spend, by its own clock (bank-signed)
    deposited_at: int | None = None
    #: the whole coin (blind signature included), when the transcript carries a full coin
    full_coin: Coin | None = None
    #: the request the spend answered (its body hashes to ``preq``), when carried: a
    #: merchant's payment request, the bank's redeem request (§9.4) or a swap request (§9.3)
    request: SpentRequest | None = None
    #: the bank-signed keyset descriptor of the coin, when carried (blind-signature check)
    keyset_doc: Mapping[str, Any] | None = None
    #: the signed request document as carried (its signature is checked by
    #: :func:`check_request_signatures`)
    request_doc: Mapping[str, Any] | None = None

    def verify_spend(self, hop: Point) -> None:
        """The public spend-proof check (``daa.spend_proof_invalid`` if it fails)."""
        verify_spend_proof(
            self.proof,
            hop=hop,
            preq=self.preq,
            keyset_id=self.keyset_id,
            epoch=self.epoch,
            sigma=self.sigma,
            coin=self.coin,
        )


def parse_transcript(body: Mapping[str, Any]) -> Transcript:
    """Parse a transcript body (see the module docstring); ``evidence.transcript_malformed``."""
    tid = _field(body, "transcript_id", "transcript")
    if isinstance(tid, bool) or not isinstance(tid, int | str):
        raise TranscriptMalformedError("transcript_id must be an integer or string")
    swap = isinstance(body, Mapping) and body.get("kind") == SWAP_TRANSCRIPT_KIND
    if swap:  # §9.3: a swap's transcript names no merchant and is booked at swapped_at
        merchant = body.get("merchant_id", SWAP_SPENDER)
        if merchant != SWAP_SPENDER:
            raise TranscriptMalformedError("a swap's transcript names another spender")
        body = {**body, "deposited_at": body.get("swapped_at")}
    else:
        merchant = _field(body, "merchant_id", "transcript")
    if not isinstance(merchant, str):
        raise TranscriptMalformedError("merchant_id must be a string")
    preq = _b64(_field(body, "preq", "transcript"), "preq", PREQ_LEN)
    spend = _field(body, "spend", "transcript")
    coin = _field(spend, "coin", "spend")
    epoch = _field(coin, "epoch", "coin")
    if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 <= epoch < 2**32:
        raise TranscriptMalformedError("coin epoch must be an integer in [0, 2^32)")
    try:
        cred = RandomizedCredential.from_dict(_field(coin, "credential", "coin"))
        proof = SpendProof.from_dict(_field(spend, "proof", "spend"))
    except EcashError as exc:
        raise TranscriptMalformedError(
            f"coin credential or spend proof is malformed: {exc.message}",
            detail={"cause": exc.code},
        ) from exc
    deposited_at = body.get("deposited_at")
    if deposited_at is not None and (
        isinstance(deposited_at, bool) or not isinstance(deposited_at, int)
    ):
        raise TranscriptMalformedError("deposited_at must be an integer")
    sigma = _b64(_field(coin, "sigma", "coin"), "sigma", SIGMA_LEN)
    request_doc = body.get("request")
    request = _swap_request(request_doc, preq, sigma) if swap else _request(request_doc, preq)
    return Transcript(
        transcript_id=tid,
        merchant_id=merchant,
        preq=preq,
        keyset_id=_b64(_field(coin, "keyset_id", "coin"), "keyset_id", KEYSET_ID_LEN),
        epoch=epoch,
        sigma=sigma,
        coin=cred,
        proof=proof,
        deposited_at=deposited_at,
        full_coin=_full_coin(coin),
        request=request,
        keyset_doc=body["keyset"] if isinstance(body.get("keyset"), Mapping) else None,
        # a swap request is no signed document: its hash is the preq the spend proof signs
        request_doc=None if swap or not isinstance(request_doc, Mapping) else request_doc,
    )


def _full_coin(coin: Mapping[str, Any]) -> Coin | None:
    """The coin with its blind signature, or None for a transcript that carries only the
    credential (older tests and tools)."""
    if "signature" not in coin:
        return None
    try:
        return Coin.from_dict(coin)
    except EcashError as exc:
        raise TranscriptMalformedError(
            f"coin is malformed: {exc.message}", detail={"cause": exc.code}
        ) from exc


def _request(doc: Any, preq: bytes) -> PaymentRequest | RedeemRequest | None:
    """The signed request inside a transcript (a payment request, or a redeem request for a
    coin redeemed into an account, §9.4); its body must hash to ``preq``."""
    if doc is None:
        return None
    body = doc.get("body") if isinstance(doc, Mapping) else None
    if not isinstance(body, Mapping):
        raise TranscriptMalformedError("the transcript's request is not a signed object")
    req: PaymentRequest | RedeemRequest
    try:
        if doc.get("kind") == REDEEM_REQUEST_KIND:
            req = RedeemRequest.from_body(body)
        else:
            req = PaymentRequest.from_body(body)
    except EcashError as exc:
        raise TranscriptMalformedError(
            f"the transcript's request is malformed: {exc.message}", detail={"cause": exc.code}
        ) from exc
    if not hmac.compare_digest(req.preq, preq):
        raise TranscriptMalformedError("the transcript's request does not hash to its preq")
    return req


def _swap_request(doc: Any, preq: bytes, sigma: bytes) -> SwapRequest:
    """§9.3: a swap transcript's request is the swap request body itself (required: it carries
    the deadline 12.1 checks); it must hash to ``preq`` under the swap's tag and name the
    transcript's serial among its inputs."""
    try:
        req = SwapRequest.from_body(doc)
    except EcashError as exc:
        raise TranscriptMalformedError(
            f"the transcript's swap request is malformed: {exc.message}",
            detail={"cause": exc.code},
        ) from exc
    if not hmac.compare_digest(req.preq, preq):
        raise TranscriptMalformedError("the transcript's swap request does not hash to its preq")
    if sigma not in req.inputs:
        raise TranscriptMalformedError("the transcript's swap request does not spend its serial")
    return req


def transcript_body(
    *,
    transcript_id: int | str,
    merchant_id: str,
    preq: bytes,
    spend: Mapping[str, Any],
    deposited_at: int,
    **extra: Any,
) -> dict[str, Any]:
    """The body the bank signs (kind ``deposit-transcript``) for each recorded spend."""
    body = {
        "transcript_id": transcript_id,
        "merchant_id": merchant_id,
        "preq": b64u_encode(preq),
        "spend": dict(spend),
        "deposited_at": int(deposited_at),
        **extra,
    }
    parse_transcript(body)  # refuse to sign something the supervision cannot read
    return body


def check_double_spend(first: Transcript, second: Transcript, hop: Point) -> bytes:
    """Require one serial, two different requests, one and the same coin, a first deposit the
    bank booked before the second request's deadline, two valid spend proofs; return sigma
    (docs/protocol.md 12.1)."""
    if not hmac.compare_digest(first.sigma, second.sigma):
        raise NotDoubleSpendError("the transcripts are for different serials")
    if hmac.compare_digest(first.preq, second.preq):
        raise NotDoubleSpendError(
            "both transcripts spend the serial for the same payment request (a replay by the "
            "payee, not a second spend by the customer)"
        )
    _check_same_coin(first, second)
    _check_first_before_deadline(first, second)
    for t in (first, second):
        t.verify_spend(hop)
    return first.sigma


def check_coin_signatures(transcripts: Sequence[Transcript], bank_key: x509.Certificate) -> None:
    """12.1: where a transcript carries its keyset descriptor, the descriptor is signed by the
    (already validated) bank certificate and the coin's blind signature verifies under it."""
    for t in transcripts:
        if t.keyset_doc is None:
            continue
        try:
            if t.full_coin is None:
                raise TranscriptMalformedError("a transcript with a keyset lacks the full coin")
            verify_coin_signature(t.full_coin, Keyset.from_signed(t.keyset_doc, bank_key))
        except EcashError as exc:
            raise EvidenceCoinSignatureError(
                f"the coin's blind signature does not verify: {exc.message}",
                detail={"transcript_id": t.transcript_id, "cause": exc.code},
            ) from exc


def check_request_signatures(transcripts: Sequence[Transcript], bank_key: x509.Certificate) -> None:
    """12.1 (§9.4): a transcript's request is either a merchant's signed ``payment-request``
    (the bank checked the merchant's signature at deposit, §9 step 2) or a ``redeem-request``
    signed by the (already validated) bank certificate itself: a redeem request the bank did
    not sign cannot stand in for a second spend."""
    for t in transcripts:
        doc = t.request_doc
        if doc is None:
            continue
        kind = doc.get("kind")
        try:
            if kind == REDEEM_REQUEST_KIND:
                RedeemRequest.from_signed_by(doc, bank_key)
            elif kind != PAYMENT_REQUEST_KIND:
                raise TranscriptMalformedError(f"a transcript's request has kind {kind!r}")
        except EcashError as exc:
            raise EvidenceInvalidError(
                f"a transcript's request is not signed as its kind requires: {exc.message}",
                detail={"transcript_id": t.transcript_id, "cause": exc.code},
            ) from exc


def _check_same_coin(first: Transcript, second: Transcript) -> None:
    """12.1: one coin, not two coins sharing a serial (keyset, epoch, credential, and where
    carried the blind signature must all agree)."""
    same = (
        first.keyset_id == second.keyset_id
        and first.epoch == second.epoch
        and first.coin == second.coin
        and (first.full_coin is None) == (second.full_coin is None)
        and first.full_coin == second.full_coin
    )
    if not same:
        raise DifferentCoinsError("the two transcripts do not carry the same coin")


def _check_first_before_deadline(first: Transcript, second: Transcript) -> None:
    """12.1 (issue 10): the first deposit must be bank-signed no later than the second
    request's deadline. A wallet frees a sent coin only once the bank signs it unspent after
    the deadline; a first deposit booked after the second request expired cannot have been
    known to the customer and is no evidence of a double spend."""
    if second.request is None or first.deposited_at is None:
        raise FirstDepositLateError(
            "the evidence lacks the first deposit's time or the second request's deadline",
            detail={"transcript_id": second.transcript_id},
        )
    if first.deposited_at > second.request.deadline:
        raise FirstDepositLateError(
            "the first deposit was booked after the second request's deadline",
            detail={
                "deposited_at": first.deposited_at,
                "deadline": second.request.deadline,
            },
        )


@dataclass(frozen=True)
class OpeningRecord:
    """One opened spend: the ciphertext, the T0 inside, and the Chaum-Pedersen proof."""

    c1: Point
    c2: Point
    t0: Point
    proof: OpeningProof
    transcript_id: int | str | None = None

    def verify(self, hop: Point) -> None:
        verify_opening(hop, self.c1, self.c2, self.t0, self.proof)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "c1": b64u_encode(self.c1.encode()),
            "c2": b64u_encode(self.c2.encode()),
            "t0": b64u_encode(self.t0.encode()),
            "proof": self.proof.to_dict(),
        }
        if self.transcript_id is not None:
            out["transcript_id"] = self.transcript_id
        return out

    @classmethod
    def from_dict(cls, data: Any) -> OpeningRecord:
        if not isinstance(data, Mapping):
            raise EvidenceInvalidError("an opening must be an object")
        try:
            return cls(
                c1=Point.decode(b64u_decode(data["c1"])),
                c2=Point.decode(b64u_decode(data["c2"])),
                t0=Point.decode(b64u_decode(data["t0"])),
                proof=OpeningProof.from_dict(data["proof"]),
                transcript_id=data.get("transcript_id"),
            )
        except (KeyError, TypeError) as exc:
            raise EvidenceInvalidError(f"opening lacks a field: {exc}") from None
        except EcashError as exc:
            raise EvidenceInvalidError(
                f"opening is malformed: {exc.message}", detail={"cause": exc.code}
            ) from None


@dataclass(frozen=True)
class VerifiedEvidence:
    """What a verified double-spend bundle establishes."""

    member_id: str
    t0: Point
    sigma: bytes
    transcript_ids: tuple[int | str, ...]


def transcript_bodies(
    transcripts: Sequence[Mapping[str, Any]],
    *,
    bank_cert: x509.Certificate | None,
) -> list[dict[str, Any]]:
    """Bodies of signed transcripts, verifying the bank's signature when its cert is given.

    The certificate must already be validated (role ``bank``) by the caller.
    """
    out = []
    for doc in transcripts:
        if bank_cert is not None:
            out.append(verify_object(doc, bank_cert, TRANSCRIPT_KIND))
        else:
            body = doc.get("body") if isinstance(doc, Mapping) else None
            if not isinstance(body, dict) or doc.get("kind") != TRANSCRIPT_KIND:
                raise TranscriptMalformedError("a transcript must be a deposit-transcript object")
            out.append(body)
    return out


def verify_evidence_body(
    body: Mapping[str, Any],
    hop: Point,
    *,
    bank_cert: x509.Certificate | None = None,
) -> VerifiedEvidence:
    """Re-check an evidence bundle body from scratch (what the issuer does before revoking).

    Both transcripts must be a double spend (:func:`check_double_spend`), each opening must be
    of that transcript's (c1, c2), verify under ``hop``, and name the bundle's T0.
    """
    if not isinstance(body, Mapping):
        raise EvidenceInvalidError("evidence body must be an object")
    member_id = body.get("member_id")
    if not isinstance(member_id, str) or not member_id:
        raise EvidenceInvalidError("evidence names no member_id")
    try:
        t0 = Point.decode(b64u_decode(body.get("t0", "")))
    except EcashError as exc:
        raise EvidenceInvalidError("evidence t0 is not a point") from exc
    docs = body.get("transcripts")
    openings = body.get("openings")
    if not isinstance(docs, list) or len(docs) != 2:
        raise EvidenceInvalidError("evidence needs exactly two transcripts")
    if not isinstance(openings, list) or len(openings) != 2:
        raise EvidenceInvalidError("evidence needs exactly two openings")
    parsed = [parse_transcript(b) for b in transcript_bodies(docs, bank_cert=bank_cert)]
    sigma = check_double_spend(parsed[0], parsed[1], hop)
    if bank_cert is not None:
        check_coin_signatures(parsed, bank_cert)
        check_request_signatures(parsed, bank_cert)
    for t, raw in zip(parsed, openings, strict=True):
        op = OpeningRecord.from_dict(raw)
        if op.c1 != t.proof.c1 or op.c2 != t.proof.c2:
            raise EvidenceInvalidError(
                "an opening is not of its transcript's ciphertext",
                detail={"transcript_id": t.transcript_id},
            )
        op.verify(hop)
        if op.t0 != t0:
            raise OpeningsDisagreeError(
                "the openings name different T0s", detail={"transcript_id": t.transcript_id}
            )
    return VerifiedEvidence(member_id, t0, sigma, tuple(t.transcript_id for t in parsed))
