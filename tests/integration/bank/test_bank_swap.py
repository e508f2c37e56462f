"""The bank's swap (issue 12, docs/protocol.md 9.3) on both backends: idempotent by request id,
one transaction, the swapped coin spent for deposits and swaps alike, the ledger consistent."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, test_policy
from support.coinmint import KeyPool, Pki, make_spend, prepare_coin
from support.swapworld import swap

from ecash_tpm.bank import errors as E
from ecash_tpm.protocol.swap import SwapRequest
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def world(
    request: pytest.FixtureRequest, tmp_path: Path, pki: Pki, keys: KeyPool
) -> Iterator[BankWorld]:
    url = (
        sqlite_url(tmp_path / "bank.db")
        if request.param == "sqlite"
        else str(request.getfixturevalue("pg_url"))
    )
    w = make_world(db_url=url, data_dir=tmp_path, pki=pki, keys=keys, policy=test_policy())
    yield w
    w.bank.ledger_check()
    w.db.close()


def _wire(w: BankWorld, member: Any, coins: list[Any], values: list[int]) -> dict[str, Any]:
    latest = {k.value: k for k in sorted(w.keysets(), key=lambda k: k.withdraw_from)}
    pending = [prepare_coin(member, latest[v]) for v in values]
    req = SwapRequest.build(
        bank=w.bank.bank_name,
        request_id="s-race-0001",
        inputs=[c.sigma for c in coins],
        outputs=[p.item for p in pending],
        deadline=w.clock() + 300,
    )
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    return {"request": req.to_body(), "spends": spends}


def test_swap_books_once_and_spends_the_inputs(world: BankWorld) -> None:
    w = world
    alice = w.customer("alice", 100)
    ten = w.withdraw(alice, 10)
    before = w.bank.ledger_check()["outstanding_total"]
    _, change = swap(w, alice, ten, [5, 2, 2, 1])
    assert w.bank.ledger_check()["outstanding_total"] == before  # same total, new coins
    assert w.bank.coin_status(ten[0].sigma).state == "spent"
    req = w.request("shop-a", 10)
    with pytest.raises(E.DoubleSpendError) as exc:
        w.deposit("shop-a", req, w.spends(alice, ten, req))
    assert exc.value.detail["serial"] and "refusal" in exc.value.detail
    req = w.request("shop-a", 5)
    w.deposit("shop-a", req, w.spends(alice, [change[0]], req))  # the change is good money
    with pytest.raises(E.DoubleSpendError):  # and a deposited coin cannot be swapped
        swap(w, alice, [change[0]], [5])


def test_identical_swaps_racing_book_once(world: BankWorld) -> None:
    w = world
    bob = w.customer("bob", 100)
    wire = _wire(w, bob, w.withdraw(bob, 10), [5, 5])
    answers: list[Any] = []

    def go() -> None:
        try:
            answers.append(w.bank.swap(wire))
        except Exception as exc:  # noqa: BLE001 - a PostgreSQL serialization failure is fine
            answers.append(exc)

    threads = [threading.Thread(target=go) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    ok = [a for a in answers if isinstance(a, tuple)]
    assert ok and all(a == ok[0] for a in ok)  # one booking, the same signatures for all
    assert w.bank.swap(wire) == ok[0]
    with w.db.read() as tx:
        assert tx.fetchval("SELECT COUNT(*) AS n FROM swap") == 1


def _race(**work: Any) -> dict[str, Any]:
    """Run each callable of ``work`` in its own thread, released together; name -> answer."""
    start = threading.Barrier(len(work))
    answers: dict[str, Any] = {}

    def run(name: str, fn: Any) -> None:
        start.wait(timeout=30)
        try:
            answers[name] = fn()
        except Exception as exc:  # noqa: BLE001 - the loser's refusal is the point
            answers[name] = exc

    threads = [threading.Thread(target=run, args=item) for item in work.items()]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    return answers


def test_a_deposit_and_a_swap_of_one_coin_racing_book_one(world: BankWorld) -> None:
    """Issue 13 meets issue 12: deposits book at READ COMMITTED under serial locks, and so does
    the swap (the same lock first), so a deposit and a swap of one coin never both commit: the
    later one sees the other's spent_coin / swap_input row and is refused as a double spend."""
    w = world
    carol = w.customer("carol", 100)
    for round_ in range(4):
        coin = w.withdraw(carol, 5)
        req = w.request("shop-a", 5)
        deposit_spends = w.spends(carol, coin, req)
        latest = {k.value: k for k in sorted(w.keysets(), key=lambda k: k.withdraw_from)}
        pending = [prepare_coin(carol, latest[v]) for v in (2, 2, 1)]
        sreq = SwapRequest.build(
            bank=w.bank.bank_name,
            request_id=f"s-race-dep-{round_}",
            inputs=[c.sigma for c in coin],
            outputs=[p.item for p in pending],
            deadline=w.clock() + 300,
        )
        wire = {
            "request": sreq.to_body(),
            "spends": [make_spend(carol, c, sreq.preq, w.issuer.hop).to_dict() for c in coin],
        }
        answers = _race(
            deposit=partial(w.deposit, "shop-a", req, deposit_spends),
            swap=partial(w.bank.swap, wire),
        )
        refused = [n for n, a in answers.items() if isinstance(a, Exception)]
        assert len(answers) == 2 and len(refused) == 1, answers
        assert isinstance(answers[refused[0]], E.DoubleSpendError), answers
        with w.db.read() as tx:
            spent = tx.fetchval(
                "SELECT COUNT(*) AS n FROM spent_coin WHERE sigma = :s", {"s": coin[0].sigma}
            )
            swapped = tx.fetchval(
                "SELECT COUNT(*) AS n FROM swap_input WHERE sigma = :s", {"s": coin[0].sigma}
            )
        assert int(spent) + int(swapped) == 1
