"""The redeem request and receipt (docs/protocol.md 9.4): one body shape, a tagged preq apart
from a payment's and a swap's, bank signatures from the root, receipts bound to one redeem."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.coinmint import Pki

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_digest, sign_object
from ecash_tpm.protocol import KINDS
from ecash_tpm.protocol.redeem import (
    REDEEM_RECEIPT_KIND,
    REDEEM_REQUEST_KIND,
    RedeemReceiptInvalidError,
    RedeemRequest,
    RedeemRequestInvalidError,
    verify_redeem_receipt,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(Path(tmp_path_factory.mktemp("pki")), merchants=("shop-a",))
    yield p
    p.close()


def _body(**over: Any) -> dict[str, Any]:
    now = int(time.time())
    body = {
        "bank": "bank",
        "account_id": "alice",
        "request_id": "rdm-0123456789",
        "amount": 7,
        "currency": "EUR",
        "nonce": b64u_encode(b"\x01" * 16),
        "issued_at": now,
        "deadline": now + 300,
    }
    return body | over


def test_the_request_round_trips_and_its_preq_is_its_own_domain(pki: Pki) -> None:
    req = RedeemRequest.from_body(_body())
    assert RedeemRequest.from_body(req.to_body()) == req
    assert req.preq != canonical_digest(req.to_body())  # not a payment request's digest
    assert RedeemRequest.from_body(_body(amount=8)).preq != req.preq
    doc = sign_object(pki.bank.key, REDEEM_REQUEST_KIND, req.to_body(), signer="bank")
    assert RedeemRequest.from_signed(doc, pki.bank.cert_pem, pki.root_pem) == req
    assert KINDS[REDEEM_REQUEST_KIND].signer_role == "bank"
    assert KINDS[REDEEM_RECEIPT_KIND].verify is verify_redeem_receipt


@pytest.mark.parametrize(
    "over",
    [
        {"amount": 0},
        {"amount": True},
        {"currency": "eur"},
        {"nonce": b64u_encode(b"short")},
        {"request_id": "x"},
        {"deadline": 1},
        {"extra": 1},
    ],
)
def test_malformed_requests_are_refused(over: dict[str, Any]) -> None:
    with pytest.raises(RedeemRequestInvalidError) as info:
        RedeemRequest.from_body(_body(**over))
    assert info.value.code == "redeem.request_invalid"


def test_a_request_not_signed_by_a_certified_bank_is_refused(pki: Pki) -> None:
    body = _body()
    by_merchant = sign_object(pki.merchants["shop-a"].key, REDEEM_REQUEST_KIND, body, signer="m")
    for cert in (pki.bank.cert_pem, pki.merchants["shop-a"].cert_pem):
        with pytest.raises(RedeemRequestInvalidError):
            RedeemRequest.from_signed(by_merchant, cert, pki.root_pem)


def test_the_receipt_must_be_for_this_redeem(pki: Pki) -> None:
    req = RedeemRequest.from_body(_body())
    serials = [b"\x02" * 32, b"\x03" * 32]
    good = {
        "request_id": req.request_id,
        "account_id": "alice",
        "preq": b64u_encode(req.preq),
        "amount": 7,
        "currency": "EUR",
        "serials": [b64u_encode(s) for s in serials],
        "redeemed_at": int(time.time()),
    }
    doc = sign_object(pki.bank.key, REDEEM_RECEIPT_KIND, good, signer="bank")
    got = verify_redeem_receipt(doc, pki.bank.cert_pem, pki.root_pem, request=req, serials=serials)
    assert got.amount == 7 and got.serials == tuple(serials)
    for field, value in (("account_id", "mallory"), ("amount", 8), ("serials", [])):
        bad = sign_object(pki.bank.key, REDEEM_RECEIPT_KIND, good | {field: value}, signer="b")
        with pytest.raises(RedeemReceiptInvalidError) as info:
            verify_redeem_receipt(
                bad, pki.bank.cert_pem, pki.root_pem, request=req, serials=serials
            )
        assert info.value.code == "redeem.receipt_invalid"
    with pytest.raises(RedeemReceiptInvalidError):  # the right body, but not the bank's key
        forged = sign_object(pki.merchants["shop-a"].key, REDEEM_RECEIPT_KIND, good, signer="m")
        verify_redeem_receipt(forged, pki.bank.cert_pem, pki.root_pem, request=req, serials=serials)
