"""Double spends that involve a swap (docs/protocol.md 9.3, 9.1, 12.1) at the bank's domain, on
both backends: refused, queued in the first spend's report table, sent to supervision, and the
two bank-signed transcripts (one of them a swap's) accepted and opened by the supervision
department to the member; an identical retry of a swap is no second spend."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Member, Pki, make_spend, prepare_coin
from support.swapworld import swap

from ecash_tpm.bank import errors as E
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol import evidence
from ecash_tpm.protocol.coins import TRANSCRIPT_KIND, Coin
from ecash_tpm.protocol.redeem import RedeemRequest
from ecash_tpm.protocol.registry import RegistryEntry, member_id_for_t0
from ecash_tpm.protocol.swap import SWAP_SPENDER, SwapRequest
from ecash_tpm.storage import Database, sqlite_url
from ecash_tpm.supervision.domain import SupervisionDepartment
from ecash_tpm.supervision.store import MIGRATIONS as SUPERVISION_MIGRATIONS


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


@pytest.fixture
def supervision(world: BankWorld, pki: Pki, tmp_path: Path) -> Iterator[SupervisionDepartment]:
    """The supervision department (domain) with the world's opener key and the central bank's
    root: it checks the bank's certificate and signatures on every report."""
    db = Database.open(sqlite_url(tmp_path / "supervision.db"))
    db.migrate(SUPERVISION_MIGRATIONS, component="supervision")
    dept = SupervisionDepartment(
        db,
        world.issuer.opener,
        signer=PartyKey.generate(),
        central_bank_root=load_certificate(pki.root_pem),
        clock=time.time,
    )
    yield dept
    db.close()


def _register(dept: SupervisionDepartment, member: Member) -> str:
    member_id = member_id_for_t0(member.t0)
    dept.register_member(RegistryEntry(member_id, member.t0, member.account_id, member.epoch))
    return member_id


def _swap_wire(
    w: BankWorld, member: Member, coins: list[Coin], values: list[int], request_id: str
) -> dict[str, Any]:
    latest = {k.value: k for k in sorted(w.keysets(), key=lambda k: k.withdraw_from)}
    pending = [prepare_coin(member, latest[v]) for v in values]
    req = SwapRequest.build(
        bank=w.bank.bank_name,
        request_id=request_id,
        inputs=[c.sigma for c in coins],
        outputs=[p.item for p in pending],
        deadline=w.clock() + 300,
    )
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    return {"request": req.to_body(), "spends": spends}


def _redeem_wire(w: BankWorld, member: Member, coins: list[Coin], amount: int) -> dict[str, Any]:
    doc = w.bank.redeem_request(member.account_id, amount)["request"]
    req = RedeemRequest.from_body(doc["body"])
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    return {"request": doc, "spends": spends}


def _opened(
    w: BankWorld, pki: Pki, dept: SupervisionDepartment, member: Member, report: Any
) -> None:
    """12.1: supervision accepts the two bank-signed transcripts and opens them to ``member``."""
    member_id = _register(dept, member)
    case = dept.handle_double_spend(list(report), pki.bank.cert_pem)
    assert case.member_id == member_id
    assert {o["t0"] for o in case.evidence["body"]["openings"]} == {case.evidence["body"]["t0"]}
    found = evidence.verify_evidence_body(
        case.evidence["body"], w.issuer.hop, bank_cert=pki.bank.cert
    )
    assert found.member_id == member_id


def _swap_rows(w: BankWorld) -> list[tuple[str, int]]:
    return [(r.status, r.attempts) for r in w.bank.swap_reports.all()]


def _balance(w: BankWorld, account: str) -> int:
    return w.bank.account(account).balance


def _merchant(w: BankWorld, merchant_id: str) -> int:
    """A merchant's ledger balance (``merchant:<id>``)."""
    with w.db.read() as tx:
        value = tx.fetchval(
            "SELECT COALESCE(SUM(amount), 0) AS s FROM ledger_entry WHERE account = :a",
            {"a": "merchant:" + merchant_id},
        )
    return int(value or 0)


