"""Fair-exchange cryptography (DESIGN §6): content encryption and sealing keys to X25519 keys.

Pure: no HTTP, no storage, no TPM, so the TTP, the merchant and the wallet run the same code.

* **Content.** A product's content is encrypted once, by the TTP, with a fresh AES-256-GCM key
  k: ``blob = nonce(12) || AES-GCM(k, nonce, content, aad)`` with
  ``aad = Hash("ecash-tpm/v1/product-content", product_id, merchant_id)``. The blob is public;
  its SHA-256 is the ``ciphertext_sha256`` in the TTP-signed product descriptor and the
  ``contract_hash`` of every payment request for the product. GCM authenticates, so "k opens
  the ciphertext" is a decisive check of a delivered key (the TTP's test of a merchant's answer,
  the wallet's test of what it received), and the AAD stops a key/ciphertext pair from being
  passed off as another product or merchant.
* **Sealing.** A 32-byte key is sent to the holder of an X25519 public key (the customer's
  per-purchase ephemeral key, the TTP's per-dispute reply key, the merchant's registration reply
  key) as an ECIES-style box: a fresh sender key ``epk``, ``shared = X25519(esk, recipient)``,
  ``key = HKDF-SHA256(shared, salt = epk || recipient, info = "ecash-tpm/v1/seal/<purpose>")``
  and ``AES-GCM(key, nonce, plaintext, aad = Hash("ecash-tpm/v1/seal-aad/<purpose>",
  context...))``. The ``context`` binds the box to its transaction (for a content key: the
  payment request digest ``preq`` and the product id), so a box cannot be replayed into another
  purchase even towards the same key.

Why this is enough for the fair exchange: a box is useless to anyone but the holder of the
recipient's private key, so the TTP may hand a resolved dispute's box to whoever asks — a
replayer of someone else's signed request learns nothing (X25519 keys cannot sign, so instead of
a proof of possession the answer itself is only readable with the private key).
"""

from __future__ import annotations

import hashlib
import hmac
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from ecash_tpm.crypto.encoding import TAG_PREFIX, b64u_decode, b64u_encode, tagged_hash
from ecash_tpm.errors import CryptoError, EcashError, EncodingError

__all__ = [
    "CONTENT_KEY_LEN",
    "CONTENT_NONCE_LEN",
    "PURPOSE_CONTENT_KEY",
    "PURPOSE_DISPUTE_ANSWER",
    "PURPOSE_REGISTRATION",
    "X25519_KEY_LEN",
    "ContentDecryptError",
    "EphemeralKey",
    "SealError",
    "SealedBox",
    "ciphertext_digest",
    "content_aad",
    "content_key_context",
    "decrypt_content",
    "encrypt_content",
    "new_content_key",
    "open_box",
    "seal",
]

CONTENT_KEY_LEN = 32
CONTENT_NONCE_LEN = 12
X25519_KEY_LEN = 32
GCM_TAG_LEN = 16
PURPOSE_CONTENT_KEY = "content-key"
PURPOSE_DISPUTE_ANSWER = "dispute-answer"
PURPOSE_REGISTRATION = "registration-key"
TAG_CONTENT = TAG_PREFIX + "product-content"
_SEAL_INFO = TAG_PREFIX + "seal/"
_SEAL_AAD = TAG_PREFIX + "seal-aad/"
_BOX_FIELDS = frozenset({"epk", "nonce", "ct"})


class ContentDecryptError(CryptoError):
    """The key does not open the product ciphertext (wrong key, or tampered ciphertext)."""

    code = "content.decrypt_failed"


class SealError(CryptoError):
    """A sealed box is malformed or does not open with this key and context."""

    code = "seal.invalid"


# --- content -----------------------------------------------------------------------------------


def new_content_key() -> bytes:
    """A fresh AES-256 key from the OS CSPRNG (drawn by the TTP at registration)."""
    return os.urandom(CONTENT_KEY_LEN)


def content_aad(product_id: str, merchant_id: str) -> bytes:
    """AAD of a product's ciphertext: binds it to its product id and merchant."""
    return tagged_hash(TAG_CONTENT, product_id.encode("utf-8"), merchant_id.encode("utf-8"))


def encrypt_content(key: bytes, content: bytes, *, product_id: str, merchant_id: str) -> bytes:
    """``nonce || AES-GCM(key, nonce, content, aad)`` with a random 12-byte nonce."""
    if len(key) != CONTENT_KEY_LEN:
        raise EncodingError(f"content key must be {CONTENT_KEY_LEN} bytes")
    nonce = os.urandom(CONTENT_NONCE_LEN)
    return nonce + AESGCM(key).encrypt(nonce, bytes(content), content_aad(product_id, merchant_id))


def decrypt_content(key: bytes, blob: bytes, *, product_id: str, merchant_id: str) -> bytes:
    """Open a product ciphertext; :class:`ContentDecryptError` if the key does not fit."""
    if not isinstance(key, bytes | bytearray) or len(key) != CONTENT_KEY_LEN:
        raise ContentDecryptError(f"content key must be {CONTENT_KEY_LEN} bytes")
    if len(blob) < CONTENT_NONCE_LEN + GCM_TAG_LEN:
        raise ContentDecryptError("ciphertext too short")
    nonce, body = blob[:CONTENT_NONCE_LEN], blob[CONTENT_NONCE_LEN:]
    try:
        return AESGCM(bytes(key)).decrypt(nonce, body, content_aad(product_id, merchant_id))
    except InvalidTag as exc:
        raise ContentDecryptError("the key does not open this product's ciphertext") from exc


