"""``ecash-tpm verify`` (docs/protocol.md §15.1) on what the bank really signs when a coin is
redeemed into an account and also paid (§9.4): the evidence bundle of either order and the
redeem's transcript verify, and name the account; a refused redeem attempt is shown refused."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki, make_spend

from ecash_tpm.bank import errors as E
from ecash_tpm.centralbank.certify import certify_issuer_epoch, certify_keyset_list
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import open_proof
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.protocol.artefacts import evidence_artefact, transcript_artefact
from ecash_tpm.protocol.evidence import EVIDENCE_KIND, OpeningRecord
from ecash_tpm.protocol.redeem import RedeemRequest
from ecash_tpm.protocol.registry import member_id_for_t0
from ecash_tpm.protocol.verify_artefacts import verify_evidence, verify_transcript
from ecash_tpm.storage import sqlite_url


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


def _files(w: BankWorld, pki: Pki) -> tuple[dict[str, Any], list[dict[str, Any]], str]:
    """The evidence file of the one report (opened as the supervision department does), the
    two transcript files, and the root."""
    first, second = w.reporter.reports[0]
    descriptor = first["body"]["keyset"]
    listed = certify_keyset_list(pki._ca, pki.bank.cert_pem, [descriptor])
    epoch_no = first["body"]["epoch"]
    epoch = certify_issuer_epoch(pki._ca, "issuer", epoch_no, w.issuer.secrets[epoch_no].public)
    openings, t0 = [], None
    for doc in (first, second):
        proof = doc["body"]["spend"]["proof"]
        c1, c2 = (Point.decode(b64u_decode(proof[k])) for k in ("c1", "c2"))
        t0, op = open_proof(w.issuer.opener.h, c1, c2)
        openings.append(OpeningRecord(c1, c2, t0, op, doc["body"]["transcript_id"]).to_dict())
    assert t0 is not None
    signed = sign_object(
        pki.supervision.key,
        EVIDENCE_KIND,
        {
            "member_id": member_id_for_t0(t0),
            "t0": b64u_encode(t0.encode()),
            "sigma": first["body"]["sigma"],
            "opener_public": b64u_encode(w.issuer.hop.encode()),
            "openings": openings,
            "transcripts": [first, second],
            "bank_cert": pki.bank.cert_pem,
            "created_at": first["body"]["deposited_at"] + 5,
        },
    )
    certs = {"shop-a": pki.merchants["shop-a"].cert_pem}
    ev = evidence_artefact(
        evidence=signed,
        supervision_cert=pki.supervision.cert_pem,
        merchant_certs=certs,
        keyset_list=listed,
        issuer="issuer",
        issuer_epoch=epoch,
    )
    transcripts = [
        transcript_artefact(
            transcript=doc,
            bank_cert=pki.bank.cert_pem,
            merchant_cert=certs.get(doc["body"]["merchant_id"]),
            keyset_list=listed,
            issuer="issuer",
            issuer_epoch=epoch,
            opener_public=w.issuer.hop.encode(),
        )
        for doc in (first, second)
    ]
    return ev, transcripts, pki.root_pem


def _redeem(w: BankWorld, coins: Any, member: Any) -> dict[str, Any]:
    doc: dict[str, Any] = w.bank.redeem_request("alice", 5)["request"]
    preq = RedeemRequest.from_body(doc["body"]).preq
    spends = [make_spend(member, c, preq, w.issuer.hop).to_dict() for c in coins]
    return {"request": doc, "spends": spends}


@pytest.mark.parametrize("redeem_first", [True, False])
def test_redeem_and_pay_evidence_from_the_bank_verifies(
    world: BankWorld, pki: Pki, redeem_first: bool
) -> None:
    w = world
    alice = w.customer("alice", 100)
    coins = w.withdraw(alice, 5)
    req = w.request("shop-a", 5)
    if redeem_first:
        w.bank.redeem("alice", _redeem(w, coins, alice))
        with refused(E.DoubleSpendError, "bank.double_spend"):
            w.deposit("shop-a", req, w.spends(alice, coins, req))
    else:
        w.deposit("shop-a", req, w.spends(alice, coins, req))
        with refused(E.DoubleSpendError, "bank.double_spend"):
            w.bank.redeem("alice", _redeem(w, coins, alice))
    ev, transcripts, root = _files(w, pki)
    result = verify_evidence(ev, root, issuer="issuer")
    facts = result.facts["transcripts"]
    redeem = facts[0] if redeem_first else facts[1]
    assert (redeem["request_kind"], redeem["account_id"]) == ("redeem", "alice")
    # booked first; refused second (its deposit_id still names the redeem request)
    assert redeem["accepted"] is redeem_first and redeem["deposit_id"] is not None
    assert [f["accepted"] for f in facts] == [True, False]
    assert list(ev["merchant_certs"]) == ["shop-a"]
    for doc, f in zip(transcripts, facts, strict=True):
        t = verify_transcript(doc, root)
        assert t.facts["accepted"] is f["accepted"]
    w.bank.ledger_check()
