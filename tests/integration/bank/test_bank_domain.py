"""The bank without HTTP: withdrawals, deposits, double spends, lock period, blacklists, ledger.

Money tests marked with the ``db_url`` fixture run on SQLite files and, when PostgreSQL 15 is
installed, on a throw-away PostgreSQL server (the fixture of
tests/integration/storage/test_storage.py). Every test ends with ``ledger_check()``: whatever
happened, the ledger must balance.
"""

from __future__ import annotations

import json
import secrets
import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from support.bankworld import PASSWORD, TOTP_SECRET, BankWorld, make_world, refused, test_policy
from support.coinmint import KeyPool, Pki, TestIssuer, prepare_coin

from ecash_tpm.bank import errors as E
from ecash_tpm.crypto.bn256 import G
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import RandomizedCredential, SpendProofError
from ecash_tpm.crypto.signing import canonical_digest, sign_object
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.protocol import errors as P
from ecash_tpm.protocol.coins import LIFT_KIND, Spend
from ecash_tpm.protocol.payments import ReceiptBody
from ecash_tpm.storage import sqlite_url


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(6)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return sqlite_url(tmp_path / "bank.db")
    url: str = request.getfixturevalue("pg_url")
    return url


def _world(db_url: str, tmp_path: Path, pki: Pki, keys: KeyPool, **policy: Any) -> BankWorld:
    return make_world(
        db_url=db_url, data_dir=tmp_path, pki=pki, keys=keys, policy=test_policy(**policy)
    )


