"""TPM-made spend proofs, designated credential checks, opening with proofs, double spends.

A real member joins through the issuer over HTTP with the session swtpm; more members are
SoftwareDaaSigner members registered through the domain API. 100 spend proofs from the TPM
member must all verify, never repeat R, S, T, W or c1, fail against another epoch's issuer
secret, and open to the right member with a proof that fails for anybody else. The double-spend
path runs end to end over HTTP with central-bank certificates: bank-signed transcripts ->
supervision evidence -> issuer revocation (re-verified there).
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.serialization import Encoding
from support.join_kit import JoinAuthority, current_policy, issuer_env, swtpm_trust

from ecash_tpm.clients.issuer import IssuerClient
from ecash_tpm.clients.supervision import HttpMemberRegistry, SupervisionClient
from ecash_tpm.crypto.bn256 import G, Point
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import (
    Credential,
    CredentialError,
    IssuerSecret,
    OpenerSecret,
    OpeningProofError,
    RandomizedCredential,
    SpendProof,
    UnknownMemberError,
    issue_credential,
    make_spend_proof,
    verify_credential,
    verify_opening,
    verify_spend_proof,
)
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.device import TpmDevice
from ecash_tpm.issuer.errors import RevocationEvidenceError
from ecash_tpm.protocol.coins import TRANSCRIPT_KIND
from ecash_tpm.protocol.errors import (
    DifferentCoinsError,
    EvidenceInvalidError,
    FirstDepositLateError,
    NotDoubleSpendError,
    TranscriptMalformedError,
)
from ecash_tpm.protocol.evidence import transcript_body, verify_evidence_body
from ecash_tpm.protocol.registry import CallbackRegistry, RegistryEntry, member_id_for_t0
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.server import running_server
from ecash_tpm.storage import Database, sqlite_url
from ecash_tpm.supervision.domain import SupervisionDepartment
from ecash_tpm.supervision.routes import create_supervision_app
from ecash_tpm.supervision.settings import SupervisionSettings
from ecash_tpm.supervision.store import MIGRATIONS
from ecash_tpm.wallet.membership import Membership, open_signer

pytestmark = pytest.mark.swtpm

N_PROOFS = 100


def pem(cert: Any) -> str:
    return cert.public_bytes(Encoding.PEM).decode()


def coin_dict(keyset_id: bytes, epoch: int, sigma: bytes, coin: RandomizedCredential) -> dict:
    """The shared coin encoding (RSA fields are dummies: supervision does not check them)."""
    return {
        "keyset_id": b64u_encode(keyset_id),
        "epoch": epoch,
        "sigma": b64u_encode(sigma),
        "credential": coin.to_dict(),
        "msg_prefix": b64u_encode(bytes(32)),
        "signature": b64u_encode(bytes(256)),
    }


def request_body(deadline: int = 2_000_000_000) -> dict[str, Any]:
    """A payment request body (the evidence check reads its deadline; preq is its digest)."""
    return {
        "merchant_id": "shop-1",
        "amount": 1,
        "currency": "EUR",
        "contract_hash": b64u_encode(secrets.token_bytes(32)),
        "nonce": b64u_encode(secrets.token_bytes(16)),
        "deadline": deadline,
        "bank": "bank",
        "product_id": None,
        "customer_key": None,
    }


@dataclass
class Spend:
    preq: bytes
    keyset_id: bytes
    epoch: int
    sigma: bytes
    coin: RandomizedCredential
    proof: SpendProof
    request: dict[str, Any] | None = None
    deposited_at: int = 1

    def transcript(self, bank: PartyKey, tid: int | str, merchant: str = "shop-1") -> dict:
        extra = (
            {}
            if self.request is None
            else {"request": {"kind": "payment-request", "body": self.request}}
        )
        body = transcript_body(
            transcript_id=tid,
            merchant_id=merchant,
            preq=self.preq,
            spend={
                "coin": coin_dict(self.keyset_id, self.epoch, self.sigma, self.coin),
                "proof": self.proof.to_dict(),
            },
            deposited_at=self.deposited_at,
            **extra,
        )
        return sign_object(bank, TRANSCRIPT_KIND, body)


def spend(
    signer: Any,
    credential: Credential,
    hop: Point,
    *,
    epoch: int = 1,
    sigma: bytes | None = None,
    coin: RandomizedCredential | None = None,
    t0: Point | None = None,
    deadline: int = 2_000_000_000,
) -> Spend:
    coin = coin or credential.randomize()
    sigma = sigma or secrets.token_bytes(32)
    req = request_body(deadline)
    s = Spend(
        canonical_digest(req),
        hashlib.sha256(sigma).digest()[:16],  # one serial, one coin: the same keyset
        epoch,
        sigma,
        coin,
        None,  # type: ignore[arg-type]
        req,
    )
    s.proof = make_spend_proof(
        signer,
        hop=hop,
        preq=s.preq,
        keyset_id=s.keyset_id,
        epoch=epoch,
        sigma=s.sigma,
        coin=coin,
        expected_t0=t0,
        self_check=False,
    )
    return s


# --- one TPM member among software members -----------------------------------------------------


@pytest.fixture(scope="module")
def world(swtpm, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Supervision (domain) + issuer (HTTP) + one TPM member + three software members."""
    tmp = tmp_path_factory.mktemp("supervision")
    opener = OpenerSecret.generate()
    db = Database.open(sqlite_url(tmp / "sup.db"))
    db.migrate(MIGRATIONS, component="supervision")
    dept = SupervisionDepartment(db, opener, signer=PartyKey.generate())
    with (
        TpmDevice(swtpm.tcti) as tpm,
        issuer_env(
            tmp / "issuer",
            trust=swtpm_trust(swtpm),
            policy=current_policy(tpm),
            opener=opener,
            registry=CallbackRegistry(dept.register_member),
        ) as env,
    ):
        member = env.join(tpm, tmp / "wallet", account_id="tpm-user")
        soft = []
        secret = env.service.keys.secret_for_epoch(1)
        for i in range(3):
            signer = SoftwareDaaSigner()
            cred, _ = issue_credential(secret, signer.public_point)
            entry = RegistryEntry(member_id_for_t0(signer.t0), signer.t0, f"soft-{i}", 1)
            dept.register_member(entry)
            soft.append((entry, signer, cred))
        yield {
            "tpm": tpm,
            "env": env,
            "dept": dept,
            "member": member,
            "soft": soft,
            "wallet": tmp / "wallet",
            "opener": opener,
        }
    db.close()


