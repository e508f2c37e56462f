"""Refund claims: the customer's wallet turns a merchant's refund permission into fresh coins
(issue 12, item 3; docs/protocol.md "Refunds").

The claim is anonymous (no account, no login). Checks, cheapest first, all before the money
transaction:

1. the permission: the merchant is registered, its certificate chains to the central-bank root
   (role ``merchant``, CN = merchant id, not on the CRL) and carries the registered key, and the
   permission is signed with it;
2. the coins: every serial was booked by the bank in that deposit of that merchant for that
   payment request;
3. the request (from the stored transcript) carries a ``refund_deadline`` not yet passed by the
   bank's clock, in the bank's currency;
4. the outputs: keysets open for withdrawal in the bank's currency, values adding up to the
   permission's amount less the refunded coins' refund fees (docs/protocol.md 4.2);
5. per refunded coin a TPM spend proof (section 7.1) over ``preq = refund_claim_digest(refund_id,
   claim_id, outputs)``: the claimer holds the DAA key the coin was bound to.

Then one transaction: a claim of this refund id seen before is answered with its stored blind
signatures when it is the same claim (same digest) and refused otherwise; the deposit's refunds
stay within its amount; the merchant's balance covers the amount; the ledger books
``merchant:<id> -amount``, ``coins-outstanding:<keyset> +value`` per fresh coin and the refund
fee to ``bank:fees`` (kind ``refund``); the refund, its proven serials and the blind signatures
are stored.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ecash_tpm.bank.accounts import Accounts
from ecash_tpm.bank.keysets import KeysetStore
from ecash_tpm.bank.ledger import balance, merchant_account, post_transaction
from ecash_tpm.bank.store import deposits as deposit_rows
from ecash_tpm.bank.store import refunds as rows
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import SpendProof, verify_spend_proof
from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import ConfigError, EcashError, InputError, SignatureError
from ecash_tpm.protocol.coins import Coin, PaymentRequest
from ecash_tpm.protocol.errors import KeysetExpiredError
from ecash_tpm.protocol.keysets import FEE_ACCOUNT, Keyset, refund_fee
from ecash_tpm.protocol.refunds import (
    MAX_REFUND_OUTPUTS,
    REFUND_PERMISSION_KIND,
    RefundAlreadyClaimedError,
    RefundAmountError,
    RefundDeadlinePassedError,
    RefundMerchantFundsError,
    RefundNotAllowedError,
    RefundPermission,
    RefundPermissionError,
    RefundProofError,
    RefundUnknownDepositError,
    check_claim_id,
    refund_claim_digest,
)
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["RefundResult", "Refunds"]

Output = tuple[bytes, bytes]  # (keyset_id, blinded_msg)


@dataclass(frozen=True, slots=True)
class RefundResult:
    """The blind signatures of a refund claim (the same ones again on an identical retry)."""

    refund_id: str
    claim_id: str
    blind_signatures: tuple[bytes, ...]
    amount: int

    def to_dict(self) -> dict[str, Any]:
        return {
            "refund_id": self.refund_id,
            "claim_id": self.claim_id,
            "blind_signatures": [b64u_encode(s) for s in self.blind_signatures],
            "amount": self.amount,
        }


@dataclass(frozen=True, slots=True)
class _Refunded:
    """A refunded coin as the bank booked it (step 2)."""

    coin: Coin
    request: PaymentRequest


class Refunds:
    """Checks and books refund claims (see the module docstring)."""

    def __init__(
        self,
        db: Database,
        *,
        accounts: Accounts,
        keysets: KeysetStore,
        opener_public: Point | None,
        currency: str,
        clock: Callable[[], int],
    ) -> None:
        db.migrate(rows.MIGRATIONS, component=rows.COMPONENT)
        self._db = db
        self._accounts = accounts
        self._keysets = keysets
        self._hop = opener_public
        self._currency = currency
        self._clock = clock

    def claim(
        self,
        *,
        claim_id: str,
        permission: Mapping[str, Any],
        merchant_cert: str,
        outputs: Sequence[Output],
        proofs: Sequence[Mapping[str, Any]],
    ) -> RefundResult:
        """Check and book one claim; see the module docstring for the steps."""
        check_claim_id(claim_id, "claim_id")
        if not outputs or len(outputs) > MAX_REFUND_OUTPUTS:
            raise InputError(f"a refund claim has 1..{MAX_REFUND_OUTPUTS} outputs")
        if self._hop is None:
            raise ConfigError("opener_public is not configured: refunds are unavailable")
        outputs = [(bytes(k), bytes(m)) for k, m in outputs]
        perm = self._permission(permission, merchant_cert)  # (1)
        digest = refund_claim_digest(perm.refund_id, claim_id, outputs)
        with self._db.read() as tx:
            stored = _stored(tx, perm.refund_id, claim_id, digest)
        if stored is not None:
            return stored
        now = self._clock()
        refunded = self._coins(perm)  # (2)
        req = refunded[0].request
        if req.refund_deadline is None:  # (3)
            raise RefundNotAllowedError(
                "the payment request carries no refund deadline: it cannot be refunded",
                detail={"preq": b64u_encode(perm.preq)},
            )
        if now > req.refund_deadline:
            raise RefundDeadlinePassedError(
                "the payment request's refund deadline has passed",
                detail={"refund_deadline": req.refund_deadline, "bank_time": now},
            )
        if perm.currency != req.currency or perm.currency != self._currency:
            raise RefundAmountError("the refund is not in the payment's currency")
        if perm.amount > req.amount:
            raise RefundAmountError(
                "the refund exceeds the payment", detail={"amount": perm.amount, "paid": req.amount}
            )
        refunded_keysets = [self._keysets.get(item.coin.keyset_id) for item in refunded]
        listed = sum(k.value for k in refunded_keysets)
        if perm.amount > listed:  # §4.2, §9.2 (3): fees are per named coin, which must carry it
            raise RefundAmountError(
                "the refund exceeds the value of the coins it names",
                detail={"amount": perm.amount, "coins_value": listed},
            )
        fee = refund_fee(refunded_keysets)
        keysets = self._outputs(outputs, perm, now, fee)  # (4)
        for item, raw in zip(refunded, _proofs(proofs, perm), strict=True):  # (5)
            coin = item.coin
            try:
                verify_spend_proof(
                    raw,
                    hop=self._hop,
                    preq=digest,
                    keyset_id=coin.keyset_id,
                    epoch=coin.epoch,
                    sigma=coin.sigma,
                    coin=coin.credential,
                )
            except EcashError as exc:
                raise RefundProofError(
                    "the ownership proof of a refunded coin does not verify",
                    detail={"serial": b64u_encode(coin.sigma), "cause": exc.code},
                ) from exc
        signatures = [
            blindrsa.blind_sign(self._keysets.private_key(k.keyset_id), blinded)
            for k, (_, blinded) in zip(keysets, outputs, strict=True)
        ]
        perm_json = json.dumps(dict(permission), sort_keys=True)
        proofs_json = json.dumps([dict(p) for p in proofs], sort_keys=True)

        def book(tx: Transaction) -> RefundResult:
            again = _stored(tx, perm.refund_id, claim_id, digest)
            if again is not None:
                return again
            already = rows.refunded_for_deposit(tx, perm.deposit_id)
            if already + perm.amount > req.amount:
                raise RefundAmountError(
                    "the deposit's refunds would exceed the payment",
                    detail={"refunded": already, "amount": perm.amount, "paid": req.amount},
                )
            account = merchant_account(perm.merchant_id)
            available = balance(tx, account)
            if available < perm.amount:
                raise RefundMerchantFundsError(
                    "the merchant's account does not cover the refund",
                    detail={"merchant_id": perm.merchant_id, "amount": perm.amount},
                )
            entries: list[tuple[str, int]] = [(account, -perm.amount), (FEE_ACCOUNT, fee)]
            entries += [(k.ledger_account, k.value) for k in keysets]
            txn_id = post_transaction(
                tx,
                kind="refund",
                ref=perm.refund_id,
                entries=entries,
                currency=req.currency,
                now=now,
            )
            rows.insert_refund(
                tx,
                refund_id=perm.refund_id,
                claim_id=claim_id,
                merchant_id=perm.merchant_id,
                deposit_id=perm.deposit_id,
                preq=perm.preq,
                amount=perm.amount,
                currency=perm.currency,
                permission=perm_json,
                merchant_cert=merchant_cert,
                claim_digest=digest,
                proofs=proofs_json,
                txn_id=txn_id,
                serials=perm.serials,
                items=outputs,
                signatures=signatures,
                now=now,
            )
            return RefundResult(perm.refund_id, claim_id, tuple(signatures), perm.amount)

        try:
            result: RefundResult = self._db.run_in_transaction(book)
        except UniqueViolationError:  # a concurrent twin committed first (PostgreSQL)
            result = self._db.run_in_transaction(book)
        return result

    # --- the steps ------------------------------------------------------------------------------

    def _permission(self, doc: Mapping[str, Any], cert: str) -> RefundPermission:
        """(1) registered merchant, certificate from the root (CRL), signature, body."""
        if not isinstance(doc, Mapping) or not isinstance(doc.get("body"), Mapping):
            raise RefundPermissionError("refund permission must be a signed object")
        merchant_id = doc["body"].get("merchant_id")
        if not isinstance(merchant_id, str):
            raise RefundPermissionError("refund permission has no merchant_id")
        key = self._accounts.merchant_key(merchant_id, cert)
        try:
            body = verify_object(doc, key, REFUND_PERMISSION_KIND)
        except SignatureError as exc:
            raise RefundPermissionError(
                "the merchant's signature on the refund permission does not verify",
                detail={"merchant_id": merchant_id, "cause": exc.code},
            ) from exc
        return RefundPermission.from_body(body)

    def _coins(self, perm: RefundPermission) -> list[_Refunded]:
        """(2) every serial booked in the permission's deposit, merchant and request."""
        out = []
        with self._db.read() as tx:
            for sigma in perm.serials:
                row = deposit_rows.deposited_coin(tx, sigma)
                if (
                    row is None
                    or row.deposit_id != perm.deposit_id
                    or row.merchant_id != perm.merchant_id
                    or row.preq != perm.preq
                ):
                    raise RefundUnknownDepositError(
                        "the refunded coin was not booked in this deposit of this merchant",
                        detail={"serial": b64u_encode(sigma), "deposit_id": perm.deposit_id},
                    )
                body = json.loads(row.body)
                coin = Coin.from_dict(body["spend"]["coin"])
                request = PaymentRequest.from_body(body["request"]["body"])
                out.append(_Refunded(coin, request))
        return out

    def _outputs(
        self, outputs: Sequence[Output], perm: RefundPermission, now: int, fee: int
    ) -> list[Keyset]:
        """(4) keysets open for withdrawal in the bank's currency adding up to the amount less
        the refunded coins' refund fees (docs/protocol.md 4.2, 9.2)."""
        keysets = []
        for index, (keyset_id, blinded) in enumerate(outputs):
            keyset = self._keysets.get(keyset_id)
            try:
                keyset.require_withdraw(now)
            except KeysetExpiredError as exc:
                raise exc.recode("bank.keyset_expired", detail={"index": index}) from exc
            if keyset.currency != self._currency:
                raise RefundAmountError("an output keyset is in another currency")
            if len(blinded) != blindrsa.modulus_len(keyset.public_key):
                raise InputError("blinded message length does not match the keyset key")
            keysets.append(keyset)
        total = sum(k.value for k in keysets)
        if total != perm.amount - fee:
            raise RefundAmountError(
                "the outputs do not add up to the refund amount less the refund fee",
                detail={"outputs": total, "amount": perm.amount, "fee": fee},
            )
        return keysets