@pytest.fixture
def world(db_url: str, tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[BankWorld]:
    """A bank on both backends; the ledger is checked after every test."""
    w = _world(db_url, tmp_path, pki, keys)
    yield w
    w.bank.ledger_check()
    assert w.bank.merchant_blacklist.audit() == []
    w.db.close()


@pytest.fixture
def sworld(tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[BankWorld]:
    """A bank on SQLite only (behaviour that does not depend on the backend)."""
    w = _world(sqlite_url(tmp_path / "bank.db"), tmp_path, pki, keys)
    yield w
    w.bank.ledger_check()
    assert w.bank.merchant_blacklist.audit() == []
    w.db.close()


_COUNTS = {
    "ledger_txn": "SELECT COUNT(*) AS n FROM ledger_txn",
    "ledger_entry": "SELECT COUNT(*) AS n FROM ledger_entry",
    "withdrawal": "SELECT COUNT(*) AS n FROM withdrawal",
    "withdrawal_item": "SELECT COUNT(*) AS n FROM withdrawal_item",
}


def _count(world: BankWorld, table: str) -> int:
    with world.db.read() as tx:
        return int(tx.fetchval(_COUNTS[table]) or 0)


# --- keysets -----------------------------------------------------------------------------------


def test_keysets_are_signed_and_commit_to_their_key(sworld: BankWorld) -> None:
    from ecash_tpm.protocol.errors import KeysetDescriptorError
    from ecash_tpm.protocol.keysets import Keyset

    info = sworld.bank.keysets_info()
    assert len(info.keysets) == 4
    bank_key = sworld.bank.bank_key.public_key
    parsed = [Keyset.from_signed(d, bank_key) for d in info.keysets]
    assert sorted(k.value for k in parsed) == [1, 2, 5, 10]
    forged = json.loads(json.dumps(info.keysets[0]))
    forged["body"]["value"] = 1000
    with pytest.raises(Exception, match="signature"):
        Keyset.from_signed(forged, bank_key)
    body = dict(info.keysets[0]["body"], value=1000)
    with pytest.raises(KeysetDescriptorError):
        Keyset.from_descriptor(body)
    key_files = list((sworld.bank.keysets._keys_dir).glob("*.pem"))
    assert len(key_files) == 4
    assert all(f.stat().st_mode & 0o777 == 0o600 for f in key_files)
    assert sworld.bank.keysets._keys_dir.stat().st_mode & 0o777 == 0o700


def test_new_bank_key_re_signs_the_published_keysets(sworld: BankWorld, pki: Pki) -> None:
    """After the bank's key is replaced, its keysets are published under the new key."""
    from ecash_tpm.bank.domain import BankDomain
    from ecash_tpm.pki import load_certificate
    from ecash_tpm.protocol.keysets import Keyset

    old = sworld.bank
    before = {d["body"]["keyset_id"] for d in old.keysets_info().keysets}
    new_bank = pki.certify("bank", "bank", register=False)
    reopened = BankDomain(
        sworld.db,
        bank_key=new_bank.key,
        bank_cert=load_certificate(new_bank.cert_pem),
        central_bank_root=load_certificate(pki.root_pem),
        keys_dir=old.keysets._keys_dir,
        issuer_secrets=sworld.issuer,
        membership=sworld.issuer,
        reporter=sworld.reporter,
        opener_public=sworld.issuer.hop,
        policy=old.policy,
        clock=sworld.clock,
    )
    docs = reopened.keysets_info().keysets
    assert {d["body"]["keyset_id"] for d in docs} == before  # same keysets, same RSA keys
    for doc in docs:
        Keyset.from_signed(doc, new_bank.key.public_key)
    assert reopened.keysets.refresh_signatures() == 0  # done once, at start-up


def test_forged_descriptor_in_the_database_is_never_re_signed(sworld: BankWorld, pki: Pki) -> None:
    """Write access to the database must not buy the bank's signature on a keyset."""
    from ecash_tpm.bank.domain import BankDomain
    from ecash_tpm.errors import StorageError
    from ecash_tpm.pki import load_certificate
    from ecash_tpm.protocol.keysets import keyset_id_for

    with sworld.db.read() as tx:
        row = tx.fetchone("SELECT keyset_id, descriptor FROM keyset WHERE value = 1")
    doc = json.loads(row["descriptor"])
    body = {k: v for k, v in doc["body"].items() if k != "keyset_id"}
    body["value"] = 1000  # a coin of value 1 would now count 1000
    forged = {**doc, "body": {**body, "keyset_id": b64u_encode(keyset_id_for(body))}}
    with sworld.db.transaction() as tx:
        tx.execute(
            "UPDATE keyset SET descriptor = :d WHERE keyset_id = :k",
            {"d": json.dumps(forged), "k": row["keyset_id"]},
        )
    with pytest.raises(StorageError, match="refusing to re-sign"):
        BankDomain(
            sworld.db,
            bank_key=sworld.bank.bank_key,
            bank_cert=load_certificate(pki.bank.cert_pem),
            central_bank_root=load_certificate(pki.root_pem),
            keys_dir=sworld.bank.keysets._keys_dir,
            issuer_secrets=sworld.issuer,
            membership=sworld.issuer,
            reporter=sworld.reporter,
            opener_public=sworld.issuer.hop,
            policy=sworld.bank.policy,
            clock=sworld.clock,
        )


def test_rotation_keeps_old_deposit_window(sworld: BankWorld) -> None:
    member = sworld.customer("alice", 50)
    old_coins = sworld.withdraw(member, 10)
    old_keyset = sworld.keyset(10)
    sworld.clock.advance(sworld.bank.policy.withdraw_period_s + 1)
    with refused(P.KeysetExpiredError, "bank.keyset_expired"):
        sworld.bank.withdraw("alice", "req-expired1", [prepare_coin(member, old_keyset).item])
    assert len(sworld.bank.ensure_keysets()) == 4  # every denomination got a new keyset
    assert sworld.bank.ensure_keysets() == []
    new_coins = sworld.withdraw(member, 10)
    assert new_coins[0].keyset_id != old_coins[0].keyset_id
    request = sworld.request("shop-a", 20)
    receipt = sworld.deposit(
        "shop-a", request, sworld.spends(member, old_coins + new_coins, request)
    )
    assert receipt["body"]["amount"] == 20


# --- withdrawal ----------------------------------------------------------------------------------


def test_withdraw_retry_returns_same_signatures_and_debits_once(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    pending = [prepare_coin(member, world.keyset(v)) for v in (10, 5, 2)]
    items = [p.item for p in pending]
    first = world.bank.withdraw("alice", "req-00000001", items)
    # the answer was "lost": the wallet retries with the same request id and items
    second = world.bank.withdraw("alice", "req-00000001", items)
    assert first.blind_signatures == second.blind_signatures
    coins = [p.finalize(s) for p, s in zip(pending, second.blind_signatures, strict=True)]
    assert len(coins) == 3
    assert world.bank.account("alice").balance == 83
    assert _count(world, "withdrawal") == 1
    assert _count(world, "withdrawal_item") == 3


def test_withdraw_same_request_id_other_items_is_conflict(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    items = [prepare_coin(member, world.keyset(10)).item]
    world.bank.withdraw("alice", "req-00000002", items)
    other = [prepare_coin(member, world.keyset(10)).item]
    with pytest.raises(E.WithdrawConflictError) as err:
        world.bank.withdraw("alice", "req-00000002", other)
    assert err.value.http_status == 409
    world.customer("bob", 100)
    with pytest.raises(E.WithdrawConflictError):  # another account cannot reuse the id either
        world.bank.withdraw("bob", "req-00000002", items)
    assert world.bank.account("alice").balance == 90
    assert world.bank.account("bob").balance == 100


def test_insufficient_funds_writes_nothing(world: BankWorld) -> None:
    member = world.customer("alice", 7)
    before = {t: _count(world, t) for t in ("ledger_txn", "ledger_entry", "withdrawal")}
    items = [prepare_coin(member, world.keyset(v)).item for v in (5, 2, 1)]
    with pytest.raises(E.InsufficientFundsError) as err:
        world.bank.withdraw("alice", "req-00000003", items)
    assert err.value.detail == {"balance": 7, "amount": 8}
    assert {t: _count(world, t) for t in before} == before
    assert world.bank.account("alice").balance == 7


def test_revoked_member_cannot_withdraw(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    world.issuer.revoke("alice")
    with pytest.raises(E.MemberNotActiveError):
        world.bank.withdraw("alice", "req-00000004", [prepare_coin(member, world.keyset(1)).item])
    assert world.bank.account("alice").balance == 100


def test_withdraw_input_checks(sworld: BankWorld) -> None:
    member = sworld.customer("alice", 100)
    item = prepare_coin(member, sworld.keyset(1)).item
    with pytest.raises(InputError):
        sworld.bank.withdraw("alice", "short", [item])
    with pytest.raises(InputError):
        sworld.bank.withdraw("alice", "req-00000005", [])
    with pytest.raises(InputError):
        sworld.bank.withdraw("alice", "req-00000005", [(item[0], item[1][:-1])])
    with refused(P.UnknownKeysetError, "bank.unknown_keyset"):
        sworld.bank.withdraw("alice", "req-00000005", [(b"\x00" * 16, item[1])])


def test_concurrent_withdrawals_never_overdraw(world: BankWorld) -> None:
    member = world.customer("alice", 30)
    results: list[Any] = []

    def run(i: int) -> None:
        try:
            world.bank.withdraw(
                "alice", f"req-conc-{i:04d}", [prepare_coin(member, world.keyset(10)).item]
            )
            results.append("ok")
        except E.InsufficientFundsError:
            results.append("funds")

    threads = [threading.Thread(target=run, args=(i,)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(results) == ["funds"] * 3 + ["ok"] * 3
    assert world.bank.account("alice").balance == 0


# --- deposit -------------------------------------------------------------------------------------


def test_deposit_receipt_and_idempotent_retry(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 17)
    request = world.request("shop-a", 17)
    signed = world.signed_deposit("shop-a", request, world.spends(member, coins, request), "dep-1")
    cert = world.pki.merchants["shop-a"].cert_pem
    receipt = world.bank.deposit(signed, cert)
    body = ReceiptBody.from_signed(receipt, world.pki.bank.cert_pem, world.pki.root_pem)
    assert body.amount == 17 and body.merchant_id == "shop-a"
    assert body.preq == canonical_digest(request["body"])
    assert len(body.serials) == len(coins) == len(body.transcript_ids)
    assert world.bank.deposit(signed, cert) == receipt  # identical retry, same receipt
    assert world.bank.account("shop-a").balance == 17
    for coin in coins:
        assert world.bank.coin_status(coin.sigma).state == "spent"
    other = world.signed_deposit("shop-a", request, world.spends(member, coins, request), "dep-1")
    with pytest.raises(E.DepositConflictError):  # same id, other content (fresh proofs)
        world.bank.deposit(other, cert)
    report = world.bank.ledger_check()
    assert report["merchants_total"] == 17 and report["customers_total"] == 83


def test_same_request_deposited_twice_is_refused_but_not_reported(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 5)
    request = world.request("shop-a", 5)
    spends = world.spends(member, coins, request)
    world.deposit("shop-a", request, spends, "dep-a1")
    with pytest.raises(E.DoubleSpendError) as err:
        world.deposit("shop-a", request, spends, "dep-a2")  # a merchant's duplicate
    assert err.value.detail["serial"]
    assert isinstance(err.value.detail["transcript_id"], int)
    assert world.reporter.reports == []  # same preq: no evidence against the customer


def test_double_spend_to_two_merchants_is_reported_and_opens(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    coin = world.withdraw(member, 10)
    req_a, req_b = world.request("shop-a", 10), world.request("shop-b", 10)
    world.deposit("shop-a", req_a, world.spends(member, coin, req_a))
    with pytest.raises(E.DoubleSpendError):
        world.deposit("shop-b", req_b, world.spends(member, coin, req_b))
    assert len(world.reporter.reports) == 1
    first, second = world.reporter.reports[0]
    assert first["kind"] == second["kind"] == "deposit-transcript"
    assert first["body"]["sigma"] == second["body"]["sigma"]
    t0s = {world.issuer.open_t0(t["body"]["spend"]["proof"]) for t in (first, second)}
    assert t0s == {member.t0}
    assert world.bank.double_spend_reports()[0].status == "sent"


# --- refusals of bad coins ---------------------------------------------------------------


def _tamper(spend: Spend, what: str, world: BankWorld) -> Spend:
    coin, proof = spend.coin, spend.proof
    if what == "signature":
        sig = bytearray(coin.signature)
        sig[-1] ^= 1
        return Spend(replace(coin, signature=bytes(sig)), proof)
    if what == "serial":
        return Spend(replace(coin, sigma=secrets.token_bytes(32)), proof)
    if what == "credential":
        cred = coin.credential
        return Spend(
            replace(coin, credential=RandomizedCredential(cred.R, cred.S, cred.T, G)), proof
        )
    if what == "proof":
        return Spend(coin, replace(proof, st=(proof.st + 1)))
    raise AssertionError(what)


@pytest.mark.parametrize(
    ("what", "code"),
    [
        ("signature", "bank.bad_coin_signature"),
        ("serial", "bank.bad_coin_signature"),
        ("credential", "bank.bad_coin_signature"),
        ("proof", "bank.bad_proof"),
    ],
)
def test_tampered_coin_is_refused(sworld: BankWorld, what: str, code: str) -> None:
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 2)
    request = sworld.request("shop-a", 2)
    spend = _tamper(sworld.spends(member, coins, request)[0], what, sworld)
    with pytest.raises(EcashError) as info:
        sworld.deposit("shop-a", request, [spend])
    assert info.value.code == code
    failures = sworld.bank.merchant_blacklist.failures("merchant:shop-a")
    assert [f.code for f in failures] == [code]
    assert sworld.bank.coin_status(coins[0].sigma).state == "unspent"


def test_forged_credential_with_valid_bank_signature_is_refused(
    sworld: BankWorld, pki: Pki
) -> None:
    """A wallet with a credential from the wrong issuer key gets a real blind signature (the
    bank cannot see the coin) but the designated credential check catches it at deposit."""
    sworld.customer("mallory", 100)
    rogue = TestIssuer().enroll("mallory")  # credential under another (x, y)
    coins = sworld.withdraw(rogue, 5)
    request = sworld.request("shop-a", 5)
    with pytest.raises(E.BadCredentialError):
        sworld.deposit("shop-a", request, sworld.spends(rogue, coins, request))
    unknown_epoch = TestIssuer(epochs=(7,)).enroll("mallory", epoch=7)
    coins = sworld.withdraw(unknown_epoch, 5)
    with pytest.raises(E.BadCredentialError):
        sworld.deposit("shop-a", request, sworld.spends(unknown_epoch, coins, request))


def test_copied_wallet_without_its_tpm_cannot_spend(sworld: BankWorld) -> None:
    from ecash_tpm.crypto.softdaa import SoftwareDaaSigner

    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 5)
    thief = replace(member, signer=SoftwareDaaSigner())  # wallet file copied, TPM not
    request = sworld.request("shop-a", 5)
    preq = canonical_digest(request["body"])
    from ecash_tpm.crypto.groupsig import make_spend_proof

    proof = make_spend_proof(
        thief.signer,
        hop=sworld.issuer.hop,
        preq=preq,
        keyset_id=coins[0].keyset_id,
        epoch=coins[0].epoch,
        sigma=coins[0].sigma,
        coin=coins[0].credential,
        self_check=False,
    )
    with refused(SpendProofError, "bank.bad_proof"):
        sworld.deposit("shop-a", request, [Spend(coins[0], proof)])


def test_replayed_spend_proof_is_refused(sworld: BankWorld) -> None:
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 5)
    req_a = sworld.request("shop-a", 5)
    spends_a = sworld.spends(member, coins, req_a)
    # the same merchant presents the proof with another of its requests
    req_a2 = sworld.request("shop-a", 5)
    with refused(SpendProofError, "bank.bad_proof"):
        sworld.deposit("shop-a", req_a2, spends_a)
    # another merchant presents shop-a's request and proof: not signed by its key
    with pytest.raises(E.WrongKeyError):
        sworld.deposit("shop-b", req_a, spends_a)
    # ... and cannot re-sign shop-a's request body either (it names shop-a)
    resigned = sign_object(sworld.pki.merchants["shop-b"].key, "payment-request", req_a["body"])
    with refused(P.RequestMismatchError, "bank.request_mismatch"):
        sworld.deposit("shop-b", resigned, spends_a)
    # another merchant with its own request but shop-a's proof
    req_b = sworld.request("shop-b", 5)
    with refused(SpendProofError, "bank.bad_proof"):
        sworld.deposit("shop-b", req_b, spends_a)
    # the honest deposit still works afterwards
    sworld.deposit("shop-a", req_a, spends_a)


def test_expired_keyset_coin_is_refused(sworld: BankWorld) -> None:
    member = sworld.customer("alice", 100)
    now = sworld.clock()
    short = sworld.bank.keysets.create(
        value=3,
        currency="EUR",
        withdraw_from=now,
        withdraw_until=now + 100,
        deposit_until=now + 200,
        now=now,
    )
    from support.coinmint import withdraw_coins

    coins = withdraw_coins(
        lambda rid, items: sworld.bank.withdraw("alice", rid, items).blind_signatures,
        member,
        [short],
    )
    sworld.clock.advance(201)
    request = sworld.request("shop-a", 3)
    with refused(P.KeysetExpiredError, "bank.keyset_expired"):
        sworld.deposit("shop-a", request, sworld.spends(member, coins, request))
    assert sworld.bank.merchant_blacklist.failures("merchant:shop-a") == []  # not counted


def test_request_checks(sworld: BankWorld) -> None:
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 5)
    late = sworld.request("shop-a", 5, deadline_in=10)
    spends = sworld.spends(member, coins, late)
    sworld.clock.advance(11)
    with refused(P.RequestExpiredError, "bank.request_expired"):
        sworld.deposit("shop-a", late, spends)
    wrong_amount = sworld.request("shop-a", 6)
    with refused(P.RequestMismatchError, "bank.request_mismatch"):
        sworld.deposit("shop-a", wrong_amount, sworld.spends(member, coins, wrong_amount))
    request = sworld.request("shop-a", 10)
    # the same coin twice in one deposit
    with refused(P.RequestMismatchError, "bank.request_mismatch"):
        sworld.deposit("shop-a", request, sworld.spends(member, coins + coins, request))


def test_reservation_makes_a_late_deposit_valid(sworld: BankWorld) -> None:
    """The deadline is checked when the bank first verifies the request (the reservation)."""
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 5)
    request = sworld.request("shop-a", 5, deadline_in=10)
    spends = sworld.spends(member, coins, request)
    sworld.reserve("shop-a", request, spends)
    sworld.clock.advance(30)
    sworld.deposit("shop-a", request, spends)


def test_expired_reservation_does_not_extend_the_deadline(sworld: BankWorld) -> None:
    """A merchant that reserves and sits on the coins past T and the deadline is refused.

    Otherwise the customer, told by the bank that the coins are unspent after the deadline,
    spends them elsewhere, and the late deposit turns that into a "double spend" that opens
    and revokes an honest member.
    """
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 5)
    request = sworld.request("shop-a", 5, deadline_in=10)
    spends = sworld.spends(member, coins, request)
    held = sworld.reserve("shop-a", request, spends)
    sworld.clock.advance(held.locked_until - sworld.clock() + 1)
    assert sworld.bank.coin_status(coins[0].sigma).state == "unspent"
    with refused(P.RequestExpiredError, "bank.request_expired"):
        sworld.deposit("shop-a", request, spends)
    elsewhere = sworld.request("shop-b", 5)
    sworld.deposit("shop-b", elsewhere, sworld.spends(member, coins, elsewhere))
    assert sworld.reporter.reports == []


def test_merchant_authentication(sworld: BankWorld, pki: Pki) -> None:
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 5)
    request = sworld.request("shop-a", 5)
    signed = sworld.signed_deposit("shop-a", request, sworld.spends(member, coins, request))
    with pytest.raises(Exception, match="another party"):  # shop-b's cert is not shop-a's
        sworld.bank.deposit(signed, pki.merchants["shop-b"].cert_pem)
    rekeyed = pki.certify("merchant", "shop-a", register=False)  # valid cert, other key
    with pytest.raises(E.MerchantKeyMismatchError):
        sworld.bank.deposit(signed, rekeyed.cert_pem)
    forged = dict(signed, signature=sworld.signed_deposit("shop-b", request, [])["signature"])
    with pytest.raises(E.MerchantSignatureError):
        sworld.bank.deposit(forged, pki.merchants["shop-a"].cert_pem)
    stranger = pki.certify("merchant", "shop-unknown", register=False)
    with pytest.raises(E.UnknownMerchantError):
        sworld.bank.deposit(
            dict(signed, body=dict(signed["body"], merchant_id="shop-unknown")), stranger.cert_pem
        )
    with pytest.raises(Exception, match="role"):  # a bank certificate is not a merchant's
        sworld.bank.deposit(signed, pki.bank.cert_pem)
    # none of that counted against shop-a: forged envelopes could come from anyone
    assert sworld.bank.merchant_blacklist.failures("merchant:shop-a") == []
    sworld.bank.deposit(signed, pki.merchants["shop-a"].cert_pem)


# --- lock period T -------------------------------------------------------------------------------


def test_reserve_holds_coin_against_other_merchant_until_t(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 10)
    req_a, req_b = world.request("shop-a", 10), world.request("shop-b", 10)
    spends_a, spends_b = world.spends(member, coins, req_a), world.spends(member, coins, req_b)
    held = world.reserve("shop-a", req_a, spends_a)
    assert held.locked_until == world.clock() + 60
    assert world.bank.coin_status(coins[0].sigma).state == "locked"
    world.clock.advance(20)
    with pytest.raises(E.CoinLockedError) as err:
        world.deposit("shop-b", req_b, spends_b)
    assert err.value.detail["retry_after"] == 40
    with pytest.raises(E.CoinLockedError):
        world.reserve("shop-b", req_b, spends_b)
    assert world.reserve("shop-a", req_a, spends_a).locked_until == held.locked_until
    world.clock.advance(40)  # T has passed: the lock is released
    assert world.bank.coin_status(coins[0].sigma).state == "unspent"
    world.deposit("shop-b", req_b, spends_b)
    with pytest.raises(E.DoubleSpendError):
        world.deposit("shop-a", req_a, spends_a)
    assert len(world.reporter.reports) == 1


def test_holder_deposit_finalizes(world: BankWorld) -> None:
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 3)
    request = world.request("shop-a", 3)
    spends = world.spends(member, coins, request)
    world.reserve("shop-a", request, spends)
    world.deposit("shop-a", request, spends)
    assert {world.bank.coin_status(c.sigma).state for c in coins} == {"spent"}
    with world.db.read() as tx:
        assert tx.fetchval("SELECT COUNT(*) AS n FROM coin_lock") == 0


