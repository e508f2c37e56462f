"""The errors of the wire specification: one class per failure, shared by every party.

A party that detects a failure in its own role may report it under its own stable code (the bank
answers ``bank.keyset_expired`` where a merchant answers ``coin.keyset_expired``) with
:meth:`~ecash_tpm.errors.EcashError.recode`; the class, and so what callers catch, is the same.
Codes are API: docs/api.md lists them.
"""

from __future__ import annotations

from ecash_tpm.errors import (
    ConflictError,
    CryptoError,
    EcashError,
    EncodingError,
    InputError,
    ProtocolError,
    SignatureError,
)

# --- keysets and coins -----------------------------------------------------------------------


class KeysetDescriptorError(CryptoError):
    """A keyset descriptor is malformed, its id does not match, or its key is unusable."""

    code = "keyset.descriptor_invalid"


class UnknownKeysetError(InputError):
    """A coin names a keyset the bank does not publish (or no longer publishes)."""

    code = "coin.unknown_keyset"


class KeysetExpiredError(ProtocolError):
    """The coin's keyset is outside its window (deposit_until passed, or not yet valid)."""

    code = "coin.keyset_expired"


class CoinSignatureError(SignatureError):
    """The bank's RSA blind signature on the coin does not verify (tampered or forged coin)."""

    code = "coin.bad_signature"


class MalformedCoinError(EncodingError):
    """A coin or proof is not well formed (bad point, wrong length, missing field)."""

    code = "bank.malformed_coin"


# --- payment requests, deposits, receipts ------------------------------------------------------


class WrongCurrencyError(InputError):
    """Coin, keyset and request currencies differ."""

    code = "payment.wrong_currency"


class AmountMismatchError(InputError):
    """The coins do not add up to the requested amount."""

    code = "payment.amount_mismatch"


class RequestFormatError(InputError):
    """A payment request body is malformed."""

    code = "payment.request_invalid"


class RequestExpiredError(ProtocolError):
    """The payment request is past its deadline."""

    code = "payment.request_expired"


class ReceiptInvalidError(CryptoError):
    """A deposit receipt is not signed by the bank or does not match the payment."""

    code = "receipt.invalid"


class RequestMismatchError(InputError):
    """A request, deposit or coin list does not match its payment request (amount, currency,
    merchant, bank, duplicate coins)."""

    code = "bank.request_mismatch"


# --- double-spend evidence and the member registry -----------------------------------------------


class TranscriptMalformedError(InputError):
    """A bank transcript lacks a field or holds a badly encoded coin/proof."""

    code = "evidence.transcript_malformed"


class NotDoubleSpendError(CryptoError):
    """The transcripts are not two different valid spends of one serial."""

    code = "evidence.not_double_spend"


class OpeningsDisagreeError(CryptoError):
    """The two spends of a serial open to different T0s (cannot happen for honest coins)."""

    code = "evidence.openings_disagree"


class EvidenceInvalidError(CryptoError):
    """An evidence bundle is malformed or its openings do not verify."""

    code = "evidence.invalid"


class RegistryConflictError(ConflictError):
    """T0 is already registered for another member id (or the member id for another T0)."""

    code = "registry.conflict"


# --- central-bank certified issuer epochs and keyset lists (docs/protocol.md 3.6, 4.1) ---------


class IssuerEpochCertificateError(CryptoError):
    """An issuer epoch key is missing, not signed by the central-bank root, or malformed."""

    code = "issuer_epoch.invalid"


class UnknownEpochError(InputError):
    """A coin names an issuer epoch with no central-bank certificate (404 from its publisher):
    its credential cannot be checked, so the coin is refused (docs/protocol.md §7.4)."""

    code = "coin.unknown_epoch"


class EpochKeyUnavailableError(EcashError):
    """The certified key of a coin's epoch could not be had just now (bank unreachable, answer
    malformed or not verifying): the payment is refused, retryable after ``detail.retry_after``
    seconds, never left to the bank's verdict (docs/protocol.md §7.4)."""

    code = "issuer_epoch.unavailable"
    http_status = 503


class TooManyEpochsError(InputError):
    """The coins of one payment span more issuer epochs than a verifier looks up
    (``detail.max``, docs/protocol.md §7.4)."""

    code = "payment.too_many_epochs"


class KeysetListError(CryptoError):
    """A bank's keyset list is missing, not signed by the central-bank root, or malformed."""

    code = "keyset_list.invalid"


class KeysetNotCertifiedError(CryptoError):
    """The bank offers a keyset that is not on its central-bank-certified list."""

    code = "keyset_list.keyset_not_certified"


# --- fair exchange -------------------------------------------------------------------------------


class DescriptorError(CryptoError):
    """A product descriptor is malformed or not signed by a certified TTP."""

    code = "ttp.descriptor_invalid"


class DisputePendingError(ConflictError):
    """The merchant still has time to answer; ask again after ``detail.retry_after`` s."""

    code = "ttp.dispute_pending"


# --- bank-signed verdicts (issue 10: the wallet acts only on what the bank signed) -------------


class CoinStatusInvalidError(CryptoError):
    """A coin-status statement is not signed by a certified bank, is malformed, or does not
    answer exactly the serials asked about."""

    code = "coin_status.invalid"


class RefusalInvalidError(CryptoError):
    """A deposit refusal is not signed by a certified bank, is malformed, or is not about
    this payment."""

    code = "refusal.invalid"


class FirstDepositLateError(CryptoError):
    """A "double spend" whose first deposit the bank booked after the second request's
    deadline: the customer could not have known the coin was spent (it was released)."""

    code = "evidence.first_deposit_late"


class DifferentCoinsError(CryptoError):
    """The two transcripts of a "double spend" do not carry the same coin (serial, keyset,
    epoch, credential, blind signature)."""

    code = "evidence.different_coins"


class EvidenceCoinSignatureError(CryptoError):
    """The double-spent coin's blind signature does not verify under the bank-signed keyset
    descriptor its transcript carries."""

    code = "evidence.bad_coin_signature"


# --- ecash-tpm verify: public checks of exported artefacts (docs/protocol.md 15.1) -----------


class VerifyError(CryptoError):
    """An artefact (transcript, receipt, opening, evidence) failed a public check;
    ``detail.check`` names the check and ``detail.cause`` the underlying code."""

    code = "verify.failed"


class VerifyFormatError(VerifyError):
    """The artefact file is not one of the known formats, or lacks or adds a field."""

    code = "verify.format"


class VerifyChainError(VerifyError):
    """A signer's certificate does not chain to the central-bank root for its role."""

    code = "verify.chain"


class VerifyBadSignatureError(VerifyError):
    """A signed object of the artefact does not verify under its signer's key."""

    code = "verify.bad_signature"


class VerifyTamperedError(VerifyError):
    """Two parts of the artefact that must agree do not (a copy edited after signing)."""

    code = "verify.tampered"


class VerifyCoinError(VerifyError):
    """The coin of a transcript fails a check: keyset certification or window, blind
    signature, epoch key or spend proof."""

    code = "verify.coin"


class VerifyOpeningError(VerifyError):
    """An opening proof does not show that the ciphertext decrypts to the named T0."""

    code = "verify.opening"


class VerifyEvidenceError(VerifyError):
    """A double-spend bundle breaks a rule of docs/protocol.md 12.1."""

    code = "verify.evidence"
