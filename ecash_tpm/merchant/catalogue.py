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
it recorded as paid.

**Cheating, for tests and the demo only** (``cheat``): ``no_key`` sends no key to the customer
and refuses the TTP (case 1), ``wrong_key`` sends a random key to both (case 2), ``lost_key``
sends no key to the customer but answers the TTP honestly (a lost delivery).
"""

from __future__ import annotations

import hmac
import json
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

import httpx

from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    PURPOSE_DISPUTE_ANSWER,
    PURPOSE_REGISTRATION,
    EphemeralKey,
    content_key_context,
    decrypt_content,
    new_content_key,
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
from ecash_tpm.storage import Database, Migration

if TYPE_CHECKING:
    from ecash_tpm.merchant.domain import MerchantConfig
    from ecash_tpm.merchant.store import MerchantStore

__all__ = [
    "CATALOGUE_COMPONENT",
    "CATALOGUE_MIGRATIONS",
    "CHEAT_MODES",
    "Catalogue",
    "CatalogueProduct",
    "KeyWithheldError",
    "ProductPriceError",
    "TtpNotConfiguredError",
    "TtpRegistrar",
    "UnknownProductError",
    "check_admin",
    "open_catalogue",
]

CATALOGUE_COMPONENT = "merchant_catalogue"
Cheat = Literal["none", "no_key", "wrong_key", "lost_key"]
CHEAT_MODES: tuple[str, ...] = ("none", "no_key", "wrong_key", "lost_key")

CATALOGUE_MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "catalogue",
        """
        CREATE TABLE merchant_product (
            product_id TEXT PRIMARY KEY,
            title TEXT NOT NULL,
            price BIGINT NOT NULL CHECK (price > 0),
            currency TEXT NOT NULL,
            ciphertext_sha256 {blob} NOT NULL,
            ciphertext {blob} NOT NULL,
            content_key {blob} NOT NULL,
            descriptor TEXT NOT NULL,
            ttp_cert TEXT NOT NULL,
            ttp_key_id TEXT NOT NULL,
            ttp_url TEXT,
            registered_at BIGINT NOT NULL
        );
        """,
    ),
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


class KeyWithheldError(RemoteError):
    """Cheat mode ``no_key``: the shop does not answer the TTP (tests and demo only)."""

    code = "merchant.key_withheld"
    http_status = 503


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


@dataclass(frozen=True)
class CatalogueProduct:
    """A product this shop sells, with the content key it got from the TTP."""

    product_id: str
    title: str
    price: int
    currency: str
    ciphertext_sha256: bytes
    ciphertext: bytes
    content_key: bytes
    descriptor: dict[str, Any]
    ttp_cert: str
    ttp_key_id: str
    ttp_url: str | None
    registered_at: int

    def listing(self) -> dict[str, Any]:
        """The public entry: TTP-signed descriptor, TTP certificate, where the TTP is."""
        return {"descriptor": self.descriptor, "ttp_cert": self.ttp_cert, "ttp_url": self.ttp_url}


def _row(r: Mapping[str, Any]) -> CatalogueProduct:
    return CatalogueProduct(
        product_id=r["product_id"],
        title=r["title"],
        price=int(r["price"]),
        currency=r["currency"],
        ciphertext_sha256=bytes(r["ciphertext_sha256"]),
        ciphertext=bytes(r["ciphertext"]),
        content_key=bytes(r["content_key"]),
        descriptor=json.loads(r["descriptor"]),
        ttp_cert=r["ttp_cert"],
        ttp_key_id=r["ttp_key_id"],
        ttp_url=r["ttp_url"],
        registered_at=int(r["registered_at"]),
    )


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
        cheat: str = "none",
    ) -> None:
        self.config = config
        self.db = db
        self.store = store
        self.ttp = ttp
        self.ttp_url = ttp_url
        self.clock = clock
        self.cheat = cheat

    @property
    def cheat(self) -> str:
        return self._cheat

    @cheat.setter
    def cheat(self, mode: str) -> None:
        """Test hook: switch cheating on or off at run time."""
        if mode not in CHEAT_MODES:
            raise ConfigError(f"cheat must be one of {', '.join(CHEAT_MODES)}")
        self._cheat = mode

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
        with self.db.transaction() as tx:
            tx.execute(
                "INSERT INTO merchant_product (product_id, title, price, currency,"
                " ciphertext_sha256, ciphertext, content_key, descriptor, ttp_cert, ttp_key_id,"
                " ttp_url, registered_at) VALUES (:pid, :t, :p, :c, :h, :ct, :k, :d, :tc,"
                " :tk, :tu, :now) ON CONFLICT (product_id) DO NOTHING",
                {
                    "pid": product.product_id,
                    "t": product.title,
                    "p": product.price,
                    "c": product.currency,
                    "h": product.ciphertext_sha256,
                    "ct": product.ciphertext,
                    "k": product.content_key,
                    "d": json.dumps(product.descriptor, sort_keys=True),
                    "tc": product.ttp_cert,
                    "tk": product.ttp_key_id,
                    "tu": product.ttp_url,
                    "now": product.registered_at,
                },
            )
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
        with self.db.read() as tx:
            r = tx.fetchone(
                "SELECT * FROM merchant_product WHERE product_id = :p", {"p": product_id}
            )
        if r is None:
            raise UnknownProductError(
                "this shop does not sell that product", detail={"product_id": product_id[:80]}
            )
        return _row(r)

    def products(self) -> list[CatalogueProduct]:
        with self.db.read() as tx:
            rows = tx.fetchall("SELECT * FROM merchant_product ORDER BY registered_at, product_id")
        return [_row(r) for r in rows]

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

    def attach_key(self, req: PaymentRequest, answer: Mapping[str, Any]) -> dict[str, Any]:
        """The pay answer plus ``content_key``: k sealed to the customer (after the deposit)."""
        out = dict(answer)
        out["content_key"] = None
        if req.product_id is None or req.customer_key is None:
            return out
        try:
            product = self.get(req.product_id)
        except UnknownProductError:
            return out
        if self.cheat in ("no_key", "lost_key"):
            return out
        key = new_content_key() if self.cheat == "wrong_key" else product.content_key
        out["content_key"] = seal(
            req.customer_key,
            key,
            purpose=PURPOSE_CONTENT_KEY,
            context=content_key_context(req.preq, product.product_id),
        ).to_dict()
        return out

    # --- disputes ----------------------------------------------------------------------------

    def answer_key_request(self, signed: Any, cert_pem: str) -> dict[str, Any]:
        """Answer the TTP's key request for a paid request: ``{answer, cert}``."""
        body, ttp_key = verify_signed(
            signed, cert_pem, self.config.root, role="ttp", kind=KIND_KEY_REQUEST, now=self.clock()
        )
        kr = parse_key_request(body, InputError)
        if kr.merchant_id != self.config.name or kr.ttp_id != common_name(cert_pem):
            raise InputError("the key request is for another merchant or names another TTP")
        product = self.get(kr.product_id)
        if not hmac.compare_digest(key_id(ttp_key), product.ttp_key_id):
            raise TtpUntrustedError("this TTP did not register that product")
        row = self.store.get(kr.preq)
        if row is None or row.product_id != kr.product_id or row.state != "paid":
            raise KeyRequestRefusedError(
                "no paid request of ours for that product", detail={"product_id": kr.product_id}
            )
        if self.cheat == "no_key":
            raise KeyWithheldError("the merchant does not hand out the key (cheat mode)")
        key = new_content_key() if self.cheat == "wrong_key" else product.content_key
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
        return {"answer": answer, "cert": self.config.cert_pem}


def _cert_key(cert_pem: str) -> Any:
    return load_certificate(cert_pem).public_key()


def open_catalogue(
    config: MerchantConfig,
    db: Database,
    store: MerchantStore,
    *,
    ttp_url: str | None,
    clock: Callable[[], int],
    cheat: str = "none",
    timeout: float = 30.0,
    transport: httpx.BaseTransport | None = None,
    ttp: TtpRegistrar | None = None,
) -> tuple[Catalogue, Callable[[], None]]:
    """Migrate the catalogue tables and build it; returns ``(catalogue, close)``."""
    from ecash_tpm.clients.ttp import TtpClient

    db.migrate(CATALOGUE_MIGRATIONS, component=CATALOGUE_COMPONENT)
    close: Callable[[], None] = _noop
    registrar = ttp
    if registrar is None and ttp_url:
        client = TtpClient(ttp_url, timeout=timeout, transport=transport)
        registrar, close = client, client.close
    catalogue = Catalogue(
        config, db, store, ttp=registrar, ttp_url=ttp_url, clock=clock, cheat=cheat
    )
    return catalogue, close


def _noop() -> None:
    return None