# --- blacklists ----------------------------------------------------------------------------------


def test_bad_deposits_blacklist_the_merchant_until_lifted(world: BankWorld, pki: Pki) -> None:
    member = world.customer("alice", 100)
    coins = world.withdraw(member, 1)
    request = world.request("shop-b", 1)
    good = world.spends(member, coins, request)
    bad = [_tamper(good[0], "proof", world)]
    for _ in range(3):  # threshold 3 within the window
        with refused(SpendProofError, "bank.bad_proof"):
            world.deposit("shop-b", request, bad)
    with pytest.raises(E.MerchantBlacklistedError) as err:
        world.deposit("shop-b", request, good)  # even a valid deposit is refused now
    assert err.value.http_status == 403
    (entry,) = world.bank.blacklist_entries()
    assert entry.subject == "merchant:shop-b" and len(entry.failure_ids) == 3
    assert world.bank.merchant_blacklist.audit() == []

    lift = sign_object(
        pki.supervision.key,
        LIFT_KIND,
        {"subject": "merchant:shop-b", "entry_id": entry.entry_id, "reason": "key fixed"},
    )
    with pytest.raises(Exception, match="role"):  # a merchant cannot lift its own entry
        world.bank.lift_blacklist_signed(lift, pki.merchants["shop-b"].cert_pem)
    lifted = world.bank.lift_blacklist_signed(lift, pki.supervision.cert_pem)
    assert lifted.lifted_by == "supervision:supervision"
    assert lifted.lift_reason == "key fixed"
    with pytest.raises(E.NotBlacklistedError):  # a replayed order lifts nothing more
        world.bank.lift_blacklist_signed(lift, pki.supervision.cert_pem)
    world.deposit("shop-b", request, good)
    # failures before the lift no longer count: one new failure does not re-list
    coins2 = world.withdraw(member, 1)
    req2 = world.request("shop-b", 1)
    with refused(SpendProofError, "bank.bad_proof"):
        world.deposit(
            "shop-b", req2, [_tamper(world.spends(member, coins2, req2)[0], "proof", world)]
        )
    assert world.bank.merchant_blacklist.active_entry("merchant:shop-b") is None


