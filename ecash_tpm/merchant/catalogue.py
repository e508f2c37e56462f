"""The merchant's catalogue of digital goods, escrowed with the fair-exchange TTP (DESIGN §6).

Registering a product (``register``): the merchant signs a ``product-registration`` with the
content and a one-time X25519 reply key; the TTP encrypts the content under a fresh key k,
keeps k in escrow, and answers with its signed product descriptor, the ciphertext and k sealed
to the reply key. The merchant checks all of it (TTP certificate and signature, descriptor
terms, ciphertext hash, and that k opens the ciphertext to *its* content) before listing the
product. The descriptor and ciphertext are then served by the merchant itself
(``GET /v1/products...``), so an honest purchase never touches the TTP: its signature on the
descriptor is what makes the merchant's copy trustworthy.

Selling (``contract_for``, ``attach_key``): a payment request for a product has
``contract_hash = ciphertext_sha256`` and carries the customer's per-purchase X25519 key; after
the bank's receipt, the pay answer carries k sealed to that key, bound to ``preq`` and the
product (:func:`ecash_tpm.crypto.sealing.content_key_context`).

Disputes (``answer_key_request``): the TTP asks (signed ``ttp-key-request``) for k of a paid
request; the merchant answers with a signed ``ttp-key-answer`` holding k sealed to the
dispute's reply key. It answers only the TTP that registered the product, and only for requests
it recorded as paid; a request still ``paying`` (the bank's answer to the deposit was lost) is
settled first (``settle``, docs/protocol.md §8.1), so an honest shop is not struck for it.

Which key goes out at those two points is a :class:`KeyRelease` the catalogue is given; the
only one in this package is :class:`HonestKeyRelease` (the product's key, every time). Shops
that withhold or falsify keys exist only in the demo and the tests, injected from outside.
"""

from __future__ import annotations

import contextlib
import hmac
import secrets
from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any, Protocol

import httpx

from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    PURPOSE_DISPUTE_ANSWER,
    PURPOSE_REGISTRATION,
    EphemeralKey,
    content_key_context,
    decrypt_content,
    seal,
)
from ecash_tpm.crypto.signing import key_id, sign_object
from ecash_tpm.errors import (
    AuthenticationError,
    ConfigError,
    EcashError,
    ForbiddenError,
    InputError,
    NotFoundError,
    RemoteError,
)
from ecash_tpm.merchant.models import KeyAnswerReply, PaymentAnswer
from ecash_tpm.merchant.store import (
    CATALOGUE_COMPONENT,
    CATALOGUE_MIGRATIONS,
    CatalogueProduct,
    CatalogueStore,
    MerchantStore,
)
from ecash_tpm.pki import common_name, load_certificate
from ecash_tpm.protocol.coins import PaymentRequest
from ecash_tpm.protocol.exchange import (
    KIND_KEY_ANSWER,
    KIND_KEY_REQUEST,
    KIND_REGISTRATION,
    KeyAnswer,
    ciphertext_matches,
    key_answer_body,
    parse_key_request,
    registration_body,
    verify_descriptor,
    verify_signed,
)
from ecash_tpm.service.auth import require_bearer
from ecash_tpm.storage import Database

if TYPE_CHECKING:
    from ecash_tpm.clients.connect import Link
    from ecash_tpm.merchant.domain import MerchantConfig

__all__ = [
    "CATALOGUE_COMPONENT",
    "CATALOGUE_MIGRATIONS",
    "Catalogue",
    "CatalogueProduct",
    "HonestKeyRelease",
    "KeyRelease",
    "ProductPriceError",
    "TtpNotConfiguredError",
    "TtpRegistrar",
    "UnknownProductError",
    "check_admin",
    "open_catalogue",
]

# --- errors ------------------------------------------------------------------------------------


class UnknownProductError(NotFoundError):
    """This shop does not sell that product."""

    code = "merchant.unknown_product"


class ProductPriceError(InputError):
    """A product request must ask for the product's price in its currency."""

    code = "payment.price_mismatch"


class CustomerKeyRequiredError(InputError):
    """A product request needs the customer's X25519 key (the key is sealed to it)."""

    code = "payment.customer_key_required"


class KeyRequestRefusedError(ForbiddenError):
    """The TTP asked for the key of a request this shop did not record as paid."""

    code = "merchant.not_paid"


class TtpUntrustedError(ForbiddenError):
    """A key request from another TTP than the one that registered the product."""

    code = "merchant.ttp_untrusted"


class TtpNotConfiguredError(ConfigError):
    """Registering a product needs ``merchant.ttp_url``."""

    code = "merchant.ttp_not_configured"
    http_status = 503


class RegistrationAnswerError(RemoteError):
    """The TTP's registration answer does not check out (signature, terms, ciphertext, key)."""

    code = "merchant.ttp_answer_invalid"


# --- dependencies ------------------------------------------------------------------------------


class TtpRegistrar(Protocol):
    """What the catalogue needs from the TTP (``TtpClient`` over HTTP, the domain in tests)."""

    def register_product(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]: ...


