"""``ecash-tpm verify`` (docs/protocol.md §15.1) on what the bank and the supervision department
really sign when a swapped coin is also paid, or a paid coin swapped (§9.3): the evidence bundle
of either order and both transcripts verify, the swap named as such and no merchant certificate
asked for it; a swap transcript naming another bank or carrying a merchant certificate is
refused."""

from __future__ import annotations

import copy
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki, make_spend, prepare_coin
from support.swapworld import swap

from ecash_tpm.bank import errors as E
from ecash_tpm.centralbank.certify import certify_issuer_epoch, certify_keyset_list
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.artefacts import evidence_artefact, transcript_artefact
from ecash_tpm.protocol.coins import TRANSCRIPT_KIND
from ecash_tpm.protocol.registry import RegistryEntry, member_id_for_t0
from ecash_tpm.protocol.swap import SwapRequest
from ecash_tpm.protocol.verify_artefacts import verify_evidence, verify_transcript
from ecash_tpm.storage import Database, sqlite_url
from ecash_tpm.supervision.domain import SupervisionDepartment
from ecash_tpm.supervision.store import MIGRATIONS as SUPERVISION_MIGRATIONS


@pytest.fixture
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    """One per test: the central bank certifies one key per (issuer, epoch), and every world
    has an issuer of its own."""
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a",))
    yield p
    p.close()


@pytest.fixture
def world(tmp_path: Path, pki: Pki) -> Iterator[BankWorld]:
    w = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=KeyPool(2),
        policy=test_policy(),
    )
    yield w
    w.bank.ledger_check()
    w.db.close()


def _files(
    w: BankWorld, pki: Pki, tmp_path: Path
) -> tuple[dict[str, Any], list[dict[str, Any]], dict[str, Any]]:
    """The evidence file of the one report as the supervision department signs it, the two
    transcript files, and what they were made from."""
    first, second = w.reporter.reports[0]
    db = Database.open(sqlite_url(tmp_path / "supervision.db"))
    db.migrate(SUPERVISION_MIGRATIONS, component="supervision")
    try:
        dept = SupervisionDepartment(
            db,
            w.issuer.opener,
            signer=pki.supervision.key,
            cert_pem=pki.supervision.cert_pem,
            central_bank_root=load_certificate(pki.root_pem),
            clock=time.time,
        )
        member = w.members["alice"]
        dept.register_member(
            RegistryEntry(member_id_for_t0(member.t0), member.t0, "alice", member.epoch)
        )
        case = dept.handle_double_spend([first, second], pki.bank.cert_pem)
    finally:
        db.close()
    listed = certify_keyset_list(pki._ca, pki.bank.cert_pem, [first["body"]["keyset"]])
    epoch_no = first["body"]["epoch"]
    epoch = certify_issuer_epoch(pki._ca, "issuer", epoch_no, w.issuer.secrets[epoch_no].public)
    certs = {"shop-a": pki.merchants["shop-a"].cert_pem}
    ev = evidence_artefact(
        evidence=case.evidence,
        supervision_cert=pki.supervision.cert_pem,
        merchant_certs=certs,
        keyset_list=listed,
        issuer="issuer",
        issuer_epoch=epoch,
    )
    parts = {"listed": listed, "epoch": epoch, "certs": certs}
    return ev, [_transcript(pki, w, doc, parts) for doc in (first, second)], parts


def _transcript(
    pki: Pki, w: BankWorld, doc: dict[str, Any], parts: dict[str, Any]
) -> dict[str, Any]:
    return transcript_artefact(
        transcript=doc,
        bank_cert=pki.bank.cert_pem,
        merchant_cert=parts["certs"].get(doc["body"].get("merchant_id", "")),
        keyset_list=parts["listed"],
        issuer="issuer",
        issuer_epoch=parts["epoch"],
        opener_public=w.issuer.hop.encode(),
    )