def test_failures_outside_the_window_do_not_blacklist(sworld: BankWorld) -> None:
    member = sworld.customer("alice", 100)
    coins = sworld.withdraw(member, 1)
    for _ in range(4):  # a fresh request each time: deadlines are bounded (bank.deadline_too_far)
        request = sworld.request("shop-b", 1)
        bad = [_tamper(sworld.spends(member, coins, request)[0], "proof", sworld)]
        with refused(SpendProofError, "bank.bad_proof"):
            sworld.deposit("shop-b", request, bad)
        sworld.clock.advance(301)  # window 600 s: never 3 failures inside one window
    assert sworld.bank.merchant_blacklist.active_entry("merchant:shop-b") is None


def _totp(secret: bytes, now: int) -> str:
    return TOTP(secret, 6, hashes.SHA1(), 30).generate(now).decode()  # noqa: S303


def test_login_token_and_totp_replay(world: BankWorld) -> None:
    world.customer("alice", 100)
    code = _totp(TOTP_SECRET, world.clock())
    session = world.bank.login("alice", PASSWORD, code)
    assert world.bank.authenticate(session.token) == "alice"
    with pytest.raises(E.TotpReusedError) as reused:  # RFC 6238 §5.2: a code works once
        world.bank.login("alice", PASSWORD, code)
    assert reused.value.code == "auth.totp_reused" and reused.value.http_status == 401
    assert world.bank.login_blacklist.failures("login:alice") == []  # ... and is no failure
    world.clock.advance(30)
    world.bank.login("alice", PASSWORD, _totp(TOTP_SECRET, world.clock()))
    world.clock.advance(world.bank.policy.token_ttl_s)
    with pytest.raises(E.InvalidTokenError):
        world.bank.authenticate(session.token)
    with pytest.raises(E.InvalidTokenError):
        world.bank.authenticate("not-a-token")


