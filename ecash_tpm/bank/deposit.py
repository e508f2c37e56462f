"""Deposit, reservation (lock period T) and coin status: the booking (docs/protocol.md §9, §10).

The incoming documents are checked first by :class:`~ecash_tpm.bank.verify.DepositChecks`
(envelope, payment request, coins; §9 steps 1-3). Then **one transaction** (§9): serials not
spent (409 ``bank.double_spend`` naming the earlier transcript) and not held by another merchant
(409 ``bank.coin_locked`` + Retry-After), the ledger credit, one transcript and one spent row
per coin, the bank-signed receipt. Identical retries of a deposit_id return the stored receipt.

A refused double spend is handed to :class:`~ecash_tpm.bank.reports.DoubleSpendReports`
(§9.1), or the queue of the first spend's kind (a redeem, §9.4; a swap, §9.3), outside the money
transaction.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ecash_tpm.bank.errors import (
    CoinLockedError,
    DepositConflictError,
    KeysetOverdrawnError,
)
from ecash_tpm.bank.ledger import merchant_account, post_transaction
from ecash_tpm.bank.models import CoinStatus, ReserveResult
from ecash_tpm.bank.redeem_reports import RedeemedSeen, RedeemReports
from ecash_tpm.bank.reports import DoubleSpendReports, DoubleSpendSeen
from ecash_tpm.bank.store import deposits as rows
from ecash_tpm.bank.store import guards as guard_rows
from ecash_tpm.bank.store import redeems as redeem_rows
from ecash_tpm.bank.store import spending
from ecash_tpm.bank.store import swaps as swap_rows
from ecash_tpm.bank.swap_reports import SwappedSeen, SwapReports
from ecash_tpm.bank.verify import (
    DEPOSIT_FIELDS,
    RESERVE_FIELDS,
    Checked,
    DepositChecks,
    check_deadline,
    check_deadline_bound,
)
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import SIGMA_LEN
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.protocol.coins import (
    DEPOSIT_KIND,
    RECEIPT_KIND,
    RESERVE_KIND,
    PaymentRequest,
    check_identifier,
)
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, deposit_fee
from ecash_tpm.protocol.payments import RESERVE_CHECKS, RESERVE_VERDICT
from ecash_tpm.protocol.redeem import REDEEM_SPENDER
from ecash_tpm.protocol.status import (
    MAX_STATUS_SERIALS,
    CoinState,
    sign_coin_status,
    sign_deposit_refusal,
)
from ecash_tpm.protocol.swap import SWAP_SPENDER
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["SWAP_SPENDER", "Deposits", "SwappedSeen", "decode_sigma", "deposit_entries"]


def _transcript_body(
    *,
    item: Checked,
    merchant_id: str,
    deposit_id: str | None,
    req: PaymentRequest,
    request_doc: Mapping[str, Any],
    now: int,
) -> dict[str, Any]:
    """The stored transcript of one coin (§9: signed later as ``deposit-transcript``)."""
    coin = item.spend.coin
    return {
        "merchant_id": merchant_id,
        "preq": b64u_encode(req.preq),
        "spend": item.spend.to_dict(),
        "deposited_at": now,
        "deposit_id": deposit_id,
        "sigma": b64u_encode(coin.sigma),
        "keyset_id": b64u_encode(coin.keyset_id),
        "epoch": coin.epoch,
        "value": item.keyset.value,
        "currency": item.keyset.currency,
        "request": dict(request_doc),
    }


# --- state checks inside the money transaction ----------------------------------------------


def deposit_entries(
    checked: Sequence[Checked], credit_account: str, amount: int
) -> list[tuple[str, int]]:
    """The ledger entries of a deposit (docs/protocol.md 4.2, 9): each coin leaves its keyset,
    ``credit_account`` gets ``amount`` minus the coins' deposit fees, the fee account the fees
    (a zero fee is dropped by the ledger)."""
    fee = deposit_fee([c.keyset for c in checked])
    entries = [(c.keyset.ledger_account, -c.keyset.value) for c in checked]
    entries += [(credit_account, amount - fee), (FEE_ACCOUNT, fee)]
    return entries


def _check_not_spent(tx: Transaction, sigmas: Sequence[bytes]) -> None:
    """§9: every serial not in ``spent_coin`` nor swapped (§9.3) nor redeemed (§9.4) (else
    409 ``bank.double_spend``)."""
    for sigma in sigmas:
        if not spending.any_spent(tx, sigma):  # the common case: one probe, not three
            continue
        spent = rows.spent_by(tx, sigma)
        if spent is not None:
            raise DoubleSpendSeen(sigma, spent[0], spent[1])
        swapped = swap_rows.swapped(tx, sigma)
        if swapped is not None:
            raise SwappedSeen(sigma, swapped.request_id, swapped.preq)
        redeemed = redeem_rows.redeemed(tx, sigma)
        if redeemed is not None:
            raise RedeemedSeen(sigma, redeemed.request_id, redeemed.preq)


def _check_not_locked(
    tx: Transaction, merchant_id: str, sigmas: Sequence[bytes], now: int
) -> dict[bytes, int]:
    """§10: refuse coins held by another merchant; return this merchant's own live locks."""
    own: dict[bytes, int] = {}
    for sigma in sigmas:
        lock = rows.lock(tx, sigma)
        if lock is None or lock[1] <= now:
            continue
        holder, until = lock
        _refuse_other_holder(sigma, holder, until, merchant_id, now)
        own[sigma] = until
    return own


