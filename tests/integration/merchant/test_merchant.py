"""Merchant domain without HTTP: request signing, local coin checks, deposit, idempotency.

Coins are minted here with a software DAA key and a local RSA keyset; the bank is a fake that
signs receipts with a certified bank key (or fails on demand), so every branch of the
merchant's state machine is reachable in milliseconds.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import G, Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    Credential,
    IssuerSecret,
    OpenerSecret,
    coin_message,
    issue_credential,
    make_spend_proof,
)
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.errors import EcashError
from ecash_tpm.merchant.domain import (
    BankRefusedError,
    BankUnavailableError,
    Merchant,
    MerchantConfig,
)
from ecash_tpm.merchant.store import MIGRATIONS, MerchantStore
from ecash_tpm.pki import cert_pem, load_certificate
from ecash_tpm.protocol.coins import RECEIPT_KIND, Coin, Spend, verify_payment_request
from ecash_tpm.protocol.keysets import BankKeysets, Keyset, keyset_id_for
from ecash_tpm.protocol.payments import RESERVE_CHECKS, RESERVE_VERDICT, verify_keyset_list
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.storage import Database, sqlite_url

RSA_KEYS: dict[int, Any] = {}


def rsa_key(value: int) -> Any:
    """RSA keygen is slow: one key per denomination for the whole module."""
    if value not in RSA_KEYS:
        RSA_KEYS[value] = blindrsa.generate_key(2048)
    return RSA_KEYS[value]


class Clock:
    def __init__(self, t: int | None = None) -> None:
        self.t = int(time.time()) if t is None else t

    def __call__(self) -> int:
        return self.t


@dataclass
class Mint:
    """A central bank, a bank key with keysets, an issuer secret and an opener key."""

    ca: CentralBankCA
    bank_key: PartyKey
    bank_cert: str
    issuer: IssuerSecret
    opener: OpenerSecret
    descriptors: list[dict[str, Any]] = field(default_factory=list)
    keysets: dict[int, tuple[bytes, Any]] = field(default_factory=dict)
    epoch: int = 1

    def add_keyset(self, value: int, *, wf: int, wu: int, du: int) -> bytes:
        priv = rsa_key(value)
        from cryptography.hazmat.primitives import serialization

        spki = priv.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        body = {
            "value": value,
            "currency": "EUR",
            "withdraw_from": wf,
            "withdraw_until": wu,
            "deposit_until": du,
            "public_key": b64u_encode(spki),
            "variant": blindrsa.DEFAULT_VARIANT.name,
        }
        kid = keyset_id_for(body)
        self.descriptors.append(
            sign_object(self.bank_key, "bank-keyset", {**body, "keyset_id": b64u_encode(kid)})
        )
        self.keysets[value] = (kid, priv)
        return kid

    def keyset_list(self) -> dict[str, Any]:
        return {"bank_cert": self.bank_cert, "keysets": list(self.descriptors)}

    def credential(self, signer: SoftwareDaaSigner) -> Credential:
        cred, _ = issue_credential(self.issuer, signer.public_point)
        return cred

    def coin(self, cred: Credential, value: int, keyset_id: bytes | None = None) -> Coin:
        kid, priv = self.keysets[value]
        kid = keyset_id or kid
        rc = cred.randomize()
        sigma = secrets.token_bytes(32)
        prepared = blindrsa.prepare(coin_message(kid, self.epoch, sigma, rc))
        blinded, inv = blindrsa.blind(priv.public_key(), prepared)
        sig = blindrsa.finalize(
            priv.public_key(), prepared, blindrsa.blind_sign(priv, blinded), inv
        )
        return Coin(kid, self.epoch, sigma, rc, prepared[:32], sig)

    def spend(self, signer: SoftwareDaaSigner, coin: Coin, preq: bytes) -> dict[str, Any]:
        proof = make_spend_proof(
            signer,
            hop=self.opener.public,
            preq=preq,
            keyset_id=coin.keyset_id,
            epoch=coin.epoch,
            sigma=coin.sigma,
            coin=coin.credential,
        )
        return Spend(coin, proof).to_dict()

    def receipt(self, envelope: Mapping[str, Any], deposited_at: int) -> dict[str, Any]:
        body = envelope["body"]
        req = body["request"]["body"]
        serials = [sp["coin"]["sigma"] for sp in body["spends"]]
        return sign_object(
            self.bank_key,
            RECEIPT_KIND,
            {
                "deposit_id": body["deposit_id"],
                "merchant_id": body["merchant_id"],
                "preq": b64u_encode(canonical_digest(req)),
                "amount": req["amount"],
                "currency": req["currency"],
                "serials": serials,
                "transcript_ids": list(range(1, len(serials) + 1)),
                "deposited_at": deposited_at,
            },
        )


class FakeBank:
    """Keysets, receipts, and scripted failures; remembers every deposit it saw."""

    def __init__(self, mint: Mint, clock: Clock) -> None:
        self.mint = mint
        self.clock = clock
        self.deposits: list[dict[str, Any]] = []
        self.receipts: dict[str, dict[str, Any]] = {}
        self.fail_next: list[Callable[[dict[str, Any]], None]] = []

    def keysets(self, *, central_bank_root: Any = None) -> BankKeysets:
        doc = self.mint.keyset_list()
        key = load_certificate(doc["bank_cert"]).public_key()
        parsed = [Keyset.from_signed(d, key) for d in doc["keysets"]]
        return BankKeysets(load_certificate(doc["bank_cert"]), parsed, doc["keysets"])

    def reserve(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        return reserve_answer(signed, self.clock() + 60)

    def deposit(self, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        env = {**signed, "cert": cert_pem}
        self.deposits.append(env)
        if self.fail_next:
            self.fail_next.pop(0)(env)
        did = env["body"]["deposit_id"]
        if did not in self.receipts:
            self.receipts[did] = self.mint.receipt(env, self.clock())
        return {"receipt": self.receipts[did]}


def reserve_answer(signed: Mapping[str, Any], until: int) -> dict[str, Any]:
    """The bank's full verdict on the reserved coins (docs/protocol.md §10)."""
    serials = [sp["coin"]["sigma"] for sp in signed["body"]["spends"]]
    return {
        "locked_until": until,
        "serials": serials,
        "verdict": RESERVE_VERDICT,
        "checks": list(RESERVE_CHECKS),
    }


