"""Withdrawal, device side: log in, build blinded coins, persist, send, finalize, store.

Per coin (DESIGN §5): serial sigma (32 random bytes), a fresh randomization (R, S, T, W) of
the member credential, ``m = coin_message(keyset_id, epoch, sigma, R, S, T, W)``, RFC 9474
``prepare`` (random 32-byte prefix) and ``blind``. The whole withdrawal (request_id, blinded
messages, blinding inverses, coin secrets) is written to the wallet database *before* the
request leaves, so an answer lost to a crash or a dropped connection is recovered by sending
the same request again (:func:`resume_withdrawals`): the bank answers a repeated request_id
with the stored signatures and debits once. Every signature is unblinded and verified under
the keyset's public key before the coin is stored.

The bank is reached through :class:`WalletBank` (the logged-in
:class:`~ecash_tpm.clients.bank.BankClient` over HTTP; one login per session, since a TOTP code
is accepted once); keysets are accepted only with a valid bank signature and a bank
certificate from the central bank.
"""

from __future__ import annotations

import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import Credential, RandomizedCredential, coin_message
from ecash_tpm.errors import EcashError, ProtocolError, RemoteError
from ecash_tpm.progress import ProgressCallback, silent
from ecash_tpm.protocol.certified import CertifiedKeysetList
from ecash_tpm.protocol.coins import Coin
from ecash_tpm.protocol.errors import KeysetListError, KeysetNotCertifiedError
from ecash_tpm.protocol.keysets import BankKeysets, Keyset, withdraw_fee
from ecash_tpm.protocol.payments import KeysetBook, book_from_bank_keysets
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import HeldCoin, SplitStrategy, split_amount
from ecash_tpm.wallet.context import WalletContext
from ecash_tpm.wallet.records import PendingCoin, PendingWithdrawal
from ecash_tpm.wallet.store import WalletStore

__all__ = [
    "WalletBank",
    "WithdrawalPendingError",
    "WithdrawResult",
    "blind_coins",
    "check_certified_keysets",
    "fetch_keysets",
    "finalize_coins",
    "new_request_id",
    "plan_withdrawal",
    "resume_withdrawals",
    "send_withdrawal",
    "withdraw",
]

#: Transport or server failures after which the bank may have processed the request.
_RETRYABLE_STATUS = frozenset({401, 408, 429})


class WithdrawalPendingError(RemoteError):
    """The bank's answer was lost; the withdrawal is saved and will be completed by a retry."""

    code = "wallet.withdrawal_pending"


class WithdrawalAnswerError(ProtocolError):
    """The bank answered a withdrawal with the wrong number of signatures."""

    code = "wallet.bad_withdraw_answer"


class WalletBank(Protocol):
    """What the wallet needs from its bank; :class:`~ecash_tpm.clients.bank.BankClient`
    (logged in) is the HTTP implementation. Errors are RemoteCallError with the bank's code."""

    def keysets(
        self, *, central_bank_root: x509.Certificate | str | bytes | None = None
    ) -> BankKeysets: ...

    def withdraw(self, request_id: str, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]: ...

    def coin_status(self, sigma: bytes) -> dict[str, Any]: ...


@dataclass(frozen=True)
class WithdrawResult:
    """A finished withdrawal: the coins now in the wallet."""

    request_id: str
    amount: int
    currency: str
    coins: list[HeldCoin]
    #: the withdraw fee the bank charged on top of ``amount`` (docs/protocol.md 4.2)
    fee: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "request_id": self.request_id,
            "amount": self.amount,
            "fee": self.fee,
            "debited": self.amount + self.fee,
            "currency": self.currency,
            "coins": sorted((c.value for c in self.coins), reverse=True),
        }


def new_request_id() -> str:
    """A withdrawal idempotency key: 32 characters of base64url."""
    return secrets.token_urlsafe(24)


