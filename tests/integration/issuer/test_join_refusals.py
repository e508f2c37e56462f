"""Every join refusal has its own stable code and leaves no member behind.

The device side is driven step by step against a real swtpm so each test can misbehave at
exactly one point: a forged AK, a wrong credential secret, another PCR selection, a DAA key the
AK did not certify, a join proof from another key, an EK or T0 that joins twice, a replayed or
expired join. The issuer runs over real HTTP; the database is inspected directly.
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from support.join_kit import (
    PCRS,
    IssuerEnv,
    current_policy,
    issuer_env,
    make_ca,
    make_ek_cert,
    swtpm_trust,
)

from ecash_tpm.attest import ObjectAttributes, public_area_from_key
from ecash_tpm.attest.wire import Scheme, TpmAlg
from ecash_tpm.crypto.groupsig import make_join_proof
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.device import EkKind, TpmDevice
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.protocol.api.issuer import (
    EkPresentation,
    JoinFinishRequest,
    JoinStartRequest,
    JoinStartResponse,
)
from ecash_tpm.protocol.join import join_qualifying_data, join_secret
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.wallet.join import (
    DeviceKeys,
    answer_challenge,
    prepare_keys,
    release_keys,
)
from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

pytestmark = pytest.mark.swtpm


# --- helpers -----------------------------------------------------------------------------------


@pytest.fixture
def env(swtpm, tpm: TpmDevice, tmp_path: Path) -> Iterator[IssuerEnv]:
    with issuer_env(tmp_path / "issuer", trust=swtpm_trust(swtpm), policy=current_policy(tpm)) as e:
        yield e


@pytest.fixture
def keys(tpm: TpmDevice, tmp_path: Path) -> Iterator[DeviceKeys]:
    k = prepare_keys(tpm, tmp_path / "wallet", EkKind.RSA_2048)
    yield k
    release_keys(tpm, k)


def refused(code: str, call: Callable[[], Any]) -> RemoteCallError:
    """Run ``call``; it must fail with ``code`` (returned for more checks)."""
    with pytest.raises(RemoteCallError) as err:
        call()
    assert err.value.code == code, (err.value.code, err.value.message)
    return err.value


def evidence(
    tpm: TpmDevice,
    keys: DeviceKeys,
    ch: JoinStartResponse,
    *,
    secret: bytes | None = None,
    quote_pcrs: list[int] | None = None,
    signer: Any = None,
) -> JoinFinishRequest:
    """answer_challenge with knobs for misbehaviour."""
    real = tpm.activate_credential(keys.ak, keys.ek_kind, ch.credential_blob, ch.encrypted_secret)
    others = [
        tpm.activate_credential(keys.ak, kind, c.credential_blob, c.encrypted_secret)
        for kind, c in zip(keys.other_ek_kinds, ch.other_challenges, strict=True)
    ]
    quote_qd, certify_qd = join_qualifying_data(ch.nonce, secret or join_secret(real, others))
    pcrs = list(ch.pcr_selection.pcrs)
    values = tpm.pcr_read(pcrs)
    q_attest, q_sig = tpm.quote(keys.ak, quote_pcrs or pcrs, quote_qd)
    c_attest, c_sig = tpm.certify(keys.daa, keys.ak, certify_qd)
    proof = make_join_proof(signer or TpmDaaSigner(tpm, keys.daa), ch.nonce)
    return JoinFinishRequest(
        join_id=ch.join_id,
        quote_attest=q_attest,
        quote_signature=q_sig,
        pcr_values={str(i): v for i, v in values.items()},
        certify_attest=c_attest,
        certify_signature=c_sig,
        join_proof=proof.to_dict(),
    )


def assert_burned(env: IssuerEnv, join_id: str, code: str) -> None:
    row = env.join_row(join_id)
    assert row is not None and row["consumed_at"] is not None
    assert row["outcome"] == code and row["secret"] is None
    assert env.member_rows() == []
    assert env.registry.lookup() == {}


# --- join/start refusals -------------------------------------------------------------------------


def test_unknown_root(swtpm, tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path) -> None:
    keys = replace(keys, other_ek_kinds=())
    other_root, _ = make_ca()
    with issuer_env(
        tmp_path / "other", trust=EkTrustStore((other_root,)), policy=current_policy(tpm)
    ) as env:
        refused("ek.unknown_root", lambda: env.client.join_start(env.start_request(tpm, keys, "a")))
        assert env.member_rows() == []
        with env.service.db.read() as tx:
            assert tx.fetchval("SELECT COUNT(*) AS n FROM join_session") == 0


def test_ek_public_mismatch(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    req = env.start_request(tpm, keys, "a")
    req.ek_public = tpm.ek_public(EkKind.ECC_P384)  # the RSA EK's certificate, another key
    refused("ek.public_mismatch", lambda: env.client.join_start(req))
    assert env.member_rows() == []


def test_expired_ek_certificate(tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path) -> None:
    """A second hermetic CA issues a short-lived certificate for the TPM's real EK."""
    ca, ca_key = make_ca("Short-lived EK CA")
    now = dt.datetime.now(dt.UTC)
    only_rsa = replace(keys, other_ek_kinds=())  # the other EK's CA is not trusted here
    cert = make_ek_cert(
        tpm.ek_public(EkKind.RSA_2048),
        ca,
        ca_key,
        not_before=now - dt.timedelta(days=30),
        not_after=now - dt.timedelta(days=1),
    )
    with issuer_env(tmp_path / "i", trust=EkTrustStore((ca,)), policy=current_policy(tpm)) as env:
        req = env.start_request(tpm, only_rsa, "a")
        req.ek_cert = cert
        refused("ek.cert_expired", lambda: env.client.join_start(req))
        assert env.member_rows() == []
    # the same certificate is fine while valid: the issuer's clock decides (now injection)
    past = (now - dt.timedelta(days=2)).timestamp()
    with issuer_env(
        tmp_path / "j", trust=EkTrustStore((ca,)), policy=current_policy(tpm), clock=lambda: past
    ) as env:
        req = env.start_request(tpm, only_rsa, "a")
        req.ek_cert = cert
        env.client.join_start(req)


