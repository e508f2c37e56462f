"""Swap: coins in, blind signatures on new coins of the same total out (docs/protocol.md §9.3).

No account is involved. Checks before any transaction, cheapest first:

1. the swap request body (:class:`~ecash_tpm.protocol.swap.SwapRequest`), naming this bank;
   an earlier swap with this ``request_id`` and the same body is answered with its stored
   signatures (idempotent), another body with 409 ``bank.swap_conflict``;
2. deadline not passed and not too far ahead (``bank.swap_expired``);
3. the inputs: the spends name exactly the request's serials, in order, and each passes the
   deposit's coin check (:meth:`~ecash_tpm.bank.verify.DepositChecks.coins`: keyset open for
   deposit, RSA signature, credential, spend proof over the swap's ``preq``; all coins in one
   batch, §7.3);
4. the outputs: keysets known, open for withdrawal now (the bank serves, and the central bank
   certified, exactly these: §4.1), in the bank's currency, blinded messages of the key's size;
5. outputs total = inputs total - :func:`~ecash_tpm.protocol.swap.swap_fee` (the inputs'
   ``fee_refresh``, docs/protocol.md 4.2).

Then the RSA work, and **one transaction** at READ COMMITTED that first locks the input serials
(:func:`~ecash_tpm.bank.store.spending.lock_serials`, as a deposit or reservation does, so a swap
and a deposit of one coin run one after the other and the later one sees the earlier): the
stored swap again, the deadline again by the bank's clock, serials neither spent nor swapped
nor redeemed (409 ``bank.double_spend``, reported to supervision in the first spend's queue when
the swap answered another request: :mod:`~ecash_tpm.bank.swap_reports`) nor locked by a merchant
(409 ``bank.coin_locked``), the ledger (``coins-outstanding:<input keyset> -value``,
``coins-outstanding:<output keyset> +value``, the refresh fee to ``bank:fees``), no input keyset
overdrawn (409 ``bank.keyset_overdrawn``), the swap, one ``swap_input`` row with its transcript
per coin, the outputs and their signatures.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

from ecash_tpm.bank.deposit import _check_not_locked, _check_not_spent, _check_outstanding
from ecash_tpm.bank.errors import KEYSET_EXPIRED, SwapConflictError, SwapExpiredError
from ecash_tpm.bank.keysets import KeysetStore
from ecash_tpm.bank.ledger import post_transaction
from ecash_tpm.bank.redeem_reports import RedeemedSeen, RedeemReports
from ecash_tpm.bank.reports import DoubleSpendReports, DoubleSpendSeen
from ecash_tpm.bank.store import spending
from ecash_tpm.bank.store import swaps as rows
from ecash_tpm.bank.swap_reports import SwappedSeen, SwapReports
from ecash_tpm.bank.verify import Checked, DepositChecks
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.errors import InputError
from ecash_tpm.protocol.errors import KeysetExpiredError, RequestMismatchError
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Keyset
from ecash_tpm.protocol.swap import MAX_SWAP_ITEMS, SwapRequest, swap_fee
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["FEE_ACCOUNT", "SwapResult", "Swaps"]

SwapResult = tuple[str, list[bytes]]
_WIRE_FIELDS = frozenset({"request", "spends"})


def _transcript(item: Checked, req: SwapRequest, body: Mapping[str, Any], now: int) -> str:
    """The stored transcript of one swapped coin (kept for the audit, like a deposit's)."""
    coin = item.spend.coin
    return json.dumps(
        {
            "kind": "swap",
            "request_id": req.request_id,
            "preq": b64u_encode(req.preq),
            "spend": item.spend.to_dict(),
            "swapped_at": now,
            "sigma": b64u_encode(coin.sigma),
            "keyset_id": b64u_encode(coin.keyset_id),
            "epoch": coin.epoch,
            "value": item.keyset.value,
            "currency": item.keyset.currency,
            "request": dict(body),
        },
        sort_keys=True,
    )


class Swaps:
    """Verifies and books swaps (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        checks: DepositChecks,
        keysets: KeysetStore,
        reports: DoubleSpendReports,
        redeem_reports: RedeemReports,
        swap_reports: SwapReports,
        bank_name: str,
        currency: str,
        max_deadline_s: int,
        clock: Callable[[], int],
    ) -> None:
        db.migrate(rows.MIGRATIONS, component=rows.COMPONENT)
        self._db = db
        self._checks = checks
        self._keysets = keysets
        # §9.3: a refused double spend goes to the queue of the first spend's kind
        self._reports = reports
        self._redeem_reports = redeem_reports
        self._swap_reports = swap_reports
        self._bank_name = bank_name
        self._currency = currency
        self._max_deadline_s = max_deadline_s
        self._clock = clock

    def _stored(self, tx: Transaction, req: SwapRequest, digest: bytes) -> SwapResult | None:
        row = rows.swap(tx, req.request_id)
        if row is None:
            return None
        if row.content_digest != digest:
            raise SwapConflictError(
                "request_id already used for a different swap",
                detail={"request_id": req.request_id},
            )
        return req.request_id, rows.blind_signatures(tx, req.request_id)

    def _check_deadline(self, req: SwapRequest, now: int) -> None:
        if now > req.deadline or req.deadline > now + self._max_deadline_s:
            raise SwapExpiredError(
                "the swap request's deadline has passed or lies too far ahead",
                detail={
                    "deadline": req.deadline,
                    "bank_time": now,
                    "max_deadline_s": self._max_deadline_s,
                },
            )

    def _outputs(self, req: SwapRequest, now: int) -> list[Keyset]:
        """Step 4: every output under a keyset open for withdrawal now, in our currency."""
        out = []
        for index, (keyset_id, blinded) in enumerate(req.outputs):
            keyset = self._keysets.get(keyset_id)
            try:
                keyset.require_withdraw(now)
            except KeysetExpiredError as exc:
                raise exc.recode(KEYSET_EXPIRED, detail={"output": index}) from exc
            if keyset.currency != self._currency:
                raise RequestMismatchError(
                    "output keyset currency is not the bank's", detail={"output": index}
                )
            if len(blinded) != blindrsa.modulus_len(keyset.public_key):
                raise InputError(
                    "blinded message length does not match the keyset key",
                    detail={"output": index},
                )
            out.append(keyset)
        return out

    def swap(self, wire: Any) -> SwapResult:
        """Verify and book ``{request, spends}``; ``(request_id, blind_signatures)``."""
        if not isinstance(wire, Mapping) or set(wire) != _WIRE_FIELDS:
            raise InputError("a swap is exactly {request, spends}")
        # (1) the request, for this bank; an identical retry gets the stored answer
        req = SwapRequest.from_body(wire["request"])
        if req.bank != self._bank_name:
            raise RequestMismatchError("swap request names another bank")
        digest = canonical_digest(req.to_body())
        with self._db.read() as tx:
            stored = self._stored(tx, req, digest)
        if stored is not None:
            return stored
        # (2) deadline by the bank's clock
        now = self._clock()
        self._check_deadline(req, now)
        # (3) the inputs: exactly the request's serials, each through the one coin check
        spends = wire["spends"]
        if not isinstance(spends, list) or len(spends) > MAX_SWAP_ITEMS:
            raise InputError(f"a swap has 1..{MAX_SWAP_ITEMS} spends")
        checked = self._checks.coins(
            spends, preq=req.preq, currency=self._currency, amount=None, now=now
        )
        if tuple(c.spend.coin.sigma for c in checked) != req.inputs:
            raise RequestMismatchError("the spends are not the swap request's inputs, in order")
        # (4) outputs, (5) totals: the one place a refresh fee is taken
        outputs = self._outputs(req, now)
        amount_in = sum(c.keyset.value for c in checked)
        fee = swap_fee([c.keyset for c in checked])
        amount_out = sum(k.value for k in outputs)
        if amount_out != amount_in - fee:
            raise RequestMismatchError(
                "swap outputs must add up to the inputs minus the fee",
                detail={"inputs": amount_in, "outputs": amount_out, "fee": fee},
            )
        signatures = [
            blindrsa.blind_sign(self._keysets.private_key(k.keyset_id), blinded)
            for k, (_, blinded) in zip(outputs, req.outputs, strict=True)
        ]
        transcripts = {
            c.spend.coin.sigma: _transcript(c, req, wire["request"], now) for c in checked
        }

        def book(tx: Transaction) -> SwapResult:
            # the serials first, as a deposit or reservation does: at READ COMMITTED every
            # read below then sees what a racing deposit, reservation or swap committed
            spending.lock_serials(tx, list(req.inputs))
            again = self._stored(tx, req, digest)
            if again is not None:
                return again
            # the deadline again at booking time: a coin the bank later reports unspent after
            # the deadline can never be booked by this swap (§10.1, the wallet's release rule)
            self._check_deadline(req, self._clock())
            _check_not_spent(tx, req.inputs)
            _check_not_locked(tx, "", req.inputs, now)  # a merchant's reservation holds
            entries = [(c.keyset.ledger_account, -c.keyset.value) for c in checked]
            entries += [(k.ledger_account, k.value) for k in outputs]
            if fee:
                entries.append((FEE_ACCOUNT, fee))
            txn_id = post_transaction(
                tx,
                kind="swap",
                ref=req.request_id,
                entries=entries,
                currency=self._currency,
                now=now,
                gross=True,  # coins in and out of one keyset are both booked (supply counts)
            )
            _check_outstanding(tx, checked)  # no input keyset pays out more than it issued
            rows.insert_swap(
                tx,
                request_id=req.request_id,
                digest=digest,
                preq=req.preq,
                amount_in=amount_in,
                amount_out=amount_out,
                fee=fee,
                currency=self._currency,
                txn_id=txn_id,
                now=now,
            )
            for c in checked:
                sigma = c.spend.coin.sigma
                rows.insert_input(
                    tx,
                    sigma=sigma,
                    request_id=req.request_id,
                    keyset_id=c.keyset.keyset_id,
                    value=c.keyset.value,
                    body_json=transcripts[sigma],
                    now=now,
                )
            rows.insert_outputs(
                tx,
                req.request_id,
                [
                    (k.keyset_id, k.value, blinded, sig)
                    for k, (_, blinded), sig in zip(outputs, req.outputs, signatures, strict=True)
                ],
            )
            return req.request_id, signatures

        try:
            try:
                result: SwapResult = self._db.run_in_transaction(book, isolation="read_committed")
            except UniqueViolationError:  # a racing twin or a racing deposit (PostgreSQL): re-run
                result = self._db.run_in_transaction(book, isolation="read_committed")
        # §9.3: the refusal is reported as a deposit's (§9.1), after the rolled-back booking and
        # in the first spend's queue; the refused swap's transcript is the second one
        except DoubleSpendSeen as exc:  # deposited first
            self._reports.after_double_spend(exc, json.loads(transcripts[exc.sigma]), req.preq)
            raise
        except RedeemedSeen as exc:  # redeemed first (§9.4)
            self._redeem_reports.after_double_spend(
                exc, json.loads(transcripts[exc.sigma]), req.preq
            )
            raise
        except SwappedSeen as exc:  # swapped first by another request (same preq: a retry)
            self._swap_reports.after_double_spend(exc, json.loads(transcripts[exc.sigma]), req.preq)
            raise
        return result