def test_swapped_then_deposited_is_reported_and_opened(
    world: BankWorld, pki: Pki, supervision: SupervisionDepartment
) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    rid, change = swap(w, alice, coins, [2, 2, 1])
    req = w.request("shop-a", 5)
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.deposit("shop-a", req, w.spends(alice, coins, req))
    assert info.value.detail["swap_request_id"] == rid
    assert info.value.detail["refusal"]["kind"] == "deposit-refusal"
    with refused(E.DoubleSpendError, "bank.double_spend"):  # a reservation: the same request
        w.reserve("shop-a", req, w.spends(alice, coins, req))
    assert len(w.reporter.reports) == 1  # one report per (serial, second request)
    assert _swap_rows(w) == [("sent", 1)]
    first, second = w.reporter.reports[0]
    assert first["kind"] == second["kind"] == TRANSCRIPT_KIND
    assert first["body"]["kind"] == "swap"
    assert first["body"]["transcript_id"] == f"swap:{rid}"
    assert second["body"]["merchant_id"] == "shop-a"
    _opened(w, pki, supervision, alice, w.reporter.reports[0])
    assert _merchant(w, "shop-a") == 0  # the merchant got nothing; the change is good money
    req2 = w.request("shop-a", 2)
    w.deposit("shop-a", req2, w.spends(alice, [change[0]], req2))
    assert _merchant(w, "shop-a") == 2
    assert w.bank.retry_double_spend_reports() == {"sent": 0, "failed": 0}


def test_swapped_then_reserved_is_reported(world: BankWorld, pki: Pki) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 2)
    swap(w, alice, coins, [1, 1])
    req = w.request("shop-a", 2)
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.reserve("shop-a", req, w.spends(alice, coins, req))
    assert "refusal" in info.value.detail
    assert _swap_rows(w) == [("sent", 1)]
    first, second = w.reporter.reports[0]
    assert first["body"]["kind"] == "swap" and second["body"]["deposit_id"] is None


def test_deposited_then_swapped_is_reported_and_opened(
    world: BankWorld, pki: Pki, supervision: SupervisionDepartment
) -> None:
    w = world
    bob = w.customer("bob", 100)
    coins = w.withdraw(bob, 5)
    req = w.request("shop-a", 5)
    w.deposit("shop-a", req, w.spends(bob, coins, req))
    outstanding = w.bank.ledger_check()["outstanding_total"]
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.bank.swap(_swap_wire(w, bob, coins, [5], "s-after-deposit"))
    assert info.value.detail["transcript_id"]
    assert w.bank.ledger_check()["outstanding_total"] == outstanding  # nothing issued
    assert _swap_rows(w) == []  # the first spend's queue: double_spend_report
    reports = w.bank.double_spend_reports()
    assert [(r.status, r.attempts) for r in reports] == [("sent", 1)]
    first, second = w.reporter.reports[0]
    assert first["body"]["merchant_id"] == "shop-a"
    assert second["body"]["kind"] == "swap"
    assert second["body"]["request"]["request_id"] == "s-after-deposit"
    _opened(w, pki, supervision, bob, w.reporter.reports[0])


def test_swapped_then_redeemed_and_redeemed_then_swapped_are_reported(
    world: BankWorld, pki: Pki, supervision: SupervisionDepartment
) -> None:
    w = world
    carol = w.customer("carol", 100)
    coins = w.withdraw(carol, 5)
    swap(w, carol, coins, [5])
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.bank.redeem("carol", _redeem_wire(w, carol, coins, 5))
    assert info.value.detail["refusal"]["kind"] == "deposit-refusal"
    assert _balance(w, "carol") == 95  # no credit
    assert _swap_rows(w) == [("sent", 1)]
    _opened(w, pki, supervision, carol, w.reporter.reports[0])

    other = w.withdraw(carol, 2)
    w.bank.redeem("carol", _redeem_wire(w, carol, other, 2))
    assert _balance(w, "carol") == 95
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.bank.swap(_swap_wire(w, carol, other, [2], "s-after-redeem"))
    assert info.value.detail["redeem_request_id"]
    assert len(w.reporter.reports) == 2
    first, second = w.reporter.reports[1]
    assert first["body"]["kind"] == "redeem" and second["body"]["kind"] == "swap"
    with w.db.read() as tx:
        queued = tx.fetchall("SELECT status, attempts FROM redeem_report")
    assert [(r["status"], r["attempts"]) for r in queued] == [("sent", 1)]
    assert evidence.parse_transcript(second["body"]).merchant_id == SWAP_SPENDER
    with refused(EcashError, "evidence.not_double_spend"):  # one spend twice is no evidence
        supervision.handle_double_spend([second, second], pki.bank.cert_pem)
    _opened(w, pki, supervision, carol, w.reporter.reports[1])


