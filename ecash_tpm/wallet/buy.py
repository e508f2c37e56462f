"""Buying digital goods with a fair exchange (DESIGN §6), device side.

:func:`buy`:

1. the product's descriptor and ciphertext are fetched from the shop (or any mirror, e.g. the
   TTP): the descriptor must be signed by a TTP certified by the central bank
   (``wallet.descriptor_invalid``) and the ciphertext must have the certified size and SHA-256
   (``wallet.ciphertext_tampered``) — so the wallet knows *what* it pays for before paying;
2. a fresh X25519 key pair is drawn for this purchase only (the merchant sees one unrelated
   public key per purchase, nothing that links two purchases) and the purchase is recorded with
   its private half;
3. the shop's payment request must name the product, the ciphertext hash as contract, the
   price, and our key (``wallet.request_mismatch``); it is paid with the ordinary TPM flow
   (:func:`ecash_tpm.wallet.pay.pay`), the spends being recorded before they leave;
4. the pay answer carries k sealed to our key, bound to the request digest and the product; it
   must open and decrypt the ciphertext. No key -> ``wallet.content_key_missing``, a key that
   does not open it -> ``wallet.content_key_invalid``; both leave the purchase ready for
   :func:`dispute`.

:func:`dispute` sends the TTP the signed request, the merchant certificate and the spends; the
TTP checks the payment with the bank and gets k from the merchant or, after the merchant's
deadline, from its escrow. While the merchant may still answer the TTP says
``ttp.dispute_pending`` (``detail.retry_after``); call :func:`dispute` again later. The answer
is sealed to this purchase's key: only this wallet can open it.

Purchases live in ``<data_dir>/purchases.db`` (component ``wallet_purchases``); the ephemeral
private key is erased once the content is decrypted; the content is written to
``<data_dir>/purchases/<purchase_id>.content`` (mode 0600).
"""

from __future__ import annotations

import hmac
import json
import os
import secrets
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from cryptography import x509

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.groupsig import DaaSigner
from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    ContentDecryptError,
    EphemeralKey,
    SealError,
    content_key_context,
    decrypt_content,
)
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import (
    ConflictError,
    CryptoError,
    EcashError,
    InputError,
    NotFoundError,
    RemoteError,
)
from ecash_tpm.protocol.errors import DisputePendingError
from ecash_tpm.protocol.exchange import ProductDescriptor, ciphertext_matches, verify_descriptor
from ecash_tpm.protocol.payments import parse_request_body
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.storage import Database, Migration, sqlite_url
from ecash_tpm.wallet.pay import MerchantApi, PaymentOutcomeUnknownError, PayResult, pay
from ecash_tpm.wallet.store import WalletStore

__all__ = [
    "COMPONENT",
    "PURCHASES_DB_FILE",
    "Buyer",
    "CiphertextTamperedError",
    "ContentKeyInvalidError",
    "ContentKeyMissingError",
    "DescriptorInvalidError",
    "DisputePendingError",
    "Offer",
    "PurchaseRecord",
    "PurchaseResult",
    "PurchaseStateError",
    "PurchaseStore",
    "RelayMerchant",
    "RequestMismatchError",
    "ShopCatalogueClient",
    "UnknownPurchaseError",
    "buy",
    "dispute",
    "fetch_offer",
]

COMPONENT = "wallet_purchases"
PURCHASES_DB_FILE = "purchases.db"
CONTENT_DIR = "purchases"
_DISPUTABLE = ("sent", "paid", "key_missing", "key_invalid", "disputing")

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "purchases",
        """
        CREATE TABLE wallet_purchase (
            purchase_id TEXT PRIMARY KEY,
            product_id TEXT NOT NULL,
            merchant_id TEXT NOT NULL,
            title TEXT NOT NULL,
            price BIGINT NOT NULL,
            currency TEXT NOT NULL,
            descriptor TEXT NOT NULL,
            ttp_cert TEXT NOT NULL,
            ttp_url TEXT,
            merchant_url TEXT,
            ciphertext {blob} NOT NULL,
            customer_secret {blob},
            customer_key {blob} NOT NULL,
            request TEXT,
            merchant_cert TEXT,
            preq {blob} UNIQUE,
            payment_id TEXT,
            spends TEXT,
            receipt TEXT,
            dispute_id TEXT,
            delivered_by TEXT,
            state TEXT NOT NULL CHECK (state IN ('started', 'requested', 'sent', 'paid',
                'key_missing', 'key_invalid', 'disputing', 'complete', 'failed')),
            error_code TEXT,
            content_file TEXT,
            created_at BIGINT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE INDEX wallet_purchase_state ON wallet_purchase (state);
        """,
    ),
]


