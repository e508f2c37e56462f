"""The bank's checks of an incoming deposit or reservation (docs/protocol.md §9, §7.2, §10).

Everything here runs before any money transaction and in this order, cheapest first:

1. the envelope (§9 step 1): merchant not blacklisted, certificate from the central bank for this
   merchant id and the registered key, merchant signature on the deposit/reserve body —
   failures here are *not* counted (a stranger could forge them to blacklist someone else);
2. the payment request (§9 step 2, §7.2): signed by the same merchant key (else
   ``bank.wrong_key``, counted), for this merchant and bank and currency, not past its deadline
   when the bank first saw it (the caller supplies that moment: the merchant's live reservation
   for this request, else now — §10);
3. the coins (§9 step 3, §7.2): keyset known (else ``unknown_keyset``), same currency, valid
   for deposit now, values sum to the request amount; then per coin the one spend check of
   :func:`ecash_tpm.protocol.spend.verify_spend` — RSA signature on ``msg_prefix || m``, the
   bank's designated credential check with the issuer secret of the coin's epoch, and the spend
   proof over ``preq`` with the opener's ``Hop``.

Counted failures (:data:`~ecash_tpm.bank.errors.COUNTED_FAILURES`) raised inside
:meth:`DepositChecks.watch` are recorded for the blacklist rule (§11) before the error goes on.
The booking (state checks under the write lock, ledger, transcripts, receipt) is in
:mod:`ecash_tpm.bank.deposit`.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.bank.accounts import Accounts
from ecash_tpm.bank.blacklist import Blacklist, merchant_subject
from ecash_tpm.bank.errors import (
    BAD_COIN_SIGNATURE,
    BAD_PROOF,
    COUNTED_FAILURES,
    KEYSET_EXPIRED,
    REQUEST_EXPIRED,
    BadCredentialError,
    DeadlineTooFarError,
    MerchantBlacklistedError,
    MerchantSignatureError,
    WrongKeyError,
)
from ecash_tpm.bank.keysets import KeysetStore
from ecash_tpm.bank.protocols import IssuerSecrets
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import (
    CredentialError,
    IssuerSecret,
    RandomizedCredential,
    SpendProofError,
    credentials_batch_ok,
    verify_credential,
)
from ecash_tpm.crypto.signing import verify_object, verify_object_encoded
from ecash_tpm.errors import ConfigError, EcashError, InputError, NotFoundError, SignatureError
from ecash_tpm.protocol.coins import (
    PAYMENT_REQUEST_KIND,
    Coin,
    PaymentRequest,
    Spend,
    check_identifier,
    parse_spends,
)
from ecash_tpm.protocol.errors import (
    CoinSignatureError,
    KeysetExpiredError,
    RequestExpiredError,
    RequestMismatchError,
)
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.protocol.spend import verify_spends

__all__ = [
    "DEPOSIT_FIELDS",
    "RESERVE_FIELDS",
    "Checked",
    "DepositChecks",
    "check_deadline",
    "check_deadline_bound",
]

logger = logging.getLogger("ecash_tpm.bank")

DEPOSIT_FIELDS = frozenset({"deposit_id", "merchant_id", "request", "spends"})
RESERVE_FIELDS = frozenset({"merchant_id", "request", "spends"})


@dataclass(frozen=True, slots=True)
class Checked:
    """A spend that passed every check, with its keyset."""

    spend: Spend
    keyset: Keyset


def check_deadline(req: PaymentRequest, first_seen: int) -> None:
    """§9 step 2 / §10 deadline rule: the request was live when the bank first saw it."""
    if first_seen > req.deadline:
        raise RequestExpiredError(
            "payment request was past its deadline when the bank first saw it",
            code=REQUEST_EXPIRED,
            detail={"deadline": req.deadline, "seen_at": first_seen},
        )


def check_deadline_bound(req: PaymentRequest, now: int, max_deadline_s: int) -> None:
    """§10 deadline bound: a request may not hold coins further ahead than ``max_deadline_s``
    of the bank's clock (a 10-year deadline would keep the customer's coins pending forever)."""
    if req.deadline > now + max_deadline_s:
        raise DeadlineTooFarError(
            "payment request deadline is too far ahead",
            detail={"deadline": req.deadline, "bank_time": now, "max_deadline_s": max_deadline_s},
        )


class DepositChecks:
    """Verifies merchants' deposit and reserve documents; touches no money."""

    def __init__(
        self,
        *,
        keysets: KeysetStore,
        accounts: Accounts,
        blacklist: Blacklist,
        issuer_secrets: IssuerSecrets,
        bank_name: str,
        currency: str,
        opener_public: Point | None,
        max_spends: int,
    ) -> None:
        self._keysets = keysets
        self._accounts = accounts
        self._blacklist = blacklist
        self._issuer_secrets = issuer_secrets
        self._bank_name = bank_name
        self._currency = currency
        self._hop = (
            None if opener_public is None else opener_public.require_finite("Hop").fixed_base()
        )
        self._max_spends = max_spends

    # --- (1) the envelope ---------------------------------------------------------------------

    def authenticate(
        self, signed: Any, cert_pem: str | bytes, kind: str, fields: frozenset[str]
    ) -> tuple[str, dict[str, Any], ec.EllipticCurvePublicKey]:
        """§9 step 1: ``(merchant_id, body, merchant key)`` of a signed deposit/reserve."""
        merchant_id, body, key, _ = self.authenticate_encoded(signed, cert_pem, kind, fields)
        return merchant_id, body, key

    def authenticate_encoded(
        self, signed: Any, cert_pem: str | bytes, kind: str, fields: frozenset[str]
    ) -> tuple[str, dict[str, Any], ec.EllipticCurvePublicKey, bytes]:
        """:meth:`authenticate`, plus the body's canonical encoding (the signed bytes), so the
        deposit digest is taken from the bytes already encoded for the signature check."""
        if not isinstance(signed, Mapping) or not isinstance(signed.get("body"), Mapping):
            raise InputError(f"expected a signed {kind} object")
        merchant_id = check_identifier(signed["body"].get("merchant_id"), "merchant_id")
        # (1a) not blacklisted; (1b) registered, certified by the central bank, registered key
        self._blacklist.check(merchant_subject(merchant_id), MerchantBlacklistedError)
        key = self._accounts.merchant_key(merchant_id, cert_pem)
        # (1c) the merchant's signature on the body
        try:
            body, encoded = verify_object_encoded(signed, key, kind)
        except SignatureError as exc:
            raise MerchantSignatureError(
                f"the merchant's signature on the {kind} does not verify",
                detail={"merchant_id": merchant_id},
            ) from exc
        if set(body) != fields:
            raise InputError(f"{kind} body must have exactly " + ", ".join(sorted(fields)))
        return merchant_id, body, key, encoded

    @contextmanager
    def watch(self, merchant_id: str) -> Iterator[None]:
        """§11: record counted verification failures of this merchant, then re-raise them."""
        try:
            yield
        except EcashError as exc:
            reason = COUNTED_FAILURES.get(exc.code)
            if reason is not None:
                listed = self._blacklist.record_failure(
                    merchant_subject(merchant_id), reason, exc.code, exc.detail
                )
                if listed:
                    logger.warning("merchant %s blacklisted (%s)", merchant_id, reason)
            raise

    # --- (2) the payment request --------------------------------------------------------------

    def request(self, doc: Any, merchant_id: str, key: ec.EllipticCurvePublicKey) -> PaymentRequest:
        """§9 step 2 (§7.2 row 1), all but the deadline (see :func:`check_deadline`)."""
        # (2a) signed by the depositing merchant's registered key
        try:
            body = verify_object(doc, key, PAYMENT_REQUEST_KIND)
        except SignatureError as exc:
            raise WrongKeyError(
                "the payment request is not signed by this merchant's key",
                detail={"merchant_id": merchant_id},
            ) from exc
        except InputError as exc:
            raise RequestMismatchError(f"payment request: {exc.message}") from exc
        req = PaymentRequest.from_body(body)
        # (2b) names this merchant, this bank and its currency
        if req.merchant_id != merchant_id:
            raise RequestMismatchError(
                "payment request names another merchant",
                detail={"request_merchant_id": req.merchant_id},
            )
        if req.bank != self._bank_name:
            raise RequestMismatchError(
                "payment request names another bank", detail={"bank": req.bank[:80]}
            )
        if req.currency != self._currency:
            raise RequestMismatchError(
                "payment request currency is not this bank's", detail={"currency": req.currency}
            )
        return req

    # --- (3) the coins ------------------------------------------------------------------------

    def _issuer_secret(self, epoch: int, index: int) -> IssuerSecret:
        try:
            return self._issuer_secrets.secret_for_epoch(epoch)
        except NotFoundError as exc:
            raise BadCredentialError(
                "no issuer key for the coin's epoch", detail={"index": index, "epoch": epoch}
            ) from exc

    def _check_credential(self, coin: Coin, index: int, where: Mapping[str, Any]) -> None:
        """§7.2 credential row: the designated-verifier check with the issuer secret."""
        secret = self._issuer_secret(coin.epoch, index)
        try:
            verify_credential(secret, *coin.credential)
        except CredentialError as exc:
            raise BadCredentialError(
                "coin credential is not valid for its epoch",
                detail={**where, "check": exc.detail.get("check")},
            ) from exc

    def _credentials_batch(self, coins: Sequence[Coin]) -> bool:
        """§7.3 batch: every coin's credential under its epoch's secret, one batch per epoch;
        False (fall back to per-coin checks) when a batch fails or an epoch has no key."""
        by_epoch: dict[int, list[RandomizedCredential]] = {}
        for coin in coins:
            by_epoch.setdefault(coin.epoch, []).append(coin.credential)
        for epoch, creds in by_epoch.items():
            try:
                secret = self._issuer_secrets.secret_for_epoch(epoch)
            except NotFoundError:
                return False
            if not credentials_batch_ok(secret, creds):
                return False
        return True

    def spends(self, req: PaymentRequest, spends_data: Any, now: int) -> list[Checked]:
        """§9 step 3: every coin of the payment, in the order of §7.2."""
        return self.coins(
            spends_data, preq=req.preq, currency=req.currency, amount=req.amount, now=now
        )

    def coins(
        self, spends_data: Any, *, preq: bytes, currency: str, amount: int | None, now: int
    ) -> list[Checked]:
        """§9 step 3 over any ``preq``: a payment's (``amount`` = the request's) or a swap's
        (§9.3, ``amount`` None: the swap checks its totals itself). The one coin check."""
        if self._hop is None:
            raise ConfigError(
                "opener_public (Hop) is not configured: the bank cannot check spend proofs",
                detail={"setting": "opener_public"},
            )
        hop = self._hop
        # (3a) wire form, distinct serials, at most max_spends coins
        spends = parse_spends(spends_data, max_spends=self._max_spends)
        checked = []
        for index, spend in enumerate(spends):
            # (3b) keyset known, in the request's currency, open for deposit now
            keyset = self._keysets.get(spend.coin.keyset_id)
            if keyset.currency != currency:
                raise RequestMismatchError(
                    "coin currency differs from the request", detail={"index": index}
                )
            try:
                keyset.require_deposit(now)
            except KeysetExpiredError as exc:
                raise exc.recode(KEYSET_EXPIRED, detail={"index": index}) from exc
            checked.append(Checked(spend, keyset))
        # (3c) coin values add up to the amount
        total = sum(c.keyset.value for c in checked)
        if amount is not None and total != amount:
            raise RequestMismatchError(
                "coin values do not add up to the requested amount",
                detail={"coins": total, "amount": amount},
            )

        # (3d) §7.1/§7.2: the one spend check per coin (RSA signature, proof over preq with Hop),
        # plus the bank's credential check with the issuer secret of the coin's epoch -- for all
        # coins at once in a random-weight batch, per coin only if the batch fails (§7.3)
        def where(index: int) -> dict[str, Any]:
            return {"index": index, "serial": b64u_encode(checked[index].spend.coin.sigma)}

        try:
            verify_spends(
                [(item.spend, item.keyset) for item in checked],
                hop=hop,
                preq=preq,
                currency=currency,
                now=now,
                credential_check=lambda i, coin: self._check_credential(coin, i, where(i)),
                credential_batch=self._credentials_batch,
            )
        except CoinSignatureError as exc:
            raise exc.recode(BAD_COIN_SIGNATURE, detail=where(exc.detail["index"])) from exc
        except SpendProofError as exc:
            raise exc.recode(BAD_PROOF, detail=where(exc.detail["index"])) from exc
        return checked
