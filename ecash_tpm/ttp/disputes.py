"""Disputes (docs/protocol.md §16.5): the bank's word on a payment, the merchant's key, strikes.

The customer sends the signed payment request, the merchant's certificate and its spends. The
TTP checks that the request is one for a registered product
(:meth:`~ecash_tpm.ttp.products.ProductEscrow.product_request`) and every coin's credential
with public data only (pairings, the epoch's certified G2 keys, docs/protocol.md §7.4:
``daa.credential_invalid``); then asks the bank
(TTP-signed ``ttp-deposit-query``) whether each serial was deposited by that merchant for that
request with exactly that spend, adding up to the amount. If not: ``ttp.not_paid``. If so, a
dispute with a deadline is recorded (one per request) and the TTP asks the merchant for k over
HTTP (TTP-signed ``ttp-key-request`` carrying a per-dispute X25519 reply key; the merchant
answers with a signed ``ttp-key-answer`` holding k sealed to it). A k that opens the ciphertext
resolves the dispute at once (``merchant_key``, no strike). A missing or wrong k leaves it
pending; the merchant may still answer (``answer_dispute``) until the deadline; after it, the
TTP releases its escrowed k (``escrow``) and records a strike with reason ``no_key`` or
``wrong_key``. Either way the customer receives k sealed to the request's customer key, bound to
``preq`` and the product.

Why a replay gains nothing: the dispute is keyed by ``preq`` and its answer is sealed to the
customer key inside the merchant-signed request, so another customer replaying the request (and
even its spends) gets the same box, which only the original buyer's ephemeral private key opens.
X25519 keys cannot sign, so instead of a proof of possession the TTP makes the answer useless to
anyone else. A customer who did not pay cannot get past the bank's answer.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecash_tpm.clients.epochs import CertifiedEpochKeys
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.sealing import (
    PURPOSE_DISPUTE_ANSWER,
    ContentDecryptError,
    EphemeralKey,
    SealError,
    decrypt_content,
)
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import PaymentRequest, Spend, parse_spends
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.protocol.exchange import (
    KIND_DEPOSIT_ANSWER,
    KIND_DEPOSIT_QUERY,
    KIND_KEY_ANSWER,
    KIND_KEY_REQUEST,
    DepositAnswer,
    KeyRequest,
    deposit_query_body,
    dispute_id_for,
    is_dispute_id,
    key_request_body,
    parse_deposit_answer,
    parse_key_answer,
    spend_digest,
    verify_signed,
)
from ecash_tpm.protocol.spend import PublicCredentialCheck
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.ttp.config import MAX_SPENDS, BankQueryGateway, MerchantLink, TtpConfig
from ecash_tpm.ttp.errors import (
    BankAnswerError,
    BankUnavailableError,
    CustomerKeyMissingError,
    DisputeClosedError,
    MerchantAnswerError,
    NotPaidError,
    UnknownDisputeError,
)
from ecash_tpm.ttp.models import DisputeKey, DisputeView, Strike
from ecash_tpm.ttp.products import ProductEscrow
from ecash_tpm.ttp.store import DisputeRow, ProductRow, TtpStore

__all__ = ["MAX_KEY_REQUESTS", "UNREACHABLE_OUTCOMES", "DisputeDesk", "dispute_view"]

#: How often one dispute may make the TTP call the merchant (replays must not become a flood).
MAX_KEY_REQUESTS = 3
#: Outcomes of a key request that say nothing about the merchant's honesty, only that it could
#: not be reached: such a merchant gets one more ask at the deadline before any strike.
UNREACHABLE_OUTCOMES = frozenset({"remote.unreachable", "remote.timeout", "remote.bad_response"})


def dispute_view(row: DisputeRow) -> DisputeView:
    """The public view of a dispute (what customers, merchants and operators see)."""
    return DisputeView(
        dispute_id=row.dispute_id,
        preq=row.preq,
        product_id=row.product_id,
        merchant_id=row.merchant_id,
        state=row.state,
        deadline=row.deadline,
        created_at=row.created_at,
        resolved_at=row.resolved_at,
        resolution=row.resolution,
        merchant_answer=row.merchant_answer,
        reply_key=row.reply_public,
        sealed_key=row.sealed_key,
    )


class DisputeDesk:
    """Opens, answers and resolves disputes over escrowed products (thread-safe)."""

    def __init__(
        self,
        config: TtpConfig,
        store: TtpStore,
        products: ProductEscrow,
        bank: BankQueryGateway,
        merchants: Callable[[str, str], MerchantLink],
        *,
        sign: Callable[[str, Mapping[str, Any]], dict[str, Any]],
        clock: Callable[[], int],
    ) -> None:
        self.config = config
        self.store = store
        self.products = products
        self.bank = bank
        self.merchants = merchants
        self._sign = sign
        self.clock = clock
        #: docs/protocol.md §7.4: certified issuer keys (from the bank, root-signed)
        #: (this deployment's issuer only)
        self.epoch_keys = CertifiedEpochKeys(
            self._fetch_epoch, config.root, issuer=config.issuer_name
        )

    # --- bank ----------------------------------------------------------------------------------

    def _ask_bank(
        self, req: PaymentRequest, spends: Sequence[Spend], *, now: int
    ) -> tuple[DepositAnswer, dict[str, Any]]:
        """§16.2: a signed deposit query for the spends' serials; the bank's signed answer must
        be for exactly this query (digest, request, merchant, TTP, serials)."""
        body = deposit_query_body(
            ttp_id=self.config.name,
            merchant_id=req.merchant_id,
            preq=req.preq,
            serials=[sp.coin.sigma for sp in spends],
            nonce=secrets.token_bytes(16),
            created=now,
        )
        signed = self._sign(KIND_DEPOSIT_QUERY, body)
        self.store.count("bank_queries")
        try:
            raw = self.bank.ttp_query(signed, self.config.cert_pem)
        except RemoteCallError as exc:
            if exc.status is not None and 400 <= exc.status < 500:
                raise BankAnswerError(
                    f"the bank refused the deposit query: {exc.message}",
                    detail={"cause": exc.code},
                ) from exc
            raise BankUnavailableError(
                "the bank could not be asked; retry the dispute later", detail={"cause": exc.code}
            ) from exc
        if not isinstance(raw, Mapping) or not isinstance(raw.get("cert"), str):
            raise BankAnswerError("the bank's answer is not {answer, cert}")
        try:
            answer_body, _ = verify_signed(
                raw.get("answer"),
                str(raw["cert"]),
                self.config.root,
                role="bank",
                kind=KIND_DEPOSIT_ANSWER,
                now=now,
                name=req.bank,
                crl=self.config.crl,
            )
        except EcashError as exc:
            raise BankAnswerError(
                f"deposit answer not signed by the request's bank: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        answer = parse_deposit_answer(answer_body, BankAnswerError)
        if (
            answer.query != canonical_digest(body)
            or answer.preq != req.preq
            or answer.merchant_id != req.merchant_id
            or answer.ttp_id != self.config.name
            or {c.sigma for c in answer.coins} != {sp.coin.sigma for sp in spends}
        ):
            raise BankAnswerError("the bank's answer is for another query")
        return answer, dict(raw)

    def _epoch_lookup(self) -> CertifiedEpochKeys | None:
        """§7.4: None when the bank link publishes no issuer epoch keys at all (a deployment
        choice, never the customer's): then the bank decides for every coin."""
        return self.epoch_keys if callable(getattr(self.bank, "issuer_epoch", None)) else None

    def _fetch_epoch(self, epoch: int) -> Mapping[str, Any]:
        result: Mapping[str, Any] = self.bank.issuer_epoch(epoch)  # type: ignore[attr-defined]
        return result

    def _check_credentials(self, spends: Sequence[Spend]) -> None:
        """docs/protocol.md §7.4: every coin's credential with public data only (pairings under
        the epoch's certified G2 keys), one batch, coin by coin only to name a bad one
        (``daa.credential_invalid`` with ``index``). Run only for coins the bank's signed answer
        confirms deposited with exactly these spends (the TTP holds no keysets: that answer is
        its steps 1-3), at most two epochs (``payment.too_many_epochs``); an unknown epoch is
        refused (``coin.unknown_epoch``), an unavailable key is 503; only a verified
        pre-issue-14 certificate (no G2 keys) leaves its coins to the bank's word."""
        check = PublicCredentialCheck(self._epoch_lookup())
        if check.batch([sp.coin for sp in spends]):
            return
        for index, sp in enumerate(spends):
            try:
                check.check(sp.coin)
            except EcashError as exc:
                raise exc.recode(exc.code, detail={"index": index}) from exc

    @staticmethod
    def _require_paid(req: PaymentRequest, spends: Sequence[Spend], answer: DepositAnswer) -> None:
        """§16.5: every coin deposited by that merchant, for that ``preq``, with exactly the
        submitted spend, in the request's currency, adding up to the amount."""
        by_sigma = {c.sigma: c for c in answer.coins}
        problems: list[dict[str, Any]] = []
        total = 0
        for sp in spends:
            coin = by_sigma[sp.coin.sigma]
            reason = None
            if not coin.deposited:
                reason = "not_deposited"
            elif coin.merchant_id != req.merchant_id:
                reason = "other_merchant"
            elif coin.preq != req.preq:
                reason = "other_request"
            elif coin.spend_digest != spend_digest(sp.to_dict()):
                reason = "other_spend"
            elif coin.currency != req.currency:
                reason = "currency"
            else:
                total += coin.value or 0
            if reason is not None:
                problems.append({"serial": b64u_encode(sp.coin.sigma), "reason": reason})
        if problems or total != req.amount:
            raise NotPaidError(
                "the bank does not confirm this payment: the TTP only acts for customers who paid",
                detail={"coins": problems, "amount": req.amount, "confirmed": total},
            )

    # --- opening -------------------------------------------------------------------------------

    def open_dispute(self, request_doc: Any, merchant_cert: str, raw_spends: Any) -> DisputeView:
        """Check payment with the bank, open (or find) the dispute, ask the merchant."""
        now = self.clock()
        try:
            req, product = self.products.product_request(request_doc, merchant_cert, now=now)
            row = self.store.dispute(dispute_id_for(req.preq))
            if row is None:
                row = self._new_dispute(req, product, request_doc, raw_spends, now=now)
            else:  # a replay (or a retry): same dispute, answer sealed to the same buyer
                self.store.count("disputes_replayed")
        except EcashError:
            self.store.count("disputes_refused")
            raise
        row = self._expire(row)
        if row.state == "pending" and row.asked_count < MAX_KEY_REQUESTS:
            row = self._ask_merchant(row, product)
        return dispute_view(row)

    def _new_dispute(
        self,
        req: PaymentRequest,
        product: ProductRow,
        request_doc: Mapping[str, Any],
        raw_spends: Any,
        *,
        now: int,
    ) -> DisputeRow:
        """Only after the bank confirms the payment: record a pending dispute."""
        spends = parse_spends(raw_spends, max_spends=MAX_SPENDS)
        # §16.5, §7.4: the bank's signed word first (one query, whatever the coins claim), the
        # epoch lookups and pairings only for a payment it confirms
        answer, raw_answer = self._ask_bank(req, spends, now=now)
        self._require_paid(req, spends, answer)
        self._check_credentials(spends)
        if req.customer_key is None:  # pragma: no cover - product_request checked it
            raise CustomerKeyMissingError("no customer key")
        reply = EphemeralKey()
        row, _ = self.store.add_dispute(
            dispute_id=dispute_id_for(req.preq),
            preq=req.preq,
            product_id=product.product_id,
            merchant_id=product.merchant_id,
            customer_key=req.customer_key,
            request=request_doc,
            spends=[sp.to_dict() for sp in spends],
            bank_answer=raw_answer,
            deadline=now + self.config.dispute_window_s,
            reply_secret=reply.secret_bytes(),
            reply_public=reply.public_bytes,
        )
        return row

    # --- the merchant's key --------------------------------------------------------------------

    def _ask_merchant(self, row: DisputeRow, product: ProductRow) -> DisputeRow:
        """Ask the merchant for k; resolve at once if its k opens the ciphertext."""
        body = key_request_body(
            KeyRequest(
                dispute_id=row.dispute_id,
                ttp_id=self.config.name,
                merchant_id=row.merchant_id,
                product_id=row.product_id,
                preq=row.preq,
                deadline=row.deadline,
                reply_key=row.reply_public,
            )
        )
        signed = self._sign(KIND_KEY_REQUEST, body)
        try:
            link = self.merchants(product.merchant_url, product.merchant_id)
            answer = link.key_request(signed, self.config.cert_pem)
            if not isinstance(answer, Mapping):
                raise MerchantAnswerError("the merchant's answer is not an object")
            outcome = self._accept_answer(row, product, answer.get("answer"), answer.get("cert"))
        except EcashError as exc:
            outcome = exc.code
        if outcome != "ok":
            self.store.note_answer(row.dispute_id, outcome)
        return self._reload(row.dispute_id)

    def _accept_answer(self, row: DisputeRow, product: ProductRow, doc: Any, cert: Any) -> str:
        """Check a merchant's key answer; ``"ok"`` (resolved) or ``"wrong_key"``."""
        if not isinstance(cert, str):
            raise MerchantAnswerError("the answer needs the merchant certificate")
        try:
            body, _ = verify_signed(
                doc,
                cert,
                self.config.root,
                role="merchant",
                kind=KIND_KEY_ANSWER,
                now=self.clock(),
                name=product.merchant_id,
                crl=self.config.crl,
            )
        except EcashError as exc:
            raise MerchantAnswerError(
                f"the key answer is not signed by the product's merchant: {exc.message}",
                detail={"cause": exc.code},
            ) from exc
        ans = parse_key_answer(body, MerchantAnswerError)
        if (
            ans.dispute_id != row.dispute_id
            or ans.preq != row.preq
            or ans.product_id != row.product_id
            or ans.merchant_id != row.merchant_id
        ):
            raise MerchantAnswerError("the key answer is for another dispute")
        if row.reply_secret is None:  # resolved meanwhile
            return "ok"
        try:  # §16.5: a k that opens the ciphertext resolves the dispute at once
            key = EphemeralKey.from_secret(row.reply_secret).open(
                ans.sealed_key,
                purpose=PURPOSE_DISPUTE_ANSWER,
                context=(row.dispute_id.encode("ascii"), row.preq),
            )
            decrypt_content(
                key,
                product.ciphertext,
                product_id=product.product_id,
                merchant_id=product.merchant_id,
            )
        except (SealError, ContentDecryptError):
            return "wrong_key"
        req = PaymentRequest.from_body(row.request["body"])
        self.store.resolve(
            row.dispute_id,
            resolution="merchant_key",
            sealed_key=self.products.seal_for_customer(req, product),
            strike_reason=None,
        )
        return "ok"

    def answer_dispute(self, dispute_id: str, doc: Any, cert: str) -> DisputeView:
        """The merchant's answer on its own initiative (it polls ``disputes``)."""
        row = self._dispute_row(dispute_id)
        if row.state != "pending":
            raise DisputeClosedError(
                "the dispute is resolved",
                detail={"dispute_id": dispute_id, "resolution": row.resolution},
            )
        outcome = self._accept_answer(row, self.products.row(row.product_id), doc, cert)
        if outcome != "ok":
            self.store.note_answer(row.dispute_id, outcome)
        return dispute_view(self._reload(dispute_id))

    # --- deadlines and strikes -----------------------------------------------------------------

    def _reload(self, dispute_id: str) -> DisputeRow:
        row = self.store.dispute(dispute_id)
        if row is None:  # pragma: no cover - disputes are never deleted
            raise UnknownDisputeError("dispute vanished", detail={"dispute_id": dispute_id})
        return row

    def _expire(self, row: DisputeRow) -> DisputeRow:
        """Past the deadline without a good key: release the escrowed k and strike."""
        if row.state != "pending" or self.clock() <= row.deadline:
            return row
        product = self.products.row(row.product_id)
        if row.merchant_answer in UNREACHABLE_OUTCOMES and row.asked_count < MAX_KEY_REQUESTS:
            row = self._ask_merchant(row, product)  # it was down, not refusing: a last ask
            if row.state != "pending":
                return row
        req = PaymentRequest.from_body(row.request["body"])
        reason = "wrong_key" if row.merchant_answer == "wrong_key" else "no_key"
        self.store.resolve(
            row.dispute_id,
            resolution="escrow",
            sealed_key=self.products.seal_for_customer(req, product),
            strike_reason=reason,
        )
        return self._reload(row.dispute_id)

    def _dispute_row(self, dispute_id: str) -> DisputeRow:
        row = self.store.dispute(dispute_id) if is_dispute_id(dispute_id) else None
        if row is None:
            raise UnknownDisputeError("no such dispute", detail={"dispute_id": dispute_id[:80]})
        return self._expire(row)

    def dispute(self, dispute_id: str) -> DisputeView:
        """The dispute's public view (resolving it first if its deadline passed)."""
        return dispute_view(self._dispute_row(dispute_id))

    def dispute_key(self, dispute_id: str) -> DisputeKey:
        """The sealed key of a resolved dispute; 409 ``ttp.dispute_pending`` before that."""
        row = self._dispute_row(dispute_id)
        if row.state != "resolved" or row.sealed_key is None:
            wait = max(1, row.deadline - self.clock() + 1)
            raise DisputePendingError(
                "the merchant may still answer; ask again later",
                detail={
                    "dispute_id": row.dispute_id,
                    "deadline": row.deadline,
                    "retry_after": wait,
                },
            )
        return DisputeKey(
            dispute_id=row.dispute_id,
            preq=row.preq,
            product_id=row.product_id,
            resolution=row.resolution,
            sealed_key=row.sealed_key,
        )

    def disputes(
        self, *, merchant_id: str | None = None, state: str | None = None, sweep: bool = True
    ) -> list[DisputeView]:
        """Public views (a merchant polls its pending ones); overdue ones are resolved first
        unless ``sweep`` is off (an operator's read-only look)."""
        if sweep:
            self.sweep()
        return [dispute_view(r) for r in self.store.disputes(merchant_id=merchant_id, state=state)]

    def sweep(self) -> list[str]:
        """Resolve every pending dispute past its deadline; returns their ids."""
        done = []
        for row in self.store.disputes(state="pending"):
            if self._expire(row).state == "resolved":
                done.append(row.dispute_id)
        return done

    def strikes(self, merchant_id: str | None = None) -> list[Strike]:
        return self.store.strikes(merchant_id)
