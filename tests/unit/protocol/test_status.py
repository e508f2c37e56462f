"""Bank-signed verdicts (docs/protocol.md 10.1): coin-status and deposit-refusal verifiers, and
the wallet's use of them (a signed refusal, batched status by the bank's time)."""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from support.coinmint import Pki

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.protocol import KINDS
from ecash_tpm.protocol.errors import CoinStatusInvalidError, RefusalInvalidError
from ecash_tpm.protocol.status import (
    COIN_STATUS_KIND,
    MAX_STATUS_SERIALS,
    CoinState,
    CoinStatusStatement,
    DepositRefusal,
    sign_coin_status,
    sign_deposit_refusal,
)
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.pay import _signed_double_spend, fetch_status


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(Path(tmp_path_factory.mktemp("pki")), merchants=("shop-a",))
    yield p
    p.close()


def serial() -> bytes:
    return secrets.token_bytes(32)


def status_doc(pki: Pki, coins: Sequence[CoinState], *, bank_time: int = 1000) -> dict[str, Any]:
    signer = b64u_encode(b"bank")
    return sign_coin_status(
        pki.bank.key, bank="bank", bank_time=bank_time, coins=coins, signer=signer
    )


def test_both_kinds_are_in_the_table() -> None:
    assert KINDS["coin-status"].signer_role == "bank"
    assert KINDS["deposit-refusal"].verify == DepositRefusal.from_signed


def test_coin_status_round_trip(pki: Pki) -> None:
    a, b, c = serial(), serial(), serial()
    preq = secrets.token_bytes(32)
    coins = [
        CoinState(a, "unspent"),
        CoinState(b, "locked", locked_until=1300, merchant_id="shop-a", preq=preq),
        CoinState(
            c,
            "spent",
            merchant_id="shop-a",
            preq=preq,
            deposit_id="dep-1",
            deposited_at=990,
        ),
    ]
    st = CoinStatusStatement.from_signed(
        status_doc(pki, coins), pki.bank.cert_pem, pki.root_pem, serials=[c, a, b], bank_name="bank"
    )
    assert st.bank_time == 1000 and st.bank == "bank"
    assert st.by_serial() == {x.sigma: x for x in coins}


def test_coin_status_refusals(pki: Pki) -> None:
    a, b = serial(), serial()
    doc = status_doc(pki, [CoinState(a, "unspent")])
    cases: list[tuple[Any, str, list[bytes], str | None]] = [
        (doc, pki.bank.cert_pem, [a, b], None),  # not every serial asked about
        (doc, pki.bank.cert_pem, [b], None),  # another serial
        (doc, pki.bank.cert_pem, [a], "other-bank"),  # another bank's name
        (doc, pki.merchants["shop-a"].cert_pem, [a], None),  # a merchant certificate
        ({**doc, "body": {**doc["body"], "bank_time": 10**9}}, pki.bank.cert_pem, [a], None),
        (  # signed by a merchant key, presented with the bank's certificate
            sign_object(pki.merchants["shop-a"].key, COIN_STATUS_KIND, doc["body"]),
            pki.bank.cert_pem,
            [a],
            None,
        ),
        (status_doc(pki, [CoinState(a, "unspent")] * 2), pki.bank.cert_pem, [a, a], None),
        ({"kind": COIN_STATUS_KIND, "body": doc["body"]}, pki.bank.cert_pem, [a], None),
    ]
    for d, cert, asked, name in cases:
        with pytest.raises(CoinStatusInvalidError) as exc:
            CoinStatusStatement.from_signed(d, cert, pki.root_pem, serials=asked, bank_name=name)
        assert exc.value.code == "coin_status.invalid"
    bad_state = sign_object(
        pki.bank.key,
        COIN_STATUS_KIND,
        {"bank": "bank", "bank_time": 1, "coins": [{"sigma": b64u_encode(a), "state": "gone"}]},
    )
    with pytest.raises(CoinStatusInvalidError):
        CoinStatusStatement.from_signed(bad_state, pki.bank.cert_pem, pki.root_pem, serials=[a])
    no_time = sign_object(
        pki.bank.key,
        COIN_STATUS_KIND,
        {"bank": "bank", "coins": [{"sigma": b64u_encode(a), "state": "unspent"}]},
    )
    with pytest.raises(CoinStatusInvalidError):
        CoinStatusStatement.from_signed(no_time, pki.bank.cert_pem, pki.root_pem, serials=[a])


