"""The fair-exchange TTP without HTTP: crypto, wire checks, registration, the bank's deposit
query and every dispute path, against the real bank domain (``bankworld``) and a scripted
merchant. Fast: software DAA keys, SQLite, an injected clock.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
from support.bankworld import BankWorld, make_world, test_policy
from support.coinmint import KeyPool, Member, Pki

from ecash_tpm.bank.ttp_query import answer_ttp_query
from ecash_tpm.centralbank.certify import certify_issuer_epoch
from ecash_tpm.crypto import sealing as C
from ecash_tpm.crypto.bn256 import G
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import RandomizedCredential
from ecash_tpm.crypto.signing import canonical_digest, sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.merchant.catalogue import check_admin
from ecash_tpm.pki import certificate_fingerprint, load_certificate
from ecash_tpm.protocol.coins import Spend, sign_payment_request
from ecash_tpm.protocol.exchange import (
    KIND_DEPOSIT_QUERY,
    KIND_KEY_ANSWER,
    KIND_REGISTRATION,
    KeyAnswer,
    deposit_query_body,
    dispute_id_for,
    key_answer_body,
    parse_key_request,
    registration_body,
    spend_digest,
    verify_descriptor,
)
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.storage import Database, sqlite_url
from ecash_tpm.ttp.domain import Ttp, TtpConfig
from ecash_tpm.ttp.models import DisputeKey, DisputeView, RegistrationAnswer
from ecash_tpm.ttp.store import MIGRATIONS, TtpStore

CONTENT = b"the product " * 50
WINDOW = 300


# --- crypto ---------------------------------------------------------------------------------------


def test_seal_binds_key_and_context() -> None:
    alice, eve = C.EphemeralKey(), C.EphemeralKey()
    ctx = C.content_key_context(b"p" * 32, "p-" + "a" * 32)
    box = C.seal(alice.public_bytes, b"k" * 32, purpose=C.PURPOSE_CONTENT_KEY, context=ctx)
    assert alice.open(box.to_dict(), purpose=C.PURPOSE_CONTENT_KEY, context=ctx) == b"k" * 32
    again = C.EphemeralKey.from_secret(alice.secret_bytes())
    assert again.open(box, purpose=C.PURPOSE_CONTENT_KEY, context=ctx) == b"k" * 32
    for key, purpose, context in (
        (eve, C.PURPOSE_CONTENT_KEY, ctx),  # someone else's key
        (alice, C.PURPOSE_DISPUTE_ANSWER, ctx),  # another purpose
        (alice, C.PURPOSE_CONTENT_KEY, C.content_key_context(b"q" * 32, "p-" + "a" * 32)),
    ):
        with pytest.raises(C.SealError):
            key.open(box, purpose=purpose, context=context)
    with pytest.raises(C.SealError):
        C.seal(bytes(32), b"k", purpose="x", context=())  # low-order point (all zero)
    with pytest.raises(C.SealError):
        C.SealedBox.from_dict({"epk": "AA", "nonce": "AA"})


def test_content_is_bound_to_product_and_merchant() -> None:
    k = C.new_content_key()
    blob = C.encrypt_content(k, b"hello", product_id="p1", merchant_id="m1")
    assert C.decrypt_content(k, blob, product_id="p1", merchant_id="m1") == b"hello"
    for pid, mid, key in (("p2", "m1", k), ("p1", "m2", k), ("p1", "m1", C.new_content_key())):
        with pytest.raises(C.ContentDecryptError):
            C.decrypt_content(key, blob, product_id=pid, merchant_id=mid)
    tampered = bytearray(blob)
    tampered[-1] ^= 1
    with pytest.raises(C.ContentDecryptError):
        C.decrypt_content(k, bytes(tampered), product_id="p1", merchant_id="m1")


def test_admin_token_check() -> None:
    token = "t" * 20
    check_admin(token, f"Bearer {token}")
    for configured, header, code in (
        (None, f"Bearer {token}", "merchant.admin_disabled"),
        (token, "Bearer wrong", "merchant.admin_auth"),
        (token, None, "merchant.admin_auth"),
    ):
        with pytest.raises(EcashError) as exc:
            check_admin(configured, header)
        assert exc.value.code == code


# --- world ----------------------------------------------------------------------------------------


class Shop:
    """A scripted merchant: answers the TTP's key requests (mode honest/no_key/wrong_key)."""

    def __init__(self, party: Any) -> None:
        self.party = party
        self.mode = "honest"
        self.key: bytes | None = None
        self.asked = 0

    def key_request(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        self.asked += 1
        if self.mode == "down":
            raise RemoteCallError("refused", code="remote.unreachable", status=None, url="x")
        if self.mode == "no_key":
            raise RemoteCallError("withheld", code="merchant.key_withheld", status=503, url="x")
        kr = parse_key_request(signed["body"], EcashError)
        key = C.new_content_key() if self.mode == "wrong_key" else self.key
        return self.answer(kr.dispute_id, kr.preq, kr.product_id, kr.reply_key, key)

    def answer(
        self, dispute_id: str, preq: bytes, product_id: str, reply: bytes, key: Any
    ) -> dict[str, Any]:
        box = C.seal(
            reply, key, purpose=C.PURPOSE_DISPUTE_ANSWER, context=(dispute_id.encode(), preq)
        )
        doc = sign_object(
            self.party.key,
            KIND_KEY_ANSWER,
            key_answer_body(
                KeyAnswer(dispute_id, self.party.name, product_id, preq, box.to_dict())
            ),
        )
        return {"answer": doc, "cert": self.party.cert_pem}


class BankLink:
    """The bank's query endpoint in-process (or down)."""

    def __init__(self, world: BankWorld) -> None:
        self.world = world
        self.down = False

    def ttp_query(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        if self.down:
            raise RemoteCallError("down", code="remote.unreachable", status=None, url="x")
        return answer_ttp_query(self.world.bank, signed, cert_pem)


class Fx:
    def __init__(self, world: BankWorld, ttp: Ttp, shop: Shop, bank: BankLink, pki: Pki) -> None:
        self.world, self.ttp, self.shop, self.bank, self.pki = world, ttp, shop, bank, pki
        self.alice: Member = world.customer("alice-" + secrets.token_hex(3), balance=1000)

    def register(
        self, content: bytes = CONTENT, price: int = 3
    ) -> tuple[RegistrationAnswer, C.EphemeralKey, bytes]:
        reply, nonce = C.EphemeralKey(), secrets.token_bytes(16)
        body = registration_body(
            merchant_id="shop-a",
            title="thing",
            price=price,
            currency="EUR",
            content=content,
            nonce=nonce,
            created=self.world.clock(),
            merchant_url="http://shop-a.invalid",
            reply_key=reply.public_bytes,
        )
        signed = sign_object(self.pki.merchants["shop-a"].key, KIND_REGISTRATION, body)
        answer = self.ttp.register_product(signed, self.pki.merchants["shop-a"].cert_pem)
        return answer, reply, nonce

    def product(self) -> str:
        answer, reply, nonce = self.register()
        pid = answer.descriptor["body"]["product_id"]
        self.shop.key = reply.open(
            answer.sealed_key, purpose=C.PURPOSE_REGISTRATION, context=(pid.encode(), nonce)
        )
        return str(pid)

    def request(self, pid: str, customer: C.EphemeralKey, amount: int = 3) -> dict[str, Any]:
        row = self.ttp.store.product(pid)
        assert row is not None
        return sign_payment_request(
            self.pki.merchants["shop-a"].key,
            merchant_id="shop-a",
            amount=amount,
            currency="EUR",
            contract_hash=row.ciphertext_sha256,
            nonce=secrets.token_bytes(16),
            deadline=self.world.clock() + 600,
            bank=self.world.bank.bank_name,
            product_id=pid,
            customer_key=customer.public_bytes,
        )

    def paid(self, pid: str, customer: C.EphemeralKey) -> tuple[dict[str, Any], list[Any]]:
        request = self.request(pid, customer)
        coins = self.world.withdraw(self.alice, 3)
        spends = [s.to_dict() for s in self.world.spends(self.alice, coins, request)]
        self.world.deposit("shop-a", request, spends)
        return request, spends

    def dispute(self, request: dict[str, Any], spends: list[Any]) -> DisputeView:
        return self.ttp.open_dispute(request, self.pki.merchants["shop-a"].cert_pem, spends)

    def content_from(
        self, view: DisputeView | DisputeKey, customer: C.EphemeralKey, request: Any
    ) -> bytes:
        pid = request["body"]["product_id"]
        ctx = C.content_key_context(canonical_digest(request["body"]), pid)
        k = customer.open(view.sealed_key, purpose=C.PURPOSE_CONTENT_KEY, context=ctx)
        row = self.ttp.store.product(pid)
        assert row is not None
        return C.decrypt_content(k, row.ciphertext, product_id=pid, merchant_id="shop-a")


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    p.ttp = p.certify("ttp", "ttp")  # type: ignore[attr-defined]
    yield p
    p.close()


@pytest.fixture
def fx(tmp_path: Path, pki: Pki, keys: KeyPool) -> Iterator[Fx]:
    world = make_world(
        db_url=sqlite_url(tmp_path / "bank.db"),
        data_dir=tmp_path,
        pki=pki,
        keys=keys,
        policy=test_policy(denominations=(1, 2)),
    )
    db = Database.open(sqlite_url(tmp_path / "ttp.db"))
    db.migrate(MIGRATIONS, component="ttp")
    shop, bank = Shop(pki.merchants["shop-a"]), BankLink(world)
    party = pki.ttp  # type: ignore[attr-defined]
    config = TtpConfig(
        name="ttp",
        key=party.key,
        cert_pem=party.cert_pem,
        root=load_certificate(pki.root_pem),
        dispute_window_s=WINDOW,
        max_content_bytes=10_000,
    )
    ttp = Ttp(
        config, TtpStore(db, world.clock), bank, lambda url, merchant_id: shop, clock=world.clock
    )
    yield Fx(world, ttp, shop, bank, pki)
    db.close()
    world.db.close()


# --- registration ---------------------------------------------------------------------------------


def test_registration_checks_and_is_idempotent(fx: Fx) -> None:
    answer, reply, nonce = fx.register()
    desc = verify_descriptor(answer.descriptor, answer.cert, fx.pki.root_pem, now=fx.world.clock())
    assert (desc.merchant_id, desc.ttp_id, desc.price) == ("shop-a", "ttp", 3)
    blob = answer.ciphertext
    assert answer.to_dict()["ciphertext"] == b64u_encode(blob)
    k = reply.open(
        answer.sealed_key,
        purpose=C.PURPOSE_REGISTRATION,
        context=(desc.product_id.encode(), nonce),
    )
    assert C.decrypt_content(k, blob, product_id=desc.product_id, merchant_id="shop-a") == CONTENT
    assert C.ciphertext_digest(blob) == desc.ciphertext_sha256
    # a descriptor is only valid under a TTP certificate
    with pytest.raises(EcashError) as exc:
        verify_descriptor(
            answer.descriptor,
            fx.pki.merchants["shop-a"].cert_pem,
            fx.pki.root_pem,
            now=fx.world.clock(),
        )
    assert exc.value.code == "ttp.descriptor_invalid"
    assert fx.ttp.stats().counters == {"registrations": 1}


def test_registration_refusals(fx: Fx) -> None:
    party = fx.pki.merchants["shop-a"]

    def register(**changes: Any) -> str:
        body = registration_body(
            merchant_id="shop-a",
            title="t",
            price=1,
            currency="EUR",
            content=b"c",
            nonce=changes.pop("nonce", secrets.token_bytes(16)),
            created=changes.pop("created", fx.world.clock()),
            merchant_url="http://x.invalid",
            reply_key=C.EphemeralKey().public_bytes,
        )
        body.update(changes)
        signer = changes.get("_signer", party)
        signed = sign_object(signer.key, KIND_REGISTRATION, body)
        with pytest.raises(EcashError) as exc:
            fx.ttp.register_product(signed, party.cert_pem)
        return exc.value.code

    assert register(created=fx.world.clock() - 3600) == "ttp.registration_stale"
    assert register(content=b64u_encode(b"x" * 20_000)) == "ttp.content_too_large"
    assert register(merchant_url="ftp://x") == "ttp.registration_invalid"
    nonce = secrets.token_bytes(16)
    fx.register()  # unrelated
    body = registration_body(
        merchant_id="shop-a",
        title="t",
        price=1,
        currency="EUR",
        content=b"c",
        nonce=nonce,
        created=fx.world.clock(),
        merchant_url="http://x.invalid",
        reply_key=C.EphemeralKey().public_bytes,
    )
    fx.ttp.register_product(sign_object(party.key, KIND_REGISTRATION, body), party.cert_pem)
    assert register(nonce=nonce) == "ttp.registration_conflict"
    # shop-b's key cannot register for shop-a
    other = fx.pki.merchants["shop-b"]
    signed = sign_object(other.key, KIND_REGISTRATION, body)
    with pytest.raises(EcashError) as exc:
        fx.ttp.register_product(signed, other.cert_pem)
    assert exc.value.code == "cert.wrong_name"


# --- the bank's deposit query ---------------------------------------------------------------------


def test_bank_query_answers_from_the_transcripts(fx: Fx) -> None:
    pid = fx.product()
    request, spends = fx.paid(pid, C.EphemeralKey())
    party = fx.pki.ttp  # type: ignore[attr-defined]
    sigmas = [b64u_decode(s["coin"]["sigma"]) for s in spends]
    unknown = secrets.token_bytes(32)
    body = deposit_query_body(
        ttp_id="ttp",
        merchant_id="shop-a",
        preq=canonical_digest(request["body"]),
        serials=[*sigmas, unknown],
        nonce=secrets.token_bytes(16),
        created=fx.world.clock(),
    )
    out = answer_ttp_query(
        fx.world.bank, sign_object(party.key, KIND_DEPOSIT_QUERY, body), party.cert_pem
    )
    coins = {c["sigma"]: c for c in out["answer"]["body"]["coins"]}
    assert coins[b64u_encode(unknown)] == {"sigma": b64u_encode(unknown), "deposited": False}
    for s in spends:
        c = coins[s["coin"]["sigma"]]
        assert c["deposited"] and c["merchant_id"] == "shop-a"
        assert c["preq"] == b64u_encode(canonical_digest(request["body"]))
        assert c["spend_digest"] == b64u_encode(canonical_digest(s))
    # only certified TTPs, fresh queries, naming themselves
    merchant = fx.pki.merchants["shop-a"]
    for signer, cert, changes, code in (
        (merchant, merchant.cert_pem, {}, "cert.wrong_role"),
        (party, party.cert_pem, {"created": fx.world.clock() - 3600}, "bank.ttp_query_stale"),
        (party, party.cert_pem, {"ttp_id": "other"}, "bank.ttp_query_invalid"),
    ):
        signed = sign_object(signer.key, KIND_DEPOSIT_QUERY, {**body, **changes})
        with pytest.raises(EcashError) as exc:
            answer_ttp_query(fx.world.bank, signed, cert)
        assert exc.value.code == code


# --- disputes -------------------------------------------------------------------------------------


def test_honest_merchant_answers_the_ttp_at_once(fx: Fx) -> None:
    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)
    view = fx.dispute(request, spends)
    assert view.state == "resolved" and view.resolution == "merchant_key"
    assert fx.content_from(view, alice, request) == CONTENT
    assert fx.ttp.strikes() == [] and fx.shop.asked == 1
    # a replay lands on the same dispute and does not ask the merchant again
    assert fx.dispute(request, spends).sealed_key == view.sealed_key
    assert fx.shop.asked == 1


@pytest.mark.parametrize(("mode", "reason"), [("no_key", "no_key"), ("wrong_key", "wrong_key")])
def test_cheating_merchant_gets_a_strike_after_the_deadline(fx: Fx, mode: str, reason: str) -> None:
    fx.shop.mode = mode
    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)
    view = fx.dispute(request, spends)
    assert view.state == "pending" and view.sealed_key is None
    with pytest.raises(EcashError) as exc:
        fx.ttp.dispute_key(view.dispute_id)
    assert exc.value.code == "ttp.dispute_pending" and exc.value.http_status == 409
    assert exc.value.detail["retry_after"] == WINDOW + 1
    fx.world.clock.advance(WINDOW)
    assert fx.ttp.dispute(view.dispute_id).state == "pending"  # deadline inclusive
    fx.world.clock.advance(1)
    key = fx.ttp.dispute_key(view.dispute_id)
    assert key.resolution == "escrow"
    assert fx.content_from(key, alice, request) == CONTENT
    assert [s.reason for s in fx.ttp.strikes("shop-a")] == [reason]
    fx.ttp.sweep()  # resolving again strikes nothing
    assert len(fx.ttp.strikes()) == 1