def test_registry_holds_all_members(world: dict[str, Any]) -> None:
    dept: SupervisionDepartment = world["dept"]
    ids = {r["member_id"] for r in dept.registry()}
    m: Membership = world["member"]
    assert ids == {m.member_id} | {e.member_id for e, _, _ in world["soft"]}
    # registration is idempotent; another member id for a known T0 is refused
    dept.register_member(RegistryEntry(m.member_id, m.t0, "tpm-user", 1))
    assert len(dept.registry()) == 4


def test_100_tpm_spend_proofs(world: dict[str, Any]) -> None:
    tpm: TpmDevice = world["tpm"]
    m: Membership = world["member"]
    env = world["env"]
    hop = m.opener_public
    secret = env.service.keys.secret_for_epoch(m.epoch)
    signer = open_signer(tpm, world["wallet"], m)
    try:
        spends = [spend(signer, m.credential, hop, t0=m.t0) for _ in range(N_PROOFS)]
    finally:
        tpm.unload(signer.key)
    assert signer.stats.commits == signer.stats.signs == N_PROOFS
    seen: dict[str, set[bytes]] = {k: set() for k in ("R", "S", "T", "W", "c1")}
    for s in spends:
        verify_spend_proof(
            s.proof,
            hop=hop,
            preq=s.preq,
            keyset_id=s.keyset_id,
            epoch=s.epoch,
            sigma=s.sigma,
            coin=s.coin,
        )
        verify_credential(secret, *s.coin)  # designated check with the issuer secret
        for name, value in (*zip("RSTW", s.coin, strict=True), ("c1", s.proof.c1)):
            seen[name].add(value.encode())
    assert all(len(v) == N_PROOFS for v in seen.values()), {k: len(v) for k, v in seen.items()}

    # another epoch's issuer secret does not accept these credentials
    env.service.keys.rotate()
    other = env.service.keys.secret_for_epoch(2)
    for s in spends[:5]:
        with pytest.raises(CredentialError):
            verify_credential(other, *s.coin)

    # every proof opens to the TPM member, with a proof that checks
    dept: SupervisionDepartment = world["dept"]
    for s in spends[:10]:
        res = dept.open(s.proof.c1, s.proof.c2, reason="test: court order")
        assert res.member_id == m.member_id and res.record.t0 == m.t0
        verify_opening(hop, s.proof.c1, s.proof.c2, res.record.t0, res.record.proof)