class KeyRelease(Protocol):
    """Which key the shop hands out at the two points fair exchange depends on (DESIGN §6).

    Production always uses :class:`HonestKeyRelease`; the demo and the tests inject shops that
    withhold or falsify keys, to show what the TTP does about them.
    """

    def to_customer(self, product: CatalogueProduct) -> bytes | None:
        """The key sealed into the pay answer after the deposit (``None``: send none)."""
        ...

    def to_ttp(self, product: CatalogueProduct) -> bytes:
        """The key sealed into the answer to the TTP's key request (raise to refuse)."""
        ...


class HonestKeyRelease:
    """The product's own key, to the customer and to the TTP alike."""

    def to_customer(self, product: CatalogueProduct) -> bytes | None:
        return product.content_key

    def to_ttp(self, product: CatalogueProduct) -> bytes:
        return product.content_key


def check_admin(configured: str | None, authorization: str | None) -> None:
    """``Authorization: Bearer <admin_token>`` for catalogue changes over HTTP."""
    require_bearer(
        authorization,
        configured,
        disabled=ForbiddenError(
            "catalogue administration over HTTP is disabled (set merchant.admin_token)",
            code="merchant.admin_disabled",
        ),
        unauthorized=AuthenticationError("admin token required", code="merchant.admin_auth"),
    )


