"""Deposit, reservation (lock period T), coin status and double-spend reporting (DESIGN §5).

Verification happens before any transaction and in this order, cheapest first:

1. the envelope: merchant not blacklisted, certificate from the central bank for this merchant
   id and the registered key, merchant signature on the deposit/reserve body — failures here are
   *not* counted (a stranger could forge them to blacklist someone else);
2. the payment request: signed by the same merchant key (else ``bank.wrong_key``, counted), for
   this merchant and bank and currency, not past its deadline when the bank first saw it (the
   merchant's reservation time if it reserved these coins for this request, else now);
3. the coins: keyset known (else ``wrong_key``), same currency, valid for deposit now, values
   sum to the request amount; then per coin the RSA signature on ``msg_prefix || m``, the
   designated credential check with the issuer secret of the coin's epoch, and the spend
   proof over ``preq`` with the opener's ``Hop``. Each cryptographic failure is recorded for the
   blacklist rule before the error is returned.

Then one transaction: serials not spent (409 ``bank.double_spend`` naming the earlier
transcript) and not held by another merchant (409 ``bank.coin_locked`` + Retry-After), the ledger
credit, one transcript and one spent row per coin, the bank-signed receipt. Identical retries of
a deposit_id return the stored receipt.

A double spend is *reported* (outside the money transaction, at most once per serial and
request) only when the second attempt carries a valid spend proof over a *different* payment
request: then the customer's TPM answered two challenges with one coin, and opening both
transcripts names the member. The same request deposited twice is a merchant's duplicate, not
evidence against the customer.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
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
    CoinLockedError,
    DepositConflictError,
    DoubleSpendError,
    MerchantBlacklistedError,
    MerchantSignatureError,
    WrongKeyError,
)
from ecash_tpm.bank.keysets import KeysetStore
from ecash_tpm.bank.ledger import merchant_account, post_transaction
from ecash_tpm.bank.protocols import DoubleSpendReporter, IssuerSecrets
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    SIGMA_LEN,
    CredentialError,
    IssuerSecret,
    SpendProofError,
    verify_credential,
)
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object, verify_object
from ecash_tpm.errors import ConfigError, EcashError, InputError, NotFoundError, SignatureError
from ecash_tpm.protocol.coins import (
    DEPOSIT_KIND,
    PAYMENT_REQUEST_KIND,
    RECEIPT_KIND,
    RESERVE_KIND,
    TRANSCRIPT_KIND,
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
from ecash_tpm.protocol.spend import verify_spend
from ecash_tpm.service.logs import json_default
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["Deposits"]

logger = logging.getLogger("ecash_tpm.bank")

_DEPOSIT_FIELDS = frozenset({"deposit_id", "merchant_id", "request", "spends"})
_RESERVE_FIELDS = frozenset({"merchant_id", "request", "spends"})


class _DoubleSpend(DoubleSpendError):
    """DoubleSpendError that also carries what the reporter needs (never sent on the wire)."""

    def __init__(self, sigma: bytes, transcript_id: int, first_preq: bytes) -> None:
        super().__init__(
            "coin already spent",
            detail={"serial": b64u_encode(sigma), "transcript_id": transcript_id},
        )
        self.sigma = sigma
        self.transcript_id = transcript_id
        self.first_preq = first_preq


@dataclass(frozen=True, slots=True)
class _Checked:
    """A spend that passed every check, with its keyset."""

    spend: Spend
    keyset: Keyset


class Deposits:
    """Verifies and books merchants' deposits and reservations."""

    def __init__(
        self,
        db: Database,
        *,
        keysets: KeysetStore,
        accounts: Accounts,
        blacklist: Blacklist,
        issuer_secrets: IssuerSecrets,
        reporter: DoubleSpendReporter,
        bank_key: PartyKey,
        bank_signer: str,
        bank_name: str,
        currency: str,
        opener_public: Point | None,
        lock_period_s: int,
        max_spends: int,
        clock: Callable[[], int],
    ) -> None:
        self._db = db
        self._keysets = keysets
        self._accounts = accounts
        self._blacklist = blacklist
        self._issuer_secrets = issuer_secrets
        self._reporter = reporter
        self._bank_key = bank_key
        self._bank_signer = bank_signer
        self._bank_name = bank_name
        self._currency = currency
        self._hop = None if opener_public is None else opener_public.require_finite("Hop")
        self._lock_period_s = lock_period_s
        self._max_spends = max_spends
        self._clock = clock

    # --- envelope, request and coin checks ----------------------------------------------------

    def _authenticate(
        self, signed: Any, cert_pem: str | bytes, kind: str, fields: frozenset[str]
    ) -> tuple[str, dict[str, Any], ec.EllipticCurvePublicKey]:
        if not isinstance(signed, Mapping) or not isinstance(signed.get("body"), Mapping):
            raise InputError(f"expected a signed {kind} object")
        merchant_id = check_identifier(signed["body"].get("merchant_id"), "merchant_id")
        self._blacklist.check(merchant_subject(merchant_id), MerchantBlacklistedError)
        key = self._accounts.merchant_key(merchant_id, cert_pem)
        try:
            body = verify_object(signed, key, kind)
        except SignatureError as exc:
            raise MerchantSignatureError(
                f"the merchant's signature on the {kind} does not verify",
                detail={"merchant_id": merchant_id},
            ) from exc
        if set(body) != fields:
            raise InputError(f"{kind} body must have exactly " + ", ".join(sorted(fields)))
        return merchant_id, body, key

    @contextmanager
    def _watch(self, merchant_id: str) -> Iterator[None]:
        """Record counted verification failures of this merchant, then re-raise them."""
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

    def _verify_request(
        self, doc: Any, merchant_id: str, key: ec.EllipticCurvePublicKey
    ) -> PaymentRequest:
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

    @staticmethod
    def _check_deadline(req: PaymentRequest, first_seen: int) -> None:
        if first_seen > req.deadline:
            raise RequestExpiredError(
                "payment request was past its deadline when the bank first saw it",
                code=REQUEST_EXPIRED,
                detail={"deadline": req.deadline, "seen_at": first_seen},
            )

    def _issuer_secret(self, epoch: int, index: int) -> IssuerSecret:
        try:
            return self._issuer_secrets.secret_for_epoch(epoch)
        except NotFoundError as exc:
            raise BadCredentialError(
                "no issuer key for the coin's epoch", detail={"index": index, "epoch": epoch}
            ) from exc

    def _check_credential(self, coin: Coin, index: int, where: Mapping[str, Any]) -> None:
        """Step 4 of the spend check: the designated-verifier credential check (issuer secret)."""
        secret = self._issuer_secret(coin.epoch, index)
        try:
            verify_credential(secret, *coin.credential)
        except CredentialError as exc:
            raise BadCredentialError(
                "coin credential is not valid for its epoch",
                detail={**where, "check": exc.detail.get("check")},
            ) from exc

    def _verify_spends(self, req: PaymentRequest, spends_data: Any, now: int) -> list[_Checked]:
        if self._hop is None:
            raise ConfigError(
                "opener_public (Hop) is not configured: the bank cannot check spend proofs",
                detail={"setting": "opener_public"},
            )
        hop = self._hop
        spends = parse_spends(spends_data, max_spends=self._max_spends)
        checked = []
        for index, spend in enumerate(spends):
            keyset = self._keysets.get(spend.coin.keyset_id)
            if keyset.currency != req.currency:
                raise RequestMismatchError(
                    "coin currency differs from the request", detail={"index": index}
                )
            try:
                keyset.require_deposit(now)
            except KeysetExpiredError as exc:
                raise exc.recode(KEYSET_EXPIRED, index=index) from exc
            checked.append(_Checked(spend, keyset))
        total = sum(c.keyset.value for c in checked)
        if total != req.amount:
            raise RequestMismatchError(
                "coin values do not add up to the requested amount",
                detail={"coins": total, "amount": req.amount},
            )
        for index, item in enumerate(checked):
            where = {"index": index, "serial": b64u_encode(item.spend.coin.sigma)}
            # docs/protocol.md "Deposit": the one spend check, plus the bank's credential check
            try:
                verify_spend(
                    item.spend,
                    item.keyset,
                    hop=hop,
                    preq=req.preq,
                    currency=req.currency,
                    now=now,
                    credential_check=lambda coin, i=index, w=where: self._check_credential(
                        coin, i, w
                    ),
                )
            except CoinSignatureError as exc:
                raise exc.recode(BAD_COIN_SIGNATURE, **where) from exc
            except SpendProofError as exc:
                raise exc.recode(BAD_PROOF, **where) from exc
        return checked

    # --- transcripts --------------------------------------------------------------------------

    def _transcript_body(
        self,
        *,
        item: _Checked,
        merchant_id: str,
        deposit_id: str | None,
        req: PaymentRequest,
        request_doc: Mapping[str, Any],
        now: int,
    ) -> dict[str, Any]:
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

    def _sign_transcript(self, body: Mapping[str, Any], transcript_id: int | str) -> dict[str, Any]:
        return sign_object(
            self._bank_key,
            TRANSCRIPT_KIND,
            {**body, "transcript_id": transcript_id},
            signer=self._bank_signer,
        )

    def signed_transcript(self, transcript_id: int) -> dict[str, Any]:
        """The bank-signed transcript (kind ``spend-transcript``) of a recorded spend."""
        with self._db.read() as tx:
            row = tx.fetchone(
                "SELECT body FROM spend_transcript WHERE transcript_id = :t", {"t": transcript_id}
            )
        if row is None:
            raise NotFoundError("no such transcript", detail={"transcript_id": transcript_id})
        return self._sign_transcript(json.loads(row["body"]), transcript_id)

    # --- state checks inside the money transaction ---------------------------------------------

    @staticmethod
    def _check_not_spent(tx: Transaction, sigmas: Sequence[bytes]) -> None:
        for sigma in sigmas:
            row = tx.fetchone(
                "SELECT s.transcript_id, t.preq FROM spent_coin s"
                " JOIN spend_transcript t ON t.transcript_id = s.transcript_id"
                " WHERE s.sigma = :s",
                {"s": sigma},
            )
            if row is not None:
                raise _DoubleSpend(sigma, int(row["transcript_id"]), bytes(row["preq"]))

    @staticmethod
    def _check_not_locked(
        tx: Transaction, merchant_id: str, sigmas: Sequence[bytes], now: int
    ) -> dict[bytes, int]:
        """Refuse coins held by another merchant; return this merchant's own live locks."""
        own: dict[bytes, int] = {}
        for sigma in sigmas:
            row = tx.fetchone(
                "SELECT merchant_id, locked_until FROM coin_lock WHERE sigma = :s", {"s": sigma}
            )
            if row is None or int(row["locked_until"]) <= now:
                continue
            if row["merchant_id"] != merchant_id:
                until = int(row["locked_until"])
                raise CoinLockedError(
                    "coin is being checked by another merchant; retry after the lock period",
                    detail={
                        "serial": b64u_encode(sigma),
                        "locked_until": until,
                        "retry_after": until - now,
                    },
                )
            own[sigma] = int(row["locked_until"])
        return own

    # --- deposit --------------------------------------------------------------------------------

    def deposit(self, signed: Any, cert_pem: str | bytes) -> dict[str, Any]:
        """Verify and book a merchant-signed deposit; returns the bank-signed receipt."""
        merchant_id, body, key = self._authenticate(signed, cert_pem, DEPOSIT_KIND, _DEPOSIT_FIELDS)
        deposit_id = check_identifier(body["deposit_id"], "deposit_id")
        content = canonical_digest(body)
        with self._db.read() as tx:
            prior = self._prior_deposit(tx, deposit_id, merchant_id, content)
        if prior is not None:
            return prior
        now = self._clock()
        with self._watch(merchant_id):
            req = self._verify_request(body["request"], merchant_id, key)
            self._check_deadline(req, self._first_seen(merchant_id, req.preq, now))
            checked = self._verify_spends(req, body["spends"], now)
        bodies = {
            c.spend.coin.sigma: self._transcript_body(
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
            again = self._prior_deposit(tx, deposit_id, merchant_id, content)
            if again is not None:
                return again
            sigmas = [c.spend.coin.sigma for c in checked]
            self._check_not_spent(tx, sigmas)
            self._check_not_locked(tx, merchant_id, sigmas, now)
            entries = [(c.keyset.ledger_account, -c.keyset.value) for c in checked]
            entries.append((merchant_account(merchant_id), req.amount))
            txn_id = post_transaction(
                tx,
                kind="deposit",
                ref=deposit_id,
                entries=entries,
                currency=req.currency,
                now=now,
            )
            tx.execute(
                "INSERT INTO deposit (deposit_id, merchant_id, content_digest, preq, amount,"
                " currency, receipt, txn_id, created_at) VALUES (:d, :m, :digest, :preq,"
                " :amount, :currency, '', :txn, :now)",
                {
                    "d": deposit_id,
                    "m": merchant_id,
                    "digest": content,
                    "preq": req.preq,
                    "amount": req.amount,
                    "currency": req.currency,
                    "txn": txn_id,
                    "now": now,
                },
            )
            transcript_ids = []
            for c in checked:
                sigma = c.spend.coin.sigma
                tid = tx.insert_returning_id(
                    "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id,"
                    " preq, body, created_at) VALUES (:d, :s, :m, :k, :preq, :body, :now)",
                    {
                        "d": deposit_id,
                        "s": sigma,
                        "m": merchant_id,
                        "k": c.keyset.keyset_id,
                        "preq": req.preq,
                        "body": json.dumps(bodies[sigma], sort_keys=True),
                        "now": now,
                    },
                    id_column="transcript_id",
                )
                tx.execute(
                    "INSERT INTO spent_coin (sigma, keyset_id, transcript_id, deposit_id,"
                    " spent_at) VALUES (:s, :k, :t, :d, :now)",
                    {"s": sigma, "k": c.keyset.keyset_id, "t": tid, "d": deposit_id, "now": now},
                )
                tx.execute("DELETE FROM coin_lock WHERE sigma = :s", {"s": sigma})
                transcript_ids.append(tid)
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
            tx.execute(
                "UPDATE deposit SET receipt = :r WHERE deposit_id = :d",
                {"r": json.dumps(receipt, sort_keys=True), "d": deposit_id},
            )
            return receipt

        try:
            return self._run_money(book)
        except _DoubleSpend as exc:
            self._after_double_spend(exc, bodies[exc.sigma], req.preq)
            raise

    def _run_money(self, fn: Callable[[Transaction], Any]) -> Any:
        """Run a money transaction; a unique-key race (PostgreSQL) is re-run once, and the
        re-run then sees the winner's rows and answers accordingly."""
        try:
            return self._db.run_in_transaction(fn)
        except UniqueViolationError:
            return self._db.run_in_transaction(fn)

    @staticmethod
    def _prior_deposit(
        tx: Transaction, deposit_id: str, merchant_id: str, content: bytes
    ) -> dict[str, Any] | None:
        row = tx.fetchone(
            "SELECT merchant_id, content_digest, receipt FROM deposit WHERE deposit_id = :d",
            {"d": deposit_id},
        )
        if row is None:
            return None
        if row["merchant_id"] != merchant_id or bytes(row["content_digest"]) != content:
            raise DepositConflictError(
                "deposit_id already used for a different deposit",
                detail={"deposit_id": deposit_id},
            )
        receipt: dict[str, Any] = json.loads(row["receipt"])
        return receipt

    def _first_seen(self, merchant_id: str, preq: bytes, now: int) -> int:
        """When the bank first verified this request for this merchant (its live reservation).

        Only a reservation that still holds counts: once T has passed the wallet may treat the
        coins as unpaid after the request's deadline and spend them again, so a merchant that
        deposits late must not be let through on an expired lock (that would make an honest
        re-spend look like a double spend and get the customer opened and revoked).
        """
        with self._db.read() as tx:
            seen = tx.fetchval(
                "SELECT MIN(locked_at) AS t FROM coin_lock"
                " WHERE merchant_id = :m AND preq = :p AND locked_until > :now",
                {"m": merchant_id, "p": preq, "now": now},
            )
        return now if seen is None else min(int(seen), now)

    # --- reserve (lock period T) ---------------------------------------------------------------

    def reserve(self, signed: Any, cert_pem: str | bytes) -> dict[str, Any]:
        """Hold verified coins for this merchant until now + T (``{locked_until, serials}``)."""
        merchant_id, body, key = self._authenticate(signed, cert_pem, RESERVE_KIND, _RESERVE_FIELDS)
        now = self._clock()
        with self._watch(merchant_id):
            req = self._verify_request(body["request"], merchant_id, key)
            self._check_deadline(req, now)
            checked = self._verify_spends(req, body["spends"], now)
        sigmas = [c.spend.coin.sigma for c in checked]
        until = now + self._lock_period_s

        def book(tx: Transaction) -> int:
            self._check_not_spent(tx, sigmas)
            own = self._check_not_locked(tx, merchant_id, sigmas, now)
            for sigma in sigmas:
                if sigma in own:
                    continue  # no extension: a merchant cannot hold a coin forever
                tx.execute(
                    "INSERT INTO coin_lock (sigma, merchant_id, preq, locked_at, locked_until)"
                    " VALUES (:s, :m, :p, :now, :until) ON CONFLICT (sigma) DO UPDATE SET"
                    " merchant_id = excluded.merchant_id, preq = excluded.preq,"
                    " locked_at = excluded.locked_at, locked_until = excluded.locked_until",
                    {"s": sigma, "m": merchant_id, "p": req.preq, "now": now, "until": until},
                )
            return min([until, *own.values()])

        try:
            locked_until = self._run_money(book)
        except _DoubleSpend as exc:
            item = next(c for c in checked if c.spend.coin.sigma == exc.sigma)
            attempt = self._transcript_body(
                item=item,
                merchant_id=merchant_id,
                deposit_id=None,
                req=req,
                request_doc=body["request"],
                now=now,
            )
            self._after_double_spend(exc, attempt, req.preq)
            raise
        return {"locked_until": locked_until, "serials": [b64u_encode(s) for s in sigmas]}

    # --- coin status --------------------------------------------------------------------------

    def coin_status(self, sigma: bytes) -> dict[str, Any]:
        """``{sigma, state}`` with state unspent | locked | spent (wallet recovery)."""
        if not isinstance(sigma, bytes) or len(sigma) != SIGMA_LEN:
            raise InputError(f"sigma must be {SIGMA_LEN} bytes")
        now = self._clock()
        with self._db.read() as tx:
            if tx.fetchone("SELECT 1 AS x FROM spent_coin WHERE sigma = :s", {"s": sigma}):
                return {"sigma": sigma, "state": "spent"}
            lock = tx.fetchone("SELECT locked_until FROM coin_lock WHERE sigma = :s", {"s": sigma})
        if lock is not None and int(lock["locked_until"]) > now:
            return {"sigma": sigma, "state": "locked", "locked_until": int(lock["locked_until"])}
        return {"sigma": sigma, "state": "unspent"}

    # --- double-spend reports -----------------------------------------------------------------

    def _after_double_spend(
        self, exc: _DoubleSpend, attempt: Mapping[str, Any], preq: bytes
    ) -> None:
        if exc.first_preq == preq:
            return  # the same request again: a duplicate deposit, not a customer double spend
        now = self._clock()

        def record(tx: Transaction) -> int | None:
            inserted = tx.execute(
                "INSERT INTO double_spend_report (sigma, first_transcript_id, second_preq,"
                " second_transcript, created_at, status) VALUES (:s, :t, :p, :body, :now,"
                " 'pending') ON CONFLICT (sigma, second_preq) DO NOTHING",
                {
                    "s": exc.sigma,
                    "t": exc.transcript_id,
                    "p": preq,
                    "body": json.dumps(dict(attempt), sort_keys=True),
                    "now": now,
                },
            )
            if inserted != 1:
                return None
            value = tx.fetchval(
                "SELECT report_id FROM double_spend_report WHERE sigma = :s AND second_preq = :p",
                {"s": exc.sigma, "p": preq},
            )
            return None if value is None else int(value)

        report_id = self._db.run_in_transaction(record)
        if report_id is not None:
            self._send_report(report_id)

    def _send_report(self, report_id: int) -> bool:
        with self._db.read() as tx:
            row = tx.fetchone(
                "SELECT first_transcript_id, second_transcript FROM double_spend_report"
                " WHERE report_id = :r",
                {"r": report_id},
            )
        if row is None:
            raise NotFoundError("no such double-spend report", detail={"report_id": report_id})
        first = self.signed_transcript(int(row["first_transcript_id"]))
        # The refused attempt has no transcript row; it is named after its report.
        second = self._sign_transcript(json.loads(row["second_transcript"]), f"attempt-{report_id}")
        try:
            result = self._reporter.report(first, second)
        except Exception as exc:  # the reporter is another party: record any failure, retry later
            logger.warning("double-spend report %s failed: %s", report_id, exc)
            error = f"{type(exc).__name__}: {exc}"[:1000]
            self._db.run_in_transaction(
                lambda tx: tx.execute(
                    "UPDATE double_spend_report SET status = 'failed', attempts = attempts + 1,"
                    " error = :e WHERE report_id = :r",
                    {"e": error, "r": report_id},
                )
            )
            return False
        try:
            result_json = json.dumps(result, default=json_default, sort_keys=True)
        except (TypeError, ValueError):
            result_json = json.dumps(repr(result))
        self._db.run_in_transaction(
            lambda tx: tx.execute(
                "UPDATE double_spend_report SET status = 'sent', attempts = attempts + 1,"
                " result = :res, error = NULL WHERE report_id = :r",
                {"res": result_json[:100_000], "r": report_id},
            )
        )
        return True

    def retry_reports(self) -> dict[str, int]:
        """Send every pending or failed double-spend report again."""
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT report_id FROM double_spend_report WHERE status <> 'sent'"
                " ORDER BY report_id"
            )
        sent = sum(1 for r in rows if self._send_report(int(r["report_id"])))
        return {"sent": sent, "failed": len(rows) - sent}

    def reports(self) -> list[dict[str, Any]]:
        """All double-spend reports (for the audit and the CLI), with the supervision
        department's answer to each one sent (its case: member, evidence, revocation)."""
        with self._db.read() as tx:
            rows = tx.fetchall(
                "SELECT report_id, sigma, first_transcript_id, second_preq, created_at, status,"
                " attempts, error, result FROM double_spend_report ORDER BY report_id"
            )
        return [
            {
                "report_id": int(r["report_id"]),
                "sigma": b64u_encode(bytes(r["sigma"])),
                "first_transcript_id": int(r["first_transcript_id"]),
                "second_preq": b64u_encode(bytes(r["second_preq"])),
                "created_at": int(r["created_at"]),
                "status": r["status"],
                "attempts": int(r["attempts"]),
                "error": r["error"],
                "result": None if r["result"] is None else json.loads(r["result"]),
            }
            for r in rows
        ]


def decode_sigma(text: str) -> bytes:
    """Path parameter -> 32-byte serial (400 on anything else)."""
    try:
        sigma = b64u_decode(text)
    except EcashError as exc:
        raise InputError("sigma must be base64url") from exc
    if len(sigma) != SIGMA_LEN:
        raise InputError(f"sigma must be {SIGMA_LEN} bytes")
    return sigma