def _first_lock_time(
    locks: Mapping[bytes, rows.LockRow],
    merchant_id: str,
    preq: bytes,
    sigmas: Sequence[bytes],
    now: int,
) -> int | None:
    """:func:`~ecash_tpm.bank.store.deposits.first_lock_time` over rows already read: the
    latest lock time when this merchant holds ALL of ``sigmas`` live for ``preq``, else None."""
    latest: int | None = None
    for sigma in sigmas:
        lock = locks.get(sigma)
        if (
            lock is None
            or lock.merchant_id != merchant_id
            or lock.preq != preq
            or lock.locked_until <= now
        ):
            return None
        latest = lock.locked_at if latest is None else max(latest, lock.locked_at)
    return latest


def _check_locks_read(
    locks: Mapping[bytes, rows.LockRow], merchant_id: str, sigmas: Sequence[bytes], now: int
) -> None:
    """:func:`_check_not_locked` over rows already read (§10)."""
    for sigma in sigmas:
        lock = locks.get(sigma)
        if lock is not None and lock.locked_until > now:
            _refuse_other_holder(sigma, lock.merchant_id, lock.locked_until, merchant_id, now)


def _refuse_other_holder(sigma: bytes, holder: str, until: int, merchant_id: str, now: int) -> None:
    """§10: 409 ``bank.coin_locked`` (+ Retry-After) when another merchant holds the coin."""
    if holder != merchant_id:
        raise CoinLockedError(
            "coin is being checked by another merchant; retry after the lock period",
            detail={
                "serial": b64u_encode(sigma),
                "locked_until": until,
                "retry_after": until - now,
            },
        )


def _prior_deposit(
    tx: Transaction, deposit_id: str, merchant_id: str, content: bytes
) -> dict[str, Any] | None:
    """§9: the stored receipt of an identical retry; 409 for another deposit with this id."""
    row = rows.deposit(tx, deposit_id)
    if row is None:
        return None
    if row.merchant_id != merchant_id or row.content_digest != content:
        raise DepositConflictError(
            "deposit_id already used for a different deposit",
            detail={"deposit_id": deposit_id},
        )
    receipt: dict[str, Any] = json.loads(row.receipt)
    return receipt


def _check_outstanding(tx: Transaction, checked: Sequence[Checked]) -> None:
    """Issue 13 item 6: after the deposit's ledger lines, no keyset may have paid out more
    than it issued (else 409 ``bank.keyset_overdrawn`` and the transaction rolls back)."""
    for keyset in {c.keyset.keyset_id: c.keyset for c in checked}.values():
        outstanding = spending.keyset_outstanding(tx, keyset.ledger_account)
        if outstanding < 0:
            raise KeysetOverdrawnError(
                "deposit would spend more of a keyset than was issued",
                detail={"keyset_id": b64u_encode(keyset.keyset_id)},
            )


def _coin_state(tx: Transaction, sigma: bytes, now: int) -> CoinState:
    """One serial for the signed coin status (§10.1)."""
    spent = rows.deposited_coin(tx, sigma)
    if spent is not None:
        return CoinState(
            sigma,
            "spent",
            merchant_id=spent.merchant_id,
            preq=spent.preq,
            deposit_id=spent.deposit_id,
            deposited_at=spent.spent_at,
        )
    swapped = swap_rows.swapped(tx, sigma)
    if swapped is not None:  # §9.3: a swapped coin is spent (by the bank itself)
        return CoinState(
            sigma,
            "spent",
            merchant_id=SWAP_SPENDER,
            preq=swapped.preq,
            deposit_id=swapped.request_id,
            deposited_at=swapped.spent_at,
        )
    redeemed = redeem_rows.redeemed(tx, sigma)
    if redeemed is not None:  # §9.4: a redeemed coin is spent (into an account)
        return CoinState(
            sigma,
            "spent",
            merchant_id=REDEEM_SPENDER,
            preq=redeemed.preq,
            deposit_id=redeemed.request_id,
            deposited_at=redeemed.spent_at,
        )
    lock = rows.lock_detail(tx, sigma)
    if lock is not None and lock[2] > now:
        return CoinState(sigma, "locked", locked_until=lock[2], merchant_id=lock[0], preq=lock[1])
    return CoinState(sigma, "unspent")