def remote(code: str, status: int | None, **detail: Any) -> Callable[[dict[str, Any]], None]:
    def fail(_: dict[str, Any]) -> None:
        raise RemoteCallError(
            code, code=code, status=status, url="http://bank", detail=dict(detail)
        )

    return fail


def lost_answer(bank: FakeBank) -> Callable[[dict[str, Any]], None]:
    """The bank processes the deposit, then the answer is lost."""

    def fail(env: dict[str, Any]) -> None:
        did = env["body"]["deposit_id"]
        bank.receipts[did] = bank.mint.receipt(env, bank.clock())
        raise RemoteCallError(
            "timeout", code="remote.timeout", status=None, url="http://bank", detail={}
        )

    return fail


@dataclass
class World:
    mint: Mint
    clock: Clock
    bank: FakeBank
    merchant: Merchant
    other: Merchant
    signer: SoftwareDaaSigner
    cred: Credential

    def pay_doc(self, amount: int, values: list[int], merchant: Merchant | None = None) -> Any:
        m = merchant or self.merchant
        doc = m.create_request(amount)
        preq = canonical_digest(doc.request["body"])
        spends = [self.mint.spend(self.signer, self.mint.coin(self.cred, v), preq) for v in values]
        return doc, spends


def _merchant(
    tmp: Path, name: str, mint: Mint, bank: FakeBank, clock: Clock, **kw: Any
) -> Merchant:
    key = PartyKey.generate()
    cert = mint.ca.certify("merchant", name, key.public_key)
    db = Database.open(sqlite_url(tmp / f"{name}.db"))
    db.migrate(MIGRATIONS, component="merchant")
    config = MerchantConfig(
        name=name,
        key=key,
        cert_pem=cert_pem(cert),
        root=mint.ca.root_certificate,
        keyset_refresh_s=0,
        **kw,
    )
    return Merchant(config, MerchantStore(db, clock), bank, mint.opener.public, clock=clock)


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    clock = Clock()
    ca = CentralBankCA.create(tmp_path / "ca")
    bank_key = PartyKey.generate()
    bank_cert = cert_pem(ca.certify("bank", "bank", bank_key.public_key))
    mint = Mint(ca, bank_key, bank_cert, IssuerSecret.generate(), OpenerSecret.generate())
    t = clock()
    for v in (1, 2, 4, 8, 16, 32):
        mint.add_keyset(v, wf=t - 100, wu=t + 1000, du=t + 2000)
    bank = FakeBank(mint, clock)
    merchant = _merchant(tmp_path, "shop-1", mint, bank, clock)
    other = _merchant(tmp_path, "shop-2", mint, bank, clock)
    signer = SoftwareDaaSigner()
    yield World(mint, clock, bank, merchant, other, signer, mint.credential(signer))
    for m in (merchant, other):
        m.store._db.close()
    ca.close()


