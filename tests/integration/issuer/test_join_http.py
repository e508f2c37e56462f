"""Attested join end to end: real swtpm, issuer over real HTTP on 127.0.0.1, RSA-2048 and
P-384 EKs; the same flow on PostgreSQL."""

from __future__ import annotations

import json
import stat
from pathlib import Path

import pytest
from support.join_kit import (
    MEMBERS_TOKEN,
    JoinAuthority,
    current_policy,
    issuer_env,
    swtpm_trust,
)

from ecash_tpm.clients.issuer import IssuerClient
from ecash_tpm.crypto.groupsig import Credential, CredentialProof, verify_credential_proof
from ecash_tpm.device import EkKind, TpmDevice
from ecash_tpm.protocol.registry import member_id_for_t0
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.join import join
from ecash_tpm.wallet.membership import (
    WalletAlreadyJoinedError,
    load_membership,
    membership_path,
    open_signer,
)

pytestmark = pytest.mark.swtpm


@pytest.mark.parametrize("kind", [EkKind.RSA_2048, EkKind.ECC_P384])
def test_join_succeeds(swtpm, tpm: TpmDevice, tmp_path: Path, kind: EkKind) -> None:
    with issuer_env(
        tmp_path / "issuer",
        trust=swtpm_trust(swtpm),
        policy=current_policy(tpm),
        insecure_http=True,  # plain HTTP: the members_token stands in for the bank's certificate
    ) as env:
        info = env.client.info()
        assert info.epoch == 1 and info.pcr_selection.pcrs == [0, 1, 2, 3, 7]
        assert info.opener_public == env.opener.public.encode()
        steps: list[tuple[str, int, int]] = []
        m = env.join(
            tpm,
            tmp_path / "wallet",
            account_id="alice",
            ek_kind=kind,
            progress=lambda message, done, total: steps.append((message, done, total)),
        )
        assert [(done, total) for _, done, total in steps] == [(i, 8) for i in range(1, 9)]

        # the member record
        assert m.ek_kind == kind.value and m.epoch == 1 and m.member_id == member_id_for_t0(m.t0)
        rows = env.member_rows()
        assert rows == [{"member_id": m.member_id, "status": "active", "account_id": "alice"}]
        record = env.client.member(m.member_id)
        assert record.status == "active" and record.ek_fingerprint == m.ek_fingerprint
        assert record.ak_name == m.ak_name and record.daa_public_point == m.q.encode()
        assert set(record.pcr_values) == {"0", "1", "2", "3", "7"}
        assert [r.member_id for r in env.client.members(account_id="alice", status="active")] == [
            m.member_id
        ]
        assert env.client.members(account_id="bob") == []
        # the list links accounts to platforms: strangers get nothing
        with IssuerClient(env.url) as stranger, pytest.raises(RemoteCallError) as err:
            stranger.members(account_id="alice")
        assert err.value.code == "issuer.members_unauthorized" and err.value.status == 401
        # T0 went to the registry inside the join transaction
        assert env.registry.lookup() == {m.t0.encode(): m.member_id}

        # the credential proof verifies (the wallet checked it; check the stored copy again)
        verify_credential_proof(m.q, m.credential, m.credential_proof)
        # the designated check with the issuer secret holds for the credential itself
        secret = env.service.keys.secret_for_epoch(1)
        cred = m.credential
        assert secret.y * cred.A == cred.B and secret.x * (cred.A + cred.D) == cred.C

        # the join state was consumed and its secret wiped
        with env.service.db.read() as tx:
            sessions = tx.fetchall("SELECT consumed_at, outcome, secret FROM join_session")
        assert len(sessions) == 1
        assert sessions[0]["outcome"] == "member" and sessions[0]["secret"] is None

    # membership.json: private, complete, and the signer it opens is the credential's key
    path = membership_path(tmp_path / "wallet")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = load_membership(tmp_path / "wallet")
    assert again == m
    assert json.loads(path.read_text())["member_id"] == m.member_id
    signer = open_signer(tpm, tmp_path / "wallet", again)
    assert signer.public_point == m.q
    tpm.unload(signer.key)