def test_two_swaps_of_one_coin_are_reported_an_identical_retry_is_not(
    world: BankWorld, pki: Pki, supervision: SupervisionDepartment
) -> None:
    w = world
    dave = w.customer("dave", 100)
    coins = w.withdraw(dave, 10)
    one = _swap_wire(w, dave, coins, [5, 5], "s-first-0001")
    answer = w.bank.swap(one)
    assert w.bank.swap(one) == answer  # an identical retry: the stored answer, no report
    preq = SwapRequest.from_body(one["request"]).preq
    again = dict(one, spends=[make_spend(dave, c, preq, w.issuer.hop).to_dict() for c in coins])
    assert w.bank.swap(again) == answer  # the same request, fresh proofs: still a retry
    assert w.reporter.reports == [] and _swap_rows(w) == []
    outstanding = w.bank.ledger_check()["outstanding_total"]
    second_wire = _swap_wire(w, dave, coins, [10], "s-second-0002")
    with refused(E.DoubleSpendError, "bank.double_spend") as info:
        w.bank.swap(second_wire)
    assert info.value.detail["swap_request_id"] == "s-first-0001"
    assert w.bank.ledger_check()["outstanding_total"] == outstanding
    with refused(E.DoubleSpendError, "bank.double_spend"):  # the same second request again
        w.bank.swap(second_wire)
    assert _swap_rows(w) == [("sent", 1)]  # one report per (serial, second request)
    first, second = w.reporter.reports[0]
    assert first["body"]["kind"] == second["body"]["kind"] == "swap"
    assert first["body"]["transcript_id"] == "swap:s-first-0001"
    _opened(w, pki, supervision, dave, w.reporter.reports[0])


def test_reporter_down_then_retry_sends_the_swap_report(world: BankWorld) -> None:
    w = world
    erin = w.customer("erin", 100)
    coins = w.withdraw(erin, 5)
    swap(w, erin, coins, [5])
    w.reporter.fail = True
    req = w.request("shop-a", 5)
    with refused(E.DoubleSpendError, "bank.double_spend"):  # refused although nobody hears
        w.deposit("shop-a", req, w.spends(erin, coins, req))
    assert _swap_rows(w) == [("failed", 1)]
    (row,) = w.bank.swap_reports.all()
    assert row.error is not None and "unreachable" in row.error
    assert w.bank.retry_double_spend_reports() == {"sent": 0, "failed": 1}
    assert _swap_rows(w) == [("failed", 2)]
    w.reporter.fail = False
    assert w.bank.retry_double_spend_reports() == {"sent": 1, "failed": 0}
    assert _swap_rows(w) == [("sent", 3)]
    assert len(w.reporter.reports) == 1
    assert w.reporter.reports[0][0]["body"]["kind"] == "swap"
    assert w.bank.retry_double_spend_reports() == {"sent": 0, "failed": 0}


def test_supervision_refuses_forged_and_unsigned_swap_transcripts(
    world: BankWorld, pki: Pki, supervision: SupervisionDepartment
) -> None:
    w = world
    fay = w.customer("fay", 100)
    coins = w.withdraw(fay, 5)
    swap(w, fay, coins, [5])
    req = w.request("shop-a", 5)
    with refused(E.DoubleSpendError, "bank.double_spend"):
        w.deposit("shop-a", req, w.spends(fay, coins, req))
    first, second = w.reporter.reports[0]
    _register(supervision, fay)
    # signed by a key that is not the certified bank's
    forged = sign_object(PartyKey.generate(), TRANSCRIPT_KIND, first["body"], signer="bank")
    with refused(EcashError, "signature.invalid"):
        supervision.handle_double_spend([forged, second], pki.bank.cert_pem)
    # the bank's signature over another swap request than the one the transcript names
    body = dict(first["body"])
    body["request"] = dict(body["request"], deadline=body["request"]["deadline"] + 1)
    resigned = sign_object(pki.bank.key, TRANSCRIPT_KIND, body, signer="bank")
    with refused(EcashError, "evidence.transcript_malformed"):
        supervision.handle_double_spend([resigned, second], pki.bank.cert_pem)
    # unsigned (no bank certificate where the department requires one)
    with refused(EcashError, "input.invalid"):
        supervision.handle_double_spend([first, second], None)
    assert supervision.case(coins[0].sigma) is None
    case = supervision.handle_double_spend([first, second], pki.bank.cert_pem)
    assert case.sigma == coins[0].sigma