# --- errors ------------------------------------------------------------------------------------


class DescriptorInvalidError(CryptoError):
    """The product descriptor is not signed by a certified TTP (or is malformed)."""

    code = "wallet.descriptor_invalid"


class CiphertextTamperedError(CryptoError):
    """The ciphertext does not have the size and SHA-256 the TTP certified."""

    code = "wallet.ciphertext_tampered"


class ContentKeyMissingError(RemoteError):
    """Paid, but the merchant sent no key: open a dispute (``wallet dispute``)."""

    code = "wallet.content_key_missing"


class ContentKeyInvalidError(CryptoError):
    """The key received does not open the product's ciphertext."""

    code = "wallet.content_key_invalid"


class RequestMismatchError(InputError):
    """The shop's payment request is not for this product, price or key."""

    code = "wallet.request_mismatch"


class UnknownPurchaseError(NotFoundError):
    """No purchase with this id in the wallet."""

    code = "wallet.unknown_purchase"


class PurchaseStateError(ConflictError):
    """The purchase is not in a state that allows this (e.g. dispute a completed one)."""

    code = "wallet.purchase_state"


# --- dependencies ------------------------------------------------------------------------------


class ProductSource(Protocol):
    """Where descriptor and ciphertext come from: the shop (``ShopCatalogueClient``) or the TTP
    (``TtpClient``); both are checked against the TTP's signature, so either will do."""

    def product(self, product_id: str) -> dict[str, Any]: ...

    def ciphertext(self, product_id: str) -> bytes: ...


class ShopApi(MerchantApi, Protocol):
    """The shop for buying: payment requests and payment (``MerchantClient``)."""

    def create_request(
        self,
        amount: int,
        currency: str | None = None,
        *,
        product_id: str | None = None,
        customer_key: bytes | None = None,
    ) -> dict[str, Any]: ...