def test_merchant_that_was_down_is_asked_again_before_a_strike(fx: Fx) -> None:
    """Being unreachable once is not cheating: the TTP asks again when the deadline passes."""
    fx.shop.mode = "down"
    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)
    view = fx.dispute(request, spends)
    assert view.state == "pending" and view.merchant_answer == "remote.unreachable"
    fx.shop.mode = "honest"  # back up
    fx.world.clock.advance(WINDOW + 1)
    key = fx.ttp.dispute_key(view.dispute_id)
    assert key.resolution == "merchant_key" and fx.ttp.strikes() == []
    assert fx.content_from(key, alice, request) == CONTENT and fx.shop.asked == 2
    # still down at the deadline: the customer gets the escrowed key, the merchant a strike
    fx.shop.mode = "down"
    pid2, bob = fx.product(), C.EphemeralKey()
    request2, spends2 = fx.paid(pid2, bob)
    view2 = fx.dispute(request2, spends2)
    fx.world.clock.advance(WINDOW + 1)
    key2 = fx.ttp.dispute_key(view2.dispute_id)
    assert key2.resolution == "escrow"
    assert [s.reason for s in fx.ttp.strikes("shop-a")] == ["no_key"]


def test_merchant_may_answer_late_but_before_the_deadline(fx: Fx) -> None:
    fx.shop.mode = "no_key"
    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)
    view = fx.dispute(request, spends)
    preq = canonical_digest(request["body"])
    reply = view.reply_key
    assert view.to_dict()["reply_key"] == b64u_encode(reply)
    # a wrong key via the pull route is recorded, not accepted
    bad = fx.shop.answer(view.dispute_id, preq, pid, reply, C.new_content_key())
    assert (
        fx.ttp.answer_dispute(view.dispute_id, bad["answer"], bad["cert"]).merchant_answer
        == "wrong_key"
    )
    # an answer for another dispute is refused
    other = fx.shop.answer("d-" + "0" * 32, preq, pid, reply, fx.shop.key)
    with pytest.raises(EcashError) as exc:
        fx.ttp.answer_dispute(view.dispute_id, other["answer"], other["cert"])
    assert exc.value.code == "ttp.answer_invalid"
    pending = fx.ttp.disputes(merchant_id="shop-a", state="pending")
    assert [v.dispute_id for v in pending] == [view.dispute_id]
    fx.world.clock.advance(WINDOW - 10)
    good = fx.shop.answer(view.dispute_id, preq, pid, reply, fx.shop.key)
    done = fx.ttp.answer_dispute(view.dispute_id, good["answer"], good["cert"])
    assert done.resolution == "merchant_key" and fx.ttp.strikes() == []
    assert fx.content_from(done, alice, request) == CONTENT
    with pytest.raises(EcashError) as exc:
        fx.ttp.answer_dispute(view.dispute_id, good["answer"], good["cert"])
    assert exc.value.code == "ttp.dispute_closed"


