"""Refund wire objects (issue 12, item 3; docs/protocol.md 6 and 9.2): the optional
``refund_deadline`` of a payment request, the merchant-signed ``refund-permission`` and the claim
digest the ownership proofs are bound to."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.coinmint import Pki

from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.protocol import KINDS
from ecash_tpm.protocol.coins import PaymentRequest, sign_payment_request
from ecash_tpm.protocol.errors import RequestMismatchError
from ecash_tpm.protocol.refunds import (
    REFUND_PERMISSION_KIND,
    RefundPermission,
    RefundPermissionError,
    refund_claim_digest,
    sign_refund_permission,
)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(Path(tmp_path_factory.mktemp("pki")), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


def _request(pki: Pki, **kw: Any) -> dict[str, Any]:
    return sign_payment_request(
        pki.merchants["shop-a"].key,
        merchant_id="shop-a",
        amount=7,
        currency="EUR",
        contract_hash=b"\x01" * 32,
        nonce=b"\x02" * 16,
        deadline=2_000_000_000,
        bank="bank",
        **kw,
    )


def test_refund_deadline_is_optional_and_keeps_old_requests_as_they_were(pki: Pki) -> None:
    plain = _request(pki)
    assert "refund_deadline" not in plain["body"]
    assert PaymentRequest.from_body(plain["body"]).refund_deadline is None
    refundable = _request(pki, refund_deadline=2_000_086_400)
    req = PaymentRequest.from_body(refundable["body"])
    assert req.refund_deadline == 2_000_086_400
    assert req.preq == canonical_digest(refundable["body"]) != canonical_digest(plain["body"])


@pytest.mark.parametrize("bad", [1_999_999_999, True, "2000086400", None])
def test_refund_deadline_must_be_an_integer_not_before_the_deadline(pki: Pki, bad: Any) -> None:
    body = {**_request(pki)["body"], "refund_deadline": bad}
    with pytest.raises(RequestMismatchError) as exc:
        PaymentRequest.from_body(body)
    assert exc.value.code == "bank.request_mismatch"
    assert exc.value.detail == {"field": "refund_deadline"}


def _permission(pki: Pki, key: Any = None) -> dict[str, Any]:
    return sign_refund_permission(
        key or pki.merchants["shop-a"].key,
        refund_id="ref-" + secrets.token_hex(16),
        merchant_id="shop-a",
        preq=b"\x03" * 32,
        deposit_id="dep-1",
        serials=[b"\x04" * 32, b"\x05" * 32],
        amount=5,
        currency="EUR",
        issued_at=int(time.time()),
    )


def test_permission_verifies_under_the_merchant_certificate(pki: Pki) -> None:
    doc = _permission(pki)
    perm = RefundPermission.from_signed(
        doc, pki.merchants["shop-a"].cert_pem, pki.root_pem, now=int(time.time())
    )
    assert (perm.merchant_id, perm.amount, len(perm.serials)) == ("shop-a", 5, 2)
    kind = KINDS[REFUND_PERMISSION_KIND]
    assert kind.signer_role == "merchant" and kind.section == "Refunds"


def test_permission_of_another_key_or_certificate_is_refused(pki: Pki) -> None:
    now = int(time.time())
    forged = _permission(pki, key=pki.merchants["shop-b"].key)
    for doc, cert in (
        (forged, pki.merchants["shop-a"].cert_pem),  # signed by another key
        (_permission(pki), pki.merchants["shop-b"].cert_pem),  # CN is not the merchant id
    ):
        with pytest.raises(RefundPermissionError) as exc:
            RefundPermission.from_signed(doc, cert, pki.root_pem, now=now)
        assert exc.value.code == "refund.permission_invalid"


def test_permission_body_is_strict(pki: Pki) -> None:
    body = _permission(pki)["body"]
    for broken in (
        {**body, "extra": 1},
        {**body, "serials": []},
        {**body, "serials": [body["serials"][0]] * 2},
        {**body, "amount": 0},
    ):
        with pytest.raises(RefundPermissionError):
            RefundPermission.from_body(broken)


def test_claim_digest_binds_refund_claim_and_outputs() -> None:
    outputs = [(b"\x06" * 16, b"\x07" * 256), (b"\x08" * 16, b"\x09" * 256)]
    base = refund_claim_digest("ref-aaaaaaaa", "claim-aaaaaaaa", outputs)
    assert len(base) == 32
    assert refund_claim_digest("ref-bbbbbbbb", "claim-aaaaaaaa", outputs) != base
    assert refund_claim_digest("ref-aaaaaaaa", "claim-bbbbbbbb", outputs) != base
    assert refund_claim_digest("ref-aaaaaaaa", "claim-aaaaaaaa", outputs[::-1]) != base
    assert refund_claim_digest("ref-aaaaaaaa", "claim-aaaaaaaa", outputs[:1]) != base