class Catalogue:
    """Products, key delivery and dispute answers of one merchant (thread-safe)."""

    def __init__(
        self,
        config: MerchantConfig,
        db: Database,
        store: MerchantStore,
        *,
        ttp: TtpRegistrar | None,
        ttp_url: str | None,
        clock: Callable[[], int],
        key_release: KeyRelease | None = None,
    ) -> None:
        self.config = config
        self.db = db
        self.listed = CatalogueStore(db)
        self.store = store
        self.ttp = ttp
        self.ttp_url = ttp_url
        self.clock = clock
        self.key_release: KeyRelease = key_release or HonestKeyRelease()
        #: Settles a request left ``paying`` by a lost bank answer (``Merchant.paid_answer``,
        #: set by the merchant): asked for a key of such a request, the shop first re-sends its
        #: deposit rather than refusing a customer the bank has booked as paid (§8.1).
        self.settle: Callable[[bytes], object] | None = None

    # --- products ----------------------------------------------------------------------------

    def register(
        self,
        *,
        title: str,
        price: int,
        content: bytes,
        merchant_url: str,
        currency: str | None = None,
    ) -> CatalogueProduct:
        """Register ``content`` with the TTP and list it (see the module docstring)."""
        if self.ttp is None:
            raise TtpNotConfiguredError("this merchant has no TTP configured (merchant.ttp_url)")
        cur = currency or self.config.currencies[0]
        if isinstance(price, bool) or not isinstance(price, int) or price <= 0:
            raise InputError("price must be a positive integer (minor units)")
        reply = EphemeralKey()
        nonce = secrets.token_bytes(16)
        body = registration_body(
            merchant_id=self.config.name,
            title=title,
            price=price,
            currency=cur,
            content=content,
            nonce=nonce,
            created=self.clock(),
            merchant_url=merchant_url,
            reply_key=reply.public_bytes,
        )
        signed = sign_object(self.config.key, KIND_REGISTRATION, body)
        answer = self.ttp.register_product(signed, self.config.cert_pem)
        product = self._check_registration(answer, reply, nonce, title, price, cur, content)
        self.listed.add(product)
        return product

    def _check_registration(
        self,
        answer: Any,
        reply: EphemeralKey,
        nonce: bytes,
        title: str,
        price: int,
        currency: str,
        content: bytes,
    ) -> CatalogueProduct:
        try:
            if not isinstance(answer, Mapping) or not isinstance(answer.get("cert"), str):
                raise InputError("answer must be {descriptor, cert, ciphertext, sealed_key}")
            desc = verify_descriptor(
                answer.get("descriptor"), answer["cert"], self.config.root, now=self.clock()
            )
            blob = b64u_decode(answer.get("ciphertext"))  # type: ignore[arg-type]
            terms = (desc.merchant_id, desc.title, desc.price, desc.currency)
            if terms != (self.config.name, title, price, currency):
                raise InputError("the descriptor does not state our terms")
            if not ciphertext_matches(desc, blob):
                raise InputError("the ciphertext does not match the descriptor")
            key = reply.open(
                answer.get("sealed_key"),
                purpose=PURPOSE_REGISTRATION,
                context=(desc.product_id.encode("ascii"), nonce),
            )
            opened = decrypt_content(
                key, blob, product_id=desc.product_id, merchant_id=self.config.name
            )
            if not hmac.compare_digest(opened, content):
                raise InputError("the ciphertext is not our content")
        except (EcashError, TypeError) as exc:
            code = exc.code if isinstance(exc, EcashError) else "input.invalid"
            raise RegistrationAnswerError(
                f"the TTP's registration answer does not check out: {exc}", detail={"cause": code}
            ) from exc
        return CatalogueProduct(
            product_id=desc.product_id,
            title=desc.title,
            price=desc.price,
            currency=desc.currency,
            ciphertext_sha256=desc.ciphertext_sha256,
            ciphertext=blob,
            content_key=key,
            descriptor=dict(answer["descriptor"]),
            ttp_cert=answer["cert"],
            ttp_key_id=key_id(_cert_key(answer["cert"])),
            ttp_url=self.ttp_url,
            registered_at=self.clock(),
        )

    def get(self, product_id: str) -> CatalogueProduct:
        product = self.listed.get(product_id)
        if product is None:
            raise UnknownProductError(
                "this shop does not sell that product", detail={"product_id": product_id[:80]}
            )
        return product

    def products(self) -> list[CatalogueProduct]:
        return self.listed.all()

    # --- selling -----------------------------------------------------------------------------

    def contract_for(
        self, product_id: str, *, amount: int, currency: str, customer_key: bytes | None
    ) -> bytes:
        """The contract hash of a request for ``product_id`` (its ciphertext hash), after
        checking price, currency and the customer's key."""
        product = self.get(product_id)
        if (amount, currency) != (product.price, product.currency):
            raise ProductPriceError(
                "a product request must ask for the product's price",
                detail={"price": product.price, "currency": product.currency},
            )
        if customer_key is None:
            raise CustomerKeyRequiredError("a product request needs customer_key (X25519)")
        return product.ciphertext_sha256

    def attach_key(self, req: PaymentRequest, answer: PaymentAnswer) -> PaymentAnswer:
        """The pay answer plus ``content_key``: k sealed to the customer (after the deposit)."""
        if req.product_id is None or req.customer_key is None:
            return answer
        try:
            product = self.get(req.product_id)
        except UnknownProductError:
            return answer
        key = self.key_release.to_customer(product)
        if key is None:
            return answer
        sealed = seal(
            req.customer_key,
            key,
            purpose=PURPOSE_CONTENT_KEY,
            context=content_key_context(req.preq, product.product_id),
        )
        return replace(answer, content_key=sealed.to_dict())

    # --- disputes ----------------------------------------------------------------------------

    def answer_key_request(self, signed: Any, cert_pem: str) -> KeyAnswerReply:
        """Answer the TTP's key request for a paid request (signed answer and our cert)."""
        body, ttp_key = verify_signed(
            signed,
            cert_pem,
            self.config.root,
            role="ttp",
            kind=KIND_KEY_REQUEST,
            now=self.clock(),
            crl=self.config.crl,
        )
        kr = parse_key_request(body, InputError)
        if kr.merchant_id != self.config.name or kr.ttp_id != common_name(cert_pem):
            raise InputError("the key request is for another merchant or names another TTP")
        product = self.get(kr.product_id)
        if not hmac.compare_digest(key_id(ttp_key), product.ttp_key_id):
            raise TtpUntrustedError("this TTP did not register that product")
        row = self.store.get(kr.preq)
        if row is not None and row.state == "paying" and self.settle is not None:
            with contextlib.suppress(EcashError):  # still unknown: refused as not paid below
                self.settle(kr.preq)
            row = self.store.get(kr.preq)
        if row is None or row.product_id != kr.product_id or row.state != "paid":
            raise KeyRequestRefusedError(
                "no paid request of ours for that product", detail={"product_id": kr.product_id}
            )
        key = self.key_release.to_ttp(product)
        sealed = seal(
            kr.reply_key,
            key,
            purpose=PURPOSE_DISPUTE_ANSWER,
            context=(kr.dispute_id.encode("ascii"), kr.preq),
        )
        answer = sign_object(
            self.config.key,
            KIND_KEY_ANSWER,
            key_answer_body(
                KeyAnswer(
                    dispute_id=kr.dispute_id,
                    merchant_id=self.config.name,
                    product_id=kr.product_id,
                    preq=kr.preq,
                    sealed_key=sealed.to_dict(),
                )
            ),
        )
        return KeyAnswerReply(answer, self.config.cert_pem)


def _cert_key(cert_pem: str) -> Any:
    return load_certificate(cert_pem).public_key()


def open_catalogue(
    config: MerchantConfig,
    db: Database,
    store: MerchantStore,
    *,
    ttp_url: str | None,
    clock: Callable[[], int],
    key_release: KeyRelease | None = None,
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    ttp: TtpRegistrar | None = None,
    ttp_link: Link | None = None,
) -> tuple[Catalogue, Callable[[], None]]:
    """Migrate the catalogue tables and build it; returns ``(catalogue, close)``."""
    from ecash_tpm.clients.ttp import TtpClient

    db.migrate(CATALOGUE_MIGRATIONS, component=CATALOGUE_COMPONENT)
    close: Callable[[], None] = _noop
    registrar = ttp
    if registrar is None and ttp_url:
        client = TtpClient(
            ttp_url,
            timeout=timeout,
            transport=transport,
            tls=None if ttp_link is None else ttp_link.tls,
            expect=None if ttp_link is None else ttp_link.expect,
        )
        registrar, close = client, client.close
    catalogue = Catalogue(
        config, db, store, ttp=registrar, ttp_url=ttp_url, clock=clock, key_release=key_release
    )
    return catalogue, close


def _noop() -> None:
    return None