def test_join_twice_from_one_wallet_refused(swtpm, tpm: TpmDevice, tmp_path: Path) -> None:
    with issuer_env(
        tmp_path / "issuer", trust=swtpm_trust(swtpm), policy=current_policy(tpm)
    ) as env:
        env.join(tpm, tmp_path / "w", account_id="carol")
        with pytest.raises(WalletAlreadyJoinedError) as err:
            env.join(tpm, tmp_path / "w", account_id="carol")
        assert err.value.code == "wallet.already_joined"
        assert len(env.member_rows()) == 1


def test_credential_proof_rejects_other_key(swtpm, tpm: TpmDevice, tmp_path: Path) -> None:
    """The member-side check binds the credential to its own Q."""
    with issuer_env(
        tmp_path / "issuer", trust=swtpm_trust(swtpm), policy=current_policy(tpm)
    ) as env:
        m = env.join(tpm, tmp_path / "w", account_id="dave", ek_kind="ecc_p384")
    from ecash_tpm.crypto.bn256 import G
    from ecash_tpm.crypto.groupsig import CredentialProofError

    with pytest.raises(CredentialProofError):
        verify_credential_proof(7 * G, m.credential, m.credential_proof)
    assert isinstance(m.credential, Credential) and isinstance(m.credential_proof, CredentialProof)


def test_join_and_registry_on_postgresql(
    swtpm, tpm: TpmDevice, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The same schema and statements on PostgreSQL (issuer and supervision in one database,
    each with its own pool: the registry call runs inside the issuer's transaction)."""
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.crypto.groupsig import OpenerSecret
    from ecash_tpm.crypto.signing import PartyKey
    from ecash_tpm.issuer.keys import IssuerKeyStore
    from ecash_tpm.issuer.routes import create_issuer_app
    from ecash_tpm.issuer.settings import IssuerSettings
    from ecash_tpm.protocol.registry import CallbackRegistry
    from ecash_tpm.service.server import running_server
    from ecash_tpm.storage import Database
    from ecash_tpm.supervision.domain import SupervisionDepartment
    from ecash_tpm.supervision.store import MIGRATIONS

    url: str = request.getfixturevalue("pg_url")
    db = Database.open(url)
    sup_db = Database.open(url)
    try:
        sup_db.migrate(MIGRATIONS, component="supervision")
        opener = OpenerSecret.generate()
        dept = SupervisionDepartment(sup_db, opener, signer=PartyKey.generate())
        IssuerKeyStore.create(tmp_path / "issuer" / "issuer-keys")
        authority = JoinAuthority(tmp_path / "pki")
        (tmp_path / "issuer" / "central-bank-root.pem").write_text(authority.root_pem)
        app = create_issuer_app(
            IssuerSettings(
                data_dir=tmp_path / "issuer",
                database_url=url,
                members_token=MEMBERS_TOKEN,
                insecure_http=True,  # the token stands in for the bank's client certificate
            ),
            registry=CallbackRegistry(dept.register_member),
            trust=swtpm_trust(swtpm),
            policy=current_policy(tpm),
            opener_public=opener.public,
            database=db,
        )
        with running_server(app) as url, IssuerClient(url, token=MEMBERS_TOKEN) as client:
            bank = authority.bank_for("pg")
            m = join(tpm, client, tmp_path / "w", account_id="pg", ek_kind="ecc_p384", bank=bank)
            assert [r["member_id"] for r in dept.registry()] == [m.member_id]
            service = app.state.issuer
            assert service.revoke(m.member_id, reason="test").status == "revoked"
            assert service.revoke(m.member_id, reason="again").revocation_reason == "test"
            assert client.members(status="active") == []
            assert [r.member_id for r in client.members(status="revoked")] == [m.member_id]
    finally:
        db.close()
        sup_db.close()
        authority.ca.close()