def ciphertext_digest(blob: bytes) -> bytes:
    """SHA-256 of the ciphertext blob: the descriptor's ``ciphertext_sha256``."""
    return hashlib.sha256(blob).digest()


def content_key_context(preq: bytes, product_id: str) -> tuple[bytes, ...]:
    """Context a content key is sealed under: the payment request digest and the product."""
    return (bytes(preq), product_id.encode("utf-8"))


# --- sealing -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class SealedBox:
    """``{epk, nonce, ct}``: a key sealed to one X25519 public key (see the module docstring)."""

    epk: bytes
    nonce: bytes
    ct: bytes

    def to_dict(self) -> dict[str, str]:
        return {
            "epk": b64u_encode(self.epk),
            "nonce": b64u_encode(self.nonce),
            "ct": b64u_encode(self.ct),
        }

    @classmethod
    def from_dict(cls, data: Any) -> SealedBox:
        """Parse the wire form; :class:`SealError` for anything else."""
        if not isinstance(data, Mapping) or set(data) != _BOX_FIELDS:
            raise SealError("a sealed box is {epk, nonce, ct}")
        try:
            epk, nonce, ct = (b64u_decode(data[k]) for k in ("epk", "nonce", "ct"))
        except (EcashError, TypeError) as exc:
            raise SealError("sealed box fields must be base64url") from exc
        if len(epk) != X25519_KEY_LEN or len(nonce) != CONTENT_NONCE_LEN:
            raise SealError("sealed box epk/nonce have the wrong length")
        if not GCM_TAG_LEN <= len(ct) <= 4096:
            raise SealError("sealed box ciphertext length out of range")
        return cls(epk, nonce, ct)


def _purpose(purpose: str) -> str:
    if not purpose or not purpose.isascii() or "/" in purpose:
        raise EncodingError("seal purpose must be a short ASCII word")
    return purpose


def _box_key(shared: bytes, epk: bytes, recipient: bytes, purpose: str) -> bytes:
    if hmac.compare_digest(shared, bytes(len(shared))):
        raise SealError("X25519 produced the all-zero secret (low-order public key)")
    return HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=epk + recipient,
        info=(_SEAL_INFO + purpose).encode("ascii"),
    ).derive(shared)


def _public(key: bytes) -> X25519PublicKey:
    if not isinstance(key, bytes | bytearray) or len(key) != X25519_KEY_LEN:
        raise SealError(f"X25519 public keys are {X25519_KEY_LEN} bytes")
    return X25519PublicKey.from_public_bytes(bytes(key))


def seal(
    recipient: bytes, plaintext: bytes, *, purpose: str, context: tuple[bytes, ...]
) -> SealedBox:
    """Seal ``plaintext`` to the X25519 public key ``recipient``, bound to ``context``."""
    tag = _purpose(purpose)
    public = _public(recipient)
    esk = X25519PrivateKey.generate()
    epk = esk.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    try:
        shared = esk.exchange(public)
    except ValueError as exc:  # cryptography refuses low-order points itself
        raise SealError("recipient key is a low-order point") from exc
    key = _box_key(shared, epk, bytes(recipient), tag)
    nonce = os.urandom(CONTENT_NONCE_LEN)
    aad = tagged_hash(_SEAL_AAD + tag, *context)
    return SealedBox(epk, nonce, AESGCM(key).encrypt(nonce, bytes(plaintext), aad))


class EphemeralKey:
    """An X25519 key pair held by one side of one transaction (customer, TTP dispute, ...)."""

    def __init__(self, private: X25519PrivateKey | None = None) -> None:
        self._key = private if private is not None else X25519PrivateKey.generate()

    @classmethod
    def from_secret(cls, secret: bytes) -> EphemeralKey:
        """Reload a key saved with :meth:`secret_bytes`."""
        if not isinstance(secret, bytes | bytearray) or len(secret) != X25519_KEY_LEN:
            raise SealError(f"X25519 private keys are {X25519_KEY_LEN} bytes")
        return cls(X25519PrivateKey.from_private_bytes(bytes(secret)))

    def secret_bytes(self) -> bytes:
        """The raw private key (for storage; erase it once the transaction is over)."""
        return self._key.private_bytes(
            serialization.Encoding.Raw,
            serialization.PrivateFormat.Raw,
            serialization.NoEncryption(),
        )

    @property
    def public_bytes(self) -> bytes:
        return self._key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def open(self, box: SealedBox | Any, *, purpose: str, context: tuple[bytes, ...]) -> bytes:
        """Open a box sealed to this key under ``purpose`` and ``context``."""
        sealed = box if isinstance(box, SealedBox) else SealedBox.from_dict(box)
        tag = _purpose(purpose)
        try:
            shared = self._key.exchange(_public(sealed.epk))
        except ValueError as exc:
            raise SealError("sealed box epk is a low-order point") from exc
        key = _box_key(shared, sealed.epk, self.public_bytes, tag)
        aad = tagged_hash(_SEAL_AAD + tag, *context)
        try:
            return AESGCM(key).decrypt(sealed.nonce, sealed.ct, aad)
        except InvalidTag as exc:
            raise SealError("sealed box does not open with this key and context") from exc


def open_box(
    secret: bytes, box: SealedBox | Any, *, purpose: str, context: tuple[bytes, ...]
) -> bytes:
    """:meth:`EphemeralKey.open` from a raw private key."""
    return EphemeralKey.from_secret(secret).open(box, purpose=purpose, context=context)