class DisputeApi(Protocol):
    """The TTP for disputes (``TtpClient``)."""

    def open_dispute(
        self, request: Mapping[str, Any], cert: str, spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...

    def dispute_key(self, dispute_id: str) -> dict[str, Any]: ...


class RelayApi(Protocol):
    """The TTP in online mode (``TtpClient.relay_pay``)."""

    def relay_pay(
        self, request: Mapping[str, Any], cert: str, spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]: ...


class ShopCatalogueClient:
    """The shop's catalogue routes (``GET /v1/products/{id}[/ciphertext]``)."""

    def __init__(self, base_url: str, *, timeout: float = 30.0) -> None:
        self._http = ServiceClient(base_url, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> ShopCatalogueClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def products(self) -> list[dict[str, Any]]:
        return list(self._http.get_json("/v1/products")["products"])

    def product(self, product_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = self._http.get_json(f"/v1/products/{product_id}")
        return answer

    def ciphertext(self, product_id: str) -> bytes:
        answer = self._http.get_json(f"/v1/products/{product_id}/ciphertext")
        return b64u_decode(answer["ciphertext"])


class RelayMerchant:
    """Pays through the TTP (online-TTP mode): ``pay`` goes to ``POST /v1/relay/pay``."""

    def __init__(self, ttp: RelayApi, merchant_cert: str) -> None:
        self._ttp = ttp
        self._cert = merchant_cert

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        return self._ttp.relay_pay(request, self._cert, spends)


class _Capture:
    """Records the spends before they leave and keeps the merchant's whole answer."""

    def __init__(self, inner: MerchantApi, on_send: Callable[[list[dict[str, Any]]], None]):
        self._inner = inner
        self._on_send = on_send
        self.answer: dict[str, Any] | None = None

    def pay(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> Mapping[str, Any]:
        self._on_send([dict(s) for s in spends])
        answer = self._inner.pay(request, spends)
        self.answer = dict(answer)
        return answer


# --- records -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Offer:
    """A verified product offer: descriptor, its TTP certificate, the checked ciphertext."""

    descriptor: ProductDescriptor
    descriptor_doc: dict[str, Any]
    ttp_cert: str
    ttp_url: str | None
    ciphertext: bytes


@dataclass(frozen=True)
class PurchaseRecord:
    """One purchase as the wallet recorded it."""

    purchase_id: str
    product_id: str
    merchant_id: str
    title: str
    price: int
    currency: str
    ttp_url: str | None
    merchant_url: str | None
    ciphertext: bytes
    customer_secret: bytes | None
    customer_key: bytes
    request: dict[str, Any] | None
    merchant_cert: str | None
    preq: bytes | None
    payment_id: str | None
    spends: list[dict[str, Any]] | None
    dispute_id: str | None
    delivered_by: str | None
    state: str
    error_code: str | None
    content_file: str | None
    created_at: int
    updated_at: int

    def to_dict(self) -> dict[str, Any]:
        """Summary without secrets or ciphertext."""
        return {
            "purchase_id": self.purchase_id,
            "product_id": self.product_id,
            "merchant_id": self.merchant_id,
            "title": self.title,
            "price": self.price,
            "currency": self.currency,
            "state": self.state,
            "payment_id": self.payment_id,
            "dispute_id": self.dispute_id,
            "delivered_by": self.delivered_by,
            "error_code": self.error_code,
            "content_file": self.content_file,
            "created_at": self.created_at,
            "updated_at": self.updated_at,
        }


@dataclass(frozen=True)
class PurchaseResult:
    """A completed purchase: the decrypted content and who delivered the key."""

    purchase: PurchaseRecord
    content: bytes
    payment: PayResult | None = None
    timings: dict[str, float] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.purchase.to_dict(),
            "size": len(self.content),
            "timings": {k: round(v, 4) for k, v in self.timings.items()},
        }


def _record(r: Mapping[str, Any]) -> PurchaseRecord:
    def js(key: str) -> Any:
        return json.loads(r[key]) if r[key] else None

    return PurchaseRecord(
        purchase_id=r["purchase_id"],
        product_id=r["product_id"],
        merchant_id=r["merchant_id"],
        title=r["title"],
        price=int(r["price"]),
        currency=r["currency"],
        ttp_url=r["ttp_url"],
        merchant_url=r["merchant_url"],
        ciphertext=bytes(r["ciphertext"]),
        customer_secret=None if r["customer_secret"] is None else bytes(r["customer_secret"]),
        customer_key=bytes(r["customer_key"]),
        request=js("request"),
        merchant_cert=r["merchant_cert"],
        preq=None if r["preq"] is None else bytes(r["preq"]),
        payment_id=r["payment_id"],
        spends=js("spends"),
        dispute_id=r["dispute_id"],
        delivered_by=r["delivered_by"],
        state=r["state"],
        error_code=r["error_code"],
        content_file=r["content_file"],
        created_at=int(r["created_at"]),
        updated_at=int(r["updated_at"]),
    )


#: One literal statement per updatable column (values are always bound, never formatted).
_UPDATE_SQL: dict[str, str] = {
    "request": ("UPDATE wallet_purchase SET request = :v, updated_at = :t WHERE purchase_id = :id"),
    "merchant_cert": (
        "UPDATE wallet_purchase SET merchant_cert = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "preq": ("UPDATE wallet_purchase SET preq = :v, updated_at = :t WHERE purchase_id = :id"),
    "payment_id": (
        "UPDATE wallet_purchase SET payment_id = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "spends": ("UPDATE wallet_purchase SET spends = :v, updated_at = :t WHERE purchase_id = :id"),
    "receipt": ("UPDATE wallet_purchase SET receipt = :v, updated_at = :t WHERE purchase_id = :id"),
    "dispute_id": (
        "UPDATE wallet_purchase SET dispute_id = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "delivered_by": (
        "UPDATE wallet_purchase SET delivered_by = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "state": ("UPDATE wallet_purchase SET state = :v, updated_at = :t WHERE purchase_id = :id"),
    "error_code": (
        "UPDATE wallet_purchase SET error_code = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "content_file": (
        "UPDATE wallet_purchase SET content_file = :v, updated_at = :t WHERE purchase_id = :id"
    ),
    "customer_secret": (
        "UPDATE wallet_purchase SET customer_secret = :v, updated_at = :t WHERE purchase_id = :id"
    ),
}


class PurchaseStore:
    """``<data_dir>/purchases.db``: purchases and their ephemeral keys (owns its Database)."""

    def __init__(self, db: Database, data_dir: Path, clock: Callable[[], int]) -> None:
        self._db = db
        self.data_dir = data_dir
        self._clock = clock
        db.migrate(MIGRATIONS, component=COMPONENT)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], clock: Callable[[], int]) -> PurchaseStore:
        directory = Path(data_dir)
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = directory / PURCHASES_DB_FILE
        if not path.exists():
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY, 0o600))
        return cls(Database.open(sqlite_url(path.absolute())), directory, clock)

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> PurchaseStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def add(
        self, purchase_id: str, offer: Offer, key: EphemeralKey, merchant_url: str | None
    ) -> None:
        d = offer.descriptor
        now = self._clock()
        with self._db.transaction() as tx:
            tx.execute(
                "INSERT INTO wallet_purchase (purchase_id, product_id, merchant_id, title, price,"
                " currency, descriptor, ttp_cert, ttp_url, merchant_url, ciphertext,"
                " customer_secret, customer_key, state, created_at, updated_at) VALUES (:id,"
                " :pid, :m, :t, :p, :c, :d, :tc, :tu, :mu, :ct, :cs, :ck, 'started', :now, :now)",
                {
                    "id": purchase_id,
                    "pid": d.product_id,
                    "m": d.merchant_id,
                    "t": d.title,
                    "p": d.price,
                    "c": d.currency,
                    "d": json.dumps(offer.descriptor_doc, sort_keys=True),
                    "tc": offer.ttp_cert,
                    "tu": offer.ttp_url,
                    "mu": merchant_url,
                    "ct": offer.ciphertext,
                    "cs": key.secret_bytes(),
                    "ck": key.public_bytes,
                    "now": now,
                },
            )

    def update(self, purchase_id: str, **values: Any) -> None:
        """Set columns (JSON for dicts/lists) in one transaction."""
        now = self._clock()
        with self._db.transaction() as tx:
            for name, value in values.items():
                if name not in _UPDATE_SQL:
                    raise InputError(f"cannot update purchase column {name!r}")
                if isinstance(value, dict | list):
                    value = json.dumps(value, sort_keys=True)
                tx.execute(_UPDATE_SQL[name], {"v": value, "t": now, "id": purchase_id})

    def get(self, purchase_id: str) -> PurchaseRecord:
        with self._db.read() as tx:
            r = tx.fetchone(
                "SELECT * FROM wallet_purchase WHERE purchase_id = :id", {"id": purchase_id}
            )
        if r is None:
            raise UnknownPurchaseError("no such purchase", detail={"purchase_id": purchase_id})
        return _record(r)

    def purchases(self, *, limit: int = 1000) -> list[PurchaseRecord]:
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT * FROM wallet_purchase ORDER BY created_at DESC, purchase_id LIMIT :n",
                {"n": limit},
            )
        return [_record(r) for r in rows]

    def open_disputes(self) -> list[PurchaseRecord]:
        """Purchases waiting for a key (to retry ``dispute``)."""
        return [p for p in self.purchases() if p.state in _DISPUTABLE]

    def save_content(self, purchase_id: str, content: bytes) -> Path:
        directory = self.data_dir / CONTENT_DIR
        directory.mkdir(mode=0o700, exist_ok=True)
        path = directory / f"{purchase_id}.content"
        write_file_atomic(path, content, mode=0o600)
        return path


# --- the protocol ------------------------------------------------------------------------------


def fetch_offer(
    source: ProductSource,
    product_id: str,
    *,
    root: x509.Certificate | bytes | str,
    now: int,
    ttp_name: str | None = None,
) -> Offer:
    """Descriptor (TTP signature under the root) and ciphertext (certified size and hash)."""
    answer = source.product(product_id)
    if not isinstance(answer, Mapping):
        raise DescriptorInvalidError("the product answer is not an object")
    cert = answer.get("ttp_cert") or answer.get("cert")  # shop listing / TTP answer
    try:
        if not isinstance(cert, str):
            raise InputError("no TTP certificate beside the descriptor")
        desc = verify_descriptor(answer.get("descriptor"), cert, root, now=now, ttp_name=ttp_name)
    except EcashError as exc:
        raise DescriptorInvalidError(
            f"product descriptor rejected: {exc.message}", detail={"cause": exc.code}
        ) from exc
    if desc.product_id != product_id:
        raise DescriptorInvalidError("the descriptor is for another product")
    blob = source.ciphertext(product_id)
    if not ciphertext_matches(desc, blob):
        raise CiphertextTamperedError(
            "the ciphertext is not the one the TTP certified",
            detail={"product_id": product_id, "size": len(blob)},
        )
    return Offer(
        descriptor=desc,
        descriptor_doc=dict(answer["descriptor"]),
        ttp_cert=cert,
        ttp_url=answer.get("ttp_url") if isinstance(answer.get("ttp_url"), str) else None,
        ciphertext=blob,
    )


def _check_request(doc: Mapping[str, Any], offer: Offer, customer_key: bytes) -> bytes:
    req = parse_request_body(doc.get("body"))
    d = offer.descriptor
    wrong = [
        name
        for name, ok in (
            ("merchant_id", req.merchant_id == d.merchant_id),
            ("product_id", req.product_id == d.product_id),
            ("contract_hash", hmac.compare_digest(req.contract_hash, d.ciphertext_sha256)),
            ("amount", req.amount == d.price),
            ("currency", req.currency == d.currency),
            ("customer_key", req.customer_key == customer_key),
        )
        if not ok
    ]
    if wrong:
        raise RequestMismatchError(
            "the shop's payment request is not for this product", detail={"fields": wrong}
        )
    return req.preq


def _unlock(
    purchases: PurchaseStore, p: PurchaseRecord, sealed: Any, *, via: str
) -> PurchaseResult:
    """Open the sealed key, decrypt, store the content, erase the ephemeral key."""
    if p.customer_secret is None or p.preq is None:
        raise PurchaseStateError("this purchase has no key to open anything with")
    try:
        key = EphemeralKey.from_secret(p.customer_secret).open(
            sealed, purpose=PURPOSE_CONTENT_KEY, context=content_key_context(p.preq, p.product_id)
        )
        content = decrypt_content(
            key, p.ciphertext, product_id=p.product_id, merchant_id=p.merchant_id
        )
    except (SealError, ContentDecryptError) as exc:
        state = "key_invalid" if via == "merchant" else p.state
        purchases.update(p.purchase_id, state=state, error_code=ContentKeyInvalidError.code)
        raise ContentKeyInvalidError(
            "the key does not open the product: "
            + ("run `wallet dispute`" if via == "merchant" else "the TTP's answer is bad"),
            detail={"purchase_id": p.purchase_id, "cause": exc.code, "via": via},
        ) from exc
    path = purchases.save_content(p.purchase_id, content)
    purchases.update(
        p.purchase_id,
        state="complete",
        delivered_by=via,
        content_file=str(path),
        customer_secret=None,
        error_code=None,
    )
    return PurchaseResult(purchases.get(p.purchase_id), content)


def buy(
    purchases: PurchaseStore,
    wallet: WalletStore,
    product_id: str,
    *,
    source: ProductSource,
    shop: ShopApi,
    signer: DaaSigner,
    hop: Point,
    root: x509.Certificate | bytes | str,
    clock: Callable[[], int],
    expected_t0: Point | None = None,
    bank_name: str | None = None,
    merchant_url: str | None = None,
    ttp_name: str | None = None,
    relay: RelayApi | None = None,
) -> PurchaseResult:
    """Buy ``product_id`` (see the module docstring). With ``relay`` the payment goes through
    the TTP (online-TTP mode, for comparison) instead of straight to the shop."""
    offer = fetch_offer(source, product_id, root=root, now=clock(), ttp_name=ttp_name)
    d = offer.descriptor
    key = EphemeralKey()
    purchase_id = "buy-" + secrets.token_hex(12)
    purchases.add(purchase_id, offer, key, merchant_url)
    try:
        doc = shop.create_request(
            d.price, d.currency, product_id=d.product_id, customer_key=key.public_bytes
        )
        request, cert = doc.get("request"), doc.get("cert")
        if not isinstance(request, Mapping) or not isinstance(cert, str):
            raise RequestMismatchError("the shop answered without {request, cert}")
        preq = _check_request(request, offer, key.public_bytes)
    except EcashError as exc:
        purchases.update(purchase_id, state="failed", error_code=exc.code, customer_secret=None)
        raise
    purchases.update(
        purchase_id, request=dict(request), merchant_cert=cert, preq=preq, state="requested"
    )
    target: MerchantApi = shop if relay is None else RelayMerchant(relay, cert)
    capture = _Capture(
        target, lambda spends: purchases.update(purchase_id, spends=spends, state="sent")
    )
    try:
        paid = pay(
            wallet,
            request,
            cert,
            merchant=capture,
            signer=signer,
            hop=hop,
            root=root,
            clock=clock,
            expected_t0=expected_t0,
            bank_name=bank_name,
            merchant_url=merchant_url,
        )
    except PaymentOutcomeUnknownError as exc:
        purchases.update(purchase_id, error_code=exc.code)  # stays "sent": recover, dispute
        raise
    except EcashError as exc:
        sent = purchases.get(purchase_id).state == "sent"
        if sent and isinstance(exc, CryptoError):  # bad receipt: the coins may be gone
            purchases.update(purchase_id, error_code=exc.code)
        else:
            purchases.update(purchase_id, state="failed", error_code=exc.code, customer_secret=None)
        raise
    purchases.update(
        purchase_id,
        payment_id=paid.payment_id,
        receipt=paid.receipt,
        state="paid",
    )
    answer = capture.answer or {}
    sealed = answer.get("content_key")
    record = purchases.get(purchase_id)
    if sealed is None:
        purchases.update(purchase_id, state="key_missing", error_code=ContentKeyMissingError.code)
        raise ContentKeyMissingError(
            "paid, but the merchant sent no key: run `wallet dispute`",
            detail={"purchase_id": purchase_id, "payment_id": paid.payment_id},
        )
    result = _unlock(purchases, record, sealed, via="merchant" if relay is None else "relay")
    return PurchaseResult(result.purchase, result.content, paid, dict(paid.timings))


def dispute(
    purchases: PurchaseStore, purchase_id: str, *, ttp: DisputeApi, clock: Callable[[], int]
) -> PurchaseResult:
    """Get the key through the TTP (see the module docstring); raises DisputePendingError
    (``ttp.dispute_pending``) while the merchant still has time to answer."""
    p = purchases.get(purchase_id)
    if p.state not in _DISPUTABLE:
        raise PurchaseStateError(
            f"a purchase in state {p.state!r} cannot be disputed",
            detail={"purchase_id": purchase_id, "state": p.state},
        )
    if p.request is None or p.merchant_cert is None or not p.spends:
        raise PurchaseStateError(
            "nothing was sent for this purchase: there is no payment to dispute",
            detail={"purchase_id": purchase_id},
        )
    try:
        if p.dispute_id is None:
            view = ttp.open_dispute(p.request, p.merchant_cert, p.spends)
            purchases.update(purchase_id, dispute_id=view["dispute_id"], state="disputing")
            if view.get("state") != "resolved" or view.get("sealed_key") is None:
                raise DisputePendingError(
                    "the TTP asked the merchant; ask again after the deadline",
                    detail={
                        "purchase_id": purchase_id,
                        "dispute_id": view["dispute_id"],
                        "deadline": view.get("deadline"),
                        "retry_after": max(1, int(view.get("deadline", 0)) - clock() + 1),
                    },
                )
            sealed = view["sealed_key"]
        else:
            sealed = ttp.dispute_key(p.dispute_id)["sealed_key"]
    except RemoteCallError as exc:
        if exc.code == DisputePendingError.code:
            raise DisputePendingError(
                exc.message, detail={**exc.detail, "purchase_id": purchase_id}
            ) from exc
        purchases.update(purchase_id, error_code=exc.code)
        raise
    return _unlock(purchases, purchases.get(purchase_id), sealed, via="ttp")


@dataclass
class Buyer:
    """A wallet ready to buy: stores, TPM signer, membership facts, trust root, clock."""

    purchases: PurchaseStore
    wallet: WalletStore
    signer: DaaSigner
    hop: Point
    root: x509.Certificate | bytes | str
    clock: Callable[[], int]
    expected_t0: Point | None = None
    bank_name: str | None = None

    def buy(
        self,
        product_id: str,
        *,
        source: ProductSource,
        shop: ShopApi,
        merchant_url: str | None = None,
        relay: RelayApi | None = None,
    ) -> PurchaseResult:
        return buy(
            self.purchases,
            self.wallet,
            product_id,
            source=source,
            shop=shop,
            signer=self.signer,
            hop=self.hop,
            root=self.root,
            clock=self.clock,
            expected_t0=self.expected_t0,
            bank_name=self.bank_name,
            merchant_url=merchant_url,
            relay=relay,
        )

    def dispute(self, purchase_id: str, *, ttp: DisputeApi) -> PurchaseResult:
        return dispute(self.purchases, purchase_id, ttp=ttp, clock=self.clock)