def test_login_lockout_after_bad_passwords_and_totp(world: BankWorld) -> None:
    world.customer("alice", 100)
    with pytest.raises(E.InvalidCredentialsError):
        world.bank.login("alice", "wrong password", _totp(TOTP_SECRET, world.clock()))
    with pytest.raises(E.InvalidCredentialsError):
        world.bank.login("alice", PASSWORD, "000000")
    with pytest.raises(E.InvalidCredentialsError):
        world.bank.login("alice", "another guess", "123456")
    with pytest.raises(E.LoginLockedError) as err:  # right password, still refused
        world.bank.login("alice", PASSWORD, _totp(TOTP_SECRET, world.clock()))
    assert err.value.code == "auth.locked" and err.value.http_status == 429
    assert 0 < err.value.detail["retry_after"] <= world.bank.policy.login_window_s
    reasons = [f.reason for f in world.bank.login_blacklist.failures("login:alice")]
    assert reasons == ["bad_password", "bad_totp", "bad_password"]
    assert world.bank.login_blacklist.entries() == []  # the lock-out expires, no blacklist
    world.clock.advance(world.bank.policy.login_window_s)
    world.bank.login("alice", PASSWORD, _totp(TOTP_SECRET, world.clock()))
    with pytest.raises(E.InvalidCredentialsError):
        world.bank.login("nobody", PASSWORD, "123456")


