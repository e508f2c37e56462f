"""wallet.receipt_fetch: a payment sent without an answer is settled only by a receipt that
verifies (bank certificate under the root, this request, these serials, the amount); anything
else leaves it open for recovery (issue 10, attack 8; docs/protocol.md §8.1)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import IssuerSecret, issue_credential
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import cert_pem
from ecash_tpm.protocol.coins import RECEIPT_KIND, Coin
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.coins import HeldCoin, select_coins
from ecash_tpm.wallet.receipt_fetch import fetch_receipt, fetch_receipts
from ecash_tpm.wallet.records import PaymentRecord
from ecash_tpm.wallet.store import WalletStore

_RC = issue_credential(IssuerSecret.generate(), SoftwareDaaSigner().public_point)[0].randomize()
PREQ = b"P" * 32


@dataclass
class Bank:
    root: str
    key: PartyKey
    cert: str

    def receipt(self, preq: bytes, serials: list[bytes], amount: int) -> dict[str, Any]:
        return sign_object(
            self.key,
            RECEIPT_KIND,
            {
                "deposit_id": "dep-" + secrets.token_hex(16),
                "merchant_id": "shop-1",
                "preq": b64u_encode(preq),
                "amount": amount,
                "currency": "EUR",
                "serials": [b64u_encode(s) for s in serials],
                "transcript_ids": list(range(1, len(serials) + 1)),
                "deposited_at": int(time.time()),
            },
        )


class Shop:
    """A merchant's ``GET /v1/payments/{preq}``: a scripted answer or refusal."""

    def __init__(self, answer: Mapping[str, Any] | Exception) -> None:
        self.answer = answer
        self.asked: list[bytes] = []

    def paid_answer(self, preq: bytes) -> Mapping[str, Any]:
        self.asked.append(preq)
        if isinstance(self.answer, Exception):
            raise self.answer
        return self.answer


@pytest.fixture(scope="module")
def bank(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Bank]:
    ca = CentralBankCA.create(tmp_path_factory.mktemp("ca"))
    key = PartyKey.generate()
    yield Bank(
        ca.root_pem().decode("ascii"), key, cert_pem(ca.certify("bank", "bank", key.public_key))
    )
    ca.close()


@pytest.fixture
def store(tmp_path: Path) -> Iterator[WalletStore]:
    with WalletStore.open(tmp_path / "w", lambda: int(time.time())) as s:
        yield s


def _sent(store: WalletStore, amount: int = 5, preq: bytes = PREQ) -> PaymentRecord:
    """A payment of ``amount`` sent to shop-1 whose answer never came."""
    coins = [
        HeldCoin(
            Coin(secrets.token_bytes(16), 1, secrets.token_bytes(32), _RC, bytes(32), b"s" * 256),
            v,
            "EUR",
            int(time.time()) + 10**6,
        )
        for v in (4, 1)
    ]
    _add(store, coins)
    pid = "pay-" + secrets.token_hex(6)
    chosen = store.start_payment(
        payment_id=pid,
        merchant_id="shop-1",
        merchant_url="https://shop-1.example",
        preq=preq,
        amount=amount,
        currency="EUR",
        deadline=int(time.time()) + 300,
        request={"body": {}},
        spendable_after=int(time.time()),
        choose=lambda cs: select_coins(cs, amount),
    )
    store.mark_sent(pid, [{"coin": {"sigma": b64u_encode(c.sigma)}} for c in chosen])
    return store.payment(pid)


def _add(store: WalletStore, coins: list[HeldCoin]) -> None:
    from ecash_tpm.wallet.records import PendingCoin

    rid = "req-" + secrets.token_hex(6)
    items = [
        PendingCoin(
            keyset_id=c.coin.keyset_id,
            value=c.value,
            currency="EUR",
            deposit_until=c.deposit_until,
            epoch=1,
            sigma=c.coin.sigma,
            credential=_RC.to_dict(),
            msg_prefix=bytes(32),
            blinded_msg=bytes(256),
            inv=bytes(256),
        )
        for c in coins
    ]
    store.add_pending_withdrawal(rid, "EUR", items)
    store.complete_withdrawal(rid, coins)


def test_a_verified_receipt_settles_the_payment(store: WalletStore, bank: Bank) -> None:
    rec = _sent(store)
    shop = Shop({"receipt": bank.receipt(PREQ, list(rec.serials), 5), "cert": bank.cert})
    got = fetch_receipt(store, rec, shop, root=bank.root, clock=lambda: int(time.time()))
    assert got.paid and shop.asked == [PREQ]
    done = store.payment(rec.payment_id)
    assert done.state == "paid" and done.receipt == got.receipt
    assert store.balance().get("EUR", {}).get("pending", 0) == 0
    assert sorted(c.sigma for c in store.coins("spent")) == sorted(rec.serials)
    with pytest.raises(EcashError) as exc:  # nothing left to fetch
        fetch_receipt(store, done, shop, root=bank.root, clock=lambda: int(time.time()))
    assert exc.value.code == "wallet.payment_not_open"


@pytest.mark.parametrize("wrong", ["serials", "amount", "preq", "signer"])
def test_a_receipt_for_something_else_is_refused(
    store: WalletStore, bank: Bank, wrong: str
) -> None:
    rec = _sent(store)
    serials, amount, preq, key = list(rec.serials), 5, PREQ, bank.key
    if wrong == "serials":
        serials = [secrets.token_bytes(32), serials[1]]
    elif wrong == "amount":
        amount = 6
    elif wrong == "preq":
        preq = b"Q" * 32
    receipt = Bank(bank.root, key, bank.cert).receipt(preq, serials, amount)
    if wrong == "signer":
        receipt = sign_object(PartyKey.generate(), RECEIPT_KIND, receipt["body"])
    shop = Shop({"receipt": receipt, "cert": bank.cert})
    with pytest.raises(EcashError) as exc:
        fetch_receipt(store, rec, shop, root=bank.root, clock=lambda: int(time.time()))
    assert exc.value.code == "receipt.invalid"
    assert store.payment(rec.payment_id).state == "sent"  # left to recovery
    assert store.balance()["EUR"]["pending"] == 5


def test_fetch_receipts_keeps_going_and_reports_each_outcome(
    store: WalletStore, bank: Bank
) -> None:
    refused = _sent(store, preq=b"R" * 32)
    skipped = _sent(store, preq=b"S" * 32)
    not_paid = RemoteCallError(
        "not paid", code="payment.not_paid", status=404, url="https://shop-1.example"
    )

    def merchant_for(record: PaymentRecord) -> Shop | None:
        return None if record.payment_id == skipped.payment_id else Shop(not_paid)

    (result,) = fetch_receipts(store, merchant_for, root=bank.root, clock=lambda: int(time.time()))
    assert (result.payment_id, result.outcome, result.paid) == (
        refused.payment_id,
        "payment.not_paid",
        False,
    )
    assert {p.state for p in store.payments(open_only=True)} == {"sent"}