def _code(exc: pytest.ExceptionInfo[EcashError]) -> str:
    return exc.value.code


# --- requests --------------------------------------------------------------------------------


def test_request_is_signed_stored_and_verifiable_by_the_wallet(world: World) -> None:
    doc = world.merchant.create_request(37, product_id="book-1")
    req = verify_payment_request(
        doc.request, doc.cert, world.mint.ca.root_certificate, now=world.clock()
    )
    assert req.merchant_id == "shop-1" and req.amount == 37 and req.bank == "bank"
    assert req.deadline == world.clock() + 300 and len(req.nonce) == 16
    row = world.merchant.store.get(req.preq)
    assert row is not None and row.state == "open"
    # another merchant's certificate does not vouch for this request
    with pytest.raises(EcashError) as exc:
        verify_payment_request(
            doc.request,
            world.other.config.cert_pem,
            world.mint.ca.root_certificate,
            now=world.clock(),
        )
    assert _code(exc) == "cert.wrong_name"
    world.clock.t += 301
    with pytest.raises(EcashError) as exc:
        verify_payment_request(
            doc.request, doc.cert, world.mint.ca.root_certificate, now=world.clock()
        )
    assert _code(exc) == "payment.request_expired"


def test_keyset_list_is_checked_against_the_root(world: World) -> None:
    book = verify_keyset_list(world.mint.keyset_list(), world.mint.ca.root_certificate)
    assert sorted(k.value for k in book.keysets.values()) == [1, 2, 4, 8, 16, 32]
    tampered = world.mint.keyset_list()
    tampered["keysets"][0] = {**tampered["keysets"][0]}
    tampered["keysets"][0]["body"] = {**tampered["keysets"][0]["body"], "value": 1000}
    with pytest.raises(EcashError) as exc:
        verify_keyset_list(tampered, world.mint.ca.root_certificate)
    assert _code(exc) == "keyset.descriptor_invalid"
    impostor = world.mint.keyset_list()
    impostor["bank_cert"] = world.merchant.config.cert_pem  # a merchant is not a bank
    with pytest.raises(EcashError) as exc:
        verify_keyset_list(impostor, world.mint.ca.root_certificate)
    assert _code(exc) == "cert.wrong_role"


# --- paying ----------------------------------------------------------------------------------


def test_pay_deposits_once_and_identical_retry_returns_the_same_receipt(world: World) -> None:
    doc, spends = world.pay_doc(37, [32, 4, 1])
    out = world.merchant.pay(doc.request, spends)
    assert out.cert == world.mint.bank_cert
    body = out.receipt["body"]
    assert body["amount"] == 37 and body["merchant_id"] == "shop-1"
    assert len(world.bank.deposits) == 1
    dep = world.bank.deposits[0]
    assert dep["kind"] == "deposit" and dep["cert"] == world.merchant.config.cert_pem
    again = world.merchant.pay(doc.request, spends)
    assert again == out and len(world.bank.deposits) == 1
    assert world.merchant.stats().totals == {"EUR": {"paid_count": 1, "paid_amount": 37}}
    # the same request with other coins: each request is paid once
    _, other_spends = world.pay_doc(37, [32, 4, 1])
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, other_spends)
    assert _code(exc) == "payment.already_paid" and exc.value.http_status == 409