# --- concurrency ---------------------------------------------------------------------------------


def test_concurrent_double_spend_domain(world: BankWorld) -> None:
    """12 threads deposit one coin via two merchants: one credit, the rest refused."""
    member = world.customer("alice", 100)
    coin = world.withdraw(member, 10)
    req = {m: world.request(m, 10) for m in ("shop-a", "shop-b")}
    spends = {m: world.spends(member, coin, req[m]) for m in req}
    outcomes: list[str] = []
    lock = threading.Lock()

    def run(i: int) -> None:
        m = ("shop-a", "shop-b")[i % 2]
        try:
            world.deposit(m, req[m], spends[m], f"dep-{i}")
            r = "ok"
        except (E.DoubleSpendError, E.CoinLockedError) as exc:
            r = exc.code
        with lock:
            outcomes.append(r)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert outcomes.count("ok") == 1
    assert outcomes.count("bank.double_spend") == 11
    assert len(world.reporter.reports) == 1
    assert world.bank.ledger_check()["merchants_total"] == 10


def test_failed_report_is_recorded_and_retried(sworld: BankWorld) -> None:
    sworld.reporter.fail = True
    member = sworld.customer("alice", 100)
    coin = sworld.withdraw(member, 2)
    req_a, req_b = sworld.request("shop-a", 2), sworld.request("shop-b", 2)
    sworld.deposit("shop-a", req_a, sworld.spends(member, coin, req_a))
    with pytest.raises(E.DoubleSpendError):
        sworld.deposit("shop-b", req_b, sworld.spends(member, coin, req_b))
    (report,) = sworld.bank.double_spend_reports()
    assert report.status == "failed" and "unreachable" in (report.error or "")
    sworld.reporter.fail = False
    assert sworld.bank.retry_double_spend_reports() == {"sent": 1, "failed": 0}
    assert sworld.bank.double_spend_reports()[0].status == "sent"
    assert len(sworld.reporter.reports) == 1


