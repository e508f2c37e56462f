"""Fixture plumbing shared by the bank tests: one bank with its PKI, issuer, clock, reporter.

Kept apart from :mod:`coinmint` (which knows nothing about the bank's internals) so other
parties' tests can reuse ``coinmint`` alone.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ecash_tpm.bank.accounts import ScryptParams
from ecash_tpm.bank.domain import BankDomain, BankPolicy
from ecash_tpm.bank.models import ReserveResult
from ecash_tpm.bank.store import MIGRATIONS
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.coins import Coin, Spend, sign_deposit, sign_reserve
from ecash_tpm.protocol.keysets import Keyset
from ecash_tpm.storage import Database
from support.coinmint import (
    KeyPool,
    Member,
    Pki,
    RecordingReporter,
    TestClock,
    TestIssuer,
    make_spend,
    payment_request,
    split_amount,
    withdraw_coins,
)

TOTP_SECRET = b"0123456789abcdef0123"
PASSWORD = "correct horse battery"
DENOMINATIONS = (1, 2, 5, 10)


@contextmanager
def refused(error: type[BaseException], code: str) -> Iterator[pytest.ExceptionInfo[Any]]:
    """``pytest.raises(error)`` that also asserts the exact refusal code."""
    with pytest.raises(error) as info:
        yield info
    assert getattr(info.value, "code", None) == code


def test_policy(**overrides: Any) -> BankPolicy:
    """Small, fast policy: cheap scrypt, low thresholds, short lock period."""
    base: dict[str, Any] = {
        "currency": "EUR",
        "denominations": DENOMINATIONS,
        "lock_period_s": 60,
        "blacklist_threshold": 3,
        "blacklist_window_s": 600,
        "login_threshold": 3,
        "login_window_s": 600,
        "scrypt": ScryptParams(n=2**10),
    }
    base.update(overrides)
    return BankPolicy(**base)


test_policy.__test__ = False  # type: ignore[attr-defined]


@dataclass
class BankWorld:
    """A bank (domain object) plus everything around it that a test needs."""

    bank: BankDomain
    db: Database
    pki: Pki
    issuer: TestIssuer
    reporter: RecordingReporter
    clock: TestClock
    members: dict[str, Member] = field(default_factory=dict)

    # --- customers ----------------------------------------------------------------------------

    def customer(self, account_id: str, balance: int = 100) -> Member:
        self.bank.create_customer(account_id, PASSWORD, TOTP_SECRET, initial_balance=balance)
        member = self.issuer.enroll(account_id)
        self.members[account_id] = member
        return member

    def keysets(self) -> list[Keyset]:
        now = self.clock()
        return [k for k in self.bank.keysets.list_keysets(now=now) if k.can_withdraw(now)]

    def keyset(self, value: int) -> Keyset:
        return next(k for k in self.keysets() if k.value == value)

    def withdraw(self, member: Member, amount: int, request_id: str | None = None) -> list[Coin]:
        split = split_amount(amount, self._latest_keysets())
        return withdraw_coins(
            lambda rid, items: list(
                self.bank.withdraw(member.account_id, rid, items).blind_signatures
            ),
            member,
            split,
            request_id,
        )

    def _latest_keysets(self) -> list[Keyset]:
        latest: dict[int, Keyset] = {}
        for k in self.keysets():
            if k.value not in latest or k.withdraw_from > latest[k.value].withdraw_from:
                latest[k.value] = k
        return list(latest.values())

    # --- merchants ----------------------------------------------------------------------------

    def request(self, merchant: str, amount: int, *, deadline_in: int = 600) -> dict[str, Any]:
        return payment_request(
            self.pki.merchants[merchant],
            amount=amount,
            bank=self.bank.bank_name,
            deadline=self.clock() + deadline_in,
        )

    def spends(self, member: Member, coins: list[Coin], request: dict[str, Any]) -> list[Spend]:
        from ecash_tpm.crypto.signing import canonical_digest

        preq = canonical_digest(request["body"])
        return [make_spend(member, c, preq, self.issuer.hop) for c in coins]

    def signed_deposit(
        self,
        merchant: str,
        request: dict[str, Any],
        spends: list[Any],
        deposit_id: str | None = None,
    ) -> dict[str, Any]:
        party = self.pki.merchants[merchant]
        return sign_deposit(
            party.key,
            deposit_id=deposit_id or "d-" + secrets.token_hex(8),
            merchant_id=merchant,
            request=request,
            spends=spends,
        )

    def deposit(
        self,
        merchant: str,
        request: dict[str, Any],
        spends: list[Any],
        deposit_id: str | None = None,
    ) -> dict[str, Any]:
        signed = self.signed_deposit(merchant, request, spends, deposit_id)
        return self.bank.deposit(signed, self.pki.merchants[merchant].cert_pem)

    def reserve(self, merchant: str, request: dict[str, Any], spends: list[Any]) -> ReserveResult:
        party = self.pki.merchants[merchant]
        signed = sign_reserve(party.key, merchant_id=merchant, request=request, spends=spends)
        return self.bank.reserve(signed, party.cert_pem)

    def pay(self, member: Member, merchant: str, amount: int) -> dict[str, Any]:
        """Withdraw ``amount`` and deposit it at ``merchant`` in one go; returns the receipt."""
        coins = self.withdraw(member, amount)
        request = self.request(merchant, amount)
        return self.deposit(merchant, request, self.spends(member, coins, request))


def make_world(
    *,
    db_url: str,
    data_dir: Path,
    pki: Pki,
    keys: KeyPool,
    policy: BankPolicy | None = None,
    reporter: RecordingReporter | None = None,
) -> BankWorld:
    """Open and migrate the database, build the bank, publish its first keysets."""
    db = Database.open(db_url)
    db.migrate(MIGRATIONS, component="bank")
    issuer = TestIssuer()
    clock = TestClock()
    rec = reporter or RecordingReporter()
    bank = BankDomain(
        db,
        bank_key=pki.bank.key,
        bank_cert=load_certificate(pki.bank.cert_pem),
        central_bank_root=load_certificate(pki.root_pem),
        keys_dir=data_dir / "keysets",
        issuer_secrets=issuer,
        membership=issuer,
        reporter=rec,
        opener_public=issuer.hop,
        policy=policy or test_policy(),
        clock=clock,
        keygen=keys.keygen_for_bank(),
    )
    bank.rotate_keysets()
    for name in pki.merchants:
        bank.add_merchant(pki.merchants[name].cert_pem)
    return BankWorld(bank, db, pki, issuer, rec, clock)