def test_ak_not_restricted(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    """A host-made "AK" could sign any TPMS_ATTEST it likes: refused before anything else."""
    fake = ec.generate_private_key(ec.SECP256R1())
    attrs = (
        ObjectAttributes.FIXED_TPM
        | ObjectAttributes.FIXED_PARENT
        | ObjectAttributes.SENSITIVE_DATA_ORIGIN
        | ObjectAttributes.USER_WITH_AUTH
        | ObjectAttributes.SIGN_ENCRYPT
    )
    area = public_area_from_key(
        fake.public_key(), attributes=attrs, scheme=Scheme(TpmAlg.ECDSA, TpmAlg.SHA256)
    )
    req = env.start_request(tpm, keys, "a")
    req.ak_public = area.marshal_tpm2b()
    req = env.authorised(req)  # the bank authorises whatever AK the customer names
    refused("attest.ak_not_restricted", lambda: env.client.join_start(req))
    assert env.member_rows() == []


def test_daa_key_template_checked(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    req = env.start_request(tpm, keys, "a")
    req.daa_public = keys.ak.public  # restricted ECDSA P-256: not a DAA key
    err = refused("attest.key_attributes_forbidden", lambda: env.client.join_start(req))
    assert "RESTRICTED" in err.detail["forbidden"]


def test_same_ek_twice(env: IssuerEnv, tpm: TpmDevice, tmp_path: Path) -> None:
    first = prepare_keys(tpm, tmp_path / "w1", EkKind.RSA_2048)
    ch1 = env.client.join_start(env.start_request(tpm, first, "a"))
    fin1 = answer_challenge(tpm, first, ch1)
    release_keys(tpm, first)
    second = prepare_keys(tpm, tmp_path / "w2", EkKind.RSA_2048)
    try:
        # both started before either finished: the check inside the finish transaction counts
        ch2 = env.client.join_start(env.start_request(tpm, second, "b"))
        fin2 = answer_challenge(tpm, second, ch2)
        member = env.client.join_finish(fin1)
        refused("join.ek_already_member", lambda: env.client.join_finish(fin2))
        assert [r["member_id"] for r in env.member_rows()] == [member.member_id]
        row = env.join_row(ch2.join_id)
        assert row is not None and row["outcome"] == "join.ek_already_member"
        # and a new start with that EK is refused right away
        refused(
            "join.ek_already_member",
            lambda: env.client.join_start(env.start_request(tpm, second, "b")),
        )
    finally:
        release_keys(tpm, second)
    assert len(env.registry.lookup()) == 1


def test_same_t0_twice(swtpm, tpm: TpmDevice, tmp_path: Path) -> None:
    """One TPM, one DAA key, its two EKs presented one per join (a device hiding its other EK,
    at an issuer that requires no EK type), two accounts: the second join is refused on T0."""
    rsa = replace(prepare_keys(tpm, tmp_path / "w", EkKind.RSA_2048), other_ek_kinds=())
    policy = current_policy(tpm)
    with issuer_env(
        tmp_path / "i", trust=swtpm_trust(swtpm), policy=policy, required_ek_kinds=[]
    ) as env:
        _same_t0_twice(env, tpm, rsa)


def _same_t0_twice(env: IssuerEnv, tpm: TpmDevice, rsa: DeviceKeys) -> None:
    try:
        env.client.join_finish(
            answer_challenge(tpm, rsa, env.client.join_start(env.start_request(tpm, rsa, "a")))
        )
        p384 = DeviceKeys(rsa.ak, rsa.daa, EkKind.ECC_P384)
        ch = env.client.join_start(env.start_request(tpm, p384, "b"))
        fin = answer_challenge(tpm, p384, ch)
        refused("join.t0_registered", lambda: env.client.join_finish(fin))
    finally:
        release_keys(tpm, rsa)
    assert len(env.member_rows()) == 1
    row = env.join_row(ch.join_id)
    assert row is not None and row["outcome"] == "join.t0_registered"


def test_revoked_ek_cannot_rejoin(env: IssuerEnv, tpm: TpmDevice, tmp_path: Path) -> None:
    k = prepare_keys(tpm, tmp_path / "w", EkKind.RSA_2048)
    try:
        m = env.client.join_finish(
            answer_challenge(tpm, k, env.client.join_start(env.start_request(tpm, k, "a")))
        )
        env.service.revoke(m.member_id, reason="test")
        k2 = DeviceKeys(k.ak, k.daa, EkKind.RSA_2048)
        refused("join.ek_revoked", lambda: env.client.join_start(env.start_request(tpm, k2, "a")))
        # through its other EK, under another account: the TPM is known by all its EKs
        k3 = DeviceKeys(k.ak, k.daa, EkKind.ECC_P384, other_ek_kinds=(EkKind.RSA_2048,))
        refused("join.ek_revoked", lambda: env.client.join_start(env.start_request(tpm, k3, "b")))
        # a fresh TPM under the revoked account: the account stays out
        # (covered in tests/e2e/test_attacks_join.py with a second swtpm)
    finally:
        release_keys(tpm, k)
    assert [r["status"] for r in env.member_rows()] == ["revoked"]


# --- join/finish refusals ------------------------------------------------------------------------


def test_wrong_secret_is_a_nonce_mismatch(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    """A device that could not activate the credential (AK not in that EK's TPM) guesses."""
    ch = env.client.join_start(env.start_request(tpm, keys, "a"))
    fin = evidence(tpm, keys, ch, secret=secrets.token_bytes(32))
    refused("quote.nonce_mismatch", lambda: env.client.join_finish(fin))
    assert_burned(env, ch.join_id, "quote.nonce_mismatch")


def test_replayed_join(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    ch = env.client.join_start(env.start_request(tpm, keys, "a"))
    fin = answer_challenge(tpm, keys, ch)
    member = env.client.join_finish(fin)
    refused("join.replayed", lambda: env.client.join_finish(fin))
    assert [r["member_id"] for r in env.member_rows()] == [member.member_id]


def test_failed_join_cannot_be_retried(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    """A refused attempt burns the join: the honest evidence afterwards is a replay."""
    ch = env.client.join_start(env.start_request(tpm, keys, "a"))
    good = answer_challenge(tpm, keys, ch)
    bad = good.model_copy(update={"quote_signature": good.certify_signature})
    refused("quote.bad_signature", lambda: env.client.join_finish(bad))
    refused("join.replayed", lambda: env.client.join_finish(good))
    assert_burned(env, ch.join_id, "quote.bad_signature")
    refused(
        "join.unknown",
        lambda: env.client.join_finish(good.model_copy(update={"join_id": "j-nope"})),
    )


def test_pcr_selection_mismatch(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    """CVE-2022-0317: a quote over fewer PCRs than asked for is refused."""
    ch = env.client.join_start(env.start_request(tpm, keys, "a"))
    fin = evidence(tpm, keys, ch, quote_pcrs=[0, 1, 2, 3])
    err = refused("quote.pcr_selection_mismatch", lambda: env.client.join_finish(fin))
    assert err.detail["requested"] == {"sha256": list(PCRS)}
    assert_burned(env, ch.join_id, "quote.pcr_selection_mismatch")


def test_pcr_values_reported_for_other_selection(
    env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys
) -> None:
    ch = env.client.join_start(env.start_request(tpm, keys, "a"))
    fin = answer_challenge(tpm, keys, ch)
    fin.pcr_values = {k: v for k, v in fin.pcr_values.items() if k != "7"}
    refused("quote.pcr_selection_mismatch", lambda: env.client.join_finish(fin))
    assert_burned(env, ch.join_id, "quote.pcr_selection_mismatch")


def test_pcr_value_outside_policy(swtpm, tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path) -> None:
    values = tpm.pcr_read(list(PCRS))
    golden = {i: [values[i]] for i in PCRS}
    golden[7] = [bytes([0x11]) * 32]  # the platform's PCR 7 is not the golden value
    with issuer_env(
        tmp_path / "i", trust=swtpm_trust(swtpm), policy=PcrPolicy(PCRS, golden)
    ) as env:
        ch = env.client.join_start(env.start_request(tpm, keys, "a"))
        fin = answer_challenge(tpm, keys, ch)
        err = refused("join.pcr_policy_violation", lambda: env.client.join_finish(fin))
        assert err.detail["pcrs"] == [7]
        assert_burned(env, ch.join_id, "join.pcr_policy_violation")


def test_tofu_accepts_and_records(
    swtpm, tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path, caplog
) -> None:
    path = tmp_path / "policy.json"
    PcrPolicy(PCRS, {}, tofu=True).save(path)
    policy = PcrPolicy.load(path, tofu=True)
    with issuer_env(tmp_path / "i", trust=swtpm_trust(swtpm), policy=policy) as env:
        env.client.join_finish(
            answer_challenge(tpm, keys, env.client.join_start(env.start_request(tpm, keys, "a")))
        )
    assert any("TOFU" in r.getMessage() for r in caplog.records)
    recorded = PcrPolicy.load(path)  # now a complete allow-list, usable without TOFU
    values = tpm.pcr_read(list(PCRS))
    recorded.check(values)


def test_daa_key_not_certified_by_ak(env: IssuerEnv, tpm: TpmDevice, tmp_path: Path) -> None:
    """The AK certifies another key: the DAA public presented is not proven to be in the TPM.

    (libtpms has 3 object slots, so the keys are loaded one at a time.)
    """
    wallet = tmp_path / "w"
    daa = tpm.load_or_create_daa_key(wallet)
    daa_public = daa.public
    tpm.unload(daa)
    tpm.unload(tpm.load_or_create_daa_key(tmp_path / "other"))  # create the other key's blobs
    ak = tpm.load_or_create_ak(wallet)
    try:
        req = JoinStartRequest(
            account_id="a",
            ek_cert=tpm.ek_certificate(EkKind.RSA_2048),
            ek_public=tpm.ek_public(EkKind.RSA_2048),
            ak_public=ak.public,
            daa_public=daa_public,
        )
        ch = env.client.join_start(env.authorised(req))
        secret = tpm.activate_credential(
            ak, EkKind.RSA_2048, ch.credential_blob, ch.encrypted_secret
        )
        quote_qd, certify_qd = join_qualifying_data(ch.nonce, secret)
        values = tpm.pcr_read(list(PCRS))
        q_attest, q_sig = tpm.quote(ak, list(PCRS), quote_qd)
        other = tpm.load_or_create_daa_key(tmp_path / "other")
        c_attest, c_sig = tpm.certify(other, ak, certify_qd)
        tpm.unload(other)
        daa = tpm.load_or_create_daa_key(wallet)
        proof = make_join_proof(TpmDaaSigner(tpm, daa), ch.nonce)
        fin = JoinFinishRequest(
            join_id=ch.join_id,
            quote_attest=q_attest,
            quote_signature=q_sig,
            pcr_values={str(i): v for i, v in values.items()},
            certify_attest=c_attest,
            certify_signature=c_sig,
            join_proof=proof.to_dict(),
        )
        refused("certify.name_mismatch", lambda: env.client.join_finish(fin))
        tpm.unload(daa)
    finally:
        tpm.unload(ak)
    assert_burned(env, ch.join_id, "certify.name_mismatch")


def test_daa_proof_for_another_key(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    """Certified DAA key, but the join proof comes from a key outside the TPM."""
    ch = env.client.join_start(env.start_request(tpm, keys, "a"))
    fin = evidence(tpm, keys, ch, signer=SoftwareDaaSigner())
    refused("daa.join_proof_invalid", lambda: env.client.join_finish(fin))
    assert_burned(env, ch.join_id, "daa.join_proof_invalid")


def test_expired_join(swtpm, tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path) -> None:
    now = [time.time()]
    with issuer_env(
        tmp_path / "i", trust=swtpm_trust(swtpm), policy=current_policy(tpm), clock=lambda: now[0]
    ) as env:
        ch = env.client.join_start(env.start_request(tpm, keys, "a"))
        assert ch.expires_at == int(now[0]) + 300
        fin = answer_challenge(tpm, keys, ch)
        now[0] += 301
        err = refused("join.expired", lambda: env.client.join_finish(fin))
        assert err.status == 410
        assert_burned(env, ch.join_id, "join.expired")


def test_registry_failure_rolls_back(
    swtpm, tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path
) -> None:
    """If T0 cannot reach the supervision department there is no (untraceable) member."""

    class Down:
        def register(self, entry: Any) -> None:
            from ecash_tpm.errors import RemoteError

            raise RemoteError("supervision unreachable", code="remote.unreachable")

    with issuer_env(
        tmp_path / "i", trust=swtpm_trust(swtpm), policy=current_policy(tpm), registry=Down()
    ) as env:
        ch = env.client.join_start(env.start_request(tpm, keys, "a"))
        refused(
            "remote.unreachable", lambda: env.client.join_finish(answer_challenge(tpm, keys, ch))
        )
        row = env.join_row(ch.join_id)
        assert row is not None and row["outcome"] == "remote.unreachable"
        assert env.member_rows() == []
        with env.service.db.read() as tx:
            assert tx.fetchval("SELECT COUNT(*) AS n FROM member_credential") == 0


def test_same_ek_presented_twice(env: IssuerEnv, tpm: TpmDevice, keys: DeviceKeys) -> None:
    """A further EK must be another EK: presenting one twice hides nothing but is refused."""
    req = env.start_request(tpm, keys, "a")
    req.other_eks = [EkPresentation(ek_cert=req.ek_cert, ek_public=req.ek_public)]
    refused("join.ek_duplicate", lambda: env.client.join_start(req))
    assert env.member_rows() == []


def test_other_ek_of_an_unknown_manufacturer(
    tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path
) -> None:
    """Every presented EK is checked like the first: one outside the trust store is refused."""
    ca, ca_key = make_ca("Firmware TPM EK CA")
    now = dt.datetime.now(dt.UTC)
    ecc = make_ek_cert(
        tpm.ek_public(EkKind.ECC_P384),
        ca,
        ca_key,
        not_before=now,
        not_after=now + dt.timedelta(days=1),
    )
    with issuer_env(tmp_path / "i", trust=EkTrustStore((ca,)), policy=current_policy(tpm)) as env:
        only_rsa = replace(keys, other_ek_kinds=())
        req = env.start_request(tpm, only_rsa, "a")
        req.ek_cert, req.ek_public = ecc, tpm.ek_public(EkKind.ECC_P384)
        req.other_eks = [
            EkPresentation(
                ek_cert=tpm.ek_certificate(EkKind.RSA_2048),
                ek_public=tpm.ek_public(EkKind.RSA_2048),
            )
        ]
        refused("ek.unknown_root", lambda: env.client.join_start(req))


def test_revoked_ek_under_a_reissued_certificate(
    swtpm, tpm: TpmDevice, keys: DeviceKeys, tmp_path: Path
) -> None:
    """The issuer knows a TPM by its EK keys: another (trusted) certificate for the same EK
    does not make a revoked TPM new."""
    ca, ca_key = make_ca("Re-issuing EK CA")
    roots, inter = swtpm.ca_certificates()
    now = dt.datetime.now(dt.UTC)
    rsa = EkKind.RSA_2048
    again = make_ek_cert(
        tpm.ek_public(rsa), ca, ca_key, not_before=now, not_after=now + dt.timedelta(days=1)
    )
    trust = EkTrustStore((ca, *roots), tuple(inter))
    with issuer_env(tmp_path / "i", trust=trust, policy=current_policy(tpm)) as env:
        only_rsa = replace(keys, other_ek_kinds=())
        m = env.client.join_finish(
            evidence(tpm, only_rsa, env.client.join_start(env.start_request(tpm, only_rsa, "a")))
        )
        env.service.revoke(m.member_id, reason="test")
        req = env.start_request(tpm, only_rsa, "b")
        req.ek_cert = again
        refused("join.ek_revoked", lambda: env.client.join_start(req))


def test_required_ek_kind_cannot_be_hidden(env: IssuerEnv, tpm: TpmDevice, tmp_path: Path) -> None:
    """The issuer requires the RSA-2048 EK (default): a join hiding it is refused."""
    keys = replace(prepare_keys(tpm, tmp_path / "w", EkKind.ECC_P384), other_ek_kinds=())
    try:
        err = refused(
            "join.ek_kind_missing", lambda: env.client.join_start(env.start_request(tpm, keys, "a"))
        )
        assert err.detail["missing"] == ["rsa2048"]
    finally:
        release_keys(tpm, keys)
