"""Wire objects of the fair exchange (DESIGN §6, docs/api.md "TTP"), shared by every party.

Pure (no HTTP, no storage) so the TTP, the merchant, the wallet and the bank check the same
things. Every object is a signed object (``ecash_tpm.crypto.signing``) whose signer's
certificate travels beside it and must chain to the central-bank root with the right role:

========================  ==========  ==========================================================
kind                      signed by   body
========================  ==========  ==========================================================
``product-registration``  merchant    ``{merchant_id, title, price, currency, content, nonce,
                                      created, merchant_url, reply_key}``
``product-descriptor``    TTP         ``{product_id, merchant_id, ttp_id, title, price, currency,
                                      ciphertext_sha256, ciphertext_size, created}``
``ttp-key-request``       TTP         ``{dispute_id, ttp_id, merchant_id, product_id, preq,
                                      deadline, reply_key}``
``ttp-key-answer``        merchant    ``{dispute_id, merchant_id, product_id, preq, sealed_key}``
``ttp-deposit-query``     TTP         ``{ttp_id, merchant_id, preq, serials, nonce, created}``
``ttp-deposit-answer``    bank        ``{query, ttp_id, merchant_id, preq, coins, answered_at}``
========================  ==========  ==========================================================

``coins`` in a deposit answer is one entry per queried serial: ``{sigma, deposited}`` plus,
when deposited, ``{merchant_id, preq, deposit_id, value, currency, spend_digest,
deposited_at}`` from the bank's deposit transcript (``spend_digest`` = canonical digest of the
spend the bank recorded, so the TTP can tell that the customer holds the real spend proof).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.crypto.encoding import TAG_PREFIX, b64u_encode, tagged_hash
from ecash_tpm.crypto.sealing import X25519_KEY_LEN, ciphertext_digest
from ecash_tpm.crypto.signing import canonical_digest, verify_object
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.pki import CrlInput, common_name, verify_party_certificate
from ecash_tpm.protocol.errors import DescriptorError
from ecash_tpm.protocol.fields import read_bytes, read_currency, read_int, read_name, read_str

__all__ = [
    "KIND_DEPOSIT_ANSWER",
    "KIND_DEPOSIT_QUERY",
    "KIND_DESCRIPTOR",
    "KIND_KEY_ANSWER",
    "KIND_KEY_REQUEST",
    "KIND_REGISTRATION",
    "CoinDeposit",
    "DepositAnswer",
    "ProductDescriptor",
    "Registration",
    "ciphertext_matches",
    "descriptor_body",
    "dispute_id_for",
    "parse_deposit_answer",
    "parse_descriptor",
    "parse_registration",
    "product_id_for",
    "verify_descriptor",
    "verify_signed",
]

KIND_REGISTRATION = "product-registration"
KIND_DESCRIPTOR = "product-descriptor"
KIND_KEY_REQUEST = "ttp-key-request"
KIND_KEY_ANSWER = "ttp-key-answer"
KIND_DEPOSIT_QUERY = "ttp-deposit-query"
KIND_DEPOSIT_ANSWER = "ttp-deposit-answer"

REGISTRATION_NONCE_LEN = 16
MAX_TITLE = 200
MAX_SERIALS = 64
_PRODUCT_ID_RE = re.compile(r"^p-[0-9a-f]{32}$")
_DISPUTE_ID_RE = re.compile(r"^d-[0-9a-f]{32}$")

_DESCRIPTOR_FIELDS = frozenset(
    {
        "product_id",
        "merchant_id",
        "ttp_id",
        "title",
        "price",
        "currency",
        "ciphertext_sha256",
        "ciphertext_size",
        "created",
    }
)
_REGISTRATION_FIELDS = frozenset(
    {
        "merchant_id",
        "title",
        "price",
        "currency",
        "content",
        "nonce",
        "created",
        "merchant_url",
        "reply_key",
    }
)
_ANSWER_FIELDS = frozenset({"query", "ttp_id", "merchant_id", "preq", "coins", "answered_at"})


# --- helpers -------------------------------------------------------------------------------------


def _aware(now: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(now, dt.UTC)


def verify_signed(
    doc: Any,
    cert: x509.Certificate | bytes | str,
    root: x509.Certificate | bytes | str,
    *,
    role: str,
    kind: str,
    now: int,
    name: str | None = None,
    crl: CrlInput | None = None,
) -> tuple[dict[str, Any], ec.EllipticCurvePublicKey]:
    """Certificate (role, optional CN, root, the central bank's CRL) then signature; returns
    ``(body, key)``."""
    key = verify_party_certificate(cert, root, role=role, name=name, now=_aware(now), crl=crl)
    return verify_object(doc, key, kind), key


def product_id_for(merchant_id: str, nonce: bytes) -> str:
    """The TTP's product id: derived from the registration, so a retry gets the same id."""
    digest = tagged_hash(TAG_PREFIX + "product-id", merchant_id.encode("utf-8"), nonce)
    return "p-" + digest[:16].hex()


def dispute_id_for(preq: bytes) -> str:
    """One dispute per payment request: replays of the same request land on the same dispute."""
    return "d-" + tagged_hash(TAG_PREFIX + "dispute-id", preq)[:16].hex()


def is_product_id(value: object) -> bool:
    return isinstance(value, str) and bool(_PRODUCT_ID_RE.fullmatch(value))


def is_dispute_id(value: object) -> bool:
    return isinstance(value, str) and bool(_DISPUTE_ID_RE.fullmatch(value))


# --- product descriptor ------------------------------------------------------------------------


@dataclass(frozen=True)
class ProductDescriptor:
    """What the TTP certifies about a product: who sells it, for how much, which ciphertext."""

    product_id: str
    merchant_id: str
    ttp_id: str
    title: str
    price: int
    currency: str
    ciphertext_sha256: bytes
    ciphertext_size: int
    created: int


def descriptor_body(d: ProductDescriptor) -> dict[str, Any]:
    """The body the TTP signs (kind ``product-descriptor``)."""
    return {
        "product_id": d.product_id,
        "merchant_id": d.merchant_id,
        "ttp_id": d.ttp_id,
        "title": d.title,
        "price": d.price,
        "currency": d.currency,
        "ciphertext_sha256": b64u_encode(d.ciphertext_sha256),
        "ciphertext_size": d.ciphertext_size,
        "created": d.created,
    }


def parse_descriptor(body: Any) -> ProductDescriptor:
    """Shape and types of a descriptor body (:class:`DescriptorError` otherwise)."""
    err = DescriptorError
    if not isinstance(body, Mapping) or set(body) != _DESCRIPTOR_FIELDS:
        raise err("descriptor must have exactly " + ", ".join(sorted(_DESCRIPTOR_FIELDS)))
    if not is_product_id(body["product_id"]):
        raise err("product_id malformed", detail={"field": "product_id"})
    return ProductDescriptor(
        product_id=body["product_id"],
        merchant_id=read_name(body, "merchant_id", err),
        ttp_id=read_name(body, "ttp_id", err),
        title=read_str(body, "title", err, MAX_TITLE),
        price=read_int(body, "price", err, 1),
        currency=read_currency(body, err),
        ciphertext_sha256=read_bytes(body, "ciphertext_sha256", err, 32),
        ciphertext_size=read_int(body, "ciphertext_size", err, 28),
        created=read_int(body, "created", err),
    )


def verify_descriptor(
    doc: Any,
    ttp_cert: x509.Certificate | bytes | str,
    root: x509.Certificate | bytes | str,
    *,
    now: int,
    ttp_name: str | None = None,
) -> ProductDescriptor:
    """A TTP-signed descriptor: TTP certificate (role ``ttp``) under the root, signature,
    shape, and ``ttp_id`` equal to the certificate's CN. Any failure is a DescriptorError."""
    try:
        body, _ = verify_signed(
            doc, ttp_cert, root, role="ttp", kind=KIND_DESCRIPTOR, now=now, name=ttp_name
        )
    except EcashError as exc:
        raise DescriptorError(
            f"product descriptor not signed by a certified TTP: {exc.message}",
            detail={"cause": exc.code},
        ) from exc
    desc = parse_descriptor(body)
    if desc.ttp_id != common_name(ttp_cert):
        raise DescriptorError("descriptor names another TTP than its certificate")
    return desc


def ciphertext_matches(desc: ProductDescriptor, blob: bytes) -> bool:
    """True when ``blob`` is the ciphertext the descriptor certifies (size and SHA-256)."""
    return len(blob) == desc.ciphertext_size and ciphertext_digest(blob) == desc.ciphertext_sha256


# --- registration --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Registration:
    """A merchant's product registration (kind ``product-registration``)."""

    merchant_id: str
    title: str
    price: int
    currency: str
    content: bytes
    nonce: bytes
    created: int
    merchant_url: str
    reply_key: bytes
    digest: bytes  # canonical digest of the body: same nonce + other digest is a conflict


def registration_body(
    *,
    merchant_id: str,
    title: str,
    price: int,
    currency: str,
    content: bytes,
    nonce: bytes,
    created: int,
    merchant_url: str,
    reply_key: bytes,
) -> dict[str, Any]:
    """The body a merchant signs to register a product."""
    return {
        "merchant_id": merchant_id,
        "title": title,
        "price": price,
        "currency": currency,
        "content": b64u_encode(content),
        "nonce": b64u_encode(nonce),
        "created": created,
        "merchant_url": merchant_url,
        "reply_key": b64u_encode(reply_key),
    }


def parse_registration(body: Any, err: type[EcashError]) -> Registration:
    """Shape and types of a registration body."""
    if not isinstance(body, Mapping) or set(body) != _REGISTRATION_FIELDS:
        raise err("registration must have exactly " + ", ".join(sorted(_REGISTRATION_FIELDS)))
    url = read_str(body, "merchant_url", err, 512)
    if not url.startswith(("http://", "https://")):
        raise err("merchant_url must be an http(s) URL", detail={"field": "merchant_url"})
    return Registration(
        merchant_id=read_name(body, "merchant_id", err),
        title=read_str(body, "title", err, MAX_TITLE),
        price=read_int(body, "price", err, 1),
        currency=read_currency(body, err),
        content=read_bytes(body, "content", err),
        nonce=read_bytes(body, "nonce", err, REGISTRATION_NONCE_LEN),
        created=read_int(body, "created", err),
        merchant_url=url,
        reply_key=read_bytes(body, "reply_key", err, X25519_KEY_LEN),
        digest=canonical_digest(dict(body)),
    )


# --- deposit query / answer ----------------------------------------------------------------------


def deposit_query_body(
    *,
    ttp_id: str,
    merchant_id: str,
    preq: bytes,
    serials: Sequence[bytes],
    nonce: bytes,
    created: int,
) -> dict[str, Any]:
    """The body the TTP signs to ask the bank about serials."""
    return {
        "ttp_id": ttp_id,
        "merchant_id": merchant_id,
        "preq": b64u_encode(preq),
        "serials": [b64u_encode(s) for s in serials],
        "nonce": b64u_encode(nonce),
        "created": created,
    }


@dataclass(frozen=True)
class CoinDeposit:
    """The bank's word on one serial."""

    sigma: bytes
    deposited: bool
    merchant_id: str | None = None
    preq: bytes | None = None
    deposit_id: str | None = None
    value: int | None = None
    currency: str | None = None
    spend_digest: bytes | None = None
    deposited_at: int | None = None


@dataclass(frozen=True)
class DepositAnswer:
    """A parsed, bank-signed deposit answer."""

    query: bytes
    ttp_id: str
    merchant_id: str
    preq: bytes
    coins: tuple[CoinDeposit, ...]
    answered_at: int


def parse_deposit_answer(body: Any, err: type[EcashError]) -> DepositAnswer:
    """Shape and types of the bank's answer body."""
    if not isinstance(body, Mapping) or set(body) != _ANSWER_FIELDS:
        raise err("deposit answer must have exactly " + ", ".join(sorted(_ANSWER_FIELDS)))
    raw = body["coins"]
    if not isinstance(raw, list) or len(raw) > MAX_SERIALS:
        raise err("coins must be a list")
    coins = []
    for item in raw:
        if not isinstance(item, Mapping) or not isinstance(item.get("deposited"), bool):
            raise err("each coin needs sigma and deposited")
        sigma = read_bytes(item, "sigma", err, 32)
        if not item["deposited"]:
            coins.append(CoinDeposit(sigma, False))
            continue
        coins.append(
            CoinDeposit(
                sigma=sigma,
                deposited=True,
                merchant_id=read_name(item, "merchant_id", err),
                preq=read_bytes(item, "preq", err, 32),
                deposit_id=read_str(item, "deposit_id", err, 64),
                value=read_int(item, "value", err, 1),
                currency=read_currency(item, err),
                spend_digest=read_bytes(item, "spend_digest", err, 32),
                deposited_at=read_int(item, "deposited_at", err),
            )
        )
    return DepositAnswer(
        query=read_bytes(body, "query", err, 32),
        ttp_id=read_name(body, "ttp_id", err),
        merchant_id=read_name(body, "merchant_id", err),
        preq=read_bytes(body, "preq", err, 32),
        coins=tuple(coins),
        answered_at=read_int(body, "answered_at", err),
    )


def parse_deposit_query(
    body: Any, err: type[EcashError] = InputError
) -> tuple[str, str, bytes, list[bytes], int]:
    """``(ttp_id, merchant_id, preq, serials, created)`` of a query body (bank side)."""
    fields = {"ttp_id", "merchant_id", "preq", "serials", "nonce", "created"}
    if not isinstance(body, Mapping) or set(body) != fields:
        raise err("deposit query must have exactly " + ", ".join(sorted(fields)))
    raw = body["serials"]
    if not isinstance(raw, list) or not 1 <= len(raw) <= MAX_SERIALS:
        raise err(f"serials must be a list of 1..{MAX_SERIALS}")
    serials = [read_bytes({"s": s}, "s", err, 32) for s in raw]
    if len(set(serials)) != len(serials):
        raise err("a serial appears twice")
    read_bytes(body, "nonce", err, 16)
    return (
        read_name(body, "ttp_id", err),
        read_name(body, "merchant_id", err),
        read_bytes(body, "preq", err, 32),
        serials,
        read_int(body, "created", err),
    )


def spend_digest(spend: Mapping[str, Any]) -> bytes:
    """Digest of one spend (``{coin, proof}`` wire form) as the bank reports it."""
    return canonical_digest(dict(spend))


def sha256(data: bytes) -> bytes:
    return hashlib.sha256(data).digest()


# --- key request / answer (TTP <-> merchant during a dispute) -------------------------------------


@dataclass(frozen=True)
class KeyRequest:
    """The TTP asking a merchant for a product key (kind ``ttp-key-request``)."""

    dispute_id: str
    ttp_id: str
    merchant_id: str
    product_id: str
    preq: bytes
    deadline: int
    reply_key: bytes


def key_request_body(r: KeyRequest) -> dict[str, Any]:
    return {
        "dispute_id": r.dispute_id,
        "ttp_id": r.ttp_id,
        "merchant_id": r.merchant_id,
        "product_id": r.product_id,
        "preq": b64u_encode(r.preq),
        "deadline": r.deadline,
        "reply_key": b64u_encode(r.reply_key),
    }


def parse_key_request(body: Any, err: type[EcashError]) -> KeyRequest:
    fields = {"dispute_id", "ttp_id", "merchant_id", "product_id", "preq", "deadline", "reply_key"}
    if not isinstance(body, Mapping) or set(body) != fields:
        raise err("key request must have exactly " + ", ".join(sorted(fields)))
    if not is_dispute_id(body["dispute_id"]) or not is_product_id(body["product_id"]):
        raise err("dispute_id / product_id malformed")
    return KeyRequest(
        dispute_id=body["dispute_id"],
        ttp_id=read_name(body, "ttp_id", err),
        merchant_id=read_name(body, "merchant_id", err),
        product_id=body["product_id"],
        preq=read_bytes(body, "preq", err, 32),
        deadline=read_int(body, "deadline", err),
        reply_key=read_bytes(body, "reply_key", err, X25519_KEY_LEN),
    )


@dataclass(frozen=True)
class KeyAnswer:
    """A merchant's answer: the product key sealed to the dispute's reply key."""

    dispute_id: str
    merchant_id: str
    product_id: str
    preq: bytes
    sealed_key: dict[str, Any]


def key_answer_body(a: KeyAnswer) -> dict[str, Any]:
    return {
        "dispute_id": a.dispute_id,
        "merchant_id": a.merchant_id,
        "product_id": a.product_id,
        "preq": b64u_encode(a.preq),
        "sealed_key": dict(a.sealed_key),
    }


def parse_key_answer(body: Any, err: type[EcashError]) -> KeyAnswer:
    fields = {"dispute_id", "merchant_id", "product_id", "preq", "sealed_key"}
    if not isinstance(body, Mapping) or set(body) != fields:
        raise err("key answer must have exactly " + ", ".join(sorted(fields)))
    if not isinstance(body["sealed_key"], Mapping):
        raise err("sealed_key must be a sealed box")
    return KeyAnswer(
        dispute_id=read_str(body, "dispute_id", err, 64),
        merchant_id=read_name(body, "merchant_id", err),
        product_id=read_str(body, "product_id", err, 64),
        preq=read_bytes(body, "preq", err, 32),
        sealed_key=dict(body["sealed_key"]),
    )
