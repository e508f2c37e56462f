"""The issuer's bars on joining (ecash_tpm/issuer/bars.py) and the revocation lift, on the
domain object over SQLite with members written straight into the store (no TPM needed)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from support.join_kit import JoinAuthority

from ecash_tpm.crypto.groupsig import OpenerSecret
from ecash_tpm.crypto.signing import sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.issuer import bars, store
from ecash_tpm.issuer.domain import IssuerService
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import load_certificate
from ecash_tpm.protocol.join_auth import REVOCATION_LIFT_KIND
from ecash_tpm.protocol.registry import InMemoryRegistry
from ecash_tpm.storage import Database, UniqueViolationError, sqlite_url


@pytest.fixture
def env(tmp_path: Path) -> Iterator[tuple[IssuerService, JoinAuthority]]:
    authority = JoinAuthority(tmp_path / "ca")
    db = Database.open(sqlite_url(tmp_path / "issuer.db"))
    db.migrate(store.MIGRATIONS, component="issuer")
    service = IssuerService(
        db,
        IssuerKeyStore.create(tmp_path / "keys"),
        EkTrustStore((), ()),
        PcrPolicy((0,), {}, tofu=True),
        opener_public=OpenerSecret.generate().public,
        registry=InMemoryRegistry(),
        authorisation_root=load_certificate(authority.root_pem),
    )
    yield service, authority
    db.close()
    authority.ca.close()


def add_member(db: Database, member_id: str, account: str, eks: list[tuple[str, str]]) -> None:
    with db.transaction() as tx:
        store.insert_member(
            tx,
            {
                "member_id": member_id,
                "account_id": account,
                "ek_fingerprint": eks[0][0],
                "ek_cert": b"cert",
                "ak_name": b"ak",
                "daa_q": b"q-" + member_id.encode(),
                "t0": b"t0-" + member_id.encode(),
                "pcr_values": {},
                "epoch": 1,
                "join_id": "j-" + member_id,
                "now": 1,
            },
        )
        store.insert_member_eks(tx, member_id, eks)


def code_of(call: Any) -> str:
    with pytest.raises(EcashError) as err:
        call()
    return err.value.code


def test_bars_by_any_ek_and_by_account(env: tuple[IssuerService, JoinAuthority]) -> None:
    service, _ = env
    db = service.db
    add_member(db, "m-1", "alice", [("ek-rsa", "key-rsa"), ("ek-p384", "key-p384")])
    with db.read() as tx:
        assert code_of(lambda: bars.check_platform_free(tx, [("ek-p384", "?")])) == (
            "join.ek_already_member"
        )
        assert code_of(lambda: bars.check_account_free(tx, "alice")) == (
            "join.account_already_member"
        )
        bars.check_platform_free(tx, [("ek-other", "key-other")])
        # the same EK key under another certificate is the same TPM
        assert code_of(lambda: bars.check_platform_free(tx, [("reissued", "key-rsa")])) == (
            "join.ek_already_member"
        )
        bars.check_account_free(tx, "bob")
    # the database itself keeps one active membership per account (racing joins)
    with pytest.raises(UniqueViolationError):
        add_member(db, "m-2", "alice", [("ek-other", "key-other")])
    assert service.account_may_withdraw("alice")
    service.revoke("m-1", reason="double spend")
    with db.read() as tx:
        assert code_of(lambda: bars.check_platform_free(tx, [("ek-rsa", "?")])) == "join.ek_revoked"
        assert code_of(lambda: bars.check_platform_free(tx, [("x", "y"), ("z", "key-p384")])) == (
            "join.ek_revoked"
        )
        assert code_of(lambda: bars.check_account_free(tx, "alice")) == "join.account_revoked"
    assert not service.account_may_withdraw("alice")


def test_lift(env: tuple[IssuerService, JoinAuthority]) -> None:
    service, authority = env
    add_member(service.db, "m-1", "alice", [("ek-rsa", "key-rsa")])

    def lift_doc(member_id: str) -> dict[str, Any]:
        body = {"member_id": member_id, "reason": "repaid", "issued_at": 1}
        return sign_object(authority.supervision_key, REVOCATION_LIFT_KIND, body)

    sup = authority.supervision_cert_pem
    assert code_of(lambda: service.lift_revocation("m-1", lift_doc("m-1"), sup)) == (
        "issuer.member_not_revoked"
    )
    assert code_of(lambda: service.lift_revocation("m-9", lift_doc("m-9"), sup)) == (
        "issuer.member_not_found"
    )
    assert code_of(lambda: service.lift_revocation("m-1", lift_doc("m-2"), sup)) == (
        "issuer.lift_invalid"
    )
    service.revoke("m-1", reason="double spend")
    record = service.lift_revocation("m-1", lift_doc("m-1"), sup)
    assert record.status == "revoked" and record.revocation_lifted_at is not None
    again = service.lift_revocation("m-1", lift_doc("m-1"), sup)  # idempotent
    assert again.revocation_lifted_at == record.revocation_lifted_at
    with service.db.read() as tx:
        bars.check_platform_free(tx, [("ek-rsa", "key-rsa")])
        bars.check_account_free(tx, "alice")
    assert not service.account_may_withdraw("alice")  # no active member (until a new join)


def test_without_root_every_join_is_refused(tmp_path: Path) -> None:
    assert code_of(lambda: bars.require_root(None)) == "issuer.central_bank_root_missing"
