"""The redeem receipt's deposit fee (docs/protocol.md 4.2, 9.4): ``credited = amount - fee``,
both read from the bank-signed body; a receipt signed before fees reads as fee 0; an
inconsistent or malformed fee is ``redeem.receipt_invalid``."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.coinmint import Pki

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.protocol.redeem import (
    REDEEM_RECEIPT_KIND,
    RedeemReceiptInvalidError,
    RedeemRequest,
    verify_redeem_receipt,
)

SERIALS = [b"\x02" * 32, b"\x03" * 32]


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(Path(tmp_path_factory.mktemp("pki")), merchants=("shop-a",))
    yield p
    p.close()


def _request() -> RedeemRequest:
    now = int(time.time())
    return RedeemRequest.from_body(
        {
            "bank": "bank",
            "account_id": "alice",
            "request_id": "rdm-0123456789",
            "amount": 7,
            "currency": "EUR",
            "nonce": b64u_encode(b"\x01" * 16),
            "issued_at": now,
            "deadline": now + 300,
        }
    )


def _verify(pki: Pki, req: RedeemRequest, **fields: Any) -> Any:
    body = {
        "request_id": req.request_id,
        "account_id": "alice",
        "preq": b64u_encode(req.preq),
        "amount": 7,
        "currency": "EUR",
        "serials": [b64u_encode(s) for s in SERIALS],
        "redeemed_at": int(time.time()),
    } | fields
    doc = sign_object(pki.bank.key, REDEEM_RECEIPT_KIND, body, signer="bank")
    return verify_redeem_receipt(doc, pki.bank.cert_pem, pki.root_pem, request=req, serials=SERIALS)


def test_the_receipt_states_the_fee_and_the_credit(pki: Pki) -> None:
    req = _request()
    got = _verify(pki, req, fee=2, credited=5)
    assert (got.amount, got.fee, got.credited) == (7, 2, 5)
    old = _verify(pki, req)  # signed before fees
    assert (old.fee, old.credited) == (0, 7)


@pytest.mark.parametrize(
    "fields",
    [
        {"fee": 2, "credited": 7},  # the fee not taken from the credit
        {"fee": 0, "credited": 6},
        {"fee": -1, "credited": 8},
        {"fee": "2", "credited": 5},
        {"fee": 7, "credited": 0},  # nothing credited: a fee is below every coin's value
    ],
)
def test_an_inconsistent_fee_is_refused(pki: Pki, fields: dict[str, Any]) -> None:
    with pytest.raises(RedeemReceiptInvalidError) as info:
        _verify(pki, _request(), **fields)
    assert info.value.code == "redeem.receipt_invalid"