def fetch_keysets(
    bank: WalletBank,
    root: x509.Certificate | bytes | str,
    *,
    now: int,
    bank_name: str | None = None,
    store: WalletStore | None = None,
) -> KeysetBook:
    """The bank's keysets, verified against the central-bank root (and remembered)."""
    raw = bank.keysets(central_bank_root=root)
    book = book_from_bank_keysets(raw, root, bank_name=bank_name, now=now)
    listed = check_certified_keysets(raw, book, root, now=now)
    if store is not None:
        if raw.keyset_list is not None:
            store.save_keyset_list(listed, raw.keyset_list)
        store.save_keysets(book)
    return book


def check_certified_keysets(
    raw: BankKeysets,
    book: KeysetBook,
    root: x509.Certificate | bytes | str,
    *,
    now: int,
) -> CertifiedKeysetList:
    """docs/protocol.md 4.1: the bank must offer exactly the keysets on the central bank's list
    of its keysets (one list for everyone): none added, so a bank cannot tag a customer with a
    keyset of its own, and none withheld, so it cannot steer a customer's choice of keyset.
    Codes: ``keyset_list.missing``, ``keyset_list.invalid``,
    ``keyset_list.keyset_not_certified``, ``keyset_list.keyset_withheld``."""
    listed = CertifiedKeysetList.from_signed(raw.keyset_list, root, bank_name=book.bank_name)
    for keyset_id in book.keysets:
        if keyset_id not in listed:
            raise KeysetNotCertifiedError(
                "the bank offers a keyset that is not on its central-bank-certified list",
                detail={"keyset_id": b64u_encode(keyset_id), "list_id": listed.list_id},
            )
    withheld = sorted(listed.expected(now) - book.keysets.keys())
    if withheld:
        raise KeysetListError(
            "the bank withholds keysets of its central-bank-certified list",
            code="keyset_list.keyset_withheld",
            detail={"keyset_ids": [b64u_encode(k) for k in withheld], "list_id": listed.list_id},
        )
    return listed


def plan_withdrawal(
    book: KeysetBook,
    credential: Credential,
    epoch: int,
    amount: int,
    currency: str,
    *,
    now: int,
    strategy: SplitStrategy = "payable",
    progress: ProgressCallback | None = None,
) -> list[PendingCoin]:
    """Blinded coins for ``amount``: split into denominations, one fresh serial and
    credential randomization per coin (nothing is sent or stored here)."""
    say = progress or silent
    keysets = book.withdrawable(currency, now)
    by_value: dict[int, Keyset] = {}
    for ks in keysets:  # largest value first, then the longest-lived keyset of that value
        by_value.setdefault(ks.value, ks)
    values = split_amount(amount, by_value.keys(), strategy)
    return blind_coins(by_value, credential, epoch, values, progress=say)


def blind_coins(
    by_value: dict[int, Keyset],
    credential: Credential,
    epoch: int,
    values: Sequence[int],
    *,
    progress: ProgressCallback | None = None,
) -> list[PendingCoin]:
    """One blinded coin per value under ``by_value[value]``: a fresh serial and credential
    randomization each (withdrawals and swap outputs, docs/protocol.md 5.1 and 9.3)."""
    say = progress or silent
    out: list[PendingCoin] = []
    say("blinding coins", 0, len(values))
    for value in values:
        ks = by_value[value]
        sigma = secrets.token_bytes(32)
        rc = credential.randomize()
        prepared = blindrsa.prepare(coin_message(ks.keyset_id, epoch, sigma, rc))
        blinded, inv = blindrsa.blind(ks.public_key, prepared, salt_length=ks.variant.salt_length)
        out.append(
            PendingCoin(
                keyset_id=ks.keyset_id,
                value=ks.value,
                currency=ks.currency,
                deposit_until=ks.deposit_until,
                epoch=epoch,
                sigma=sigma,
                credential=rc.to_dict(),
                msg_prefix=prepared[: blindrsa.PREFIX_LEN],
                blinded_msg=blinded,
                inv=inv,
            )
        )
        say("blinding coins", len(out), len(values))
    return out


