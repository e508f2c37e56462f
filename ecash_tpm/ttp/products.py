"""Product keys in escrow (docs/protocol.md §16.3): registration, descriptors, ciphertexts.

A merchant sends a signed ``product-registration`` (its certificate beside it) with the
content. The TTP draws k, encrypts the content (AES-256-GCM, AAD = product id + merchant), keeps
ciphertext and k, signs a ``product-descriptor`` and answers with the descriptor, the ciphertext
and k sealed to the merchant's one-time reply key.

Also here, because every use of an escrowed key starts with them: the check that a payment
request is one for a registered product (:meth:`ProductEscrow.product_request`) and the sealing
of k to the request's customer key (:meth:`ProductEscrow.seal_for_customer`).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.crypto.sealing import (
    PURPOSE_CONTENT_KEY,
    PURPOSE_REGISTRATION,
    ciphertext_digest,
    content_key_context,
    encrypt_content,
    new_content_key,
    seal,
)
from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.pki import verify_party_certificate
from ecash_tpm.protocol.coins import PAYMENT_REQUEST_KIND, PaymentRequest
from ecash_tpm.protocol.exchange import (
    KIND_DESCRIPTOR,
    KIND_REGISTRATION,
    ProductDescriptor,
    Registration,
    descriptor_body,
    parse_registration,
    product_id_for,
    verify_signed,
)
from ecash_tpm.ttp.config import TtpConfig, aware
from ecash_tpm.ttp.errors import (
    ContractMismatchError,
    CustomerKeyMissingError,
    RegistrationConflictError,
    RegistrationError,
    UnknownProductError,
    WrongMerchantError,
)
from ecash_tpm.ttp.models import ProductAnswer, ProductList, RegistrationAnswer
from ecash_tpm.ttp.store import ProductRow, TtpStore

__all__ = ["ProductEscrow"]


class ProductEscrow:
    """Registered products with their escrowed keys (thread-safe: state is in the store)."""

    def __init__(
        self,
        config: TtpConfig,
        store: TtpStore,
        *,
        sign: Callable[[str, Mapping[str, Any]], dict[str, Any]],
        clock: Callable[[], int],
    ) -> None:
        self.config = config
        self.store = store
        self._sign = sign
        self.clock = clock

    # --- registration (§16.3) ----------------------------------------------------------------

    def register_product(self, signed: Any, cert_pem: str) -> RegistrationAnswer:
        """Encrypt and escrow a merchant's product; answer descriptor, ciphertext, sealed k."""
        if not isinstance(signed, Mapping) or not isinstance(signed.get("body"), Mapping):
            raise RegistrationError("expected a signed product-registration")
        merchant_id = signed["body"].get("merchant_id")
        if not isinstance(merchant_id, str):
            raise RegistrationError("registration names no merchant_id")
        now = self.clock()
        # §16.3: the merchant certificate (role merchant, CN = merchant_id) and its signature
        body, _ = verify_signed(
            signed,
            cert_pem,
            self.config.root,
            role="merchant",
            kind=KIND_REGISTRATION,
            now=now,
            name=merchant_id,
            crl=self.config.crl,
        )
        reg = parse_registration(body, RegistrationError)
        # §16.3: `created` within registration_window_s, content within max_content_bytes
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
            row = self._escrow(product_id, reg, cert_pem, now)
            existing = self.store.add_product(row, reg.nonce)
        # §16.3: a retry with the same nonce gets the same product, other content a conflict
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
        return RegistrationAnswer(
            descriptor=existing.descriptor,
            cert=self.config.cert_pem,
            ciphertext=existing.ciphertext,
            sealed_key=sealed.to_dict(),
        )

    def _escrow(self, product_id: str, reg: Registration, cert_pem: str, now: int) -> ProductRow:
        """§16.1: a fresh k, the content encrypted once, the descriptor signed over its hash."""
        key = new_content_key()
        blob = encrypt_content(key, reg.content, product_id=product_id, merchant_id=reg.merchant_id)
        desc = ProductDescriptor(
            product_id=product_id,
            merchant_id=reg.merchant_id,
            ttp_id=self.config.name,
            title=reg.title,
            price=reg.price,
            currency=reg.currency,
            ciphertext_sha256=ciphertext_digest(blob),
            ciphertext_size=len(blob),
            created=now,
        )
        return ProductRow(
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

    # --- reading -------------------------------------------------------------------------------

    def row(self, product_id: Any) -> ProductRow:
        """The stored product (escrowed key included); 404 ``ttp.unknown_product``."""
        row = self.store.product(product_id) if isinstance(product_id, str) else None
        if row is None:
            raise UnknownProductError(
                "no such product at this TTP", detail={"product_id": repr(product_id)[:80]}
            )
        return row

    def product(self, product_id: str) -> ProductAnswer:
        """The signed descriptor of one product, with the certificate to check it."""
        return ProductAnswer(self.row(product_id).descriptor, self.config.cert_pem)

    def products(self, merchant_id: str | None = None) -> ProductList:
        """Signed descriptors (optionally of one merchant), with the certificate."""
        return ProductList(self.store.products(merchant_id), self.config.cert_pem)

    def ciphertext(self, product_id: str) -> bytes:
        """The public ciphertext of a product."""
        return self.row(product_id).ciphertext

    # --- requests for a product ----------------------------------------------------------------

    def product_request(
        self, request_doc: Any, merchant_cert: str, *, now: int
    ) -> tuple[PaymentRequest, ProductRow]:
        """The request must be signed by the product's merchant, name the product and its
        ciphertext hash, and carry the customer's X25519 key (§16.5, in this order)."""
        if not isinstance(request_doc, Mapping) or not isinstance(request_doc.get("body"), Mapping):
            raise InputError("request must be a signed payment request")
        product = self.row(request_doc["body"].get("product_id"))
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
                now=aware(now),
                crl=self.config.crl,
            )
            body = verify_object(request_doc, key, PAYMENT_REQUEST_KIND)
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

    @staticmethod
    def seal_for_customer(req: PaymentRequest, product: ProductRow) -> dict[str, str]:
        """k sealed to the request's customer key, bound to ``preq`` and the product (§16.1)."""
        if req.customer_key is None:  # pragma: no cover - product_request checked it
            raise CustomerKeyMissingError("no customer key")
        return seal(
            req.customer_key,
            product.content_key,
            purpose=PURPOSE_CONTENT_KEY,
            context=content_key_context(req.preq, product.product_id),
        ).to_dict()