@pytest.mark.parametrize(
    ("tamper", "code"),
    [
        ("signature", "coin.bad_signature"),
        ("sigma", "coin.bad_signature"),
        ("credential", "coin.bad_signature"),
        ("proof", "daa.spend_proof_invalid"),
        ("keyset", "coin.unknown_keyset"),
    ],
)
def test_tampered_coins_are_refused_locally(world: World, tamper: str, code: str) -> None:
    doc, spends = world.pay_doc(4, [4])
    sp = spends[0]
    coin, proof = dict(sp["coin"]), dict(sp["proof"])
    if tamper == "signature":
        sig = bytearray(b64u_decode(coin["signature"]))
        sig[-1] ^= 1
        coin["signature"] = b64u_encode(bytes(sig))
    elif tamper == "sigma":
        coin["sigma"] = b64u_encode(secrets.token_bytes(32))
    elif tamper == "credential":
        other = world.cred.randomize()
        coin["credential"] = {**coin["credential"], "R": other.to_dict()["R"]}
    elif tamper == "proof":
        st = int.from_bytes(b64u_decode(proof["st"]), "big")
        proof["st"] = b64u_encode(((st + 1) % (2**255)).to_bytes(32, "big"))
    elif tamper == "keyset":
        coin["keyset_id"] = b64u_encode(secrets.token_bytes(16))
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, [{"coin": coin, "proof": proof}])
    assert _code(exc) == code
    assert world.bank.deposits == []
    assert world.merchant.stats().counters["verify_failure"][code] == 1


def test_spend_proof_is_bound_to_request_and_merchant(world: World) -> None:
    doc_a, spends_a = world.pay_doc(8, [8])
    doc_b = world.merchant.create_request(8)
    with pytest.raises(EcashError) as exc:  # same coin+proof for another request
        world.merchant.pay(doc_b.request, spends_a)
    assert _code(exc) == "daa.spend_proof_invalid"
    doc_c = world.other.create_request(8)
    with pytest.raises(EcashError) as exc:  # ... or at another merchant
        world.other.pay(doc_c.request, spends_a)
    assert _code(exc) == "daa.spend_proof_invalid"
    with pytest.raises(EcashError) as exc:  # merchant A's request presented to merchant B
        world.other.pay(doc_a.request, spends_a)
    assert _code(exc) == "payment.not_our_request"
    assert world.bank.deposits == []


def test_software_key_and_foreign_tpm_proofs_are_refused(world: World) -> None:
    doc = world.merchant.create_request(16)
    preq = canonical_digest(doc.request["body"])
    coin = world.mint.coin(world.cred, 16)
    thief = SoftwareDaaSigner()  # has the wallet file (coin) but not the key
    proof = make_spend_proof(
        thief,
        hop=world.mint.opener.public,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
        self_check=False,
    )
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, [Spend(coin, proof).to_dict()])
    assert _code(exc) == "daa.spend_proof_invalid"


def test_amount_deadline_and_keyset_window(world: World) -> None:
    doc, spends = world.pay_doc(10, [8, 1])
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, spends)
    assert _code(exc) == "payment.amount_mismatch"
    doc, spends = world.pay_doc(2, [2])
    world.clock.t += 301
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, spends)
    assert _code(exc) == "payment.request_expired"
    # a coin of a keyset whose deposit window is over
    t = world.clock()
    kid = world.mint.add_keyset(64, wf=t - 50, wu=t - 20, du=t - 10)
    world.merchant.keysets(refresh=True)
    doc = world.merchant.create_request(64)
    preq = canonical_digest(doc.request["body"])
    old = world.mint.coin(world.cred, 64, keyset_id=kid)
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, [world.mint.spend(world.signer, old, preq)])
    assert _code(exc) == "coin.keyset_expired"


def test_double_spend_refusal_keeps_code_and_status_and_reopens(world: World) -> None:
    doc, spends = world.pay_doc(4, [4])
    world.bank.fail_next.append(remote("bank.double_spend", 409, serial="x", transcript_id=7))
    with pytest.raises(BankRefusedError) as exc:
        world.merchant.pay(doc.request, spends)
    assert exc.value.code == "bank.double_spend" and exc.value.http_status == 409
    assert exc.value.detail["transcript_id"] == 7
    preq = canonical_digest(doc.request["body"])
    row = world.merchant.store.get(preq)
    assert row is not None and row.state == "open"
    assert world.merchant.stats().counters["bank_error"] == {"bank.double_spend": 1}
    # the customer may pay the same request with good coins afterwards
    fresh = [world.mint.spend(world.signer, world.mint.coin(world.cred, 4), preq)]
    assert world.merchant.pay(doc.request, fresh).receipt["body"]["amount"] == 4