def finalize_coins(
    pending: PendingWithdrawal,
    sigs: Sequence[bytes],
    book: KeysetBook,
    say: ProgressCallback = silent,
) -> list[HeldCoin]:
    if len(sigs) != len(pending.items):
        raise WithdrawalAnswerError(
            "the bank returned a different number of signatures",
            detail={"expected": len(pending.items), "got": len(sigs)},
        )
    coins: list[HeldCoin] = []
    say("unblinding and verifying signatures", 0, len(sigs))
    for item, blind_sig in zip(pending.items, sigs, strict=True):
        ks = book.get(item.keyset_id)
        rc = RandomizedCredential.from_dict(item.credential)
        prepared = item.msg_prefix + coin_message(item.keyset_id, item.epoch, item.sigma, rc)
        sig = blindrsa.finalize(
            ks.public_key, prepared, blind_sig, item.inv, salt_length=ks.variant.salt_length
        )
        coin = Coin(item.keyset_id, item.epoch, item.sigma, rc, item.msg_prefix, sig)
        coins.append(HeldCoin(coin, item.value, item.currency, item.deposit_until))
        say("unblinding and verifying signatures", len(coins), len(sigs))
    return coins


def send_withdrawal(
    store: WalletStore,
    bank: WalletBank,
    pending: PendingWithdrawal,
    book: KeysetBook,
    *,
    progress: ProgressCallback | None = None,
) -> WithdrawResult:
    """Send (or re-send) a saved withdrawal, finalize and verify, store the coins."""
    say = progress or silent
    items = [(i.keyset_id, i.blinded_msg) for i in pending.items]
    say("the bank signs blindly", 0, len(items))
    try:
        sigs = bank.withdraw(pending.request_id, items)
    except RemoteCallError as exc:
        definite = exc.status is not None and 400 <= exc.status < 500
        if definite and exc.status not in _RETRYABLE_STATUS and exc.code != "auth.blacklisted":
            store.fail_withdrawal(pending.request_id, exc.code)
            raise
        raise WithdrawalPendingError(
            "no answer from the bank; the withdrawal is saved, retry with `wallet withdraw "
            "--resume` (it will not be debited twice)",
            detail={"request_id": pending.request_id, "cause": exc.code},
        ) from exc
    say("the bank signs blindly", len(items), len(items))
    coins = finalize_coins(pending, sigs, book, say)
    store.complete_withdrawal(pending.request_id, coins)
    fee = withdraw_fee([book.get(i.keyset_id) for i in pending.items])  # 4.2, as the bank books
    return WithdrawResult(pending.request_id, pending.amount, pending.currency, coins, fee)


def withdraw(
    ctx: WalletContext,
    bank: WalletBank,
    *,
    credential: Credential,
    epoch: int,
    amount: int,
    currency: str,
    strategy: SplitStrategy = "payable",
    request_id: str | None = None,
    progress: ProgressCallback | None = None,
) -> WithdrawResult:
    """Withdraw ``amount`` as coins of the member's ``credential`` (see the module docstring);
    ``progress`` hears of every coin blinded, the bank's signing and every signature unblinded."""
    now = ctx.clock()
    # docs/protocol.md 4: keysets only with the bank's signature and a certificate from the root
    book = fetch_keysets(bank, ctx.root, now=now, bank_name=ctx.bank_name, store=ctx.store)
    items = plan_withdrawal(
        book, credential, epoch, amount, currency, now=now, strategy=strategy, progress=progress
    )
    # 5.2: saved before it is sent, so a lost answer is retried with the same request_id
    rid = request_id or new_request_id()
    ctx.store.add_pending_withdrawal(rid, currency, items)
    return send_withdrawal(ctx.store, bank, ctx.store.withdrawal(rid), book, progress=progress)


def resume_withdrawals(
    ctx: WalletContext,
    bank: WalletBank,
    *,
    progress: ProgressCallback | None = None,
) -> list[WithdrawResult]:
    """Complete every saved withdrawal whose answer was lost (same request_id, same items)."""
    store = ctx.store
    pending = store.pending_withdrawals()
    if not pending:
        return []
    book = fetch_keysets(bank, ctx.root, now=ctx.clock(), bank_name=ctx.bank_name, store=store)
    results = []
    for pw in pending:
        try:
            results.append(send_withdrawal(store, bank, pw, book, progress=progress))
        except EcashError:
            if len(pending) == 1:
                raise
    return results