def test_opening_names_the_right_member(world: dict[str, Any]) -> None:
    dept: SupervisionDepartment = world["dept"]
    hop = world["opener"].public
    members = list(world["soft"])
    for entry, signer, cred in members:
        s = spend(signer, cred, hop, t0=signer.t0)
        verify_spend_proof(
            s.proof,
            hop=hop,
            preq=s.preq,
            keyset_id=s.keyset_id,
            epoch=1,
            sigma=s.sigma,
            coin=s.coin,
        )
        res = dept.open(s.proof.c1, s.proof.c2, reason="test")
        assert res.member_id == entry.member_id and res.account_id == entry.account_id
        verify_opening(hop, s.proof.c1, s.proof.c2, entry.t0, res.record.proof)
        # the same proof does not support naming any other member
        for other, _, _ in members:
            if other is not entry:
                with pytest.raises(OpeningProofError):
                    verify_opening(hop, s.proof.c1, s.proof.c2, other.t0, res.record.proof)
        tpm_t0 = world["member"].t0
        with pytest.raises(OpeningProofError):
            verify_opening(hop, s.proof.c1, s.proof.c2, tpm_t0, res.record.proof)


def test_unregistered_signer_is_logged_and_refused(world: dict[str, Any]) -> None:
    dept: SupervisionDepartment = world["dept"]
    stranger = SoftwareDaaSigner()
    cred, _ = issue_credential(world["env"].service.keys.secret_for_epoch(1), stranger.public_point)
    s = spend(stranger, cred, world["opener"].public)
    with pytest.raises(UnknownMemberError) as err:
        dept.open(s.proof.c1, s.proof.c2, reason="test")
    assert err.value.code == "open.unknown_member" and "opening_id" in err.value.detail


def test_double_spend_domain(world: dict[str, Any]) -> None:
    """Two payments with one coin -> evidence against that member; replays are not evidence."""
    dept: SupervisionDepartment = world["dept"]
    hop = world["opener"].public
    entry, signer, cred = world["soft"][0]
    bank = PartyKey.generate()
    first = spend(signer, cred, hop)
    second = spend(signer, cred, hop, sigma=first.sigma, coin=first.coin)
    t1, t2 = first.transcript(bank, 10), second.transcript(bank, "attempt-1")
    with pytest.raises(NotDoubleSpendError):
        dept.handle_double_spend([t1, first.transcript(bank, 11, "shop-2")])  # same preq twice
    case = dept.handle_double_spend([t1, t2])
    assert case.member_id == entry.member_id and case.revocation_status == "pending"
    verified = verify_evidence_body(case.evidence["body"], hop)
    assert verified.member_id == entry.member_id and verified.t0 == entry.t0
    assert verified.transcript_ids == (10, "attempt-1")
    again = dept.handle_double_spend([t1, t2])
    assert again.case_id == case.case_id


def test_evidence_refuses_a_first_deposit_booked_after_the_second_deadline(
    world: dict[str, Any],
) -> None:
    """Issue 10 attack 2: a "first" deposit the bank booked only after the second request's
    deadline (the coin had been signed unspent and released) is no evidence against anyone."""
    dept: SupervisionDepartment = world["dept"]
    hop = world["opener"].public
    _, signer, cred = world["soft"][1]
    bank = PartyKey.generate()
    first = spend(signer, cred, hop)
    second = spend(signer, cred, hop, sigma=first.sigma, coin=first.coin, deadline=1000)
    late = dataclasses.replace(first, deposited_at=1001)
    with pytest.raises(FirstDepositLateError) as exc:
        dept.handle_double_spend([late.transcript(bank, 1), second.transcript(bank, "attempt-1")])
    assert exc.value.code == "evidence.first_deposit_late"
    assert exc.value.detail == {"deposited_at": 1001, "deadline": 1000}
    # the second transcript must carry its request (its deadline), bound to its preq
    bare = dataclasses.replace(second, request=None)
    with pytest.raises(FirstDepositLateError):
        dept.handle_double_spend([first.transcript(bank, 1), bare.transcript(bank, "attempt-1")])
    foreign = dataclasses.replace(second, request=request_body())
    with pytest.raises(TranscriptMalformedError) as bad:
        dept.handle_double_spend([first.transcript(bank, 1), foreign.transcript(bank, "a-1")])
    assert bad.value.code == "evidence.transcript_malformed"
    assert dept.case(first.sigma) is None


