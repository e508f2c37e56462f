"""Wallet side of the join: TpmDaaSigner, membership file, and the CLI (wallet join, issuer
members, supervision init/open) end to end against the session swtpm over real HTTP."""

from __future__ import annotations

import json
import secrets
from pathlib import Path

import pytest
from support.join_kit import current_policy, fake_bank, issuer_env, swtpm_trust

from ecash_tpm.cli import main
from ecash_tpm.crypto.bn256 import G, tracing_base
from ecash_tpm.crypto.groupsig import (
    IssuerSecret,
    SignerOutputError,
    issue_credential,
    make_join_proof,
    make_spend_proof,
    verify_join_proof,
)
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.device import TpmDevice
from ecash_tpm.protocol.registry import CallbackRegistry
from ecash_tpm.storage import Database
from ecash_tpm.supervision.domain import SupervisionDepartment
from ecash_tpm.supervision.keys import load_opener_secret
from ecash_tpm.supervision.settings import SupervisionSettings
from ecash_tpm.supervision.store import MIGRATIONS
from ecash_tpm.wallet.membership import (
    MembershipFileError,
    WalletKeyMismatchError,
    WalletNotJoinedError,
    load_membership,
    membership_path,
    open_signer,
    save_membership,
)
from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

pytestmark = pytest.mark.swtpm


def test_tpm_signer_matches_the_protocol(tpm: TpmDevice, tmp_path: Path) -> None:
    daa = tpm.load_or_create_daa_key(tmp_path)
    try:
        signer = TpmDaaSigner(tpm, daa)
        nonce = secrets.token_bytes(32)
        proof = make_join_proof(signer, nonce)  # self-checks the TPM's answer
        verify_join_proof(nonce, signer.public_point, proof)
        # K of a commit on the tracing base is T0 = sk*J0, stable across commits
        s2, j0 = tracing_base()
        res = signer.commit(G, s2, j0.y_bytes())
        assert proof.t0 == res.K and res.L is not None and res.E is not None
        signer.sign(bytes(32), res.counter)
        assert (signer.stats.commits, signer.stats.signs) == (2, 2)
        assert signer.stats.tpm_seconds > 0
        # a spend proof with a credential for this key, T0 checked against the expected one
        cred, _ = issue_credential(IssuerSecret.generate(), signer.public_point)
        coin = cred.randomize()
        kw = dict(
            hop=7 * G, preq=bytes(32), keyset_id=bytes(16), epoch=1, sigma=bytes(32), coin=coin
        )
        make_spend_proof(signer, expected_t0=proof.t0, **kw)  # type: ignore[arg-type]
        with pytest.raises(SignerOutputError):
            make_spend_proof(signer, expected_t0=5 * G, **kw)  # type: ignore[arg-type]
    finally:
        tpm.unload(daa)


def test_membership_file_errors(tmp_path: Path) -> None:
    with pytest.raises(WalletNotJoinedError) as err:
        load_membership(tmp_path)
    assert err.value.code == "wallet.not_joined"
    membership_path(tmp_path).write_text("{not json")
    with pytest.raises(MembershipFileError):
        load_membership(tmp_path)
    membership_path(tmp_path).write_text(json.dumps({"version": 1, "member_id": "m"}))
    with pytest.raises(MembershipFileError):
        load_membership(tmp_path)


def test_cli_join_members_and_open(
    swtpm, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """wallet join (CLI) -> issuer members (CLI) -> TPM spend -> supervision open (CLI)."""
    sup_dir = tmp_path / "sup"
    assert main(["supervision", "init", "--data", str(sup_dir), "--json"]) == 0
    hop_b64 = json.loads(capsys.readouterr().out)["opener_public"]
    sup_settings = SupervisionSettings(data_dir=sup_dir)
    opener = load_opener_secret(sup_settings.resolved_opener_key_file())
    db = Database.open(sup_settings.database_url)
    db.migrate(MIGRATIONS, component="supervision")
    dept = SupervisionDepartment(db, opener, signer=PartyKey.generate())
    with TpmDevice(swtpm.tcti) as dev:
        policy = current_policy(dev)
    wallet = tmp_path / "wallet"
    try:
        with (
            issuer_env(
                tmp_path / "issuer",
                trust=swtpm_trust(swtpm),
                policy=policy,
                opener=opener,
                registry=CallbackRegistry(dept.register_member),
            ) as env,
            fake_bank(env.authority, tmp_path / "pw") as bank,
        ):
            assert env.client.info().opener_public == opener.public.encode()
            argv = [
                "wallet",
                "join",
                "--issuer",
                env.url,
                "--tcti",
                swtpm.tcti,
                "--data",
                str(wallet),
                "--account",
                "erin",
                "--json",
                "--insecure-http",  # the issuer of this test serves plain HTTP
                *bank,  # the account's login authorises the join
            ]
            assert main(argv) == 0
            out = json.loads(capsys.readouterr().out)
            assert out["ok"] and out["account_id"] == "erin" and out["ek_kind"] == "rsa2048"
            assert main(argv) == 1  # already joined
            assert json.loads(capsys.readouterr().out)["error"]["code"] == "wallet.already_joined"

            assert main(["issuer", "members", "--data", str(tmp_path / "issuer"), "--json"]) == 0
            members = json.loads(capsys.readouterr().out)["members"]
            assert [m["member_id"] for m in members] == [out["member_id"]]

        m = load_membership(wallet)
        assert m.opener_public.encode() == opener.public.encode() and hop_b64
        with TpmDevice(swtpm.tcti) as dev:
            signer = open_signer(dev, wallet, m)
            proof = make_spend_proof(
                signer,
                hop=m.opener_public,
                preq=bytes(32),
                keyset_id=bytes(16),
                epoch=m.epoch,
                sigma=bytes(32),
                coin=m.credential.randomize(),
                expected_t0=m.t0,
            )
            # another wallet's key directory does not hold this member's key
            other = tmp_path / "other"
            save_membership(other, m)
            dev.load_or_create_daa_key(other / "tpm")
            with pytest.raises(WalletKeyMismatchError):
                open_signer(dev, other, m)
        spend_file = tmp_path / "spend.json"
        spend_file.write_text(json.dumps({"proof": proof.to_dict()}))
        argv = [
            "supervision",
            "open",
            "--data",
            str(sup_dir),
            "--spend",
            str(spend_file),
            "--reason",
            "court order 42",
            "--json",
        ]
        assert main(argv) == 0
        opened = json.loads(capsys.readouterr().out)
        assert opened["member_id"] == m.member_id and opened["account_id"] == "erin"
    finally:
        db.close()
