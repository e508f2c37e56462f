"""The bank's refund claim (issue 12, item 3; docs/protocol.md 9.2) at the domain level, with
software DAA keys: what each check refuses, with its exact code, and that nothing is booked."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from support.bankworld import BankWorld, make_world, refused
from support.coinmint import KeyPool, Member, Pki
from support.refund_world import make_claim, permission, refundable_payment

from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.protocol.refunds import (
    RefundAlreadyClaimedError,
    RefundAmountError,
    RefundPermissionError,
    RefundProofError,
    RefundUnknownDepositError,
)
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory, pki: Pki) -> Iterator[BankWorld]:
    data: Path = tmp_path_factory.mktemp("bank")
    w = make_world(db_url=sqlite_url(data / "bank.db"), data_dir=data, pki=pki, keys=KeyPool(4))
    yield w
    w.bank.ledger_check()
    w.db.close()


@pytest.fixture(scope="module")
def alice(world: BankWorld) -> Member:
    return world.customer("alice", 500)


def shop_balance(w: BankWorld) -> int:
    return int(w.bank.ledger_check()["merchants_total"])


def test_identical_retry_gets_the_same_signatures_and_books_once(
    world: BankWorld, alice: Member
) -> None:
    receipt, coins = refundable_payment(world, alice, "shop-a", 7)
    claim = make_claim(world, alice, permission(world, "shop-a", receipt, coins, 7), coins)
    before = shop_balance(world)
    first = claim.send(world, "shop-a")
    again = claim.send(world, "shop-a")
    assert first.blind_signatures == again.blind_signatures and first.amount == 7
    assert shop_balance(world) == before - 7


def test_another_claim_of_the_same_refund_is_refused(world: BankWorld, alice: Member) -> None:
    receipt, coins = refundable_payment(world, alice, "shop-a", 5)
    perm = permission(world, "shop-a", receipt, coins, 5)
    make_claim(world, alice, perm, coins).send(world, "shop-a")
    with refused(RefundAlreadyClaimedError, "refund.already_claimed"):
        make_claim(world, alice, perm, coins).send(world, "shop-a")


def test_swapped_outputs_are_refused(world: BankWorld, alice: Member) -> None:
    """The proofs commit to the outputs: whoever swaps them for its own loses the proof."""
    receipt, coins = refundable_payment(world, alice, "shop-a", 5)
    perm = permission(world, "shop-a", receipt, coins, 5)
    claim, other = make_claim(world, alice, perm, coins), make_claim(world, alice, perm, coins)
    before = shop_balance(world)
    with refused(RefundProofError, "refund.bad_proof"):
        claim.send(world, "shop-a", outputs=other.outputs)
    assert shop_balance(world) == before


def test_another_key_cannot_prove_ownership(world: BankWorld, alice: Member) -> None:
    receipt, coins = refundable_payment(world, alice, "shop-a", 2)
    perm = permission(world, "shop-a", receipt, coins, 2)
    with refused(RefundProofError, "refund.bad_proof"):
        make_claim(world, alice, perm, coins, signer=SoftwareDaaSigner()).send(world, "shop-a")


def test_coins_of_another_deposit_are_refused(world: BankWorld, alice: Member) -> None:
    receipt, coins = refundable_payment(world, alice, "shop-a", 2)
    _, others = refundable_payment(world, alice, "shop-a", 2)
    perm = permission(world, "shop-a", receipt, others, 2)
    with refused(RefundUnknownDepositError, "refund.unknown_deposit"):
        make_claim(world, alice, perm, others).send(world, "shop-a")


def test_refunds_beyond_the_payment_are_refused(world: BankWorld, alice: Member) -> None:
    receipt, coins = refundable_payment(world, alice, "shop-a", 7)
    first = permission(world, "shop-a", receipt, coins, 5)
    make_claim(world, alice, first, coins).send(world, "shop-a")
    second = permission(world, "shop-a", receipt, coins, 5)  # 5 + 5 > 7
    with refused(RefundAmountError, "refund.bad_amount"):
        make_claim(world, alice, second, coins).send(world, "shop-a")
    too_much = permission(world, "shop-a", receipt, coins, 8)
    with refused(RefundAmountError, "refund.bad_amount"):
        make_claim(world, alice, too_much, coins).send(world, "shop-a")


def test_permission_not_signed_by_the_merchant_is_refused(
    world: BankWorld, alice: Member, pki: Pki
) -> None:
    receipt, coins = refundable_payment(world, alice, "shop-a", 2)
    forged = permission(world, "shop-a", receipt, coins, 2, key=pki.merchants["shop-b"].key)
    with refused(RefundPermissionError, "refund.permission_invalid"):
        make_claim(world, alice, forged, coins).send(world, "shop-a")


def test_a_refund_cannot_exceed_the_coins_it_names(world: BankWorld, alice: Member) -> None:
    """Refund fees are charged per named coin (§4.2, §9.2): naming one small coin of a larger
    payment cannot carry a refund of the whole payment."""
    receipt, coins = refundable_payment(world, alice, "shop-a", 7)  # 5 + 2
    small = min(coins, key=lambda c: world.bank.keysets.get(c.keyset_id).value)
    before = shop_balance(world)
    perm = permission(world, "shop-a", receipt, [small], 7)
    with refused(RefundAmountError, "refund.bad_amount") as err:
        make_claim(world, alice, perm, [small]).send(world, "shop-a")
    assert err.value.detail["coins_value"] < 7
    assert shop_balance(world) == before
