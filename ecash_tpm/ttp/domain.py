"""The fair-exchange TTP without HTTP (DESIGN §6): escrow at registration, act only on dispute.

:class:`Ttp` gets its identity, database, a link to the bank and a factory of merchant links
injected, so tests drive it directly and the routes are a thin shell.

**Registration.** A merchant sends a signed ``product-registration`` (its certificate beside
it) with the content. The TTP draws k, encrypts the content (AES-256-GCM, AAD = product id +
merchant), keeps ciphertext and k, signs a ``product-descriptor`` and answers with the
descriptor, the ciphertext and k sealed to the merchant's one-time reply key.

**Dispute** (``open_dispute``): the customer sends the signed payment request, the merchant's
certificate and its spends. The TTP checks that the request is signed by the merchant the
descriptor names, names that product and its ciphertext hash as contract, and carries a customer
key; then asks the bank (TTP-signed ``ttp-deposit-query``) whether each serial was deposited by
that merchant for that request with exactly that spend, adding up to the amount. If not:
``ttp.not_paid``. If so, a dispute with a deadline is recorded (one per request) and the TTP asks
the merchant for k over HTTP (TTP-signed ``ttp-key-request`` carrying a per-dispute X25519 reply
key; the merchant answers with a signed ``ttp-key-answer`` holding k sealed to it). A k that
opens the ciphertext resolves the dispute at once (``merchant_key``, no strike). A missing or
wrong k leaves it pending; the merchant may still answer (``answer_dispute``) until the
deadline; after it, the TTP releases its escrowed k (``escrow``) and records a strike with
reason ``no_key`` or ``wrong_key``. Either way the customer receives k sealed to the request's
customer key, bound to ``preq`` and the product.

Why a replay gains nothing: the dispute is keyed by ``preq`` and its answer is sealed to the
customer key inside the merchant-signed request, so another customer replaying the request (and
even its spends) gets the same box, which only the original buyer's ephemeral private key opens.
X25519 keys cannot sign, so instead of a proof of possession the TTP makes the answer useless to
anyone else. A customer who did not pay cannot get past the bank's answer.

**Relay** (``relay_pay``, the *online*-TTP baseline for the benchmark): the TTP forwards the
payment to the merchant, verifies the bank's receipt and seals its escrowed k to the customer:
the TTP is in every payment.
"""

from __future__ import annotations

import datetime as dt
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    PURPOSE_DISPUTE_ANSWER,
    PURPOSE_REGISTRATION,
    ContentDecryptError,
    EphemeralKey,
    SealError,
    ciphertext_digest,
    content_key_context,
    decrypt_content,
    encrypt_content,
    new_content_key,
    seal,
)
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object, verify_object
from ecash_tpm.errors import ConfigError, EcashError, InputError
from ecash_tpm.pki import certificate_fingerprint, verify_party_certificate
from ecash_tpm.protocol.coins import PaymentRequest, Spend, parse_spends
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.protocol.exchange import (
    KIND_DEPOSIT_ANSWER,
    KIND_DEPOSIT_QUERY,
    KIND_DESCRIPTOR,
    KIND_KEY_ANSWER,
    KIND_KEY_REQUEST,
    KIND_REGISTRATION,
    DepositAnswer,
    KeyRequest,
    ProductDescriptor,
    deposit_query_body,
    descriptor_body,
    dispute_id_for,
    is_dispute_id,
    key_request_body,
    parse_deposit_answer,
    parse_key_answer,
    parse_registration,
    product_id_for,
    spend_digest,
    verify_signed,
)
from ecash_tpm.protocol.payments import KIND_PAYMENT_REQUEST, require_open, verify_receipt
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.ttp.errors import (
    BankAnswerError,
    BankUnavailableError,
    ContractMismatchError,
    CustomerKeyMissingError,
    DisputeClosedError,
    MerchantAnswerError,
    MerchantUnavailableError,
    NotPaidError,
    RegistrationConflictError,
    RegistrationError,
    UnknownDisputeError,
    UnknownProductError,
    WrongMerchantError,
)
from ecash_tpm.ttp.store import DisputeRow, ProductRow, TtpStore

