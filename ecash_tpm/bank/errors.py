"""Leaf errors of the bank, each with a stable code (DESIGN §5, docs/api.md).

Callers (merchant, wallet, TTP) branch on ``code``; the HTTP status comes from the area class in
:mod:`ecash_tpm.errors`. Codes whose failures count towards a merchant's blacklist are listed in
:data:`COUNTED_FAILURES` so the rule is visible in one place.
"""

from __future__ import annotations

from ecash_tpm.errors import (
    AuthenticationError,
    ConfigError,
    ConflictError,
    EcashError,
    ForbiddenError,
    InputError,
    NotFoundError,
    ProofError,
    StorageError,
)
from ecash_tpm.protocol.errors import MalformedCoinError

# --- customer authentication -------------------------------------------------------------------


class InvalidCredentialsError(AuthenticationError):
    """Wrong account, password or TOTP code (deliberately not saying which)."""

    code = "auth.invalid_credentials"


class InvalidTokenError(AuthenticationError):
    """Missing, unknown or expired bearer token."""

    code = "auth.invalid_token"


class LoginBlacklistedError(ForbiddenError):
    """Too many failed logins within the window: refused until lifted."""

    code = "auth.blacklisted"


class LoginLockedError(EcashError):
    """``login_threshold`` failed logins for this account id within ``login_window_s``: refused
    without evaluating anything until the window ends (``detail.retry_after``)."""

    code = "auth.locked"
    http_status = 429


class LoginThrottledError(EcashError):
    """Too many failed logins from this source: refused before any password hash is computed
    (``detail.retry_after``)."""

    code = "auth.throttled"
    http_status = 429


class TotpReusedError(AuthenticationError):
    """Right password and a correct TOTP code of a step that was used already (RFC 6238 §5.2):
    refused, but not counted as a failure; ``detail.retry_after`` is the next step."""

    code = "auth.totp_reused"


# --- accounts and merchants --------------------------------------------------------------------


class IssuerEpochUnknownError(NotFoundError):
    """The bank holds no central-bank certificate for this issuer epoch (protocol §3.6)."""

    code = "bank.issuer_epoch_unknown"


class UnknownAccountError(NotFoundError):
    """No such customer or merchant account."""

    code = "bank.unknown_account"


class AccountExistsError(ConflictError):
    """An account or merchant with this id already exists."""

    code = "bank.account_exists"


class UnknownMerchantError(ForbiddenError):
    """The merchant id is not registered with this bank."""

    code = "bank.unknown_merchant"


class MerchantSignatureError(AuthenticationError):
    """The merchant's signature on a deposit or reservation does not verify.

    Not counted towards the blacklist: anyone can send a forged envelope naming a merchant, and
    counting those would let a stranger blacklist an honest merchant.
    """

    code = "bank.bad_merchant_signature"


class MerchantKeyMismatchError(ForbiddenError):
    """A certificate valid for this merchant but with another key than the registered one."""

    code = "bank.merchant_key_mismatch"


class MerchantBlacklistedError(ForbiddenError):
    """The merchant made too many failed verifications within the window."""

    code = "bank.merchant_blacklisted"


class MemberNotActiveError(ForbiddenError):
    """The account's group member is revoked or unknown: no withdrawals."""

    code = "bank.member_not_active"


class NotBlacklistedError(NotFoundError):
    """A lift was asked for a subject that has no active blacklist entry."""

    code = "bank.not_blacklisted"


# --- money -------------------------------------------------------------------------------------


class InsufficientFundsError(ConflictError):
    """The account balance does not cover the withdrawal."""

    code = "bank.insufficient_funds"


class WithdrawConflictError(ConflictError):
    """The request_id was already used with other items (or by another account)."""

    code = "bank.withdraw_conflict"


class DepositConflictError(ConflictError):
    """The deposit_id was already used for a different deposit."""

    code = "bank.deposit_conflict"


class DoubleSpendError(ConflictError):
    """A serial is already spent; ``detail`` names it and the earlier transcript."""

    code = "bank.double_spend"


class KeysetOverdrawnError(ConflictError):
    """The deposit would make a keyset's outstanding value (withdrawn minus deposited) negative:
    more coins of it would be spent than were ever issued (a damaged spent index or a forged
    key); refused and nothing booked."""

    code = "bank.keyset_overdrawn"


class CoinLockedError(ConflictError):
    """Another merchant holds the coin during the lock period; ``detail.retry_after`` set."""

    code = "bank.coin_locked"


class DeadlineTooFarError(InputError):
    """The payment request's deadline lies further ahead of the bank's clock than
    ``max_deadline_s``: such a request could hold the customer's coins hostage (issue 10)."""

    code = "bank.deadline_too_far"


# --- keysets -----------------------------------------------------------------------------------


# --- coin and request verification -------------------------------------------------------------


class BadCredentialError(ProofError):
    """The coin's (R, S, T, W) is not a credential of its epoch's issuer key."""

    code = "bank.bad_credential"


class WrongKeyError(ForbiddenError):
    """A signature by a key other than the one that must have made it (e.g. someone else's
    payment request presented by this merchant)."""

    code = "bank.wrong_key"


# --- operations --------------------------------------------------------------------------------


class LedgerInvariantError(StorageError):
    """``ledger_check`` found entries that do not balance or disagree with the coin tables."""

    code = "bank.ledger_inconsistent"


class BankNotInitializedError(ConfigError):
    """The bank's key, certificate or central-bank root is missing (run ``bank init``)."""

    code = "bank.not_initialized"


# --- the bank's own codes for failures of the wire specification (ecash_tpm.protocol.errors) --
# The bank reports these under its own stable codes (docs/api.md), with EcashError.recode.

UNKNOWN_KEYSET = "bank.unknown_keyset"  # UnknownKeysetError, HTTP 404
KEYSET_EXPIRED = "bank.keyset_expired"  # KeysetExpiredError
BAD_COIN_SIGNATURE = "bank.bad_coin_signature"  # CoinSignatureError
BAD_PROOF = "bank.bad_proof"  # SpendProofError
REQUEST_EXPIRED = "bank.request_expired"  # RequestExpiredError

#: Failure reasons that count towards a merchant's blacklist (recorded with every failure).
#: Only failures the merchant could have detected itself with its own checks (docs/protocol.md
#: §7.2, §11). ``bank.bad_credential`` is deliberately absent: the merchant checks credentials
#: publicly (§7.4) only for epochs with certified G2 keys, so counting it would still let a
#: customer get an honest merchant blacklisted with a few forged 1-unit coins of an epoch
#: certified without them (issue 10, attack 4).
COUNTED_FAILURES: dict[str, str] = {
    BAD_COIN_SIGNATURE: "bad_signature",
    UNKNOWN_KEYSET: "wrong_key",
    WrongKeyError.code: "wrong_key",
    BAD_PROOF: "bad_proof",
    MalformedCoinError.code: "malformed_coin",
}


# --- swap (docs/protocol.md §9.3, issue 12) -----------------------------------------------------


class SwapConflictError(ConflictError):
    """The swap's request_id was already used for a different swap."""

    code = "bank.swap_conflict"


class SwapExpiredError(InputError):
    """The swap request's deadline has passed by the bank's clock (or lies too far ahead):
    after the deadline the bank books nothing, so the wallet's coins are free again."""

    code = "bank.swap_expired"