def test_lost_bank_answer_is_retried_with_the_same_deposit(world: World) -> None:
    doc, spends = world.pay_doc(6, [4, 2])
    world.bank.fail_next.append(lost_answer(world.bank))
    with pytest.raises(BankUnavailableError) as exc:
        world.merchant.pay(doc.request, spends)
    assert exc.value.detail["outcome_unknown"] is True
    preq = canonical_digest(doc.request["body"])
    row = world.merchant.store.get(preq)
    assert row is not None and row.state == "paying"
    # a different payment of the same request is refused while the outcome is unknown
    _, others = world.pay_doc(6, [4, 2])
    with pytest.raises(EcashError) as exc2:
        world.merchant.pay(doc.request, others)
    assert exc2.value.code == "payment.in_progress"
    out = world.merchant.pay(doc.request, spends)  # the customer retries
    first, second = world.bank.deposits
    assert first == second  # byte-identical document, same deposit_id
    assert out.receipt["body"]["deposit_id"] == first["body"]["deposit_id"]


def test_pending_deposits_can_be_retried_by_the_merchant(world: World) -> None:
    doc, spends = world.pay_doc(1, [1])
    world.bank.fail_next.append(remote("remote.unreachable", None))
    with pytest.raises(BankUnavailableError):
        world.merchant.pay(doc.request, spends)
    assert world.merchant.retry_pending_deposits() == []  # too young: maybe still in flight
    world.clock.t += world.merchant.config.deposit_retry_after_s
    assert len(world.merchant.retry_pending_deposits()) == 1
    preq = canonical_digest(doc.request["body"])
    row = world.merchant.store.get(preq)
    assert row is not None and row.state == "paid"


def test_a_retry_never_overtakes_a_live_payment(world: World, tmp_path: Path) -> None:
    """The retrier runs while a live payment is between its reserve and its deposit (here:
    inside the bank's reserve call, long after the deposit went ``paying``). It must leave that
    payment alone: a deposit that reached the bank before the live reserve would make the bank
    answer the reserve with a double spend, and the customer would take back coins the bank had
    already booked as spent."""
    shop = _merchant(tmp_path, "shop-r", world.mint, world.bank, world.clock, reserve=True)
    doc, spends = world.pay_doc(3, [2, 1], merchant=shop)
    retried: list[Any] = []

    def slow_reserve(signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        world.clock.t += 3600  # the live call is slow; the row is now old enough for a retry
        retried.extend(shop.retry_deposits())
        return reserve_answer(signed, world.clock() + 60)

    world.bank.reserve = slow_reserve  # type: ignore[method-assign]
    answer = shop.pay(doc.request, spends)
    assert retried == []
    assert len(world.bank.deposits) == 1  # only the live payment's own deposit
    assert answer.receipt["body"]["amount"] == 3
    shop.store._db.close()


def test_forged_receipt_is_not_accepted(world: World) -> None:
    doc, spends = world.pay_doc(2, [2])
    forger = PartyKey.generate()

    def forge(env: dict[str, Any]) -> None:
        world.bank.receipts[env["body"]["deposit_id"]] = sign_object(
            forger, RECEIPT_KIND, world.mint.receipt(env, 0)["body"]
        )

    world.bank.fail_next.append(forge)
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, spends)
    assert _code(exc) == "receipt.invalid"


def test_hop_must_be_a_point(world: World) -> None:
    with pytest.raises(EcashError):
        Merchant(
            world.merchant.config,
            world.merchant.store,
            world.bank,
            Point.infinity(),
            clock=world.clock,
        )