def test_transcripts_are_readable_by_the_supervision_department(sworld: BankWorld) -> None:
    evidence = pytest.importorskip("ecash_tpm.protocol.evidence")
    member = sworld.customer("alice", 100)
    coin = sworld.withdraw(member, 2)
    req_a, req_b = sworld.request("shop-a", 2), sworld.request("shop-b", 2)
    sworld.deposit("shop-a", req_a, sworld.spends(member, coin, req_a))
    with pytest.raises(E.DoubleSpendError):
        sworld.deposit("shop-b", req_b, sworld.spends(member, coin, req_b))
    first, second = sworld.reporter.reports[0]
    bodies = evidence.transcript_bodies([first, second], bank_cert=sworld.pki.bank.cert)
    parsed = [evidence.parse_transcript(b) for b in bodies]
    assert evidence.check_double_spend(parsed[0], parsed[1], sworld.issuer.hop) == coin[0].sigma


def test_unknown_customer_and_coin_status_input(sworld: BankWorld) -> None:
    with pytest.raises(E.UnknownAccountError):
        sworld.bank.account("nobody")
    with pytest.raises(InputError):
        sworld.bank.coin_status(b"short")
    with pytest.raises(E.AccountExistsError):
        sworld.bank.create_customer("shop-a", PASSWORD, TOTP_SECRET)
    assert sworld.bank.coin_status(b"\x01" * 32).state == "unspent"
