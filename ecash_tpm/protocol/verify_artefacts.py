"""Public checks of the artefacts of :mod:`ecash_tpm.protocol.artefacts` (docs/protocol.md §15.1):
what anyone holding the central-bank root can verify about a deposit transcript, a bank
receipt, an opening or a double-spend bundle, without asking any party.

Each ``verify_*`` function is pure, returns a :class:`Verified` (what was proven, the facts it
rests on, what could not be checked) and raises a ``verify.*`` error whose ``detail`` names
the failed ``check`` and the ``cause`` (the code of the underlying check): ``verify.format``,
``verify.chain``, ``verify.bad_signature``, ``verify.tampered``, ``verify.coin``,
``verify.opening``, ``verify.evidence``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from cryptography import x509

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import key_id, verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import (
    certificate_fingerprint,
    common_name,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.protocol.artefacts import (
    EVIDENCE_FORMAT,
    OPENING_FORMAT,
    RECEIPT_FORMAT,
    TRANSCRIPT_FORMAT,
    is_redeem_transcript,
    is_swap_transcript,
    parse_artefact,
    request_merchants,
)
from ecash_tpm.protocol.certified import (
    ISSUER_EPOCH_KIND,
    KEYSET_LIST_KIND,
    CertifiedKeysetList,
    IssuerEpochCertificate,
)
from ecash_tpm.protocol.coins import (
    PAYMENT_REQUEST_KIND,
    RECEIPT_KIND,
    TRANSCRIPT_KIND,
    Coin,
    PaymentRequest,
    Spend,
    parse_request_body,
)
from ecash_tpm.protocol.errors import (
    VerifyBadSignatureError,
    VerifyChainError,
    VerifyCoinError,
    VerifyError,
    VerifyEvidenceError,
    VerifyFormatError,
    VerifyOpeningError,
    VerifyTamperedError,
)
from ecash_tpm.protocol.evidence import (
    EVIDENCE_KIND,
    OpeningRecord,
    Transcript,
    parse_transcript,
    verify_evidence_body,
)
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.protocol.payments import ReceiptBody
from ecash_tpm.protocol.redeem import REDEEM_REQUEST_KIND, REDEEM_SPENDER, RedeemRequest
from ecash_tpm.protocol.registry import member_id_for_t0
from ecash_tpm.protocol.spend import PublicCredentialCheck as _PairingCheck
from ecash_tpm.protocol.spend import verify_spend
from ecash_tpm.protocol.swap import SWAP_SPENDER, SwapRequest
from ecash_tpm.protocol.verify_kinds import request_facts, spender, transcript_sentences

__all__ = [
    "CREDENTIAL_NOT_CHECKED",
    "PublicCredentialCheck",
    "Verified",
    "verify_artefact",
    "verify_evidence",
    "verify_opening",
    "verify_receipt",
    "verify_transcript",
]

#: §7.1 step 4 without the issuer secret: given (coin, certified epoch key) pairs, raise on a bad
#: credential and return True when checked, or return None when no public check is available.
PublicCredentialCheck = Callable[[Sequence[tuple[Coin, IssuerEpochCertificate]]], bool | None]

CREDENTIAL_NOT_CHECKED = "credential: not checked (no public issuer G2 key)"


def _public_credential_check(items: Sequence[tuple[Coin, IssuerEpochCertificate]]) -> bool:
    """§7.1 step 4 with public data (§7.4): the pairing check of each coin under the G2 keys
    X2/Y2 of its epoch certificate. False (not checked) when a certificate predates issue 14
    and has no G2 keys; a bad credential raises ``daa.credential_invalid``."""
    keys = {cert.epoch: cert.public for _, cert in items}
    check = _PairingCheck(keys.get)
    coins = [coin for coin, _ in items]
    if not check.batch(coins):
        for coin in coins:
            check.check(coin)
    return not check.unverified


@dataclass(frozen=True)
class Verified:
    """What a verified artefact establishes."""

    format: str
    #: one sentence per proven statement, in the order checked
    proven: tuple[str, ...]
    #: the values those statements are about (names, amounts, serials, times)
    facts: Mapping[str, Any]
    #: what the artefact cannot show (said, so that nobody reads more into it)
    not_checked: tuple[str, ...] = field(default=())

    def to_dict(self) -> dict[str, Any]:
        return {
            "format": self.format,
            "proven": list(self.proven),
            "facts": dict(self.facts),
            "not_checked": list(self.not_checked),
        }


@dataclass(frozen=True)
class _Ctx:
    root: x509.Certificate
    at: dt.datetime
    credential_check: PublicCredentialCheck
    #: the issuer the caller requires (``--issuer``), if any
    issuer: str | None = None


def _ctx(
    root: x509.Certificate | bytes | str,
    now: int | None,
    check: PublicCredentialCheck | None,
    issuer: str | None = None,
) -> _Ctx:
    try:
        root_cert = load_certificate(root)
    except EcashError as exc:
        raise _wrap(VerifyChainError, "root certificate", exc) from exc
    try:
        at = dt.datetime.now(dt.UTC) if now is None else dt.datetime.fromtimestamp(now, dt.UTC)
    except (OverflowError, ValueError, OSError) as exc:
        raise VerifyFormatError("the time to check at is out of range") from exc
    return _Ctx(root_cert, at, _public_credential_check if check is None else check, issuer)


def _wrap(err: type[VerifyError], check: str, exc: EcashError) -> VerifyError:
    return err(f"{check}: {exc.message}", detail={"check": check, "cause": exc.code})


# --- building blocks -------------------------------------------------------------------------


def _party(pem: Any, ctx: _Ctx, role: str, check: str, name: str | None = None) -> x509.Certificate:
    """A certificate for ``role`` (and name) issued by the root, valid now (§13.2: the CRL is
    not part of the file, so revocation after signing is not checked here)."""
    if not isinstance(pem, str):
        raise VerifyFormatError(f"{check} must be a PEM string", detail={"check": check})
    try:
        verify_party_certificate(pem, ctx.root, role=role, name=name, now=ctx.at)
        return load_certificate(pem)
    except EcashError as exc:
        raise _wrap(VerifyChainError, check, exc) from exc


def _signed(doc: Any, cert: x509.Certificate, kind: str, check: str) -> dict[str, Any]:
    """§1.5: the body of ``doc`` signed by ``cert``'s key as ``kind``; the unsigned ``signer``
    hint must name that certificate or key (an edited hint is a tampered copy)."""
    try:
        body = verify_object(doc, cert, kind)
    except EcashError as exc:
        raise _wrap(VerifyBadSignatureError, check, exc) from exc
    if doc["signer"] not in (certificate_fingerprint(cert), key_id(cert)):
        raise VerifyTamperedError(
            f"{check}: the signer hint does not name the signing certificate",
            detail={"check": check},
        )
    return body


def _point(value: Any, check: str) -> Point:
    try:
        if not isinstance(value, str):
            raise VerifyFormatError(f"{check} must be a base64url point")
        return Point.decode(b64u_decode(value))
    except VerifyError:
        raise
    except EcashError as exc:
        raise _wrap(VerifyFormatError, check, exc) from exc


def _request(doc: Any, pem: Any, ctx: _Ctx, check: str) -> PaymentRequest:
    """§6: a payment request signed by the merchant it names (deadline not enforced: the
    request is checked long after it was paid)."""
    body = doc.get("body") if isinstance(doc, Mapping) else None
    name = body.get("merchant_id") if isinstance(body, Mapping) else None
    if not isinstance(name, str):
        raise VerifyFormatError(f"{check} names no merchant", detail={"check": check})
    cert = _party(pem, ctx, "merchant", f"{check}: merchant certificate", name=name)
    signed = _signed(doc, cert, PAYMENT_REQUEST_KIND, check)
    try:
        return parse_request_body(signed)
    except EcashError as exc:
        raise _wrap(VerifyFormatError, check, exc) from exc


def _redeem_request(doc: Any, pem: Any, bank: _Bank, check: str) -> RedeemRequest:
    """§9.4: a redeem request is signed by the bank itself (as ``check_request_signatures``
    of §12.1 checks it), names that bank, and has no merchant certificate."""
    if pem is not None:
        raise VerifyFormatError(
            f"{check}: a redeem request comes with no merchant certificate", detail={"check": check}
        )
    body = _signed(doc, bank.cert, REDEEM_REQUEST_KIND, check)
    try:
        req = RedeemRequest.from_body(body)
    except EcashError as exc:
        raise _wrap(VerifyFormatError, check, exc) from exc
    if req.bank != bank.name:
        raise VerifyTamperedError(
            f"{check}: the redeem request names another bank", detail={"check": check}
        )
    return req


def _swap_request(doc: Any, pem: Any, bank: _Bank, check: str) -> SwapRequest:
    """§9.3: a swap request is the customer's unsigned body (its hash is the ``preq`` the spend
    proof signs, which ``parse_transcript`` checked), names the bank, and has no merchant
    certificate."""
    if pem is not None:
        raise VerifyFormatError(
            f"{check}: a swap request comes with no merchant certificate", detail={"check": check}
        )
    try:
        req = SwapRequest.from_body(doc)
    except EcashError as exc:
        raise _wrap(VerifyFormatError, check, exc) from exc
    if req.bank != bank.name:
        raise VerifyTamperedError(
            f"{check}: the swap request names another bank", detail={"check": check}
        )
    return req


def _keyset_list(doc: Any, ctx: _Ctx, bank: str) -> CertifiedKeysetList:
    """§4.1: the central bank's list of the bank's keysets."""
    body = _signed(doc, ctx.root, KEYSET_LIST_KIND, "keyset list")
    try:
        listed = CertifiedKeysetList.from_body(body)
    except EcashError as exc:
        raise _wrap(VerifyFormatError, "keyset list", exc) from exc
    if listed.bank != bank:
        raise VerifyCoinError(
            "keyset list: certified for another bank",
            detail={"check": "keyset list", "bank": bank, "listed": listed.bank},
        )
    return listed


def _issuer_epoch(doc: Any, named: Any, ctx: _Ctx) -> IssuerEpochCertificate:
    """§3.6: the central bank's certificate of an issuer epoch key, of the issuer the file names
    (and ``--issuer`` requires): the root certifies every issuer's keys, and neither the bank
    certificate nor the keyset list names an issuer, so the epoch number alone binds nothing."""
    check = "issuer epoch key"
    if not isinstance(named, str) or not named:
        raise VerifyFormatError("issuer must be the issuer's name", detail={"check": "issuer"})
    body = _signed(doc, ctx.root, ISSUER_EPOCH_KIND, check)
    try:
        cert = IssuerEpochCertificate.from_body(body)
    except EcashError as exc:
        raise _wrap(VerifyFormatError, check, exc) from exc
    if cert.issuer != named:
        raise VerifyTamperedError(
            f"{check}: certified for another issuer than the file names",
            detail={"check": check, "issuer": named[:64], "certified": cert.issuer},
        )
    if ctx.issuer is not None and cert.issuer != ctx.issuer:
        raise VerifyCoinError(
            f"{check}: the coin's epoch key is issuer {cert.issuer}'s, not {ctx.issuer}'s",
            detail={"check": "issuer", "required": ctx.issuer, "issuer": cert.issuer},
        )
    return cert


@dataclass(frozen=True)
class _Bank:
    cert: x509.Certificate
    name: str


def _bank(pem: Any, ctx: _Ctx) -> _Bank:
    cert = _party(pem, ctx, "bank", "bank certificate")
    return _Bank(cert, common_name(cert))


def _parse_transcript(body: Mapping[str, Any], check: str) -> Transcript:
    try:
        t = parse_transcript(body)
    except EcashError as exc:
        raise _wrap(VerifyFormatError, check, exc) from exc
    if t.request is None or t.keyset_doc is None or t.full_coin is None or t.deposited_at is None:
        raise VerifyFormatError(
            f"{check}: lacks the request, keyset descriptor, full coin or deposit time",
            detail={"check": check},
        )
    return t


def _same(body: Mapping[str, Any], expected: Mapping[str, Any], check: str) -> None:
    """Fields a signed body repeats must agree with what they repeat."""
    for key, value in expected.items():
        if key in body and body[key] != value:
            raise VerifyTamperedError(
                f"{check}: {key} disagrees with the signed data it repeats",
                detail={"check": check, "field": key},
            )


@dataclass(frozen=True)
class _Coin:
    """A checked transcript and the facts shown about it."""

    transcript: Transcript
    keyset: Keyset
    request: PaymentRequest | RedeemRequest | SwapRequest
    facts: dict[str, Any]


def _check_transcript(
    doc: Any,
    *,
    bank: _Bank,
    merchant_pem: Any,
    listed: CertifiedKeysetList,
    epoch: IssuerEpochCertificate,
    hop: Point,
    ctx: _Ctx,
    check: str = "transcript",
) -> _Coin:
    """A bank-signed transcript: signature, the merchant's request (or the bank's own redeem
    request, §9.4), the coin's keyset (bank-signed, on the central bank's list), the deposit in
    its window and §7.1 steps 1-3 and 5 (step 4, the credential, is
    :data:`PublicCredentialCheck`)."""
    body = _signed(doc, bank.cert, TRANSCRIPT_KIND, check)
    t = _parse_transcript(body, check)
    req: PaymentRequest | RedeemRequest | SwapRequest
    if is_swap_transcript(doc):  # §9.3: no merchant; parse_transcript named it bank:swap
        req = _swap_request(body["request"], merchant_pem, bank, f"{check}: swap request")
        if t.merchant_id != SWAP_SPENDER:
            raise VerifyTamperedError(
                f"{check}: a swap transcript names a merchant", detail={"check": check}
            )
        _same(body, {"request_id": req.request_id}, check)
    elif is_redeem_transcript(doc):
        req = _redeem_request(body["request"], merchant_pem, bank, f"{check}: redeem request")
        if t.merchant_id != REDEEM_SPENDER:
            raise VerifyTamperedError(
                f"{check}: a redeem transcript names a merchant", detail={"check": check}
            )
        _same(body, {"account_id": req.account_id, "deposit_id": req.request_id}, check)
    else:
        req = _request(body["request"], merchant_pem, ctx, f"{check}: payment request")
        if req.merchant_id != t.merchant_id:
            raise VerifyTamperedError(
                f"{check}: the request is another merchant's", detail={"check": check}
            )
    try:
        keyset = Keyset.from_signed(t.keyset_doc or {}, bank.cert)
    except EcashError as exc:
        raise _wrap(VerifyCoinError, f"{check}: keyset descriptor", exc) from exc
    if listed.deposit_until.get(keyset.keyset_id) != keyset.deposit_until:
        raise VerifyCoinError(
            f"{check}: the keyset is not on the central bank's list for the bank",
            detail={"check": "keyset list", "keyset_id": b64u_encode(keyset.keyset_id)},
        )
    if epoch.epoch != t.epoch:
        raise VerifyCoinError(
            f"{check}: the coin's epoch has no certified issuer key here",
            detail={"check": "issuer epoch key", "coin": t.epoch, "certified": epoch.epoch},
        )
    coin = t.full_coin
    if coin is None:  # _parse_transcript refused that; keeps the type checker informed
        raise VerifyFormatError(f"{check}: no full coin")
    _same(
        body,
        {
            "sigma": b64u_encode(coin.sigma),
            "keyset_id": b64u_encode(coin.keyset_id),
            "epoch": coin.epoch,
            "value": keyset.value,
            "currency": keyset.currency,
        },
        check,
    )
    try:  # §7.1 steps 1-3 and 5 at the bank's deposit time; step 4 below
        verify_spend(
            Spend(coin, t.proof),
            keyset,
            hop=hop,
            preq=t.preq,
            # a swap request names no currency: the coin's keyset's (§9.3, the bank's own)
            currency=keyset.currency if isinstance(req, SwapRequest) else req.currency,
            now=int(t.deposited_at or 0),
        )
    except EcashError as exc:
        raise _wrap(VerifyCoinError, f"{check}: spend (section 7.1)", exc) from exc
    facts = {
        "transcript_id": t.transcript_id,
        "bank": bank.name,
        "merchant_id": t.merchant_id,
        "deposit_id": body.get("deposit_id"),
        # a refused attempt has no deposit_id, or the bank named it attempt-<report> (the direct
        # deposit path leaves the deposit id it would have used in the attempt)
        "accepted": body.get("deposit_id") is not None
        and not str(t.transcript_id).startswith("attempt-"),
        **request_facts(t, req),
        "serial": b64u_encode(coin.sigma),
        "keyset_id": b64u_encode(coin.keyset_id),
        "value": keyset.value,
        "currency": keyset.currency,
        "epoch": t.epoch,
        "deposited_at": t.deposited_at,
        "deposit_until": keyset.deposit_until,
        "preq": b64u_encode(t.preq),
        # a swap's inputs are worth what their keysets say (the request names no amount)
        "request_amount": keyset.value if isinstance(req, SwapRequest) else req.amount,
        "request_deadline": req.deadline,
        "issuer": epoch.issuer,
    }
    return _Coin(t, keyset, req, facts)


def _credential(coins: Sequence[_Coin], epoch: IssuerEpochCertificate, ctx: _Ctx) -> str | None:
    """§7.1 step 4 through the pluggable public check; the sentence for ``not_checked``."""
    items = [(c.transcript.full_coin, epoch) for c in coins if c.transcript.full_coin]
    try:
        done = ctx.credential_check(items)
    except EcashError as exc:
        raise _wrap(VerifyCoinError, "credential (section 7.1 step 4)", exc) from exc
    return None if done else CREDENTIAL_NOT_CHECKED


_REVOCATION = "certificate revocation after signing (no CRL in the file)"
_HOP = "that Hop is the supervision department's key (Hop is published unsigned)"
_ISSUER = "that {issuer} is the issuer you rely on (not required: pass --issuer NAME)"


# --- the four artefacts ----------------------------------------------------------------------


def _issuer_sentences(epoch: IssuerEpochCertificate, ctx: _Ctx) -> tuple[str, str | None]:
    """The proven sentence about the epoch key, and what stays open without ``--issuer``."""
    proven = f"the central bank certified issuer {epoch.issuer}'s key for the coin's epoch " + (
        f"{epoch.epoch}, and {epoch.issuer} is the issuer required"
        if ctx.issuer is not None
        else str(epoch.epoch)
    )
    open_ = None if ctx.issuer is not None else _ISSUER.format(issuer=epoch.issuer)
    return proven, open_


def verify_transcript(
    doc: Any,
    root: x509.Certificate | bytes | str,
    *,
    now: int | None = None,
    credential_check: PublicCredentialCheck | None = None,
    issuer: str | None = None,
) -> Verified:
    """A deposit transcript (§15.1): the bank recorded this spend of this coin for this request
    (a merchant's payment request, or its own redeem request, §9.4); ``issuer``: the issuer
    whose epoch key the coin must be under."""
    ctx = _ctx(root, now, credential_check, issuer)
    _, art = parse_artefact(doc, TRANSCRIPT_FORMAT)
    bank = _bank(art["bank_cert"], ctx)
    listed = _keyset_list(art["keyset_list"], ctx, bank.name)
    epoch = _issuer_epoch(art["issuer_epoch"], art["issuer"], ctx)
    hop = _point(art["opener_public"], "opener_public")
    c = _check_transcript(
        art["transcript"],
        bank=bank,
        merchant_pem=art["merchant_cert"],
        listed=listed,
        epoch=epoch,
        hop=hop,
        ctx=ctx,
    )
    f = c.facts
    booked, refused, request = transcript_sentences(f, bank.name)
    proven = [
        f"bank {bank.name} (certificate from the root) signed transcript {f['transcript_id']}"
        + (booked if f["accepted"] else refused),
        request,
        f"the coin {f['serial']} ({f['value']} {f['currency']}) carries bank {bank.name}'s blind "
        f"signature under keyset {f['keyset_id']}, which the central bank lists for that bank",
        f"it was presented at {f['deposited_at']}, inside the keyset's deposit window (until "
        f"{f['deposit_until']})",
        "the spend proof answers this request under the opener key: made with the "
        "(TPM-held) key the coin's credential is bound to",
    ]
    certified, open_issuer = _issuer_sentences(epoch, ctx)
    proven.append(certified)
    missing = [_credential([c], epoch, ctx), open_issuer, _HOP, _REVOCATION]
    return Verified(
        TRANSCRIPT_FORMAT,
        tuple(proven),
        {**f, "opener_public": art["opener_public"]},
        tuple(m for m in missing if m),
    )


def verify_receipt(
    doc: Any, root: x509.Certificate | bytes | str, *, now: int | None = None
) -> Verified:
    """A deposit receipt (§15.1): the bank credited the merchant for this payment request."""
    ctx = _ctx(root, now, None)
    _, art = parse_artefact(doc, RECEIPT_FORMAT)
    bank = _bank(art["bank_cert"], ctx)
    _signed(art["receipt"], bank.cert, RECEIPT_KIND, "receipt")
    try:
        rb = ReceiptBody.from_signed(
            art["receipt"], bank.cert, ctx.root, now=int(ctx.at.timestamp())
        )
    except EcashError as exc:
        raise _wrap(VerifyFormatError, "receipt", exc) from exc
    req = _request(art["request"], art["merchant_cert"], ctx, "payment request")
    mismatches = [
        name
        for name, ok in (
            ("preq", rb.preq == req.preq),
            ("merchant_id", rb.merchant_id == req.merchant_id),
            ("amount", rb.amount == req.amount),
            ("currency", rb.currency == req.currency),
            ("serials", len(rb.serials) == len(set(rb.serials)) > 0),
        )
        if not ok
    ]
    if mismatches:
        raise VerifyTamperedError(
            "receipt: it is not for this payment request",
            detail={"check": "receipt", "fields": mismatches},
        )
    serials = [b64u_encode(s) for s in rb.serials]
    facts = {
        "bank": bank.name,
        "deposit_id": rb.deposit_id,
        "merchant_id": rb.merchant_id,
        "amount": rb.amount,
        "currency": rb.currency,
        "serials": serials,
        "transcript_ids": list(rb.transcript_ids),
        "deposited_at": rb.deposited_at,
        "preq": b64u_encode(rb.preq),
        "request_deadline": req.deadline,
    }
    proven = (
        f"bank {bank.name} (certificate from the root) signed receipt {rb.deposit_id}",
        f"it credits merchant {rb.merchant_id} with {rb.amount} {rb.currency} at "
        f"{rb.deposited_at} for {len(serials)} coins (serials and transcript ids listed)",
        f"it answers payment request {facts['preq']}, signed by merchant {req.merchant_id} "
        f"(certificate from the root) for that amount",
    )
    return Verified(RECEIPT_FORMAT, proven, facts, (_REVOCATION,))


def _statement(art: Mapping[str, Any], key: str, ctx: _Ctx) -> tuple[str, dict[str, Any]]:
    cert = _party(art["supervision_cert"], ctx, "supervision", "supervision certificate")
    body = _signed(art[key], cert, EVIDENCE_KIND, "evidence")
    return common_name(cert), body


def verify_opening(
    doc: Any, root: x509.Certificate | bytes | str, *, now: int | None = None
) -> Verified:
    """An opening (§12, §15.1): the ciphertext of a bank transcript decrypts to T0 under Hop."""
    ctx = _ctx(root, now, None)
    _, art = parse_artefact(doc, OPENING_FORMAT)
    supervision, body = _statement(art, "statement", ctx)
    try:
        op = OpeningRecord.from_dict(art["opening"])
    except EcashError as exc:
        raise _wrap(VerifyFormatError, "opening", exc) from exc
    openings = body.get("openings")
    if not isinstance(openings, list) or art["opening"] not in openings:
        raise VerifyTamperedError(
            "opening: not one of the signed statement's openings", detail={"check": "opening"}
        )
    for key in ("member_id", "opener_public"):
        if art[key] != body.get(key):
            raise VerifyTamperedError(
                f"opening: {key} differs from the signed statement", detail={"check": key}
            )
    hop = _point(art["opener_public"], "opener_public")
    bank = _bank(body.get("bank_cert"), ctx)
    docs = body.get("transcripts")
    found = [
        d
        for d in (docs if isinstance(docs, list) else [])
        if isinstance(d, Mapping)
        and isinstance(d.get("body"), Mapping)
        and d["body"].get("transcript_id") == op.transcript_id
    ]
    if len(found) != 1:
        raise VerifyTamperedError(
            "opening: the statement holds no transcript of this opening",
            detail={"check": "opening"},
        )
    t = _parse_transcript(_signed(found[0], bank.cert, TRANSCRIPT_KIND, "transcript"), "transcript")
    try:
        if (op.c1, op.c2) != (t.proof.c1, t.proof.c2):
            raise VerifyOpeningError("opening: not of its transcript's ciphertext")
        t.verify_spend(hop)  # §7.1 step 5: the spender encrypted its T0 under this Hop
        op.verify(hop)  # §12: log_G(Hop) == log_c1(c2 - T0)
    except VerifyError:
        raise
    except EcashError as exc:
        raise _wrap(VerifyOpeningError, "opening", exc) from exc
    member = member_id_for_t0(op.t0)
    if member != art["member_id"]:
        raise VerifyOpeningError(
            "opening: the member id is not the one T0 names", detail={"check": "member_id"}
        )
    facts = {
        "supervision": supervision,
        "member_id": member,
        "t0": b64u_encode(op.t0.encode()),
        "transcript_id": op.transcript_id,
        "bank": bank.name,
        "merchant_id": t.merchant_id,
        "serial": b64u_encode(t.sigma),
        "preq": b64u_encode(t.preq),
        "opener_public": art["opener_public"],
    }
    proven = (
        f"supervision department {supervision} (certificate from the root) signed this opening",
        f"bank {bank.name} (certificate from the root) signed transcript {op.transcript_id}: "
        f"merchant {t.merchant_id}, serial {facts['serial']}, request {facts['preq']}",
        "its spend proof is valid under the opener key, so its (c1, c2) encrypts the spending "
        "TPM's T0",
        f"the Chaum-Pedersen proof shows (c1, c2) decrypts under the opener key to T0 "
        f"{facts['t0']}, whose member id is {member}",
    )
    return Verified(
        OPENING_FORMAT,
        proven,
        facts,
        (
            "T0 -> account: rests on the issuer-signed registration (not in the file)",
            _HOP,
            _REVOCATION,
        ),
    )


def _merchant_pems(docs: list[Any], certs: Any) -> list[Any]:
    """Each transcript's merchant certificate from ``merchant_certs`` (None for a redeem, whose
    request the bank signs, §9.4, and for a transcript naming none: refused when checked); one
    no transcript needs is refused, so that nothing in the file goes unchecked."""
    names = request_merchants(docs)
    if not isinstance(certs, Mapping) or set(certs) != {n for n in names if n is not None}:
        raise VerifyFormatError("evidence: merchant_certs are not those of its merchants")
    return [None if n is None else certs[n] for n in names]


def verify_evidence(
    doc: Any,
    root: x509.Certificate | bytes | str,
    *,
    now: int | None = None,
    credential_check: PublicCredentialCheck | None = None,
    issuer: str | None = None,
) -> Verified:
    """A double-spend bundle (§12.1, §15.1): one coin spent for two requests by one member
    (payments, or a payment and a redeem, §9.4); ``issuer``: the issuer required."""
    ctx = _ctx(root, now, credential_check, issuer)
    _, art = parse_artefact(doc, EVIDENCE_FORMAT)
    supervision, body = _statement(art, "evidence", ctx)
    bank = _bank(body.get("bank_cert"), ctx)
    hop = _point(body.get("opener_public"), "opener_public")
    listed = _keyset_list(art["keyset_list"], ctx, bank.name)
    epoch = _issuer_epoch(art["issuer_epoch"], art["issuer"], ctx)
    docs = body.get("transcripts")
    if not isinstance(docs, list) or len(docs) != 2:
        raise VerifyFormatError("evidence: two transcripts and the merchants' certificates")
    pems = _merchant_pems(docs, art["merchant_certs"])
    coins = []
    for i, (d, pem) in enumerate(zip(docs, pems, strict=True)):
        coins.append(
            _check_transcript(
                d,
                bank=bank,
                merchant_pem=pem,
                listed=listed,
                epoch=epoch,
                hop=hop,
                ctx=ctx,
                check=f"transcript {i + 1}",
            )
        )
    try:  # §12.1: the rules the issuer re-checks before revoking, as it runs them
        found = verify_evidence_body(body, hop, bank_cert=bank.cert)
    except EcashError as exc:
        raise _wrap(VerifyEvidenceError, "double spend (section 12.1)", exc) from exc
    if member_id_for_t0(found.t0) != found.member_id or body.get("sigma") != b64u_encode(
        found.sigma
    ):
        raise VerifyEvidenceError(
            "evidence: member id or serial disagrees with the openings and transcripts",
            detail={"check": "evidence"},
        )
    first, second = (c.facts for c in coins)
    facts = {
        "supervision": supervision,
        "member_id": found.member_id,
        "t0": b64u_encode(found.t0.encode()),
        "serial": b64u_encode(found.sigma),
        "bank": bank.name,
        "transcripts": [c.facts for c in coins],
        "created_at": body.get("created_at"),
        "opener_public": body.get("opener_public"),
        "issuer": epoch.issuer,
    }
    certified, open_issuer = _issuer_sentences(epoch, ctx)
    proven = (
        f"supervision department {supervision} (certificate from the root) signed this bundle",
        f"bank {bank.name} signed both transcripts of serial {facts['serial']}: "
        f"{first['transcript_id']} ({spender(first)}) and "
        f"{second['transcript_id']} ({spender(second)})",
        "both requests are authenticated (a payment request signed by its merchant, a redeem "
        "request by the bank, a swap request by its hash in the bank-signed transcript) and "
        "different; the coin is one and the same, bank-signed under a keyset on the central "
        "bank's list, both spends in its window",
        certified,
        f"the first spend ({first['deposited_at']}) was booked no later than the second "
        f"request's deadline ({second['request_deadline']})",
        "both spend proofs are valid: the TPM holding the coin's key answered two requests",
        f"both openings decrypt to T0 {facts['t0']}: member {found.member_id} spent it twice",
    )
    missing = [_credential(coins, epoch, ctx), open_issuer, _HOP, _REVOCATION]
    return Verified(EVIDENCE_FORMAT, proven, facts, tuple(m for m in missing if m))


_VERIFIERS: Mapping[str, Callable[..., Verified]] = MappingProxyType(
    {
        TRANSCRIPT_FORMAT: verify_transcript,
        RECEIPT_FORMAT: verify_receipt,
        OPENING_FORMAT: verify_opening,
        EVIDENCE_FORMAT: verify_evidence,
    }
)


def verify_artefact(
    doc: Any,
    root: x509.Certificate | bytes | str,
    *,
    expected: str | None = None,
    now: int | None = None,
    issuer: str | None = None,
) -> Verified:
    """Verify any artefact by its ``format`` (``expected``: the format the caller wants);
    certificates are checked as of ``now`` (default: the current time); ``issuer`` requires
    the coin's epoch key to be that issuer's (transcripts and evidence, which name a coin)."""
    fmt, _ = parse_artefact(doc, expected)
    names_coin = fmt in (TRANSCRIPT_FORMAT, EVIDENCE_FORMAT)
    if issuer is not None and not names_coin:
        raise VerifyFormatError(
            "--issuer applies to transcripts and evidence only", detail={"format": fmt}
        )
    options: dict[str, Any] = {"issuer": issuer} if names_coin else {}
    try:
        return _VERIFIERS[fmt](doc, root, now=now, **options)
    except RecursionError as exc:  # a part nested too deep for a recursive check
        raise VerifyFormatError("the artefact nests too deeply") from exc