__all__ = ["BankQueryGateway", "MerchantLink", "Ttp", "TtpConfig"]

MAX_SPENDS = 64
#: How often one dispute may make the TTP call the merchant (replays must not become a flood).
MAX_KEY_REQUESTS = 3
#: Outcomes of a key request that say nothing about the merchant's honesty, only that it could
#: not be reached: such a merchant gets one more ask at the deadline before any strike.
UNREACHABLE_OUTCOMES = frozenset({"remote.unreachable", "remote.timeout", "remote.bad_response"})


class BankQueryGateway(Protocol):
    """The bank's TTP query endpoint (``POST /v1/ttp/deposit-query``): ``{answer, cert}``."""

    def ttp_query(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...


class MerchantLink(Protocol):
    """One merchant as the TTP reaches it: key requests (disputes) and payments (relay)."""

    def key_request(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...


@dataclass(frozen=True)
class TtpConfig:
    """The TTP's identity and policy."""

    name: str
    key: PartyKey
    cert_pem: str
    root: x509.Certificate
    dispute_window_s: int = 600
    registration_window_s: int = 300
    max_content_bytes: int = 4 * 1024 * 1024


def _aware(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


class Ttp:
    """Escrow, dispute resolution and (for comparison) the online relay; thread-safe."""

    def __init__(
        self,
        config: TtpConfig,
        store: TtpStore,
        bank: BankQueryGateway,
        merchants: Callable[[str], MerchantLink],
        *,
        clock: Callable[[], int],
    ) -> None:
        key = verify_party_certificate(
            config.cert_pem, config.root, role="ttp", name=config.name, now=_aware(clock())
        )
        if key.public_numbers() != config.key.public_key.public_numbers():
            raise ConfigError("the TTP certificate does not match the TTP key")
        self.config = config
        self.store = store
        self.bank = bank
        self.merchants = merchants
        self.clock = clock
        self._signer = certificate_fingerprint(config.cert_pem)

    @property
    def name(self) -> str:
        return self.config.name

    def _sign(self, kind: str, body: Mapping[str, Any]) -> dict[str, Any]:
        return sign_object(self.config.key, kind, body, signer=self._signer)

    def info(self) -> dict[str, Any]:
        """Public facts: id, certificate, dispute window."""
        return {
            "ttp_id": self.name,
            "cert": self.config.cert_pem,
            "dispute_window_s": self.config.dispute_window_s,
        }

    def stats(self) -> dict[str, Any]:
        """Counters by name (registrations, disputes_opened, bank_queries, relays, ...)."""
        return {"counters": self.store.counters()}

    # --- products ------------------------------------------------------------------------------

    def register_product(self, signed: Any, cert_pem: str) -> dict[str, Any]:
        """Encrypt and escrow a merchant's product; answer descriptor, ciphertext, sealed k."""
        if not isinstance(signed, Mapping) or not isinstance(signed.get("body"), Mapping):
            raise RegistrationError("expected a signed product-registration")
        merchant_id = signed["body"].get("merchant_id")
        if not isinstance(merchant_id, str):
            raise RegistrationError("registration names no merchant_id")
        now = self.clock()
        body, _ = verify_signed(
            signed,
            cert_pem,
            self.config.root,
            role="merchant",
            kind=KIND_REGISTRATION,
            now=now,
            name=merchant_id,
        )
        reg = parse_registration(body, RegistrationError)
        if abs(now - reg.created) > self.config.registration_window_s:
            raise RegistrationError(
                "registration is too old or from the future",
                code="ttp.registration_stale",
                detail={"created": reg.created, "now": now},
            )
        if len(reg.content) > self.config.max_content_bytes:
            err = RegistrationError(
                "content too large",
                code="ttp.content_too_large",
                detail={"limit": self.config.max_content_bytes},
            )
            err.http_status = 413
            raise err
        product_id = product_id_for(reg.merchant_id, reg.nonce)
        existing = self.store.product(product_id)
        if existing is None:
            key = new_content_key()
            blob = encrypt_content(
                key, reg.content, product_id=product_id, merchant_id=reg.merchant_id
            )
            desc = ProductDescriptor(
                product_id=product_id,
                merchant_id=reg.merchant_id,
                ttp_id=self.name,
                title=reg.title,
                price=reg.price,
                currency=reg.currency,
                ciphertext_sha256=ciphertext_digest(blob),
                ciphertext_size=len(blob),
                created=now,
            )
            row = ProductRow(
                product_id=product_id,
                merchant_id=reg.merchant_id,
                title=reg.title,
                price=reg.price,
                currency=reg.currency,
                ciphertext=blob,
                ciphertext_sha256=desc.ciphertext_sha256,
                content_key=key,
                descriptor=self._sign(KIND_DESCRIPTOR, descriptor_body(desc)),
                merchant_url=reg.merchant_url,
                merchant_cert=str(cert_pem),
                registration_digest=reg.digest,
                created_at=now,
            )
            existing = self.store.add_product(row, reg.nonce)
        if existing.registration_digest != reg.digest or existing.product_id != product_id:
            raise RegistrationConflictError(
                "this registration nonce was used for another registration",
                detail={"product_id": existing.product_id},
            )
        sealed = seal(
            reg.reply_key,
            existing.content_key,
            purpose=PURPOSE_REGISTRATION,
            context=(product_id.encode("ascii"), reg.nonce),
        )
        return {
            "descriptor": existing.descriptor,
            "cert": self.config.cert_pem,
            "ciphertext": b64u_encode(existing.ciphertext),
            "sealed_key": sealed.to_dict(),
        }

    def _product(self, product_id: Any) -> ProductRow:
        row = self.store.product(product_id) if isinstance(product_id, str) else None
        if row is None:
            raise UnknownProductError(
                "no such product at this TTP", detail={"product_id": repr(product_id)[:80]}
            )
        return row

    def product(self, product_id: str) -> dict[str, Any]:
        """``{descriptor, cert}`` of one product."""
        return {"descriptor": self._product(product_id).descriptor, "cert": self.config.cert_pem}

    def products(self, merchant_id: str | None = None) -> dict[str, Any]:
        """``{products: [descriptor], cert}``."""
        return {"products": self.store.products(merchant_id), "cert": self.config.cert_pem}

    def ciphertext(self, product_id: str) -> bytes:
        """The public ciphertext of a product."""
        return self._product(product_id).ciphertext

    # --- requests ------------------------------------------------------------------------------

    def _product_request(
        self, request_doc: Any, merchant_cert: str, *, now: int
    ) -> tuple[PaymentRequest, ProductRow]:
        """The request must be signed by the product's merchant, name the product and its
        ciphertext hash, and carry the customer's X25519 key."""
        if not isinstance(request_doc, Mapping) or not isinstance(request_doc.get("body"), Mapping):
            raise InputError("request must be a signed payment request")
        product = self._product(request_doc["body"].get("product_id"))
        if request_doc["body"].get("merchant_id") != product.merchant_id:
            raise WrongMerchantError(
                "the request names another merchant than the product descriptor",
                detail={"merchant_id": product.merchant_id},
            )
        try:
            key = verify_party_certificate(
                merchant_cert,
                self.config.root,
                role="merchant",
                name=product.merchant_id,
                now=_aware(now),
            )
            body = verify_object(request_doc, key, KIND_PAYMENT_REQUEST)
            req = PaymentRequest.from_body(body)
        except EcashError as exc:
            raise WrongMerchantError(
                f"the request is not signed by the product's merchant: {exc.message}",
                detail={"cause": exc.code, "merchant_id": product.merchant_id},
            ) from exc
        if req.contract_hash != product.ciphertext_sha256:
            raise ContractMismatchError(
                "the request's contract hash is not this product's ciphertext hash",
                detail={"product_id": product.product_id},
            )
        if req.customer_key is None or len(req.customer_key) != 32:
            raise CustomerKeyMissingError("the request carries no customer X25519 key")
        return req, product

    def _seal_for_customer(self, req: PaymentRequest, product: ProductRow) -> dict[str, str]:
        if req.customer_key is None:  # pragma: no cover - _product_request checked it
            raise CustomerKeyMissingError("no customer key")
        return seal(
            req.customer_key,
            product.content_key,
            purpose=PURPOSE_CONTENT_KEY,
            context=content_key_context(req.preq, product.product_id),
        ).to_dict()

    # --- bank ----------------------------------------------------------------------------------

    def _ask_bank(
        self, req: PaymentRequest, spends: Sequence[Spend], *, now: int
    ) -> tuple[DepositAnswer, dict[str, Any]]:
        body = deposit_query_body(
            ttp_id=self.name,
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
            or answer.ttp_id != self.name
            or {c.sigma for c in answer.coins} != {sp.coin.sigma for sp in spends}
        ):
            raise BankAnswerError("the bank's answer is for another query")
        return answer, dict(raw)

    @staticmethod
    def _require_paid(req: PaymentRequest, spends: Sequence[Spend], answer: DepositAnswer) -> None:
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

    # --- disputes ------------------------------------------------------------------------------

    def open_dispute(self, request_doc: Any, merchant_cert: str, raw_spends: Any) -> dict[str, Any]:
        """Check payment with the bank, open (or find) the dispute, ask the merchant."""
        now = self.clock()
        try:
            req, product = self._product_request(request_doc, merchant_cert, now=now)
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
        return self._view(row)

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
        answer, raw_answer = self._ask_bank(req, spends, now=now)
        self._require_paid(req, spends, answer)
        if req.customer_key is None:  # pragma: no cover - _product_request checked it
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

    def _ask_merchant(self, row: DisputeRow, product: ProductRow) -> DisputeRow:
        """Ask the merchant for k; resolve at once if its k opens the ciphertext."""
        body = key_request_body(
            KeyRequest(
                dispute_id=row.dispute_id,
                ttp_id=self.name,
                merchant_id=row.merchant_id,
                product_id=row.product_id,
                preq=row.preq,
                deadline=row.deadline,
                reply_key=row.reply_public,
            )
        )
        signed = self._sign(KIND_KEY_REQUEST, body)
        try:
            answer = self.merchants(product.merchant_url).key_request(signed, self.config.cert_pem)
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
        try:
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
            sealed_key=self._seal_for_customer(req, product),
            strike_reason=None,
        )
        return "ok"

    def _reload(self, dispute_id: str) -> DisputeRow:
        row = self.store.dispute(dispute_id)
        if row is None:  # pragma: no cover - disputes are never deleted
            raise UnknownDisputeError("dispute vanished", detail={"dispute_id": dispute_id})
        return row

    def _expire(self, row: DisputeRow) -> DisputeRow:
        """Past the deadline without a good key: release the escrowed k and strike."""
        if row.state != "pending" or self.clock() <= row.deadline:
            return row
        product = self._product(row.product_id)
        if row.merchant_answer in UNREACHABLE_OUTCOMES and row.asked_count < MAX_KEY_REQUESTS:
            row = self._ask_merchant(row, product)  # it was down, not refusing: a last ask
            if row.state != "pending":
                return row
        req = PaymentRequest.from_body(row.request["body"])
        reason = "wrong_key" if row.merchant_answer == "wrong_key" else "no_key"
        self.store.resolve(
            row.dispute_id,
            resolution="escrow",
            sealed_key=self._seal_for_customer(req, product),
            strike_reason=reason,
        )
        return self._reload(row.dispute_id)

    def _dispute_row(self, dispute_id: str) -> DisputeRow:
        row = self.store.dispute(dispute_id) if is_dispute_id(dispute_id) else None
        if row is None:
            raise UnknownDisputeError("no such dispute", detail={"dispute_id": dispute_id[:80]})
        return self._expire(row)

    def dispute(self, dispute_id: str) -> dict[str, Any]:
        """The dispute's public view (resolving it first if its deadline passed)."""
        return self._view(self._dispute_row(dispute_id))

    def dispute_key(self, dispute_id: str) -> dict[str, Any]:
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
        return {
            "dispute_id": row.dispute_id,
            "preq": b64u_encode(row.preq),
            "product_id": row.product_id,
            "resolution": row.resolution,
            "sealed_key": row.sealed_key,
        }

    def answer_dispute(self, dispute_id: str, doc: Any, cert: str) -> dict[str, Any]:
        """The merchant's answer on its own initiative (it polls ``disputes``)."""
        row = self._dispute_row(dispute_id)
        if row.state != "pending":
            raise DisputeClosedError(
                "the dispute is resolved",
                detail={"dispute_id": dispute_id, "resolution": row.resolution},
            )
        outcome = self._accept_answer(row, self._product(row.product_id), doc, cert)
        if outcome != "ok":
            self.store.note_answer(row.dispute_id, outcome)
        return self._view(self._reload(dispute_id))

    def disputes(
        self, *, merchant_id: str | None = None, state: str | None = None, sweep: bool = True
    ) -> list[dict[str, Any]]:
        """Public views (a merchant polls its pending ones); overdue ones are resolved first
        unless ``sweep`` is off (an operator's read-only look)."""
        if sweep:
            self.sweep()
        return [self._view(r) for r in self.store.disputes(merchant_id=merchant_id, state=state)]

    def sweep(self) -> list[str]:
        """Resolve every pending dispute past its deadline; returns their ids."""
        done = []
        for row in self.store.disputes(state="pending"):
            if self._expire(row).state == "resolved":
                done.append(row.dispute_id)
        return done

    def strikes(self, merchant_id: str | None = None) -> list[dict[str, Any]]:
        return self.store.strikes(merchant_id)

    @staticmethod
    def _view(row: DisputeRow) -> dict[str, Any]:
        return {
            "dispute_id": row.dispute_id,
            "preq": b64u_encode(row.preq),
            "product_id": row.product_id,
            "merchant_id": row.merchant_id,
            "state": row.state,
            "deadline": row.deadline,
            "created_at": row.created_at,
            "resolved_at": row.resolved_at,
            "resolution": row.resolution,
            "strike": row.resolution == "escrow",
            "merchant_answer": row.merchant_answer,
            "reply_key": b64u_encode(row.reply_public),
            "sealed_key": row.sealed_key,
        }

    # --- online relay (benchmark baseline) -----------------------------------------------------

    def relay_pay(self, request_doc: Any, merchant_cert: str, raw_spends: Any) -> dict[str, Any]:
        """Online TTP: forward the payment, verify the receipt, release k sealed to the buyer."""
        self.store.count("relays")
        now = self.clock()
        req, product = self._product_request(request_doc, merchant_cert, now=now)
        require_open(req, now)
        spends = parse_spends(raw_spends, max_spends=MAX_SPENDS)
        try:
            answer = self.merchants(product.merchant_url).pay(
                request_doc, [sp.to_dict() for sp in spends]
            )
        except RemoteCallError as exc:
            err = MerchantUnavailableError(exc.message, code=exc.code, detail=dict(exc.detail))
            if exc.status is not None and 400 <= exc.status < 500:
                err.http_status = exc.status
            raise err from exc
        receipt = answer.get("receipt") if isinstance(answer, Mapping) else None
        bank_cert = answer.get("cert") if isinstance(answer, Mapping) else None
        verify_receipt(
            receipt,
            bank_cert,  # type: ignore[arg-type]
            self.config.root,
            preq=req.preq,
            merchant_id=req.merchant_id,
            amount=req.amount,
            currency=req.currency,
            serials=[sp.coin.sigma for sp in spends],
            now=self.clock(),
        )
        return {
            "receipt": receipt,
            "cert": bank_cert,
            "content_key": self._seal_for_customer(req, product),
        }
