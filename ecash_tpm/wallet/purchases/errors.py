"""The wallet's refusals while buying: one class per failure, each with a stable code."""

from __future__ import annotations

from ecash_tpm.errors import ConflictError, CryptoError, InputError, NotFoundError, RemoteError

__all__ = [
    "CiphertextTamperedError",
    "ContentKeyInvalidError",
    "ContentKeyMissingError",
    "DescriptorInvalidError",
    "OfferMismatchError",
    "PurchaseStateError",
    "UnknownPurchaseError",
]


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


class OfferMismatchError(InputError):
    """The shop's payment request is not for the offer checked: product, price or key differ.

    Not :class:`ecash_tpm.protocol.errors.RequestMismatchError` (the bank's and merchant's
    refusal of spends that do not fit a request): this is the buyer refusing the request itself.
    """

    code = "wallet.request_mismatch"


class UnknownPurchaseError(NotFoundError):
    """No purchase with this id in the wallet."""

    code = "wallet.unknown_purchase"


class PurchaseStateError(ConflictError):
    """The purchase is not in a state that allows this (e.g. dispute a completed one)."""

    code = "wallet.purchase_state"