def test_unpaid_or_mismatched_disputes_are_refused(fx: Fx) -> None:
    pid, alice = fx.product(), C.EphemeralKey()
    request = fx.request(pid, alice)
    coins = fx.world.withdraw(fx.alice, 3)
    spends = [s.to_dict() for s in fx.world.spends(fx.alice, coins, request)]
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, spends)  # never deposited
    assert exc.value.code == "ttp.not_paid"
    fx.world.deposit("shop-a", request, spends)
    # the same coins, but a spend proof made again (not the one the bank recorded)
    fresh = [s.to_dict() for s in fx.world.spends(fx.alice, coins, request)]
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, fresh)
    assert {c["reason"] for c in exc.value.detail["coins"]} == {"other_spend"}
    # bank down: refused, retry later, nothing recorded
    fx.bank.down = True
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, spends)
    assert exc.value.code == "ttp.bank_unavailable" and exc.value.http_status == 503
    fx.bank.down = False
    # wrong product hash / no customer key / unknown product
    row = fx.ttp.store.product(pid)
    assert row is not None
    party = fx.pki.merchants["shop-a"]
    for changes, code in (
        ({"contract_hash": b64u_encode(bytes(32))}, "ttp.contract_mismatch"),
        ({"customer_key": None}, "ttp.customer_key_missing"),
        ({"product_id": "p-" + "f" * 32}, "ttp.unknown_product"),
        ({"merchant_id": "shop-b"}, "ttp.wrong_merchant"),
    ):
        signed = sign_object(party.key, "payment-request", {**request["body"], **changes})
        with pytest.raises(EcashError) as exc:
            fx.dispute(signed, spends)
        assert exc.value.code == code
    counters = fx.ttp.stats().counters
    assert counters["disputes_refused"] == 7 and "disputes_opened" not in counters
    # and with everything right, it works
    assert fx.dispute(request, spends).state == "resolved"