def _proofs(proofs: Sequence[Mapping[str, Any]], perm: RefundPermission) -> list[SpendProof]:
    """One proof per refunded serial, in the permission's order: ``[{sigma, proof}]``."""
    if len(proofs) != len(perm.serials):
        raise RefundProofError("one ownership proof per refunded coin is needed")
    out = []
    for sigma, item in zip(perm.serials, proofs, strict=True):
        try:
            if b64u_decode(str(item.get("sigma"))) != sigma:
                raise RefundProofError("proofs must follow the permission's serials")
            out.append(SpendProof.from_dict(item.get("proof")))
        except RefundProofError:
            raise
        except EcashError as exc:
            raise RefundProofError(
                f"ownership proof malformed: {exc.message}", detail={"cause": exc.code}
            ) from exc
    return out


def _stored(tx: Transaction, refund_id: str, claim_id: str, digest: bytes) -> RefundResult | None:
    """An identical earlier claim's answer; 409 when the refund was claimed otherwise."""
    row = rows.refund(tx, refund_id)
    if row is None:
        return None
    if row.claim_digest != digest:
        raise RefundAlreadyClaimedError(
            "this refund was already claimed", detail={"refund_id": refund_id}
        )
    return RefundResult(
        refund_id, claim_id, tuple(rows.blind_signatures(tx, refund_id)), row.amount
    )