def test_evidence_refuses_two_coins_sharing_a_serial(world: dict[str, Any]) -> None:
    """Issue 10 attack 2: both transcripts must carry one and the same coin."""
    dept: SupervisionDepartment = world["dept"]
    hop = world["opener"].public
    _, signer, cred = world["soft"][1]
    bank = PartyKey.generate()
    first = spend(signer, cred, hop)
    other = spend(signer, cred, hop, sigma=first.sigma)  # another randomization, same serial
    with pytest.raises(DifferentCoinsError) as exc:
        dept.handle_double_spend([first.transcript(bank, 1), other.transcript(bank, "a-1")])
    assert exc.value.code == "evidence.different_coins"
    assert dept.case(first.sigma) is None


# --- the whole double-spend path over HTTP with certificates ----------------------------------


def _renamed(evidence: dict[str, Any], member_id: str) -> dict[str, Any]:
    return {**evidence, "body": {**evidence["body"], "member_id": member_id}}


class LateRevoker:
    """The issuer's URL is known only after both servers started."""

    client: IssuerClient | None = None

    def revoke(self, member_id: str, evidence: dict[str, Any], cert: str | None) -> Any:
        if self.client is None:
            raise RuntimeError("issuer not started")
        return self.client.revoke(member_id, evidence, cert)


def test_double_spend_over_http(swtpm, world: dict[str, Any], tmp_path: Path) -> None:
    tpm: TpmDevice = world["tpm"]  # one connection to the swtpm at a time
    authority = JoinAuthority(tmp_path / "cb")  # the root also certifies the join's bank
    with authority.ca as cb:
        root_pem = cb.root_pem()
        keys = {role: PartyKey.generate() for role in ("issuer", "supervision", "bank")}
        certs = {r: pem(cb.certify(r, f"{r}-1", k.public_key)) for r, k in keys.items()}
    (tmp_path / "root.pem").write_bytes(root_pem)
    opener = OpenerSecret.generate()
    revoker = LateRevoker()
    sup_dir = tmp_path / "sup"
    sup_dir.mkdir()
    (sup_dir / "supervision-cert.pem").write_text(certs["supervision"])
    sup_app = create_supervision_app(
        SupervisionSettings(
            data_dir=sup_dir,
            central_bank_root=tmp_path / "root.pem",
            open_token="t" * 32,
            insecure_http=True,  # plain HTTP: reports and registrations are checked by signature
        ),
        revoker=revoker,
        opener=opener,
        signer=keys["supervision"],
    )
    with running_server(sup_app) as sup_url, SupervisionClient(sup_url) as sup:
        assert sup.opener_public() == opener.public
        registry = HttpMemberRegistry(sup, keys["issuer"], certs["issuer"])
        with issuer_env(
            tmp_path / "issuer",
            trust=swtpm_trust(swtpm),
            policy=current_policy(tpm),
            opener=opener,
            registry=registry,
            central_bank_root=tmp_path / "root.pem",
            authority=authority,
            insecure_http=True,  # plain HTTP: members are listed with the members_token
        ) as env:
            revoker.client = env.client
            m = env.join(tpm, tmp_path / "wallet", account_id="mallory")
            assert [r["member_id"] for r in sup_app.state.supervision.registry()] == [m.member_id]

            # a registration signed by another role is refused
            bad = HttpMemberRegistry(sup, keys["bank"], certs["bank"])
            with pytest.raises(RemoteCallError) as err:
                bad.register(RegistryEntry(m.member_id, m.t0, "x", 1))
            assert err.value.code == "cert.wrong_role"

            # mallory pays twice with one coin (two merchants' requests)
            signer = open_signer(tpm, tmp_path / "wallet", m)
            try:
                first = spend(signer, m.credential, m.opener_public, t0=m.t0)
                second = spend(
                    signer,
                    m.credential,
                    m.opener_public,
                    sigma=first.sigma,
                    coin=first.coin,
                    t0=m.t0,
                )
            finally:
                tpm.unload(signer.key)
            t1 = first.transcript(keys["bank"], 1, "shop-1")
            t2 = second.transcript(keys["bank"], "attempt-7", "shop-2")

            # /v1/open needs the operator token
            with pytest.raises(RemoteCallError) as err:
                sup.open(first.proof.c1, first.proof.c2, "court order 1")
            assert err.value.code == "supervision.unauthorized" and err.value.status == 401
            with SupervisionClient(sup_url, token="t" * 32) as op:
                opened = op.open(first.proof.c1, first.proof.c2, "court order 1")
            assert opened.member_id == m.member_id

            # transcripts must be signed by a bank
            with pytest.raises(RemoteCallError) as err:
                sup.report_double_spend([t1, t2], certs["issuer"])
            assert err.value.code == "cert.wrong_role"

            case = sup.report_double_spend([t1, t2], certs["bank"])
            assert case.member_id == m.member_id
            assert case.revocation.status == "revoked", case.revocation
            record = env.client.member(m.member_id)
            assert record.status == "revoked"
            assert record.revocation_reason.startswith("double spend of serial ")
            assert env.client.members(account_id="mallory", status="active") == []
            assert not env.service.account_may_withdraw("mallory")

            # the issuer re-checks evidence itself: tampered or misdirected bundles fail
            evidence = case.evidence
            with pytest.raises(RemoteCallError) as err:
                env.client.revoke(m.member_id, evidence, None)
            assert err.value.code == "issuer.evidence_invalid"  # certificate required
            forged = {**evidence, "body": {**evidence["body"], "member_id": "m-other"}}
            with pytest.raises(RemoteCallError) as err:
                env.client.revoke(m.member_id, forged, certs["supervision"])
            assert err.value.code == "signature.invalid"
            # the same report again: same case, nothing new
            assert sup.report_double_spend([t1, t2], certs["bank"]).case_id == case.case_id


