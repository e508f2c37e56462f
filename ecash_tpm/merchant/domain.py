"""The merchant without HTTP: sign payment requests, verify payments, deposit, keep receipts.

:class:`Merchant` gets everything it talks to injected (its key and certificate, the central
bank root, a :class:`BankGateway`, the opener key Hop, a clock), so tests drive it directly
and the HTTP routes are a thin shell.

Paying a request (``pay``):

1. the request must be this merchant's own (its signature, its ``merchant_id``), recorded
   here, not past its deadline and not already paid (an identical retry of a finished
   payment returns the stored receipt, a different one gets 409 ``payment.already_paid``);
2. every coin is checked locally (:func:`~ecash_tpm.protocol.spend.verify_spends`): keyset
   valid for deposit, RSA signature (every coin first, before any epoch lookup), then the
   credential with pairings under the epoch's certified G2 keys of this deployment's issuer
   (docs/protocol.md §7.4; a coin whose credential was never issued is refused here,
   ``daa.credential_invalid``; an uncertified epoch ``coin.unknown_epoch``, a key that
   cannot be fetched 503 ``issuer_epoch.unavailable``, more than two epochs
   ``payment.too_many_epochs``), spend proof for *this* request under Hop, and the amounts
   add up — so bad coins are refused here instead of counting against the merchant at the
   bank. Only coins of an epoch whose verified certificate predates issue 14 (no G2 keys)
   are left to the bank's credential check (logged, counted as ``credential_check/bank_only``);
3. optionally the coins are reserved at the bank (lock period T);
4. the deposit (merchant-signed, fresh ``deposit_id``) is recorded, then sent with the
   merchant certificate beside it (``{kind, body, signature, signer, cert}``); a lost answer
   leaves the request ``paying`` and the same document is re-sent on the next attempt;
5. the bank's receipt is verified (bank certificate, signature, this request, these coins),
   stored, and returned to the customer.

Bank refusals keep the bank's code and HTTP status (e.g. 409 ``bank.double_spend`` with the
serial and transcript id) and are counted, as are local verification failures.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from cryptography import x509

from ecash_tpm.clients.epochs import CertifiedEpochKeys
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_encode, tagged_hash
from ecash_tpm.crypto.signing import PartyKey, canonical_encode, verify_object
from ecash_tpm.errors import (
    ConfigError,
    ConflictError,
    EcashError,
    InputError,
    NotFoundError,
    RemoteError,
)
from ecash_tpm.merchant.models import (
    MAX_SPENDS,
    DepositRetry,
    MerchantInfo,
    MerchantStats,
    PaymentAnswer,
    SignedRequest,
)
from ecash_tpm.merchant.store import MerchantStore, RequestRow
from ecash_tpm.pki import CrlProvider, verify_party_certificate
from ecash_tpm.protocol.coins import (
    PAYMENT_REQUEST_KIND,
    PaymentRequest,
    Spend,
    parse_request_body,
    parse_spends,
    require_open,
    sign_deposit,
    sign_payment_request,
    sign_reserve,
)
from ecash_tpm.protocol.errors import AmountMismatchError
from ecash_tpm.protocol.keysets import BankKeysets
from ecash_tpm.protocol.payments import (
    CUSTOMER_KEY_LEN,
    RESERVE_CHECKS,
    RESERVE_VERDICT,
    KeysetBook,
    book_from_bank_keysets,
    verify_receipt,
)
from ecash_tpm.protocol.spend import (
    MAX_PAYMENT_EPOCHS,
    PublicCredentialCheck,
    spends_digest,
    verify_spends,
)
from ecash_tpm.service.errors import RemoteCallError

if TYPE_CHECKING:  # fair exchange (issue 6)
    from ecash_tpm.merchant.catalogue import Catalogue

__all__ = [
    "MAX_SPENDS",
    "TAG_CONTRACT",
    "BankGateway",
    "BankRefusedError",
    "BankUnavailableError",
    "DepositRetry",
    "Merchant",
    "MerchantConfig",
    "NotOurRequestError",
    "PaymentInProgressError",
    "PaymentNotPaidError",
    "RequestAlreadyPaidError",
    "ReserveUnconfirmedError",
    "UnknownRequestError",
    "UnsupportedCurrencyError",
]

TAG_CONTRACT = "ecash-tpm/v1/contract"


# --- errors --------------------------------------------------------------------------------


class NotOurRequestError(InputError):
    """The payment request was not signed by this merchant or names another merchant."""

    code = "payment.not_our_request"


class UnknownRequestError(NotFoundError):
    """A request signed by this merchant but not in its records (e.g. another database)."""

    code = "payment.unknown_request"


class RequestAlreadyPaidError(ConflictError):
    """The request was already paid with other coins (each request is paid once)."""

    code = "payment.already_paid"


class PaymentInProgressError(ConflictError):
    """Another payment of this request is being deposited right now."""

    code = "payment.in_progress"


class PaymentNotPaidError(NotFoundError):
    """No paid (or being paid) payment of this request: nothing to hand out (§8.1)."""

    code = "payment.not_paid"


class UnsupportedCurrencyError(InputError):
    """The merchant does not sell in this currency."""

    code = "payment.unsupported_currency"


class BankRefusedError(RemoteError):
    """The bank refused the deposit or reservation: carries the bank's code, status, detail."""

    code = "bank.refused"

    def __init__(self, exc: RemoteCallError) -> None:
        super().__init__(exc.message, code=exc.code, detail=dict(exc.detail))
        if exc.status is not None and 400 <= exc.status < 500:
            self.http_status = exc.status