class Deposits:
    """Books merchants' verified deposits and reservations."""

    def __init__(
        self,
        db: Database,
        *,
        checks: DepositChecks,
        reports: DoubleSpendReports,
        bank_key: PartyKey,
        bank_signer: str,
        lock_period_s: int,
        clock: Callable[[], int],
        bank_name: str = "bank",
        bank_cert_pem: str | None = None,
        max_deadline_s: int = 600,
        redeem_reports: RedeemReports | None = None,
        swap_reports: SwapReports | None = None,
    ) -> None:
        self._redeem_reports = redeem_reports  # §9.4: double spends of redeemed coins
        self._swap_reports = swap_reports  # §9.3: double spends of swapped coins
        self._bank_name = bank_name
        self._bank_cert_pem = bank_cert_pem
        self._max_deadline_s = max_deadline_s
        self._db = db
        self._checks = checks
        self._reports = reports
        self._bank_key = bank_key
        self._bank_signer = bank_signer
        self._lock_period_s = lock_period_s
        self._clock = clock
        db.migrate(spending.migrations(db.backend), component=spending.COMPONENT)

    # --- deposit --------------------------------------------------------------------------------

    def deposit(self, signed: Any, cert_pem: str | bytes) -> dict[str, Any]:
        """Verify and book a merchant-signed deposit; returns the bank-signed receipt."""
        checks = self._checks
        merchant_id, body, key, encoded = checks.authenticate_encoded(
            signed, cert_pem, DEPOSIT_KIND, DEPOSIT_FIELDS
        )
        deposit_id = check_identifier(body["deposit_id"], "deposit_id")
        # == canonical_digest(body): the bytes the signature check already encoded
        content = hashlib.sha256(encoded).digest()
        with self._db.read() as tx:
            prior = _prior_deposit(tx, deposit_id, merchant_id, content)
        if prior is not None:
            return prior
        now = self._clock()
        with checks.watch(merchant_id):
            req = checks.request(body["request"], merchant_id, key)
            check_deadline_bound(req, now, self._max_deadline_s)
            checked = checks.spends(req, body["spends"], now)
            sigmas = [c.spend.coin.sigma for c in checked]
            check_deadline(req, self._first_seen(merchant_id, req.preq, sigmas, now))
        bodies = {
            c.spend.coin.sigma: _transcript_body(
                item=c,
                merchant_id=merchant_id,
                deposit_id=deposit_id,
                req=req,
                request_doc=body["request"],
                now=now,
            )
            for c in checked
        }

        def book(tx: Transaction) -> dict[str, Any]:
            sigmas = [c.spend.coin.sigma for c in checked]
            spending.lock_serials(tx, sigmas)  # READ COMMITTED: later reads see the winner
            again = _prior_deposit(tx, deposit_id, merchant_id, content)
            if again is not None:
                return again
            # §10.1: the deadline again at booking time, so that a signed "unspent" after the
            # deadline stays true (a deposit verified before it cannot land after it)
            late = self._clock()
            locks = rows.lock_rows(tx, sigmas)  # read once for both lock rules below
            seen = _first_lock_time(locks, merchant_id, req.preq, sigmas, late)
            check_deadline(req, late if seen is None else min(seen, late))
            _check_not_spent(tx, sigmas)
            _check_locks_read(locks, merchant_id, sigmas, now)
            entries = deposit_entries(checked, merchant_account(merchant_id), req.amount)
            txn_id = post_transaction(
                tx,
                kind="deposit",
                ref=deposit_id,
                entries=entries,
                currency=req.currency,
                now=now,
            )
            _check_outstanding(tx, checked)
            rows.insert_deposit(
                tx,
                deposit_id=deposit_id,
                merchant_id=merchant_id,
                digest=content,
                preq=req.preq,
                amount=req.amount,
                currency=req.currency,
                txn_id=txn_id,
                now=now,
            )
            transcript_ids = []
            for c in checked:
                sigma = c.spend.coin.sigma
                tid = spending.mark_spent(
                    tx,
                    sigma=sigma,
                    keyset_id=c.keyset.keyset_id,
                    deposit_id=deposit_id,
                    merchant_id=merchant_id,
                    preq=req.preq,
                    body_json=json.dumps(bodies[sigma], sort_keys=True),
                    now=now,
                )
                if tid is None:  # spent meanwhile by a path that took no serial lock
                    _check_not_spent(tx, [sigma])
                    raise DepositConflictError("coin spent concurrently; retry")
                transcript_ids.append(tid)
            # the serial locks above keep any new lock row off these coins: only rows read exist
            rows.delete_locks(tx, [s for s in sigmas if s in locks])
            receipt = sign_object(
                self._bank_key,
                RECEIPT_KIND,
                {
                    "deposit_id": deposit_id,
                    "merchant_id": merchant_id,
                    "preq": b64u_encode(req.preq),
                    "amount": req.amount,
                    "currency": req.currency,
                    "serials": [b64u_encode(s) for s in sigmas],
                    "transcript_ids": transcript_ids,
                    "deposited_at": now,
                },
                signer=self._bank_signer,
            )
            rows.set_receipt(tx, deposit_id, json.dumps(receipt, sort_keys=True))
            return receipt

        try:
            receipt: dict[str, Any] = self._run_money(book)
        except DoubleSpendSeen as exc:
            self._reports.after_double_spend(exc, bodies[exc.sigma], req.preq)
            self._sign_refusal(exc, merchant_id, req.preq, list(bodies), now)
            raise
        except SwappedSeen as exc:  # §9.3: spent by a swap; reported and signed like the above
            self._swapped(exc, bodies[exc.sigma], req.preq)
            self._sign_refusal(exc, merchant_id, req.preq, list(bodies), now)
            raise
        except RedeemedSeen as exc:  # §9.4: redeemed into an account, reported like the above
            self._redeemed(exc, bodies[exc.sigma], req.preq)
            self._sign_refusal(exc, merchant_id, req.preq, list(bodies), now)
            raise
        return receipt

    def _redeemed(self, exc: RedeemedSeen, attempt: Mapping[str, Any], preq: bytes) -> None:
        if self._redeem_reports is not None:
            self._redeem_reports.after_double_spend(exc, attempt, preq)

    def _swapped(self, exc: SwappedSeen, attempt: Mapping[str, Any], preq: bytes) -> None:
        if self._swap_reports is not None:
            self._swap_reports.after_double_spend(exc, attempt, preq)

    def _sign_refusal(
        self, exc: EcashError, merchant_id: str, preq: bytes, sigmas: Sequence[bytes], now: int
    ) -> None:
        """§10.1: put the bank-signed ``deposit-refusal`` (and the bank certificate) into the
        refusal's detail, so the merchant can relay the bank's own word to the customer."""
        exc.detail["refusal"] = sign_deposit_refusal(
            self._bank_key,
            code=exc.code,
            bank=self._bank_name,
            bank_time=now,
            merchant_id=merchant_id,
            preq=preq,
            serials=sigmas,
            detail={k: v for k, v in exc.detail.items() if k in ("serial", "transcript_id")},
            signer=self._bank_signer,
        )
        if self._bank_cert_pem is not None:
            exc.detail["cert"] = self._bank_cert_pem

    def _run_money(self, fn: Callable[[Transaction], Any]) -> Any:
        """Run a money transaction; a unique-key race (PostgreSQL) is re-run once, and the
        re-run then sees the winner's rows and answers accordingly."""
        try:
            return self._db.run_in_transaction(fn, isolation="read_committed")
        except UniqueViolationError:
            return self._db.run_in_transaction(fn, isolation="read_committed")

    def _first_seen(self, merchant_id: str, preq: bytes, sigmas: Sequence[bytes], now: int) -> int:
        """When the bank had verified these coins of this request for this merchant (their
        live reservations, every one of them), else ``now``.

        Only a reservation that still holds counts (§10 deadline rule): once T has passed the
        wallet may treat the coins as unpaid after the request's deadline and spend them again,
        so a merchant that deposits late must not be let through on an expired lock (that would
        make an honest re-spend look like a double spend and get the customer opened and
        revoked).
        """
        with self._db.read() as tx:
            seen = rows.first_lock_time(tx, merchant_id, preq, sigmas, now)
        return now if seen is None else min(seen, now)

    # --- reserve (lock period T) ---------------------------------------------------------------

    def reserve(self, signed: Any, cert_pem: str | bytes) -> ReserveResult:
        """§10: hold verified coins for this merchant until now + T."""
        checks = self._checks
        merchant_id, body, key = checks.authenticate(signed, cert_pem, RESERVE_KIND, RESERVE_FIELDS)
        now = self._clock()
        with checks.watch(merchant_id):
            req = checks.request(body["request"], merchant_id, key)
            check_deadline_bound(req, now, self._max_deadline_s)
            check_deadline(req, now)
            checked = checks.spends(req, body["spends"], now)
        sigmas = [c.spend.coin.sigma for c in checked]
        until = now + self._lock_period_s

        def book(tx: Transaction) -> int:
            spending.lock_serials(tx, sigmas)
            guard_rows.delete_expired_locks(tx, now)  # expired reservations do not pile up
            _check_not_spent(tx, sigmas)
            own = _check_not_locked(tx, merchant_id, sigmas, now)
            for sigma in sigmas:
                if sigma in own:
                    continue  # no extension: a merchant cannot hold a coin forever
                rows.upsert_lock(
                    tx, sigma, merchant_id=merchant_id, preq=req.preq, now=now, until=until
                )
            return min([until, *own.values()])

        try:
            locked_until: int = self._run_money(book)
        except (DoubleSpendSeen, RedeemedSeen, SwappedSeen) as exc:
            item = next(c for c in checked if c.spend.coin.sigma == exc.sigma)
            attempt = _transcript_body(
                item=item,
                merchant_id=merchant_id,
                deposit_id=None,
                req=req,
                request_doc=body["request"],
                now=now,
            )
            if isinstance(exc, RedeemedSeen):  # §9.4
                self._redeemed(exc, attempt, req.preq)
            elif isinstance(exc, SwappedSeen):  # §9.3
                self._swapped(exc, attempt, req.preq)
            else:
                self._reports.after_double_spend(exc, attempt, req.preq)
            self._sign_refusal(exc, merchant_id, req.preq, sigmas, now)
            raise
        # §10: the answer names every check run and passed (the merchant's verdict to act on)
        return ReserveResult(
            locked_until,
            tuple(b64u_encode(s) for s in sigmas),
            verdict=RESERVE_VERDICT,
            checks=RESERVE_CHECKS,
        )

    # --- coin status --------------------------------------------------------------------------

    def coin_status(self, sigma: bytes) -> CoinStatus:
        """§10: unspent | locked (while ``locked_until > now``) | spent (wallet recovery)."""
        if not isinstance(sigma, bytes) or len(sigma) != SIGMA_LEN:
            raise InputError(f"sigma must be {SIGMA_LEN} bytes")
        now = self._clock()
        with self._db.read() as tx:
            if (
                rows.is_spent(tx, sigma)
                or swap_rows.swapped(tx, sigma) is not None
                or redeem_rows.redeemed(tx, sigma) is not None
            ):
                return CoinStatus(sigma, "spent")
            lock = rows.lock(tx, sigma)
        if lock is not None and lock[1] > now:
            return CoinStatus(sigma, "locked", lock[1])
        return CoinStatus(sigma, "unspent")

    def signed_status(self, sigmas: Sequence[bytes]) -> dict[str, Any]:
        """§10.1: the bank-signed ``coin-status`` of ``sigmas`` at the bank's time: unspent,
        locked (holder, request, until) or spent (deposit, request, when)."""
        if not sigmas or len(sigmas) > MAX_STATUS_SERIALS:
            raise InputError(f"ask about 1..{MAX_STATUS_SERIALS} serials")
        if len(set(sigmas)) != len(sigmas):
            raise InputError("serials must be distinct")
        for sigma in sigmas:
            if not isinstance(sigma, bytes) or len(sigma) != SIGMA_LEN:
                raise InputError(f"sigma must be {SIGMA_LEN} bytes")
        states = []
        with self._db.read() as tx:
            now = self._clock()  # read inside the snapshot: nothing booked later is older
            for sigma in sigmas:
                states.append(_coin_state(tx, sigma, now))
        return sign_coin_status(
            self._bank_key,
            bank=self._bank_name,
            bank_time=now,
            coins=states,
            signer=self._bank_signer,
        )

    # --- double-spend reports (kept here for callers that read them as mappings) --------------


def decode_sigma(text: str) -> bytes:
    """Path parameter -> 32-byte serial (400 on anything else)."""
    try:
        sigma = b64u_decode(text)
    except EcashError as exc:
        raise InputError("sigma must be base64url") from exc
    if len(sigma) != SIGMA_LEN:
        raise InputError(f"sigma must be {SIGMA_LEN} bytes")
    return sigma