def test_forged_bank_answer_is_rejected(fx: Fx) -> None:
    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)
    real = fx.bank.ttp_query

    def forged(signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        answer = real(signed, cert_pem)
        fake = fx.pki.merchants["shop-b"]  # signs with a non-bank certificate
        return {
            "answer": sign_object(fake.key, answer["answer"]["kind"], answer["answer"]["body"]),
            "cert": fake.cert_pem,
        }

    fx.bank.ttp_query = forged  # type: ignore[method-assign]
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, spends)
    assert exc.value.code == "ttp.bank_answer_invalid"


def test_dispute_checks_every_credential_publicly(fx: Fx) -> None:
    """docs/protocol.md §7.4, §16.5: the TTP verifies the coins' credentials itself, with
    pairings under the certified G2 keys the bank publishes -- after the bank's signed answer
    confirms the payment (its steps 1-3: the TTP holds no keysets), so a dispute over coins
    nobody deposited costs it no epoch lookup and no pairing (review finding 2)."""
    secret = fx.world.issuer.secret_for_epoch(1)
    doc = certify_issuer_epoch(fx.pki._ca, "issuer", 1, secret.public)
    asked: list[int] = []

    def publish(epoch: int) -> dict[str, Any]:
        asked.append(epoch)
        return doc

    fx.bank.issuer_epoch = publish  # type: ignore[attr-defined]
    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)
    parsed = [Spend.from_dict(s) for s in spends]
    cred = parsed[-1].coin.credential
    forged_coin = dataclasses.replace(
        parsed[-1].coin, credential=RandomizedCredential(cred.R, cred.S + G, cred.T, cred.W)
    )
    forged = [*spends[:-1], dataclasses.replace(parsed[-1], coin=forged_coin).to_dict()]
    # the bank never took that spend: refused on its word, no epoch fetched, nothing paired
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, forged)
    assert exc.value.code == "ttp.not_paid" and asked == []
    # a bank that vouches for the forged spend anyway: the TTP's own pairing check refuses it
    real = fx.bank.ttp_query
    bank = fx.world.bank

    def vouching(signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        answer = real(signed, cert_pem)["answer"]
        body = dict(answer["body"])
        body["coins"] = [
            {**c, "spend_digest": b64u_encode(spend_digest(forged[-1]))}
            if c["sigma"] == forged[-1]["coin"]["sigma"]
            else c
            for c in body["coins"]
        ]
        return {
            "answer": sign_object(
                bank.bank_key,
                answer["kind"],
                body,
                signer=certificate_fingerprint(bank.bank_cert),
            ),
            "cert": bank.bank_cert_pem(),
        }

    fx.bank.ttp_query = vouching  # type: ignore[method-assign]
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, forged)
    assert exc.value.code == "daa.credential_invalid"
    assert exc.value.detail == {"check": "S", "index": len(spends) - 1}
    assert asked == [1]
    fx.bank.ttp_query = real  # type: ignore[method-assign]
    assert fx.dispute(request, spends).state == "resolved"
    assert fx.ttp.desk.epoch_keys.bank_only == {}