def test_reserve_refusal_reopens_the_request(world: World) -> None:
    import dataclasses

    world.merchant.config = dataclasses.replace(world.merchant.config, reserve=True)
    doc, spends = world.pay_doc(4, [4])
    calls: list[str] = []

    def locked(signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        calls.append(signed["kind"])
        raise RemoteCallError(
            "locked", code="bank.coin_locked", status=409, url="x", detail={"retry_after": 30}
        )

    world.bank.reserve = locked  # type: ignore[method-assign]
    with pytest.raises(BankRefusedError) as exc:
        world.merchant.pay(doc.request, spends)
    assert exc.value.code == "bank.coin_locked" and exc.value.http_status == 409
    assert exc.value.detail["retry_after"] == 30 and calls == ["reserve"]
    assert world.bank.deposits == []
    row = world.merchant.store.get(canonical_digest(doc.request["body"]))
    assert row is not None and row.state == "open"


# --- issue 10, attack 4: the bank's full verdict at the reservation (docs/protocol.md §10) -----


@pytest.mark.parametrize(
    "answer",
    [
        {"verdict": None, "checks": None},  # a bank answering without a verdict
        {"verdict": "valid", "checks": ["envelope"]},  # not every check
        {"verdict": "unchecked", "checks": list(RESERVE_CHECKS)},
        {"verdict": "valid", "checks": list(RESERVE_CHECKS), "serials": []},  # other coins
    ],
)
def test_reservation_without_the_full_verdict_delivers_nothing(
    world: World, answer: dict[str, Any]
) -> None:
    import dataclasses

    world.merchant.config = dataclasses.replace(world.merchant.config, reserve=True)
    doc, spends = world.pay_doc(4, [4])

    def partial(signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        return {**reserve_answer(signed, world.clock() + 60), **answer}

    world.bank.reserve = partial  # type: ignore[method-assign]
    with pytest.raises(EcashError) as exc:
        world.merchant.pay(doc.request, spends)
    assert exc.value.code == "merchant.reserve_unconfirmed" and exc.value.http_status == 502
    assert world.bank.deposits == []  # never deposited, nothing delivered
    row = world.merchant.store.get(canonical_digest(doc.request["body"]))
    assert row is not None and row.state == "open"


# --- issue 10, attack 8: the answer of a paid request again (docs/protocol.md §8.1) ----------


def test_paid_answer_settles_a_lost_deposit_and_repeats_a_paid_one(world: World) -> None:
    doc, spends = world.pay_doc(6, [4, 2])
    preq = canonical_digest(doc.request["body"])
    with pytest.raises(EcashError) as exc:
        world.merchant.paid_answer(preq)  # requested, not paid
    assert exc.value.code == "payment.not_paid" and exc.value.http_status == 404
    world.bank.fail_next.append(lost_answer(world.bank))
    with pytest.raises(BankUnavailableError):
        world.merchant.pay(doc.request, spends)
    first = world.merchant.paid_answer(preq)  # "paying": the stored deposit is re-sent
    assert first.receipt["body"]["amount"] == 6 and first.content_key is None
    one, two = world.bank.deposits
    assert one == two  # the identical document, one deposit_id
    row = world.merchant.store.get(preq)
    assert row is not None and row.state == "paid"
    again = world.merchant.paid_answer(preq)  # paid: from the merchant's records
    assert again == first and len(world.bank.deposits) == 2
    with pytest.raises(EcashError) as unknown:
        world.merchant.paid_answer(b"\x00" * 32)
    assert unknown.value.code == "payment.unknown_request"


def test_paid_answer_leaves_a_live_payment_alone(world: World) -> None:
    doc, spends = world.pay_doc(1, [1])
    preq = canonical_digest(doc.request["body"])
    world.bank.fail_next.append(remote("remote.unreachable", None))
    with pytest.raises(BankUnavailableError):
        world.merchant.pay(doc.request, spends)
    with world.merchant._live(preq), pytest.raises(EcashError) as exc:  # a retry is live
        world.merchant.paid_answer(preq)
    assert exc.value.code == "payment.in_progress" and exc.value.http_status == 409
    assert len(world.bank.deposits) == 1
    refused = world.merchant.store.get(preq)
    assert refused is not None and refused.state == "paying"
    world.bank.fail_next.append(remote("bank.double_spend", 409, serial="x", transcript_id=3))
    with pytest.raises(EcashError) as gone:  # the bank refuses it for good: reopened
        world.merchant.paid_answer(preq)
    assert gone.value.code == "bank.double_spend"
    reopened = world.merchant.store.get(preq)
    assert reopened is not None and reopened.state == "open"


# --- public credential check hardening (docs/protocol.md §7.4; review findings 2, 3, 4) --------


class EpochBank(FakeBank):
    """A fake bank that also publishes issuer epoch certificates (``docs``; a missing epoch is
    its 404, ``down`` makes every fetch fail as unreachable) and records what was asked."""

    def __init__(self, mint: Mint, clock: Clock) -> None:
        super().__init__(mint, clock)
        self.docs: dict[int, dict[str, Any]] = {}
        self.asked: list[int] = []
        self.down = False

    def issuer_epoch(self, epoch: int) -> dict[str, Any]:
        self.asked.append(epoch)
        if self.down:
            raise RemoteCallError(
                "down (test)", code="remote.unreachable", status=None, url="bank", detail={}
            )
        if epoch not in self.docs:
            raise RemoteCallError(
                "no key (test)", code="bank.issuer_epoch_unknown", status=404, url="bank", detail={}
            )
        return self.docs[epoch]


@pytest.fixture
def shop(world: World, tmp_path: Path) -> Iterator[tuple[Merchant, EpochBank]]:
    """A merchant whose bank publishes the issuer's certified epoch 1 (with G2 keys)."""
    from ecash_tpm.centralbank.certify import certify_issuer_epoch

    bank = EpochBank(world.mint, world.clock)
    bank.docs[1] = certify_issuer_epoch(world.mint.ca, "issuer", 1, world.mint.issuer.public)
    merchant = _merchant(tmp_path, "shop-3", world.mint, bank, world.clock)
    yield merchant, bank
    merchant.store._db.close()


def _forged(world: World, value: int, epoch: int) -> Coin:
    """A coin the bank really signed (the wallet paid for it) whose credential was never
    issued: ``R`` moved, so ``S`` is not ``y*R`` (``W`` is still ``sk*S``, the spend proof
    holds); ``epoch`` is the wallet's choice."""
    import dataclasses

    world.mint.epoch = epoch
    try:
        coin = world.mint.coin(world.cred, value)
    finally:
        world.mint.epoch = 1
    rc = coin.credential
    forged = dataclasses.replace(coin, credential=type(rc)(rc.R + G, rc.S, rc.T, rc.W))
    return resign(world, forged, value)


def resign(world: World, coin: Coin, value: int) -> Coin:
    """The bank's blind signature on the coin as it now is (what a withdrawal gives)."""
    import dataclasses

    _, priv = world.mint.keysets[value]
    prepared = blindrsa.prepare(
        coin_message(coin.keyset_id, coin.epoch, coin.sigma, coin.credential)
    )
    blinded, inv = blindrsa.blind(priv.public_key(), prepared)
    sig = blindrsa.finalize(priv.public_key(), prepared, blindrsa.blind_sign(priv, blinded), inv)
    return dataclasses.replace(coin, msg_prefix=prepared[:32], signature=sig)


def _refused(
    merchant: Merchant, bank: FakeBank, amount: int, spends: list[dict[str, Any]], doc: Any
) -> EcashError:
    with pytest.raises(EcashError) as exc:
        merchant.pay(doc.request, spends)
    row = merchant.store.get(canonical_digest(doc.request["body"]))
    assert row is not None and row.state == "open"  # nothing reserved, deposited or paid
    assert bank.deposits == []
    return exc.value


def test_junk_coins_under_made_up_epochs_cost_no_epoch_lookup(
    world: World, shop: tuple[Merchant, EpochBank]
) -> None:
    """Finding 2: 64 coins under a public keyset with junk signatures and 64 made-up epochs
    are refused as ``coin.bad_signature`` (the first, index 0) before any epoch is looked up
    or any pairing runs: steps 1-3 run for every coin first (docs/protocol.md §7.4)."""
    import dataclasses

    merchant, bank = shop
    doc = merchant.create_request(64)
    preq = canonical_digest(doc.request["body"])
    real = world.mint.coin(world.cred, 1)
    proof = Spend.from_dict(world.mint.spend(world.signer, real, preq)).proof
    spends = [
        Spend(
            dataclasses.replace(real, epoch=1000 + i, sigma=secrets.token_bytes(32)), proof
        ).to_dict()
        for i in range(64)
    ]
    refused = _refused(merchant, bank, 64, spends, doc)
    assert (refused.code, refused.http_status) == ("coin.bad_signature", 400)
    assert refused.detail["index"] == 0
    assert bank.asked == []  # no epoch fetched
    # one real coin first does not change that: a later junk coin is named before step 4
    spends[0] = world.mint.spend(world.signer, real, preq)
    refused = _refused(merchant, bank, 64, spends, doc)
    assert (refused.code, refused.detail["index"]) == ("coin.bad_signature", 1)
    assert bank.asked == []
    # an honest payment still goes through, checked publicly
    doc = merchant.create_request(3)
    preq = canonical_digest(doc.request["body"])
    good = [world.mint.spend(world.signer, world.mint.coin(world.cred, v), preq) for v in (1, 2)]
    assert merchant.pay(doc.request, good).receipt["body"]["amount"] == 3
    assert bank.asked == [1] and "credential_check" not in merchant.stats().counters


def test_a_payment_may_span_two_epochs_at_most(
    world: World, shop: tuple[Merchant, EpochBank]
) -> None:
    """Finding 2: real coins of three epochs: ``payment.too_many_epochs`` before any lookup."""
    merchant, bank = shop
    doc = merchant.create_request(3)
    preq = canonical_digest(doc.request["body"])
    spends = [world.mint.spend(world.signer, _forged(world, 1, epoch), preq) for epoch in (1, 7, 8)]
    refused = _refused(merchant, bank, 3, spends, doc)
    assert (refused.code, refused.http_status) == ("payment.too_many_epochs", 400)
    assert refused.detail == {"epochs": 3, "max": 2}
    assert bank.asked == []


def test_the_wallet_cannot_switch_off_the_public_check(
    world: World, shop: tuple[Merchant, EpochBank]
) -> None:
    """Finding 3: a forged-credential coin (really signed by the bank) named under an epoch
    the bank has no certificate for is refused (``coin.unknown_epoch``), not left to the
    bank; a failed fetch is a retryable 503, asked again only after ``retry_s``; only a
    *verified* pre-issue-14 certificate leaves the coin to the bank's verdict."""
    from ecash_tpm.protocol.certified import ISSUER_EPOCH_KIND

    merchant, bank = shop

    def attempt(epoch: int) -> EcashError:
        doc = merchant.create_request(1)
        preq = canonical_digest(doc.request["body"])
        spends = [world.mint.spend(world.signer, _forged(world, 1, epoch), preq)]
        return _refused(merchant, bank, 1, spends, doc)

    refused = attempt(9)
    assert (refused.code, refused.http_status) == ("coin.unknown_epoch", 400)
    assert refused.detail["epoch"] == 9 and refused.detail["index"] == 0
    assert attempt(9).code == "coin.unknown_epoch" and bank.asked == [9]  # cached, bounded
    # the bank cannot be reached: 503, retryable, never "the bank decides"
    bank.down = True
    refused = attempt(5)
    assert (refused.code, refused.http_status) == ("issuer_epoch.unavailable", 503)
    assert refused.detail["cause"] == "remote.unreachable" and refused.detail["retry_after"] == 30
    assert attempt(5).code == "issuer_epoch.unavailable" and bank.asked == [9, 5]
    bank.down = False
    # the epoch's own certificate forged with the forger's coin: still refused publicly
    assert attempt(1).code == "daa.credential_invalid"
    # a verified certificate made before issue 14 (no X2, Y2): the bank decides, and says so
    legacy = {k: v for k, v in bank.docs[1]["body"].items() if k not in ("X2", "Y2")}
    bank.docs[4] = world.mint.ca.sign_object(ISSUER_EPOCH_KIND, {**legacy, "epoch": 4})
    doc = merchant.create_request(1)
    preq = canonical_digest(doc.request["body"])
    merchant.pay(doc.request, [world.mint.spend(world.signer, _forged(world, 1, 4), preq)])
    assert len(bank.deposits) == 1  # the fake bank accepts; the real one refuses (bank.*)
    assert merchant.stats().counters["credential_check"]["bank_only"] == 1
    assert merchant.epoch_keys is not None and dict(merchant.epoch_keys.bank_only) == {
        4: "issuer_epoch.no_g2"
    }


def test_the_epoch_key_must_be_this_deployments_issuers(
    world: World, shop: tuple[Merchant, EpochBank]
) -> None:
    """Finding 4: a root-certified epoch key of another issuer (e.g. a rogue or test issuer
    the central bank also certified) does not check this deployment's coins: refused."""
    from ecash_tpm.centralbank.certify import certify_issuer_epoch

    merchant, bank = shop
    rogue = IssuerSecret.generate()
    bank.docs[6] = certify_issuer_epoch(world.mint.ca, "rogue", 6, rogue.public)
    doc = merchant.create_request(1)
    preq = canonical_digest(doc.request["body"])
    world.mint.epoch = 6
    try:
        cred, _ = issue_credential(rogue, world.signer.public_point)
        coin = world.mint.coin(cred, 1)  # a credential under the rogue key: pairings pass
    finally:
        world.mint.epoch = 1
    refused = _refused(merchant, bank, 1, [world.mint.spend(world.signer, coin, preq)], doc)
    assert (refused.code, refused.http_status) == ("issuer_epoch.unavailable", 503)
    assert refused.detail["cause"] == "issuer_epoch.mismatch"
    assert merchant.config.issuer_name == "issuer"
