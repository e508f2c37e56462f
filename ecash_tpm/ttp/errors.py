"""Typed errors of the fair-exchange TTP (stable codes ``ttp.*``; docs/api.md, "TTP")."""

from __future__ import annotations

from ecash_tpm.errors import (
    ConflictError,
    ForbiddenError,
    InputError,
    NotFoundError,
    RemoteError,
)

__all__ = [
    "BankAnswerError",
    "BankUnavailableError",
    "ContractMismatchError",
    "CustomerKeyMissingError",
    "DisputeClosedError",
    "MerchantAnswerError",
    "NotPaidError",
    "RegistrationConflictError",
    "RegistrationError",
    "UnknownDisputeError",
    "UnknownProductError",
    "WrongMerchantError",
]


class UnknownProductError(NotFoundError):
    """No product with this id was registered (or the request names no product)."""

    code = "ttp.unknown_product"


class UnknownDisputeError(NotFoundError):
    """No dispute with this id."""

    code = "ttp.unknown_dispute"


class NotPaidError(ForbiddenError):
    """The bank does not confirm that these coins were deposited by this merchant for this
    request: the TTP refuses to act for a customer who did not pay."""

    code = "ttp.not_paid"


class WrongMerchantError(InputError):
    """The payment request is not signed by (or does not name) the product's merchant."""

    code = "ttp.wrong_merchant"


class ContractMismatchError(InputError):
    """The payment request's contract hash is not the product's ciphertext hash."""

    code = "ttp.contract_mismatch"


class CustomerKeyMissingError(InputError):
    """The payment request carries no customer X25519 key: nothing to seal the key to."""

    code = "ttp.customer_key_missing"


class DisputeClosedError(ConflictError):
    """The dispute is resolved or past its deadline: the merchant's answer comes too late."""

    code = "ttp.dispute_closed"


class RegistrationError(InputError):
    """A product registration is malformed, stale, or its content is unacceptable."""

    code = "ttp.registration_invalid"


class RegistrationConflictError(ConflictError):
    """The registration nonce was already used for a different registration."""

    code = "ttp.registration_conflict"


class MerchantAnswerError(InputError):
    """The merchant's key answer is malformed, unsigned, or for another dispute."""

    code = "ttp.answer_invalid"


class BankAnswerError(RemoteError):
    """The bank's answer to a deposit query is not bank-signed or does not fit the query."""

    code = "ttp.bank_answer_invalid"


class BankUnavailableError(RemoteError):
    """The bank could not be asked; the dispute is not opened, retry later."""

    code = "ttp.bank_unavailable"
    http_status = 503