def refusal(pki: Pki, preq: bytes, serials: Sequence[bytes], *, key: Any = None) -> Any:
    return sign_deposit_refusal(
        key or pki.bank.key,
        code="bank.double_spend",
        bank="bank",
        bank_time=500,
        merchant_id="shop-a",
        preq=preq,
        serials=serials,
        detail={"serial": b64u_encode(serials[0]), "transcript_id": 7},
        signer="x",
    )


def test_deposit_refusal_verifies_only_for_this_request_and_coins(pki: Pki) -> None:
    preq, a, b = secrets.token_bytes(32), serial(), serial()
    doc = refusal(pki, preq, [a, b])
    got = DepositRefusal.from_signed(
        doc, pki.bank.cert_pem, pki.root_pem, preq=preq, serials=[b, a]
    )
    assert got.code == "bank.double_spend" and got.detail["transcript_id"] == 7
    for kwargs in (
        {"preq": secrets.token_bytes(32), "serials": [a, b]},
        {"preq": preq, "serials": [a]},
        {"preq": preq, "serials": [a, b, serial()]},
    ):
        with pytest.raises(RefusalInvalidError) as exc:
            DepositRefusal.from_signed(doc, pki.bank.cert_pem, pki.root_pem, **kwargs)
        assert exc.value.code == "refusal.invalid"
    forged = refusal(pki, preq, [a, b], key=pki.merchants["shop-a"].key)
    with pytest.raises(RefusalInvalidError):
        DepositRefusal.from_signed(
            forged, pki.merchants["shop-a"].cert_pem, pki.root_pem, preq=preq, serials=[a, b]
        )


def _ctx(pki: Pki) -> Any:
    return SimpleNamespace(
        root=pki.root_pem, bank_name="bank", crl=None, clock=lambda: int(time.time())
    )


def _refused(detail: dict[str, Any], code: str = "bank.double_spend") -> RemoteCallError:
    return RemoteCallError("refused", code=code, status=409, url="x", detail=detail)


def test_wallet_acts_only_on_a_bank_signed_refusal(pki: Pki) -> None:
    """Attack 1: a bare "double spend" claim, or one signed by the merchant, frees nothing."""
    preq, a, b = secrets.token_bytes(32), serial(), serial()
    chosen = [SimpleNamespace(sigma=a), SimpleNamespace(sigma=b)]
    signed = {"refusal": refusal(pki, preq, [a, b]), "cert": pki.bank.cert_pem}
    assert _signed_double_spend(_ctx(pki), preq, chosen, _refused(signed)) == a  # type: ignore[arg-type]
    merchant = pki.merchants["shop-a"]
    for detail, code in (
        ({"serial": b64u_encode(a), "transcript_id": 1}, "bank.double_spend"),
        (
            {"refusal": refusal(pki, preq, [a, b], key=merchant.key), "cert": merchant.cert_pem},
            "bank.double_spend",
        ),
        ({"refusal": refusal(pki, preq, [a]), "cert": pki.bank.cert_pem}, "bank.double_spend"),
        (signed, "bank.coin_locked"),
    ):
        got = _signed_double_spend(_ctx(pki), preq, chosen, _refused(detail, code))  # type: ignore[arg-type]
        assert got is None


class FakeBank:
    """A coin-status source signing with the test bank's key; times rise with each call."""

    def __init__(self, pki: Pki) -> None:
        self.pki = pki
        self.calls: list[int] = []

    def coin_statuses(self, serials: Sequence[bytes]) -> dict[str, Any]:
        self.calls.append(len(serials))
        coins = [CoinState(s, "unspent") for s in serials]
        doc = status_doc(self.pki, coins, bank_time=1000 + len(self.calls))
        return {"status": doc, "cert": self.pki.bank.cert_pem}


def test_batched_status_uses_the_earliest_bank_time(pki: Pki) -> None:
    serials = [serial() for _ in range(MAX_STATUS_SERIALS + 3)]
    bank = FakeBank(pki)
    st = fetch_status(bank, serials, root=pki.root_pem, bank_name="bank", now=int(time.time()))
    assert bank.calls == [MAX_STATUS_SERIALS, 3]
    assert st.bank_time == 1001 and len(st.coins) == len(serials)
    with pytest.raises(CoinStatusInvalidError):  # an answer without the bank certificate
        fetch_status(
            SimpleNamespace(coin_statuses=lambda s: {"status": None}),  # type: ignore[arg-type]
            serials[:1],
            root=pki.root_pem,
            bank_name="bank",
            now=int(time.time()),
        )