def _swap_wire(w: BankWorld, member: Any, coins: Any) -> dict[str, Any]:
    latest = {k.value: k for k in sorted(w.keysets(), key=lambda k: k.withdraw_from)}
    pending = [prepare_coin(member, latest[5])]
    req = SwapRequest.build(
        bank=w.bank.bank_name,
        request_id="s-after-pay-01",
        inputs=[c.sigma for c in coins],
        outputs=[p.item for p in pending],
        deadline=w.clock() + 300,
    )
    spends = [make_spend(member, c, req.preq, w.issuer.hop).to_dict() for c in coins]
    return {"request": req.to_body(), "spends": spends}


@pytest.mark.parametrize("swap_first", [True, False])
def test_swap_and_pay_evidence_from_the_bank_verifies(
    world: BankWorld, pki: Pki, tmp_path: Path, swap_first: bool
) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    req = w.request("shop-a", 5)
    if swap_first:
        rid, _ = swap(w, alice, coins, [5])
        with refused(E.DoubleSpendError, "bank.double_spend"):
            w.deposit("shop-a", req, w.spends(alice, coins, req))
    else:
        w.deposit("shop-a", req, w.spends(alice, coins, req))
        rid = "s-after-pay-01"
        with refused(E.DoubleSpendError, "bank.double_spend"):
            w.bank.swap(_swap_wire(w, alice, coins))
    ev, transcripts, _ = _files(w, pki, tmp_path)
    result = verify_evidence(ev, pki.root_pem, issuer="issuer")
    facts = result.facts["transcripts"]
    swapped = facts[0] if swap_first else facts[1]
    assert (swapped["request_kind"], swapped["merchant_id"]) == ("swap", "bank:swap")
    assert (swapped["swap_request_id"], swapped["accepted"]) == (rid, swap_first)
    assert [f["accepted"] for f in facts] == [True, False]
    assert result.facts["member_id"] == member_id_for_t0(alice.t0)
    assert any(f"swapped by request {rid}" in p for p in result.proven)
    assert list(ev["merchant_certs"]) == ["shop-a"]  # none for the swap
    for doc, f in zip(transcripts, facts, strict=True):
        t = verify_transcript(doc, pki.root_pem)
        assert (t.facts["accepted"], t.facts["request_kind"]) == (f["accepted"], f["request_kind"])
    swap_doc = transcripts[0] if swap_first else transcripts[1]
    assert swap_doc["merchant_cert"] is None


def _code(fn: Any) -> str:
    with pytest.raises(EcashError) as err:
        fn()
    return str(err.value.code)


def test_swap_transcript_refusals(world: BankWorld, pki: Pki, tmp_path: Path) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    swap(w, alice, coins, [5])
    req = w.request("shop-a", 5)
    with refused(E.DoubleSpendError, "bank.double_spend"):
        w.deposit("shop-a", req, w.spends(alice, coins, req))
    ev, transcripts, parts = _files(w, pki, tmp_path)
    swap_doc = transcripts[0]
    hint = swap_doc["transcript"]["signer"]  # the bank's own, as the bank signs
    # a merchant certificate given for a swap transcript
    with_cert = {**swap_doc, "merchant_cert": parts["certs"]["shop-a"]}
    assert _code(lambda: verify_transcript(with_cert, pki.root_pem)) == "verify.format"
    # a bank-signed swap transcript whose request was changed: no longer what the proof signs
    body = copy.deepcopy(swap_doc["transcript"]["body"])
    body["request"]["deadline"] += 1
    forged = {
        **swap_doc,
        "transcript": sign_object(pki.bank.key, TRANSCRIPT_KIND, body, signer=hint),
    }
    assert _code(lambda: verify_transcript(forged, pki.root_pem)) == "verify.format"
    # a bank-signed swap transcript that names a merchant
    body = copy.deepcopy(swap_doc["transcript"]["body"])
    body["merchant_id"] = "shop-a"
    named = {
        **swap_doc,
        "transcript": sign_object(pki.bank.key, TRANSCRIPT_KIND, body, signer=hint),
    }
    assert _code(lambda: verify_transcript(named, pki.root_pem)) == "verify.format"
    # not the bank's signature
    stranger = {
        **swap_doc,
        "transcript": sign_object(
            pki.merchants["shop-a"].key, TRANSCRIPT_KIND, swap_doc["transcript"]["body"], signer="x"
        ),
    }
    assert _code(lambda: verify_transcript(stranger, pki.root_pem)) == "verify.bad_signature"
