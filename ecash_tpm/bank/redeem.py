"""Redeem to an account: coins in, a credit to the account holder's account (docs/protocol.md
§9.4).

:meth:`Redeems.issue` gives the logged-in account holder a bank-signed, single-use redeem
request (account, amount, currency, nonce, a deadline within ``max_deadline_s``), stored so that
only requests the bank issued are ever booked. :meth:`Redeems.redeem` then checks, cheapest
first and before any transaction:

1. the wire form and the request: signed by this bank's own key, for this bank, issued by it
   (``bank.redeem_unknown``), to the session's account (``bank.redeem_wrong_account``: a
   request stolen from another account holder cannot credit the thief);
2. an earlier redeem of this request: the same coins get the stored receipt (a retry after a
   lost answer), other coins 409 ``bank.redeem_used`` (single use);
3. the deadline by the bank's clock (``bank.redeem_expired``);
4. the coins through the deposit's one coin check (:meth:`DepositChecks.coins
   <ecash_tpm.bank.verify.DepositChecks.coins>`: keyset known and open for deposit, currency,
   values adding up to the amount, RSA signature, credential, spend proof over the request's
   ``preq``; all coins in one batch, §7.3).

Then **one transaction** at READ COMMITTED, serial locks first as a deposit, reservation or
swap takes them: the stored redeem again, the deadline again, serials neither spent (deposit,
swap or redeem: 409 ``bank.double_spend``) nor held by a merchant's reservation (409
``bank.coin_locked``), the ledger (``coins-outstanding:<keyset> -value``, ``customer:<id>
+(amount - fee)``, ``bank:fees +fee`` for the coins' ``fee_deposit``, §4.2; kind ``redeem``), no
keyset overdrawn, the redeem and one ``redeem_input`` row per coin with its transcript, the
bank-signed receipt (naming ``fee`` and ``credited``). A refused double spend is reported to
supervision exactly as a deposit's (§9.1; first spend a swap: §9.3) and carries the bank-signed
refusal (§10.1).
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecash_tpm.bank.accounts import Accounts
from ecash_tpm.bank.deposit import (
    _check_not_locked,
    _check_not_spent,
    _check_outstanding,
    deposit_entries,
)
from ecash_tpm.bank.ledger import customer_account, post_transaction
from ecash_tpm.bank.redeem_reports import RedeemedSeen, RedeemReports
from ecash_tpm.bank.reports import DoubleSpendReports, DoubleSpendSeen
from ecash_tpm.bank.store import redeems as rows
from ecash_tpm.bank.store import spending
from ecash_tpm.bank.swap_reports import SwappedSeen, SwapReports
from ecash_tpm.bank.verify import Checked, DepositChecks
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.protocol.errors import RequestMismatchError
from ecash_tpm.protocol.keysets import deposit_fee
from ecash_tpm.protocol.redeem import (
    REDEEM_RECEIPT_KIND,
    REDEEM_REQUEST_KIND,
    REDEEM_SPENDER,
    RedeemConflictError,
    RedeemExpiredError,
    RedeemRequest,
    RedeemTooManyError,
    RedeemUnknownRequestError,
    RedeemUsedError,
    RedeemWrongAccountError,
)
from ecash_tpm.protocol.status import sign_deposit_refusal
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["MAX_OPEN_REQUESTS", "REDEEM_TTL_S", "Redeems"]

#: How long a redeem request lives (capped by the bank's ``max_deadline_s``, §10): long enough
#: for a few TPM spend proofs, short enough that coins of a lost answer are not held long.
REDEEM_TTL_S = 300
#: Live, unused redeem requests one account may hold: every request is a stored row, so a
#: logged-in account cannot make the bank store requests without bound.
MAX_OPEN_REQUESTS = 16
_WIRE_FIELDS = frozenset({"request", "spends"})


def _transcript(
    item: Checked, req: RedeemRequest, doc: Mapping[str, Any], now: int
) -> dict[str, Any]:
    """The stored transcript of one redeemed coin: the fields of a deposit's (§12.1 reads
    ``merchant_id``, ``preq``, ``spend``, ``deposited_at``, ``request``) plus the account."""
    coin = item.spend.coin
    return {
        "kind": "redeem",
        "merchant_id": REDEEM_SPENDER,
        "account_id": req.account_id,
        "preq": b64u_encode(req.preq),
        "spend": item.spend.to_dict(),
        "deposited_at": now,
        "deposit_id": req.request_id,
        "sigma": b64u_encode(coin.sigma),
        "keyset_id": b64u_encode(coin.keyset_id),
        "epoch": coin.epoch,
        "value": item.keyset.value,
        "currency": item.keyset.currency,
        "request": dict(doc),
    }


class Redeems:
    """Issues redeem requests and books redeems (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        checks: DepositChecks,
        accounts: Accounts,
        reports: DoubleSpendReports,
        redeem_reports: RedeemReports,
        swap_reports: SwapReports,
        bank_key: PartyKey,
        bank_signer: str,
        bank_name: str,
        bank_cert_pem: str,
        currency: str,
        max_deadline_s: int,
        clock: Callable[[], int],
        ttl_s: int = REDEEM_TTL_S,
    ) -> None:
        db.migrate(rows.MIGRATIONS, component=rows.COMPONENT)
        self._db = db
        self._checks = checks
        self._accounts = accounts
        self._reports = reports
        self._redeem_reports = redeem_reports
        self._swap_reports = swap_reports
        self._bank_key = bank_key
        self._bank_signer = bank_signer
        self._bank_name = bank_name
        self._bank_cert_pem = bank_cert_pem
        self._currency = currency
        self._max_deadline_s = max_deadline_s
        self._ttl_s = min(ttl_s, max_deadline_s)
        self._clock = clock

    # --- the request ---------------------------------------------------------------------------

    def issue(self, account_id: str, amount: Any) -> dict[str, Any]:
        """A bank-signed redeem request for the session's account: ``{request, cert}``."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InputError("amount must be a positive integer (minor units)")
        self._accounts.account_info(account_id)  # the account exists (404 otherwise)
        now = self._clock()
        req = RedeemRequest(
            bank=self._bank_name,
            account_id=account_id,
            request_id="rdm-" + secrets.token_hex(12),
            amount=amount,
            currency=self._currency,
            nonce=secrets.token_bytes(16),
            issued_at=now,
            deadline=now + self._ttl_s,
        )
        doc = sign_object(
            self._bank_key, REDEEM_REQUEST_KIND, req.to_body(), signer=self._bank_signer
        )

        def store(tx: Transaction) -> None:
            if rows.count_open_requests(tx, account_id, now) >= MAX_OPEN_REQUESTS:
                raise RedeemTooManyError(
                    "too many unused redeem requests; use one or wait until they expire",
                    detail={"max_open": MAX_OPEN_REQUESTS, "retry_after": self._ttl_s},
                )
            rows.insert_request(
                tx,
                request_id=req.request_id,
                account_id=account_id,
                preq=req.preq,
                amount=amount,
                currency=self._currency,
                deadline=req.deadline,
                doc_json=json.dumps(doc, sort_keys=True),
                now=now,
            )

        self._db.run_in_transaction(store)
        return {"request": doc, "cert": self._bank_cert_pem}

    def _request(self, account_id: str, doc: Any) -> RedeemRequest:
        """Step 1: our own signature, our bank, issued by us, to this account."""
        req = RedeemRequest.from_signed_by(doc, self._bank_key.public_key)
        if req.bank != self._bank_name:
            raise RequestMismatchError("redeem request names another bank")
        with self._db.read() as tx:
            row = rows.request(tx, req.request_id)
        if row is None or row.preq != req.preq:
            raise RedeemUnknownRequestError(
                "the bank did not issue this redeem request", detail={"request_id": req.request_id}
            )
        if row.account_id != account_id or req.account_id != account_id:
            raise RedeemWrongAccountError(
                "the redeem request was issued to another account",
                detail={"request_id": req.request_id},
            )
        return req

    def _stored(self, tx: Transaction, req: RedeemRequest, digest: bytes) -> dict[str, Any] | None:
        """Step 2: the receipt of an identical retry; 409 for other coins on this request."""
        row = rows.redeem(tx, req.request_id)
        if row is None:
            return None
        if row.content_digest != digest:
            raise RedeemUsedError(
                "the redeem request was already used", detail={"request_id": req.request_id}
            )
        receipt: dict[str, Any] = json.loads(row.receipt)
        return receipt

    def _check_deadline(self, req: RedeemRequest, now: int) -> None:
        if now > req.deadline or req.deadline > now + self._max_deadline_s:
            raise RedeemExpiredError(
                "the redeem request's deadline has passed",
                detail={"deadline": req.deadline, "bank_time": now},
            )

    # --- the redeem ----------------------------------------------------------------------------

    def redeem(self, account_id: str, wire: Any) -> dict[str, Any]:
        """Verify and book ``{request, spends}`` for ``account_id``: ``{receipt, cert}``."""
        if not isinstance(wire, Mapping) or set(wire) != _WIRE_FIELDS:
            raise InputError("a redeem is exactly {request, spends}")
        req = self._request(account_id, wire["request"])
        digest = canonical_digest({"request": req.to_body(), "spends": wire["spends"]})
        with self._db.read() as tx:
            stored = self._stored(tx, req, digest)
        if stored is not None:
            return self._answer(stored)
        now = self._clock()
        self._check_deadline(req, now)
        checked = self._checks.coins(
            wire["spends"], preq=req.preq, currency=req.currency, amount=req.amount, now=now
        )
        sigmas = [c.spend.coin.sigma for c in checked]
        bodies = {c.spend.coin.sigma: _transcript(c, req, wire["request"], now) for c in checked}
        fee = deposit_fee([c.keyset for c in checked])  # §4.2: fee_deposit per redeemed coin

        def book(tx: Transaction) -> dict[str, Any]:
            spending.lock_serials(tx, sigmas)  # READ COMMITTED: later reads see the winner
            again = self._stored(tx, req, digest)
            if again is not None:
                return again
            # §10.1: the deadline again at booking time, so that a signed "unspent" after the
            # deadline stays true (the wallet then frees the coins)
            self._check_deadline(req, self._clock())
            _check_not_spent(tx, sigmas)
            _check_not_locked(tx, "", sigmas, now)  # a merchant's reservation holds
            # §4.2: a redeem is a deposit into an account: the coins' deposit fees go to the
            # fee account, the account gets the rest (the deposit's own entries)
            entries = deposit_entries(checked, customer_account(account_id), req.amount)
            txn_id = post_transaction(
                tx,
                kind="redeem",
                ref=req.request_id,
                entries=entries,
                currency=req.currency,
                now=now,
            )
            _check_outstanding(tx, checked)
            rows.insert_redeem(
                tx,
                request_id=req.request_id,
                account_id=account_id,
                digest=digest,
                preq=req.preq,
                amount=req.amount,
                currency=req.currency,
                txn_id=txn_id,
                now=now,
            )
            for c in checked:
                sigma = c.spend.coin.sigma
                if not rows.insert_input(
                    tx,
                    sigma=sigma,
                    request_id=req.request_id,
                    keyset_id=c.keyset.keyset_id,
                    value=c.keyset.value,
                    body_json=json.dumps(bodies[sigma], sort_keys=True),
                    now=now,
                ):
                    raise RedeemConflictError("coin spent concurrently; retry")
            receipt = sign_object(
                self._bank_key,
                REDEEM_RECEIPT_KIND,
                {
                    "request_id": req.request_id,
                    "account_id": account_id,
                    "preq": b64u_encode(req.preq),
                    "amount": req.amount,
                    "fee": fee,
                    "credited": req.amount - fee,
                    "currency": req.currency,
                    "serials": [b64u_encode(s) for s in sigmas],
                    "redeemed_at": now,
                },
                signer=self._bank_signer,
            )
            rows.set_receipt(tx, req.request_id, json.dumps(receipt, sort_keys=True))
            return receipt

        try:
            try:
                receipt: dict[str, Any] = self._db.run_in_transaction(
                    book, isolation="read_committed"
                )
            except UniqueViolationError:  # a racing twin (PostgreSQL): the re-run sees it
                receipt = self._db.run_in_transaction(book, isolation="read_committed")
        except DoubleSpendSeen as exc:  # paid (deposited) first, now redeemed: §9.1
            self._reports.after_double_spend(exc, bodies[exc.sigma], req.preq)
            raise self._signed(exc, req.preq, sigmas, now) from None
        except RedeemedSeen as exc:  # redeemed by another request first
            self._redeem_reports.after_double_spend(exc, bodies[exc.sigma], req.preq)
            raise self._signed(exc, req.preq, sigmas, now) from None
        except SwappedSeen as exc:  # swapped first (§9.3), reported like the above
            self._swap_reports.after_double_spend(exc, bodies[exc.sigma], req.preq)
            raise self._signed(exc, req.preq, sigmas, now) from None
        return self._answer(receipt)

    def _answer(self, receipt: dict[str, Any]) -> dict[str, Any]:
        return {"receipt": receipt, "cert": self._bank_cert_pem}

    def _signed(
        self, exc: EcashError, preq: bytes, sigmas: Sequence[bytes], now: int
    ) -> EcashError:
        """§10.1: the bank-signed ``deposit-refusal`` (and certificate) in the refusal's detail:
        the wallet acts on the bank's signed word only, as it does for a payment."""
        exc.detail["refusal"] = sign_deposit_refusal(
            self._bank_key,
            code=exc.code,
            bank=self._bank_name,
            bank_time=now,
            merchant_id=REDEEM_SPENDER,
            preq=preq,
            serials=sigmas,
            detail={k: v for k, v in exc.detail.items() if k in ("serial", "transcript_id")},
            signer=self._bank_signer,
        )
        exc.detail["cert"] = self._bank_cert_pem
        return exc
