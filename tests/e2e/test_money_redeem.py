"""Redeem to an account (issue 12 item 5, docs/protocol.md 9.4) against a running system: real
swtpm, every party over HTTPS. The customer withdraws and redeems part (CLI, session reused);
a lost answer is settled by recovery; a second account holder replaying the first one's redeem
request or coins changes nothing of the honest customer's money or coins."""

from __future__ import annotations

import json
import secrets
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest
from support.system import Customer, start_system

from ecash_tpm.cli import main
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.pay import PaymentOutcomeUnknownError
from ecash_tpm.wallet.redeem import redeem

pytestmark = pytest.mark.swtpm


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    code = main([*argv, "--json"])
    out = capsys.readouterr().out.strip().splitlines()[-1]
    result = json.loads(out)
    assert code == 0 and result["ok"] is True, result
    return dict(result)


def _no_prompt(question: str, *, secret: bool = False) -> str:
    raise AssertionError(f"the wallet asked {question!r}: it should have reused its session")


def test_withdraw_then_redeem_part_and_the_rest(
    swtpm: Any, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ECASH_TPM_PASSWORD", raising=False)
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        wallet = tmp_path / "wallet"
        s.join(dev, wallet)
        dev.close()  # the CLI opens the TPM itself
        pw = tmp_path / "pw"
        pw.write_text(s.customer.password)
        run(capsys, "wallet", "withdraw", "20", "--data", str(wallet), "--bank", s.bank_url,
            "--bank-name", "bank", "--root", str(s.root_path), "--password-file", str(pw),
            "--totp", s.customer.totp())  # fmt: skip
        assert s.customer_balance() == 980
        monkeypatch.setattr("ecash_tpm.cli.wallet_cmd.prompt", _no_prompt)  # session reused
        part = run(capsys, "wallet", "redeem", "7", "--data", str(wallet), "--tcti", swtpm.tcti)
        assert (part["amount"], part["currency"]) == (7, "EUR")
        assert (part["fee"], part["credited"]) == (0, 7)  # 4.2: no deposit fees configured
        assert part["fees"] == {"deposit": 0, "refresh": 0, "credited": 7, "customer_total": 7}
        assert sum(part["coins"]) == 7
        assert part["account"]["balance"] == s.customer_balance() == 987
        assert part["wallet"]["EUR"]["unspent"] == 13
        rest = run(capsys, "wallet", "redeem", "--all", "--data", str(wallet), "--tcti", swtpm.tcti)
        assert rest["amount"] == 13 and rest["wallet"].get("EUR", {}).get("unspent", 0) == 0
        assert s.customer_balance() == 1000 and s.outstanding() == 0
        history = run(capsys, "wallet", "history", "--data", str(wallet))["payments"]
        redeems = [p for p in history if p["merchant_id"] == "bank:redeem"]
        assert sorted(p["amount"] for p in redeems) == [7, 13]
        assert all(p["state"] == "paid" for p in redeems)
        s.bank.ledger_check()


class _Intercepting:
    """The honest wallet's bank link with a man in the middle: it keeps what the wallet sends,
    lets ``before`` act on it first, and can lose the bank's answer."""

    def __init__(self, bank: BankClient, before: Any = None, lose_answer: bool = False) -> None:
        self.bank = bank
        self.before = before
        self.lose_answer = lose_answer
        self.seen: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    def redeem_request(self, amount: int) -> dict[str, Any]:
        return self.bank.redeem_request(amount)

    def redeem(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        self.seen.append((dict(request), [dict(s) for s in spends]))
        if self.before is not None:
            self.before(dict(request), [dict(s) for s in spends])
        answer = self.bank.redeem(request, spends)
        if self.lose_answer:
            raise RemoteCallError("answer lost (test)", code="remote.timeout", status=None, url="")
        return answer


def test_a_replayed_redeem_changes_nothing_and_a_lost_answer_is_recovered(
    swtpm: Any, tmp_path: Path
) -> None:
    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        honest = s.open_wallet(dev, tmp_path / "wallet")
        honest.withdraw(16)
        assert s.customer_balance() == 984
        # a second account holder of the same bank, logged in over HTTPS
        mallory = Customer("mallory", "mallory-pw-" + secrets.token_hex(4), b"m" * 20, s.clock)
        s.bank.create_customer(
            mallory.account_id, mallory.password, mallory.totp_secret, initial_balance=50
        )
        thief = BankClient(s.bank_url, **s.link("bank"))
        with pytest.raises(EcashError) as info:  # no session: no redeem request
            thief.redeem_request(16)
        assert (info.value.code, getattr(info.value, "status", None)) == ("auth.invalid_token", 401)
        thief.login(mallory.account_id, mallory.password, mallory.totp())
        refusals: list[str] = []

        def replay(request: dict[str, Any], spends: list[dict[str, Any]]) -> None:
            for attempt in (
                lambda: thief.redeem(request, spends),  # the honest request, thief's session
                lambda: thief.redeem(thief.redeem_request(16)["request"], spends),  # own request
            ):
                with pytest.raises(EcashError) as info:
                    attempt()
                refusals.append(info.value.code)

        link = _Intercepting(honest.bank(), before=replay)
        done = redeem(
            honest.spending(), link, account_id=s.customer.account_id, amount=16, currency="EUR"
        )
        assert refusals == ["bank.redeem_wrong_account", "bank.bad_proof"]
        assert done.amount == 16 and s.customer_balance() == 1000
        assert s.bank.account("mallory").balance == 50  # the thief got nothing
        assert honest.balance() == 0 and s.outstanding() == 0
        with pytest.raises(EcashError) as info:  # and the booked coins cannot be taken again
            thief.redeem(thief.redeem_request(16)["request"], link.seen[0][1])
        assert info.value.code == "bank.bad_proof"
        assert s.bank.double_spend_reports() == []  # nobody double spent: no evidence

        # a lost answer: coins pending, recovery reads the bank-signed status, booked once
        honest.withdraw(8)
        lost = _Intercepting(honest.bank(), lose_answer=True)
        with pytest.raises(PaymentOutcomeUnknownError):
            redeem(honest.spending(), lost, account_id=s.customer.account_id, amount=8,
                   currency="EUR")  # fmt: skip
        assert s.customer_balance() == 1000 and honest.balance() == 0
        assert honest.store.balance()["EUR"]["pending"] == 8
        (outcome,) = honest.recover()
        assert outcome.outcome == "spent"
        assert honest.store.balance().get("EUR", {}).get("pending", 0) == 0
        # the retry of the same request and coins gets the same receipt, not a second credit
        again = honest.bank().redeem(*lost.seen[0])
        assert again["receipt"]["body"]["amount"] == 8 and s.customer_balance() == 1000
        s.bank.ledger_check()
        thief.close()


class _Forging:
    """A man in the middle that never forwards the redeem and answers a refusal: bare, or with
    a ``deposit-refusal`` signed by a key of its own."""

    def __init__(self, bank: BankClient, refusal: dict[str, Any] | None) -> None:
        self.bank = bank
        self.refusal = refusal

    def redeem_request(self, amount: int) -> dict[str, Any]:
        return self.bank.redeem_request(amount)

    def redeem(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        detail: dict[str, Any] = {"serial": spends[0]["coin"]["sigma"]}
        if self.refusal is not None:
            detail |= {"refusal": self.refusal, "cert": "not a bank certificate"}
        raise RemoteCallError(
            "coin already spent", code="bank.double_spend", status=409, url="", detail=detail
        )


def test_unsigned_refusals_free_nothing_and_a_redeemed_coin_paid_again_is_opened(
    swtpm: Any, tmp_path: Path
) -> None:
    """10.1: the wallet acts only on the bank's signed word (a forged 409 leaves the coins
    pending; the bank-signed status releases them after the deadline + grace). 12.1: a coin
    redeemed and then paid to a shop is reported, opened and its member revoked, the redeem's
    transcript serving as the first spend."""
    from ecash_tpm.crypto.groupsig import make_spend_proof
    from ecash_tpm.crypto.signing import PartyKey, canonical_digest
    from ecash_tpm.protocol.coins import Spend
    from ecash_tpm.protocol.status import sign_deposit_refusal
    from ecash_tpm.wallet.pay import RECOVERY_GRACE_S, PaymentRefusedError

    with TpmDevice(swtpm.tcti) as dev, start_system(tmp_path / "sys", swtpm=swtpm, tpm=dev) as s:
        honest = s.open_wallet(dev, tmp_path / "wallet")
        honest.withdraw(4)
        forged = sign_deposit_refusal(
            PartyKey.generate(), code="bank.double_spend", bank="bank", bank_time=s.clock(),
            merchant_id="bank:redeem", preq=b"\0" * 32, serials=[], detail={}, signer="x",
        )  # fmt: skip
        for refusal in (None, forged):
            with pytest.raises(PaymentRefusedError):
                redeem(honest.spending(), _Forging(honest.bank(), refusal),
                       account_id=s.customer.account_id, amount=4, currency="EUR")  # fmt: skip
            assert honest.store.balance()["EUR"]["pending"] == 4  # nothing freed, nothing spent
            s.clock.advance(600 + RECOVERY_GRACE_S + 1)  # the bank's signed "unspent" frees them
            (outcome,) = honest.recover()
            assert outcome.outcome == "released" and honest.balance() == 4
        assert s.customer_balance() == 996

        coins = [hc.coin for hc in honest.store.coins("unspent")]
        redeem(honest.spending(), honest.bank(), account_id=s.customer.account_id, amount=4,
               currency="EUR")  # fmt: skip
        assert s.customer_balance() == 1000
        offer = honest.request(4, "shop-1")
        preq = canonical_digest(offer["request"]["body"])
        spends = [
            Spend(
                c,
                make_spend_proof(
                    honest.signer,
                    hop=honest.membership.opener_public,
                    preq=preq,
                    keyset_id=c.keyset_id,
                    epoch=c.epoch,
                    sigma=c.sigma,
                    coin=c.credential,
                ),  # fmt: skip
            ).to_dict()
            for c in coins
        ]
        with pytest.raises(RemoteCallError) as info:
            s.merchant_client("shop-1").pay(offer["request"], spends)
        assert (info.value.status, info.value.code) == (409, "bank.double_spend")
        assert "redeem_request_id" in info.value.detail
        case = s.supervision.case(coins[0].sigma)
        assert case is not None and case.member_id == honest.membership.member_id
        with pytest.raises(EcashError) as exc:  # the issuer re-verified the evidence and revoked
            honest.withdraw(1)
        assert exc.value.code == "bank.member_not_active"
        assert s.merchant_balance("shop-1") == 0 and s.customer_balance() == 1000
        s.bank.ledger_check()
