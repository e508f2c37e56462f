"""Issue 10, attack 3: joining under someone else's account, and rejoining after revocation.

Every party runs as a real HTTPS server (tests/support/system.py) and the attacker holds a
genuine swtpm. The defences (docs/protocol.md "Join authorisation", 3.1, "Lifting a
revocation"): a join needs a short-lived, single-use, bank-signed authorisation obtained with
the account's own login and bound to the join's AK; the device presents and activates every EK
its TPM holds, so the issuer knows the TPM by all of them; one active membership per account;
a revoked account or TPM stays out until the supervision department lifts the revocation; the
bank refuses withdrawals to a revoked account.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from support.system import Customer, System, start_system

from ecash_tpm.bank.ledger import customer_account
from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.cli import main
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.device import EkKind, TpmDevice
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import cert_pem
from ecash_tpm.protocol.join_auth import (
    JOIN_AUTHORISATION_KIND,
    REVOCATION_LIFT_KIND,
    join_binding,
)
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.join import (
    DeviceKeys,
    authorise,
    join,
    prepare_keys,
    release_keys,
    start_request,
)

pytestmark = pytest.mark.swtpm

BOB_BALANCE = 500


def refused(code: str, call: Callable[[], Any]) -> Any:
    """``call`` must be refused with exactly ``code``."""
    with pytest.raises((RemoteCallError,)) as err:
        call()
    assert err.value.code == code, (err.value.code, err.value.message)
    return err.value


@pytest.fixture
def system(swtpm: Any, tpm: TpmDevice, tmp_path: Path) -> Iterator[System]:
    with start_system(tmp_path / "sys", swtpm=swtpm, tpm=tpm) as s:
        yield s


def add_customer(system: System, account_id: str, balance: int = BOB_BALANCE) -> Customer:
    """Another honest customer of the bank (bob)."""
    who = Customer(account_id, "bob's own password", secrets.token_bytes(20), system.clock)
    system.bank.create_customer(
        who.account_id, who.password, who.totp_secret, initial_balance=balance
    )
    return who


def login(system: System, who: Customer) -> BankClient:
    client = BankClient(system.bank_url, **system.link("bank"))
    system._closers.append(client.close)
    client.login(who.account_id, who.password, who.totp())
    return client


def bank_balance(system: System, account_id: str) -> int:
    return system._ledger(customer_account(account_id))


def try_start(system: System, tpm: TpmDevice, keys: DeviceKeys, account: str, grant: Any) -> Any:
    return system.issuer_client().join_start(start_request(tpm, keys, account, grant))


# --- attack 3a: joining under another account ---------------------------------------------------


def test_attack_3_join_under_another_account(
    system: System, tpm: TpmDevice, tmp_path: Path
) -> None:
    """Alice, with her own genuine TPM and her own login, tries to become a member as bob."""
    bob = add_customer(system, "bob")
    alice_bank = system.login()  # alice's login (system.customer is alice)
    keys = prepare_keys(tpm, tmp_path / "alice-wallet", EkKind.RSA_2048)
    try:
        assert set(keys.other_ek_kinds) == {EkKind.ECC_P384}  # the swtpm's other EK
        # the bank signs only for a logged-in account, and only a well-formed binding
        anonymous = system.bank_client()
        binding = join_binding(keys.ak.public)
        refused("auth.invalid_token", lambda: anonymous.join_authorisation(binding))
        refused("bank.join_binding_invalid", lambda: alice_bank.join_authorisation("Z" * 64))
        # no authorisation at all
        refused("join.authorisation_missing", lambda: try_start(system, tpm, keys, "bob", None))
        # alice's own authorisation, presented for bob's account
        grant = authorise(alice_bank, keys)
        refused("join.authorisation_mismatch", lambda: try_start(system, tpm, keys, "bob", grant))
        # alice edits the account in the signed body: the bank's signature breaks
        body = {**grant["authorisation"]["body"], "account_id": "bob"}
        edited = {**grant, "authorisation": {**grant["authorisation"], "body": body}}
        refused("join.authorisation_invalid", lambda: try_start(system, tpm, keys, "bob", edited))
        # alice signs "bob" herself, with a key her own CA certified as a bank
        with CentralBankCA.create(tmp_path / "fake-ca") as fake:
            key = PartyKey.generate()
            fake_cert = cert_pem(fake.certify("bank", "bank", key.public_key))
        forged = {
            "authorisation": sign_object(key, JOIN_AUTHORISATION_KIND, body),
            "cert": fake_cert,
        }
        refused("cert.untrusted", lambda: try_start(system, tpm, keys, "bob", forged))
        # ... or with a certificate of the real central bank for another role (a merchant's)
        merchant_key = PartyKey.generate()
        merchant = cert_pem(system.ca.certify("merchant", "alice-shop", merchant_key.public_key))
        as_merchant = {
            "authorisation": sign_object(merchant_key, JOIN_AUTHORISATION_KIND, body),
            "cert": merchant,
        }
        refused("cert.wrong_role", lambda: try_start(system, tpm, keys, "bob", as_merchant))
        # an authorisation for alice bound to another AK (another join) is not for this one
        other = alice_bank.join_authorisation(join_binding(b"another device's AK"))
        refused("join.authorisation_mismatch", lambda: try_start(system, tpm, keys, "alice", other))
        # an expired authorisation (the bank issues 120 s)
        stale = authorise(alice_bank, keys)
        system.clock.advance(121)
        refused("join.authorisation_expired", lambda: try_start(system, tpm, keys, "alice", stale))
        # a replayed one: the first start spends it, the second is refused
        fresh = authorise(alice_bank, keys)
        challenge = try_start(system, tpm, keys, "alice", fresh)
        assert len(challenge.other_challenges) == 1  # the P-384 EK is activated too
        refused("join.authorisation_replayed", lambda: try_start(system, tpm, keys, "alice", fresh))
    finally:
        release_keys(tpm, keys)

    # bob is untouched: no membership, his money where it was, and no withdrawal for anyone
    assert system.issuer.list_members(account_id="bob") == []
    assert bank_balance(system, "bob") == BOB_BALANCE
    bob_bank = login(system, bob)
    assert bob_bank.account()["balance"] == BOB_BALANCE
    # alice gained nothing: she is no member either (her started join was never finished)
    assert system.issuer.list_members() == []

    # with her own login alice joins as herself, and only as herself
    wallet = system.open_wallet(tpm, tmp_path / "alice-joined")
    try:
        assert wallet.membership.account_id == "alice"
        [member] = system.issuer.list_members()
        assert member.account_id == "alice" and member.status == "active"
        assert system.issuer.list_members(account_id="bob") == []
    finally:
        wallet.close()


# --- attack 3b: rejoining after revocation ------------------------------------------------------


@pytest.fixture
def second_tpm(swtpm_factory: Any, system: System, swtpm: Any) -> Iterator[TpmDevice]:
    """Another genuine TPM (its own manufacturer CA, which the issuer trusts as well)."""
    other = swtpm_factory()
    roots, inter = swtpm.ca_certificates()
    roots2, inter2 = other.ca_certificates()
    system.issuer.trust = EkTrustStore((*roots, *roots2), (*inter, *inter2))
    with TpmDevice(other.tcti) as dev:
        yield dev


def full_join(
    system: System, tpm: TpmDevice, wallet_dir: Path, bank: BankClient, account: str, **kw: Any
) -> Any:
    return join(tpm, system.issuer_client(), wallet_dir, account_id=account, bank=bank, **kw)


def test_attack_3_rejoin_after_revocation(
    system: System,
    tpm: TpmDevice,
    second_tpm: TpmDevice,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A revoked member's TPM tries to come back through its other EK, under its own and under
    another account; the revoked account tries with another TPM; then the lift."""
    bob = add_customer(system, "bob")
    start = system.customer_balance()
    wallet = system.open_wallet(tpm, tmp_path / "w1")
    first = wallet.membership
    assert first.ek_kind == "rsa2048"
    wallet.withdraw(8)
    wallet.pay(8)  # honest use before the revocation
    assert system.customer_balance() == start - 8

    # one active membership per account: alice's second TPM cannot join as alice too
    second_bank = system.login()
    refused(
        "join.account_already_member",
        lambda: full_join(system, second_tpm, tmp_path / "t2", second_bank, "alice"),
    )

    # the supervision department opened a double spend and had the member revoked
    system.issuer.revoke(first.member_id, reason="double spend (test)")

    # the revoked member can neither withdraw (the bank refuses) nor pay (it holds nothing)
    refused("bank.member_not_active", lambda: wallet.withdraw(4))
    with pytest.raises(Exception) as nothing:
        wallet.pay(4)
    assert getattr(nothing.value, "code", None) == "wallet.insufficient_funds"
    assert system.customer_balance() == start - 8
    wallet.close()  # flush its DAA key: swtpm has three object slots

    alice_bank = system.login()
    # the same TPM through its other (P-384) EK, under the same account: a fresh wallet
    refused(
        "join.ek_revoked",
        lambda: full_join(system, tpm, tmp_path / "p384", alice_bank, "alice", ek_kind="ecc_p384"),
    )
    # ... hiding its RSA EK (presenting the P-384 one only): the issuer requires the RSA EK
    keys = replace(prepare_keys(tpm, tmp_path / "hide", EkKind.ECC_P384), other_ek_kinds=())
    try:
        refused(
            "join.ek_kind_missing",
            lambda: try_start(system, tpm, keys, "alice", authorise(alice_bank, keys)),
        )
        # and an issuer that requires no EK type knows the P-384 EK from the first join
        system.issuer.required_ek_kinds = ()
        refused(
            "join.ek_revoked",
            lambda: try_start(system, tpm, keys, "alice", authorise(alice_bank, keys)),
        )
        # ... under bob's account, with bob's login (an accomplice): still that TPM
        bob_bank = login(system, bob)
        refused(
            "join.ek_revoked",
            lambda: try_start(system, tpm, keys, "bob", authorise(bob_bank, keys)),
        )
    finally:
        release_keys(tpm, keys)
    # the revoked account with another, clean TPM: the account stays out
    refused(
        "join.account_revoked",
        lambda: full_join(system, second_tpm, tmp_path / "t2b", alice_bank, "alice"),
    )
    [record] = system.issuer.list_members()
    assert (record.member_id, record.status) == (first.member_id, "revoked")
    assert system.issuer.list_members(account_id="bob") == []
    assert bank_balance(system, "bob") == BOB_BALANCE

    # a lift signed by anyone but the supervision department is refused (here: the bank's key)
    issuer = system.issuer_client()
    body = {"member_id": first.member_id, "reason": "forgiven", "issued_at": system.clock()}
    bank_key = PartyKey.generate()
    bank_cert = cert_pem(system.ca.certify("bank", "bank", bank_key.public_key))
    fake = sign_object(bank_key, REVOCATION_LIFT_KIND, body)
    refused("cert.wrong_role", lambda: issuer.lift(first.member_id, fake, bank_cert))
    refused(
        "join.account_revoked",
        lambda: full_join(system, second_tpm, tmp_path / "t2c", alice_bank, "alice"),
    )

    # the supervision department lifts the revocation: the account and the TPM may join again
    lift = system.supervision.revocation_lift(first.member_id, "damage repaid")
    sup_cert = (system.base_dir / "supervision" / "supervision-cert.pem").read_text()
    refused("issuer.lift_invalid", lambda: issuer.lift("m-" + "0" * 32, lift, sup_cert))
    # the department's operator lifts it with the CLI (signs with the department's key)
    sup_dir = system.base_dir / "supervision"
    (sup_dir / "supervision-key.pem").write_bytes(system.supervision.signer.private_pem())
    if not (sup_dir / "central-bank-root.pem").exists():  # where a department keeps it
        (sup_dir / "central-bank-root.pem").write_text(system.root_pem)
    argv = ["supervision", "lift-revocation", first.member_id, "--reason", "damage repaid"]
    argv += ["--data", str(sup_dir), "--issuer-url", system.issuer_url, "--json"]
    assert main(argv) == 0, capsys.readouterr()
    lifted = issuer.member(first.member_id)
    assert lifted.status == "revoked" and lifted.revocation_lifted_at is not None
    assert issuer.lift(first.member_id, lift, sup_cert).revocation_lifted_at == (
        lifted.revocation_lifted_at
    )  # idempotent
    again = system.open_wallet(tpm, tmp_path / "w2")  # new DAA key, the same TPM, alice
    try:
        members = {m.member_id: m.status for m in system.issuer.list_members()}
        assert members == {first.member_id: "revoked", again.membership.member_id: "active"}
        again.withdraw(4)
        assert system.customer_balance() == start - 12
    finally:
        again.close()
        wallet.close()
