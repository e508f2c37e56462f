"""The bank-signed join authorisation and the supervision's revocation lift (docs/protocol.md,
"Join authorisation", "Lifting a revocation"): every refusal with its exact code."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from support.join_kit import JoinAuthority

from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol import KINDS
from ecash_tpm.protocol.join_auth import (
    JOIN_AUTHORISATION_KIND,
    REVOCATION_LIFT_KIND,
    JoinAuthorisation,
    RevocationLift,
    join_binding,
)

AK = b"\x00\x10the AK public of this join"
NOW = int(dt.datetime.now(dt.UTC).timestamp())


@pytest.fixture(scope="module")
def authority(tmp_path_factory: pytest.TempPathFactory) -> Iterator[JoinAuthority]:
    auth = JoinAuthority(tmp_path_factory.mktemp("ca"), clock=lambda: NOW)
    yield auth
    auth.ca.close()


def code_of(call: Any) -> str:
    with pytest.raises(EcashError) as err:
        call()
    return err.value.code


def verify(authority: JoinAuthority, grant: dict[str, Any], now: int = NOW) -> JoinAuthorisation:
    return JoinAuthorisation.from_signed(
        grant["authorisation"], grant["cert"], authority.root_pem, now=now
    )


def test_kinds_table_has_both_new_kinds() -> None:
    assert KINDS[JOIN_AUTHORISATION_KIND].signer_role == "bank"
    assert KINDS[REVOCATION_LIFT_KIND].signer_role == "supervision"


def test_valid_authorisation_and_its_binding(authority: JoinAuthority) -> None:
    auth = verify(authority, authority.authorise("alice", AK))
    assert auth.account_id == "alice" and auth.expires_at == NOW + 120
    auth.check_for("alice", AK)
    assert code_of(lambda: auth.check_for("bob", AK)) == "join.authorisation_mismatch"
    assert code_of(lambda: auth.check_for("alice", AK + b"x")) == "join.authorisation_mismatch"


def test_freshness(authority: JoinAuthority) -> None:
    grant = authority.authorise("alice", AK)
    assert code_of(lambda: verify(authority, grant, NOW + 121)) == "join.authorisation_expired"
    future = authority.authorise("alice", AK, issued_at=NOW + 600)
    assert code_of(lambda: verify(authority, future)) == "join.authorisation_expired"
    hoarded = authority.authorise("alice", AK, ttl=86400)  # the bank never issues such
    assert code_of(lambda: verify(authority, hoarded)) == "join.authorisation_expired"


def test_signature_cert_and_body(authority: JoinAuthority, tmp_path: Path) -> None:
    grant = authority.authorise("alice", AK)
    body = {**grant["authorisation"]["body"], "account_id": "bob"}
    edited = {**grant, "authorisation": {**grant["authorisation"], "body": body}}
    assert code_of(lambda: verify(authority, edited)) == "join.authorisation_invalid"
    wrong_kind = {**grant, "authorisation": {**grant["authorisation"], "kind": "receipt"}}
    assert code_of(lambda: verify(authority, wrong_kind)) == "join.authorisation_invalid"
    # signed by the supervision department's key: certified, but not as a bank
    by_sup = sign_object(authority.supervision_key, JOIN_AUTHORISATION_KIND, body)
    sup = {"authorisation": by_sup, "cert": authority.supervision_cert_pem}
    assert code_of(lambda: verify(authority, sup)) == "cert.wrong_role"
    # a bank certificate, but the signature is another key's
    other = sign_object(PartyKey.generate(), JOIN_AUTHORISATION_KIND, body)
    assert code_of(lambda: verify(authority, {**grant, "authorisation": other})) == (
        "join.authorisation_invalid"
    )
    # another central bank
    foreign = JoinAuthority(tmp_path / "other")
    try:
        assert code_of(lambda: verify(authority, foreign.authorise("bob", AK))) == "cert.untrusted"
    finally:
        foreign.ca.close()
    # shape
    for bad in (
        {k: v for k, v in body.items() if k != "nonce"},
        {**body, "extra": 1},
        {**body, "issued_at": "now"},
        {**body, "nonce": "short"},
        {**body, "binding": "zz"},
    ):
        assert code_of(lambda b=bad: JoinAuthorisation.from_body(b)) == "join.authorisation_invalid"


def test_binding_is_domain_separated() -> None:
    assert join_binding(AK) != join_binding(AK + b"\x00")
    assert len(join_binding(AK)) == 64


def test_revocation_lift(authority: JoinAuthority) -> None:
    body = RevocationLift("m-1", "repaid", NOW).to_body()
    doc = sign_object(authority.supervision_key, REVOCATION_LIFT_KIND, body)
    lift = RevocationLift.from_signed(
        doc, authority.supervision_cert_pem, authority.root_pem, now=NOW
    )
    assert lift.member_id == "m-1"
    by_bank = sign_object(authority.bank_key, REVOCATION_LIFT_KIND, body)
    assert (
        code_of(
            lambda: RevocationLift.from_signed(
                by_bank, authority.bank_cert_pem, authority.root_pem, now=NOW
            )
        )
        == "cert.wrong_role"
    )
    forged = {**doc, "body": {**body, "member_id": "m-2"}}
    assert (
        code_of(
            lambda: RevocationLift.from_signed(
                forged, authority.supervision_cert_pem, authority.root_pem, now=NOW
            )
        )
        == "issuer.lift_invalid"
    )
    for bad in ({**body, "reason": ""}, {"member_id": "m-1"}, {**body, "issued_at": True}):
        assert code_of(lambda b=bad: RevocationLift.from_body(b)) == "issuer.lift_invalid"


def test_revoked_bank_and_supervision_certificates_are_refused(tmp_path: Path) -> None:
    """13.2: the issuer checks both against the central bank's CRL (issue 10, attack 10)."""
    fresh = JoinAuthority(tmp_path / "ca", clock=lambda: NOW)
    try:
        grant = fresh.authorise("alice", AK)
        lift = sign_object(
            fresh.supervision_key,
            REVOCATION_LIFT_KIND,
            RevocationLift("m-1", "repaid", NOW).to_body(),
        )
        when = dt.datetime.fromtimestamp(NOW, dt.UTC)
        clean = fresh.ca.crl(now=when)
        JoinAuthorisation.from_signed(
            grant["authorisation"], grant["cert"], fresh.root_pem, now=NOW, crl=clean
        )
        for pem in (fresh.bank_cert_pem, fresh.supervision_cert_pem):
            fresh.ca.revoke(x509.load_pem_x509_certificate(pem.encode()).serial_number, now=when)
        crl = fresh.ca.crl(now=when)
        assert (
            code_of(
                lambda: JoinAuthorisation.from_signed(
                    grant["authorisation"], grant["cert"], fresh.root_pem, now=NOW, crl=crl
                )
            )
            == "cert.revoked"
        )
        assert (
            code_of(
                lambda: RevocationLift.from_signed(
                    lift, fresh.supervision_cert_pem, fresh.root_pem, now=NOW, crl=crl
                )
            )
            == "cert.revoked"
        )
    finally:
        fresh.ca.close()