def test_issuer_rechecks_unsigned_evidence(world: dict[str, Any]) -> None:
    """Without a central bank root the issuer still re-verifies the content of the bundle."""
    env = world["env"]
    dept: SupervisionDepartment = world["dept"]
    hop = world["opener"].public
    m: Membership = world["member"]
    tpm: TpmDevice = world["tpm"]
    bank = PartyKey.generate()
    signer = open_signer(tpm, world["wallet"], m)
    try:
        first = spend(signer, m.credential, hop, t0=m.t0)
        second = spend(signer, m.credential, hop, sigma=first.sigma, coin=first.coin, t0=m.t0)
        # a coin whose credential the issuer never made (issue 10: valid spend proofs of the
        # member's TPM over a credential from another secret are no evidence)
        forged_cred, _ = issue_credential(IssuerSecret.generate(), m.q)
        f1 = spend(signer, forged_cred, hop, t0=m.t0)
        f2 = spend(signer, forged_cred, hop, sigma=f1.sigma, coin=f1.coin, t0=m.t0)
    finally:
        tpm.unload(signer.key)
    forged = dept.handle_double_spend([f1.transcript(bank, 3), f2.transcript(bank, 4)])
    with pytest.raises(RevocationEvidenceError) as bad:
        env.service.revoke_with_evidence(m.member_id, forged.evidence)
    assert bad.value.code == "issuer.evidence_invalid"
    assert bad.value.detail["check"] == "credential"
    case = dept.handle_double_spend([first.transcript(bank, 1), second.transcript(bank, 2)])
    # soft members are only in the supervision registry; evidence naming another member fails
    with pytest.raises(RevocationEvidenceError):
        env.service.revoke_with_evidence(m.member_id, _renamed(case.evidence, "m-x"))
    body = dict(case.evidence["body"])
    body["openings"] = [body["openings"][0], body["openings"][0]]
    with pytest.raises(EvidenceInvalidError):
        env.service.revoke_with_evidence(m.member_id, {**case.evidence, "body": body})
    assert env.service.get_member(m.member_id).status == "active"
    record = env.service.revoke_with_evidence(m.member_id, case.evidence)
    assert record.status == "revoked"


def test_opening_over_http_is_off_without_an_operator_token(tmp_path: Path) -> None:
    """Opening de-anonymizes; with no open_token configured nobody may do it over HTTP."""
    sup_dir = tmp_path / "sup"
    sup_dir.mkdir()
    opener = OpenerSecret.generate()
    app = create_supervision_app(
        SupervisionSettings(data_dir=sup_dir),
        revoker=LateRevoker(),
        opener=opener,
        signer=PartyKey.generate(),
    )
    c1 = G * 5
    with (
        running_server(app) as url,
        SupervisionClient(url, token="t" * 32) as sup,
        pytest.raises(RemoteCallError) as err,
    ):
        sup.open(c1, c1 + G, "curiosity")
    assert err.value.code == "supervision.open_disabled" and err.value.status == 403