class BankUnavailableError(RemoteError):
    """The bank's answer was lost or it failed: the deposit outcome is unknown, retry."""

    code = "merchant.bank_unavailable"
    http_status = 503


class ReserveUnconfirmedError(RemoteError):
    """The bank's reserve answer lacks the full verdict on these coins (§10): not delivered."""

    code = "merchant.reserve_unconfirmed"


def _reserve_confirms(answer: Any, spends: Sequence[Spend]) -> bool:
    """§10: verdict ``valid``, every check of :data:`RESERVE_CHECKS`, exactly our serials."""
    if not isinstance(answer, Mapping):
        return False
    checks, serials = answer.get("checks"), answer.get("serials")
    if not isinstance(checks, list) or not isinstance(serials, list):
        return False
    ours = {b64u_encode(sp.coin.sigma) for sp in spends}
    return (
        answer.get("verdict") == RESERVE_VERDICT
        and set(RESERVE_CHECKS) <= set(checks)
        and set(serials) == ours
    )


# --- dependencies ----------------------------------------------------------------------------


class BankGateway(Protocol):
    """What the merchant needs from its bank: :class:`~ecash_tpm.clients.bank.BankClient`
    over HTTP, fakes in tests. Errors are RemoteCallError with the bank's code."""

    def keysets(
        self, *, central_bank_root: x509.Certificate | str | bytes | None = None
    ) -> BankKeysets: ...

    def reserve(self, signed_reserve: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...

    def deposit(self, signed_deposit: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...

    def issuer_epoch(self, epoch: int) -> dict[str, Any]: ...


@dataclass(frozen=True)
class MerchantConfig:
    """The merchant's identity and policy."""

    name: str
    key: PartyKey
    cert_pem: str
    root: x509.Certificate
    currencies: tuple[str, ...] = ("EUR",)
    request_ttl_s: int = 300
    reserve: bool = False
    bank_name: str | None = None  # expected CN of the bank certificate (None: any bank cert)
    keyset_refresh_s: float = 5.0  # least time between keyset re-fetches on unknown ids
    #: A deposit is left to the payment that started it this long before a retry takes it over:
    #: longer than that payment's own bank calls (reserve + deposit) can take, so a retry never
    #: overtakes a live payment's reservation (which would answer it with a double spend).
    deposit_retry_after_s: int = 60
    #: The central bank's current CRL: the bank's certificate on receipts is checked against it.
    crl: CrlProvider | None = None
    #: docs/protocol.md 6: requests carry ``refund_deadline = deadline + refund_period_s``
    #: (0: no refund deadline, the payment cannot be refunded). Issue 12, item 3.
    refund_period_s: int = 0
    #: docs/protocol.md §3.6/§7.4: the issuer whose certified epoch keys coins are checked with
    #: (the certificate's ``issuer`` must be this name; None: any root-certified issuer).
    issuer_name: str | None = "issuer"
    #: §7.4: most distinct issuer epochs one payment's coins may span (``payment.too_many_epochs``)
    max_payment_epochs: int = MAX_PAYMENT_EPOCHS


def _wall_clock() -> int:
    return int(time.time())


class Merchant:
    """One merchant: request signing, payment verification, deposit, receipts (thread-safe)."""

    def __init__(
        self,
        config: MerchantConfig,
        store: MerchantStore,
        bank: BankGateway,
        hop: Point,
        *,
        clock: Callable[[], int] = _wall_clock,
        catalogue: Catalogue | None = None,
    ) -> None:
        key = verify_party_certificate(
            config.cert_pem, config.root, role="merchant", name=config.name
        )
        if key.public_numbers() != config.key.public_key.public_numbers():
            raise ConfigError("merchant certificate does not match the merchant key")
        if not isinstance(hop, Point) or hop.is_infinity:
            raise ConfigError("opener public key Hop must be a finite point")
        self.config = config
        self.store = store
        self.bank = bank
        self.hop = hop
        self.clock = clock
        self._book: KeysetBook | None = None
        self._book_at = 0.0
        self._lock = threading.Lock()
        self._in_flight: set[bytes] = set()  # preqs a live payment is depositing right now
        self.catalogue = catalogue  # fair exchange: products escrowed with the TTP (DESIGN §6)
        #: docs/protocol.md §7.4: the certified issuer keys coins are verified with
        #: (this deployment's issuer only)
        self.epoch_keys = CertifiedEpochKeys(
            self._fetch_epoch, config.root, issuer=config.issuer_name
        )
        if catalogue is not None:  # §8.1: a key request for a `paying` request settles it first
            catalogue.settle = self.paid_answer

    @property
    def name(self) -> str:
        return self.config.name

    # --- keysets -------------------------------------------------------------------------

    def keysets(self, *, refresh: bool = False) -> KeysetBook:
        """The bank's verified keysets, cached; ``refresh`` re-fetches (rate limited)."""
        with self._lock:
            book, fetched = self._book, self._book_at
        if book is not None and not (
            refresh and time.monotonic() - fetched >= self.config.keyset_refresh_s
        ):
            return book
        try:
            raw = self.bank.keysets(central_bank_root=self.config.root)
        except RemoteCallError as exc:
            self.store.count("bank_error", exc.code)
            if book is not None:
                return book
            raise
        new = book_from_bank_keysets(
            raw, self.config.root, bank_name=self.config.bank_name, now=self.clock()
        )
        with self._lock:
            self._book, self._book_at = new, time.monotonic()
        return new

    def _epoch_lookup(self) -> CertifiedEpochKeys | None:
        """§7.4: None when the gateway publishes no issuer epoch keys at all (a deployment
        choice, never the customer's): then the bank decides for every coin."""
        return self.epoch_keys if callable(getattr(self.bank, "issuer_epoch", None)) else None

    def _fetch_epoch(self, epoch: int) -> Mapping[str, Any]:
        try:
            result: Mapping[str, Any] = self.bank.issuer_epoch(epoch)
            return result
        except RemoteCallError as exc:
            self.store.count("bank_error", exc.code)
            raise

    # --- requests ------------------------------------------------------------------------

    def create_request(
        self,
        amount: int,
        currency: str | None = None,
        *,
        product_id: str | None = None,
        customer_key: bytes | None = None,
        contract_hash: bytes | None = None,
        ttl_s: int | None = None,
    ) -> SignedRequest:
        """Sign and record a payment request with the certificate to check it (docs/api.md)."""
        cur = currency or self.config.currencies[0]
        if cur not in self.config.currencies:
            raise UnsupportedCurrencyError(
                "this merchant does not accept that currency",
                detail={"currency": cur, "accepted": list(self.config.currencies)},
            )
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InputError("amount must be a positive integer (minor units)")
        if customer_key is not None and len(customer_key) != CUSTOMER_KEY_LEN:
            raise InputError(f"customer_key must be {CUSTOMER_KEY_LEN} bytes (X25519)")
        ttl = self.config.request_ttl_s if ttl_s is None else ttl_s
        if ttl <= 0:
            raise InputError("request lifetime must be positive")
        if product_id is not None and self.catalogue is not None:  # fair exchange (issue 6)
            contract_hash = self.catalogue.contract_for(
                product_id, amount=amount, currency=cur, customer_key=customer_key
            )
        if contract_hash is None:
            terms = {"merchant": self.name, "product_id": product_id, "amount": amount}
            contract_hash = tagged_hash(TAG_CONTRACT, canonical_encode({**terms, "currency": cur}))
        nonce = secrets.token_bytes(16)
        deadline = self.clock() + ttl
        refund_period = self.config.refund_period_s
        signed = sign_payment_request(
            self.config.key,
            merchant_id=self.name,
            amount=amount,
            currency=cur,
            contract_hash=contract_hash,
            nonce=nonce,
            deadline=deadline,
            bank=self.keysets().bank_name,
            product_id=product_id,
            customer_key=customer_key,
            refund_deadline=deadline + refund_period if refund_period > 0 else None,
        )
        req = parse_request_body(signed["body"])
        self.store.add_request(
            preq=req.preq,
            nonce=nonce,
            amount=amount,
            currency=cur,
            deadline=req.deadline,
            product_id=product_id,
            request=signed,
        )
        return SignedRequest(signed, self.config.cert_pem)

    def _own_request(self, doc: Any) -> tuple[PaymentRequest, RequestRow]:
        try:
            body = verify_object(doc, self.config.key.public_key, PAYMENT_REQUEST_KIND)
        except EcashError as exc:
            raise NotOurRequestError(
                "payment request is not signed by this merchant", detail={"cause": exc.code}
            ) from exc
        req = parse_request_body(body)
        if req.merchant_id != self.name:
            raise NotOurRequestError(
                "payment request names another merchant", detail={"merchant_id": req.merchant_id}
            )
        row = self.store.get(req.preq)
        if row is None:
            raise UnknownRequestError(
                "payment request not issued by this shop", detail={"preq": b64u_encode(req.preq)}
            )
        return req, row

    # --- paying --------------------------------------------------------------------------

    def verify_payment(self, req: PaymentRequest, spends: Sequence[Spend]) -> int:
        """Local checks of every coin for ``req``, the credential publicly (§7.4); the sum."""
        now = self.clock()
        cred = PublicCredentialCheck(
            self._epoch_lookup(), max_epochs=self.config.max_payment_epochs
        )
        require_open(req, now)
        book = self.keysets()
        if any(sp.coin.keyset_id not in book.keysets for sp in spends):
            book = self.keysets(refresh=True)
        keysets = []
        for i, sp in enumerate(spends):  # an unknown keyset is named before any other check
            try:
                keysets.append(book.get(sp.coin.keyset_id))
            except EcashError as exc:
                exc.detail.setdefault("index", i)
                raise
        # docs/protocol.md §7.3/§7.4: keyset window, currency and RSA signature of every coin
        # first, then the credentials (one pairing batch, coin by coin only to name a bad one)
        # and the proofs (one batch likewise), each error with the coin's index
        items = list(zip(spends, keysets, strict=True))
        verify_spends(
            items,
            hop=self.hop,
            preq=req.preq,
            currency=req.currency,
            now=now,
            credential_check=cred.indexed,
            credential_batch=cred.batch,
        )
        total = sum(k.value for k in keysets)
        if cred.unverified:  # §7.4: no certified G2 keys for these epochs: the bank decides
            self.store.count("credential_check", "bank_only")
        if total != req.amount:
            raise AmountMismatchError(
                "coins do not add up to the requested amount",
                detail={"amount": req.amount, "paid": total},
            )
        return total

    def pay(self, request_doc: Any, raw_spends: Any) -> PaymentAnswer:
        """Verify, deposit and return the receipt (see the module docstring); for a product
        request also ``content_key``: the product key sealed to the customer."""
        answer = self._pay(request_doc, raw_spends)
        if self.catalogue is not None:  # fair exchange (issue 6): deliver k after the deposit
            answer = self.catalogue.attach_key(parse_request_body(request_doc["body"]), answer)
        return answer

    def _pay(self, request_doc: Any, raw_spends: Any) -> PaymentAnswer:
        req, row = self._own_request(request_doc)
        with self._live(req.preq):
            return self._pay_request(req, row, request_doc, raw_spends)

    @contextmanager
    def _live(self, preq: bytes) -> Iterator[None]:
        """Mark a request as being paid by a live call, so :meth:`retry_deposits` leaves it
        alone until that call is over (its reserve must reach the bank before any deposit)."""
        with self._lock:
            self._in_flight.add(preq)
        try:
            yield
        finally:
            with self._lock:
                self._in_flight.discard(preq)

    def _pay_request(
        self, req: PaymentRequest, row: RequestRow, request_doc: Any, raw_spends: Any
    ) -> PaymentAnswer:
        try:
            spends = parse_spends(raw_spends, max_spends=MAX_SPENDS)
        except EcashError as exc:
            self.store.count("verify_failure", exc.code)
            raise
        digest = spends_digest(spends)
        if row.state != "open":
            return self._resume(row, digest)
        try:
            self.verify_payment(req, spends)
        except EcashError as exc:
            self.store.count("verify_failure", exc.code)
            raise
        deposit_id = "dep-" + secrets.token_hex(16)
        signed = sign_deposit(
            self.config.key,
            deposit_id=deposit_id,
            merchant_id=self.name,
            request=request_doc,
            spends=spends,
        )
        if not self.store.begin_paying(
            req.preq, spends_digest=digest, deposit_id=deposit_id, deposit=signed
        ):
            fresh = self.store.get(req.preq)
            if fresh is None:  # pragma: no cover - rows are never deleted
                raise UnknownRequestError("payment request vanished")
            return self._resume(fresh, digest)
        if self.config.reserve:
            self._reserve(req, request_doc, spends, deposit_id)
        return self._deposit(req.preq, deposit_id, signed, req.amount, req.currency, spends)

    def _resume(self, row: RequestRow, digest: bytes) -> PaymentAnswer:
        """A request already being paid or paid: same coins -> same answer, else 409."""
        if row.spends_digest != digest:
            if row.state == "paid":
                raise RequestAlreadyPaidError("this payment request is already paid")
            raise PaymentInProgressError("this payment request is being paid with other coins")
        if row.state == "paid" and row.receipt is not None and row.bank_cert is not None:
            return PaymentAnswer(dict(row.receipt), row.bank_cert)
        if row.deposit is None or row.deposit_id is None:  # pragma: no cover - schema invariant
            raise PaymentInProgressError("payment in an inconsistent state")
        spends = parse_spends(row.deposit["body"]["spends"], max_spends=MAX_SPENDS)
        return self._deposit(
            row.preq, row.deposit_id, row.deposit, row.amount, row.currency, spends
        )

    def _reserve(
        self, req: PaymentRequest, request_doc: Any, spends: Sequence[Spend], deposit_id: str
    ) -> None:
        signed = sign_reserve(
            self.config.key, merchant_id=self.name, request=request_doc, spends=spends
        )
        try:
            answer = self.bank.reserve(signed, self.config.cert_pem)
        except RemoteCallError as exc:
            self.store.count("bank_error", exc.code)
            self.store.reopen(req.preq, deposit_id)
            if exc.status is not None and 400 <= exc.status < 500:
                raise BankRefusedError(exc) from exc
            raise BankUnavailableError(
                f"bank reservation failed: {exc.message}", detail={"cause": exc.code}
            ) from exc
        # docs/protocol.md §10: the bank's full verdict on these coins (the credential check
        # included, which only it can make) before anything is delivered
        if not _reserve_confirms(answer, spends):
            self.store.count("bank_error", ReserveUnconfirmedError.code)
            self.store.reopen(req.preq, deposit_id)
            raise ReserveUnconfirmedError(
                "the bank's reservation does not confirm every check of these coins"
            )

    def _deposit(
        self,
        preq: bytes,
        deposit_id: str,
        signed: Mapping[str, Any],
        amount: int,
        currency: str,
        spends: Sequence[Spend],
    ) -> PaymentAnswer:
        try:
            answer = self.bank.deposit(signed, self.config.cert_pem)
        except RemoteCallError as exc:
            self.store.count("bank_error", exc.code)
            if exc.status is not None and 400 <= exc.status < 500 and exc.status not in (408, 429):
                self.store.reopen(preq, deposit_id)
                raise BankRefusedError(exc) from exc
            raise BankUnavailableError(
                "the bank did not confirm the deposit; retry the payment",
                detail={"cause": exc.code, "deposit_id": deposit_id, "outcome_unknown": True},
            ) from exc
        receipt = answer.get("receipt") if isinstance(answer, Mapping) else None
        bank_cert = answer.get("cert") if isinstance(answer, Mapping) else None
        if not isinstance(bank_cert, str):
            bank_cert = self.keysets().bank_cert_pem
        try:
            verify_receipt(
                receipt,
                bank_cert,
                self.config.root,
                preq=preq,
                merchant_id=self.name,
                amount=amount,
                currency=currency,
                serials=[sp.coin.sigma for sp in spends],
                now=self.clock(),
                crl=self.config.crl,
            )
        except EcashError as exc:
            self.store.count("bank_error", exc.code)
            raise
        if not isinstance(receipt, Mapping):  # pragma: no cover - verify_receipt checked it
            raise BankUnavailableError("bank answered without a receipt")
        self.store.mark_paid(preq, deposit_id, receipt, bank_cert)
        return PaymentAnswer(dict(receipt), bank_cert)

    def retry_deposits(self) -> list[DepositRetry]:
        """Re-send every deposit whose answer was lost (state ``paying``), each with the very
        document stored for it (step 4 of the module docstring), so the bank pays it at most
        once; a refusal reopens the request as on the first attempt. A deposit that a live
        payment is still making, or that went ``paying`` less than ``deposit_retry_after_s``
        ago (perhaps in another process), is left to that payment."""
        done = []
        cutoff = self.clock() - self.config.deposit_retry_after_s
        for row in self.store.paying(since_before=cutoff):
            with self._lock:
                live = row.preq in self._in_flight
            if live or row.deposit is None or row.deposit_id is None:
                continue
            outcome = "paid"
            try:
                spends = parse_spends(row.deposit["body"]["spends"], max_spends=MAX_SPENDS)
                self._deposit(
                    row.preq, row.deposit_id, row.deposit, row.amount, row.currency, spends
                )
            except EcashError as exc:
                outcome = exc.code
            done.append(DepositRetry(row.deposit_id, row.preq, row.amount, row.currency, outcome))
        return done

    def paid_answer(self, preq: bytes) -> PaymentAnswer:
        """docs/protocol.md §8.1: the answer of a paid request again (bank-signed receipt, bank
        certificate and, for a product, k sealed to the request's customer key), for a
        customer whose pay answer was lost. A request still ``paying`` is settled first by
        re-sending its stored deposit, as the retrier would. Safe to serve to anyone who knows
        ``preq``: the receipt is the bank's signed statement and the key opens only for the
        customer key in the merchant-signed request."""
        row = self.store.get(preq)
        if row is None:
            raise UnknownRequestError(
                "payment request not issued by this shop", detail={"preq": b64u_encode(preq)}
            )
        if row.state == "paying" and row.deposit is not None and row.deposit_id is not None:
            with self._lock:  # like _live, but refuse instead of waiting for a live payment
                live = preq in self._in_flight
                if not live:
                    self._in_flight.add(preq)
            if live:  # a live payment is depositing it right now: its customer gets the answer
                raise PaymentInProgressError(
                    "this payment request is being paid right now; ask again shortly"
                )
            try:
                spends = parse_spends(row.deposit["body"]["spends"], max_spends=MAX_SPENDS)
                answer = self._deposit(
                    preq, row.deposit_id, row.deposit, row.amount, row.currency, spends
                )
            finally:
                with self._lock:
                    self._in_flight.discard(preq)
        elif row.state == "paid" and row.receipt is not None and row.bank_cert is not None:
            answer = PaymentAnswer(dict(row.receipt), row.bank_cert)
        else:
            raise PaymentNotPaidError(
                "this payment request is not paid", detail={"preq": b64u_encode(preq)}
            )
        if self.catalogue is not None:  # fair exchange: the key goes out only after payment
            answer = self.catalogue.attach_key(parse_request_body(row.request["body"]), answer)
        return answer

    def retry_pending_deposits(self) -> list[str]:
        """Re-send deposits whose answer was lost; returns the deposit ids now paid."""
        return [r.deposit_id for r in self.retry_deposits() if r.settled]

    # --- reporting -----------------------------------------------------------------------

    def info(self) -> MerchantInfo:
        """Public facts about this merchant (name, certificate, currencies)."""
        return MerchantInfo(self.name, self.config.cert_pem, tuple(self.config.currencies))

    def stats(self) -> MerchantStats:
        """Counters by code and paid totals (for operators and tests)."""
        return MerchantStats(self.store.counters(), self.store.totals())