def test_dispute_refuses_uncertified_and_foreign_epochs(fx: Fx) -> None:
    """Review findings 3, 4 at the TTP: a paid coin whose epoch the bank has no certificate for
    is refused (``coin.unknown_epoch``), a certificate of another issuer too (503,
    ``issuer_epoch.mismatch``): never left to the bank's word. No dispute is opened."""
    from ecash_tpm.crypto.groupsig import IssuerSecret

    pid, alice = fx.product(), C.EphemeralKey()
    request, spends = fx.paid(pid, alice)

    def unknown(epoch: int) -> dict[str, Any]:
        raise RemoteCallError(
            "no key", code="bank.issuer_epoch_unknown", status=404, url="bank", detail={}
        )

    fx.bank.issuer_epoch = unknown  # type: ignore[attr-defined]
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, spends)
    assert (exc.value.code, exc.value.http_status) == ("coin.unknown_epoch", 400)
    assert exc.value.detail["index"] == 0
    rogue = certify_issuer_epoch(fx.pki._ca, "rogue", 1, IssuerSecret.generate().public)
    fx.ttp.desk.epoch_keys = type(fx.ttp.desk.epoch_keys)(
        lambda epoch: rogue, fx.ttp.config.root, issuer=fx.ttp.config.issuer_name
    )
    with pytest.raises(EcashError) as exc:
        fx.dispute(request, spends)
    assert (exc.value.code, exc.value.http_status) == ("issuer_epoch.unavailable", 503)
    assert exc.value.detail["cause"] == "issuer_epoch.mismatch"
    assert fx.ttp.store.dispute(dispute_id_for(canonical_digest(request["body"]))) is None
