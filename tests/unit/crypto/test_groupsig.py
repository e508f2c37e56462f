"""Group signature behaviour and attacks (DESIGN §4, §5) with the software DAA signer."""

from __future__ import annotations

import contextlib
import dataclasses
import secrets
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ecash_tpm.crypto.bn256 import G, N, Point, tpm_challenge, tracing_base
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import (
    CommitResult,
    Credential,
    CredentialError,
    CredentialProof,
    CredentialProofError,
    DaaSigner,
    GroupsigEncodingError,
    IssuerPublic,
    IssuerSecret,
    JoinProof,
    JoinProofError,
    OpenerSecret,
    OpeningProof,
    OpeningProofError,
    RandomizedCredential,
    SignerOutputError,
    SpendProof,
    SpendProofError,
    UnknownMemberError,
    coin_message,
    identify_member,
    issue_credential,
    make_join_proof,
    make_spend_proof,
    open_and_identify,
    open_proof,
    verify_credential,
    verify_credential_proof,
    verify_join_proof,
    verify_opening,
    verify_spend_proof,
)
from ecash_tpm.crypto.softdaa import SoftDaaError, SoftwareDaaSigner
from ecash_tpm.errors import EcashError, ProofError

EPOCH = 3


@dataclasses.dataclass
class Member:
    signer: SoftwareDaaSigner
    cred: Credential


@pytest.fixture(scope="module")
def issuer() -> IssuerSecret:
    return IssuerSecret.generate()


@pytest.fixture(scope="module")
def opener() -> OpenerSecret:
    return OpenerSecret.generate()


@pytest.fixture(scope="module")
def member(issuer: IssuerSecret) -> Member:
    signer = SoftwareDaaSigner()
    cred, proof = issue_credential(issuer, signer.public_point)
    verify_credential_proof(signer.public_point, cred, proof)
    return Member(signer, cred)


def _ctx(coin: RandomizedCredential, hop: Point) -> dict[str, Any]:
    return {
        "hop": hop,
        "preq": secrets.token_bytes(32),
        "keyset_id": secrets.token_bytes(16),
        "epoch": EPOCH,
        "sigma": secrets.token_bytes(32),
        "coin": coin,
    }


def _spend(member: Member, hop: Point) -> tuple[SpendProof, dict[str, Any]]:
    ctx = _ctx(member.cred.randomize(), hop)
    return make_spend_proof(member.signer, **ctx), ctx


# --- join -----------------------------------------------------------------------------------------


def test_join_proof_verifies_and_reveals_t0() -> None:
    signer = SoftwareDaaSigner()
    nonce = secrets.token_bytes(32)
    proof = make_join_proof(signer, nonce)
    verify_join_proof(nonce, signer.public_point, proof)
    assert proof.t0 == signer.t0
    assert JoinProof.from_bytes(proof.to_bytes()) == proof
    assert JoinProof.from_dict(proof.to_dict()) == proof


def test_join_proof_fails_for_other_key_nonce_or_t0() -> None:
    signer, other = SoftwareDaaSigner(), SoftwareDaaSigner()
    nonce = secrets.token_bytes(32)
    proof = make_join_proof(signer, nonce)
    with pytest.raises(JoinProofError):
        verify_join_proof(nonce, other.public_point, proof)
    with pytest.raises(JoinProofError):
        verify_join_proof(secrets.token_bytes(32), signer.public_point, proof)
    with pytest.raises(JoinProofError):  # claiming someone else's tracing tag
        verify_join_proof(nonce, signer.public_point, dataclasses.replace(proof, t0=other.t0))
    with pytest.raises(JoinProofError):
        verify_join_proof(nonce, signer.public_point, dataclasses.replace(proof, s=proof.s + 1))
    with pytest.raises(GroupsigEncodingError):
        verify_join_proof(b"short", signer.public_point, proof)


# --- credential -----------------------------------------------------------------------------------


def test_credential_structure(issuer: IssuerSecret, member: Member) -> None:
    a, b, c, d = member.cred
    assert b == issuer.y * a
    assert c == issuer.x * (a + d)
    verify_credential(issuer, *member.cred)  # the un-randomized credential is valid too
    assert Credential.from_bytes(member.cred.to_bytes()) == member.cred
    assert Credential.from_dict(member.cred.to_dict()) == member.cred
    pub = issuer.public
    assert pub.g1 == IssuerPublic(issuer.x * G, issuer.y * G) == issuer.public_g1
    assert IssuerPublic.from_dict(pub.to_dict()) == pub
    assert IssuerSecret.from_bytes(issuer.to_bytes()) == issuer
    assert "secret" in repr(issuer) and str(issuer.x) not in repr(issuer)


def test_credential_proof_fails_when_tampered(issuer: IssuerSecret) -> None:
    signer = SoftwareDaaSigner()
    q = signer.public_point
    cred, proof = issue_credential(issuer, q)
    verify_credential_proof(q, cred, proof)
    assert CredentialProof.from_dict(proof.to_dict()) == proof
    assert CredentialProof.from_bytes(proof.to_bytes()) == proof
    bad_proofs = [
        dataclasses.replace(proof, z=(proof.z + 1) % N or 1),
        dataclasses.replace(proof, U1=proof.U1 + G),
        dataclasses.replace(proof, U2=proof.U2 + G),
    ]
    for bad in bad_proofs:
        with pytest.raises(CredentialProofError):
            verify_credential_proof(q, cred, bad)
    for field in ("A", "B", "C", "D"):
        bad_cred = dataclasses.replace(cred, **{field: getattr(cred, field) + G})
        with pytest.raises(CredentialProofError):
            verify_credential_proof(q, bad_cred, proof)
    with pytest.raises(CredentialProofError):  # credential for another member's key
        verify_credential_proof(SoftwareDaaSigner().public_point, cred, proof)
    # D made for another key with a consistent proof: caught by the U2 equation
    other_q = SoftwareDaaSigner().public_point
    other_cred, other_proof = issue_credential(issuer, other_q)
    with pytest.raises(CredentialProofError):
        verify_credential_proof(q, other_cred, other_proof)


def test_randomized_credential_checks(issuer: IssuerSecret, member: Member) -> None:
    coin = member.cred.randomize()
    verify_credential(issuer, *coin)
    assert RandomizedCredential.from_bytes(coin.to_bytes()) == coin
    assert RandomizedCredential.from_dict(coin.to_dict()) == coin
    for field, check in (("R", "S"), ("S", "S"), ("T", "T"), ("W", "T")):
        bad = dataclasses.replace(coin, **{field: getattr(coin, field) + G})
        with pytest.raises(CredentialError) as ei:
            verify_credential(issuer, *bad)
        assert ei.value.detail["check"] == check
    with pytest.raises(CredentialError):
        verify_credential(issuer, Point.infinity(), coin.S, coin.T, coin.W)
    with pytest.raises(EcashError):
        RandomizedCredential(Point.infinity(), coin.S, coin.T, coin.W)


def test_other_epoch_issuer_secret_fails_credential_check(member: Member) -> None:
    coin = member.cred.randomize()
    with pytest.raises(CredentialError) as ei:
        verify_credential(IssuerSecret.generate(), *coin)
    assert ei.value.detail["check"] == "S"
    with pytest.raises(CredentialError):  # same y, other x
        pass_y = IssuerSecret(secrets.randbelow(N - 1) + 1, 1)
        verify_credential(pass_y, coin.R, coin.R, coin.T, coin.W)


# --- spending -------------------------------------------------------------------------------------


def test_hundred_spend_proofs_verify_and_are_unlinkable(
    issuer: IssuerSecret, opener: OpenerSecret, member: Member
) -> None:
    seen: dict[str, set[Point]] = {k: set() for k in ("R", "S", "T", "W", "c1", "c2")}
    for _ in range(100):
        proof, ctx = _spend(member, opener.public)
        verify_spend_proof(proof, **ctx)
        verify_credential(issuer, *ctx["coin"])
        coin = ctx["coin"]
        for name, pt in (
            ("R", coin.R),
            ("S", coin.S),
            ("T", coin.T),
            ("W", coin.W),
            ("c1", proof.c1),
            ("c2", proof.c2),
        ):
            assert pt not in seen[name], f"{name} repeated"
            seen[name].add(pt)


def test_spend_proof_encodings_roundtrip(opener: OpenerSecret, member: Member) -> None:
    proof, ctx = _spend(member, opener.public)
    assert SpendProof.from_bytes(proof.to_bytes()) == proof
    assert SpendProof.from_dict(proof.to_dict()) == proof
    assert len(coin_message(ctx["keyset_id"], EPOCH, ctx["sigma"], ctx["coin"])) == 32


def _bump(x: int) -> int:
    return (x + 1) % N or 1


def _flip(b: bytes) -> bytes:
    return b[:-1] + bytes([b[-1] ^ 1])


PROOF_TAMPERS: dict[str, Callable[[SpendProof], SpendProof]] = {
    "c_prime": lambda p: dataclasses.replace(p, c_prime=_flip(p.c_prime)),
    "nonce_k": lambda p: dataclasses.replace(p, nonce_k=_flip(p.nonce_k)),
    "s": lambda p: dataclasses.replace(p, s=_bump(p.s)),
    "c1": lambda p: dataclasses.replace(p, c1=p.c1 + G),
    "c2": lambda p: dataclasses.replace(p, c2=p.c2 + G),
    "st": lambda p: dataclasses.replace(p, st=_bump(p.st)),
}

CTX_TAMPERS: dict[str, Callable[[dict[str, Any]], dict[str, Any]]] = {
    "R": lambda c: {**c, "coin": dataclasses.replace(c["coin"], R=c["coin"].R + G)},
    "S": lambda c: {**c, "coin": dataclasses.replace(c["coin"], S=c["coin"].S + G)},
    "T": lambda c: {**c, "coin": dataclasses.replace(c["coin"], T=c["coin"].T + G)},
    "W": lambda c: {**c, "coin": dataclasses.replace(c["coin"], W=c["coin"].W + G)},
    "preq": lambda c: {**c, "preq": _flip(c["preq"])},
    "keyset_id": lambda c: {**c, "keyset_id": _flip(c["keyset_id"])},
    "sigma": lambda c: {**c, "sigma": _flip(c["sigma"])},
    "epoch": lambda c: {**c, "epoch": c["epoch"] + 1},
    "hop": lambda c: {**c, "hop": c["hop"] + G},
}


@pytest.mark.parametrize("field", sorted(PROOF_TAMPERS))
def test_spend_proof_with_a_changed_proof_field_fails(
    field: str, opener: OpenerSecret, member: Member
) -> None:
    proof, ctx = _spend(member, opener.public)
    with pytest.raises(SpendProofError):
        verify_spend_proof(PROOF_TAMPERS[field](proof), **ctx)


@pytest.mark.parametrize("field", sorted(CTX_TAMPERS))
def test_spend_proof_with_a_changed_statement_fails(
    field: str, opener: OpenerSecret, member: Member
) -> None:
    proof, ctx = _spend(member, opener.public)
    with pytest.raises(SpendProofError):
        verify_spend_proof(proof, **CTX_TAMPERS[field](ctx))


def test_copied_coin_with_software_key_is_refused(
    issuer: IssuerSecret, opener: OpenerSecret, member: Member
) -> None:
    """Attack: the wallet file is copied, the TPM is not; a software key answers instead."""
    thief = SoftwareDaaSigner()
    coin = member.cred.randomize()
    ctx = _ctx(coin, opener.public)
    forged = make_spend_proof(thief, **ctx, self_check=False)  # structurally valid
    assert SpendProof.from_bytes(forged.to_bytes()) == forged
    verify_credential(issuer, *coin)  # the coin itself is genuine
    with pytest.raises(SpendProofError):
        verify_spend_proof(forged, **ctx)
    with pytest.raises(SpendProofError):  # the honest self-check catches it at the wallet
        make_spend_proof(thief, **ctx)
    with pytest.raises(SignerOutputError):
        make_spend_proof(thief, **ctx, expected_t0=member.signer.t0)


def test_thief_with_own_credential_cannot_reuse_victims_w(
    issuer: IssuerSecret, opener: OpenerSecret, member: Member
) -> None:
    """Splicing the victim's (R,S,T,W) with a thief's proof fails, and so does W swapped."""
    thief_signer = SoftwareDaaSigner()
    thief = Member(thief_signer, issue_credential(issuer, thief_signer.public_point)[0])
    coin = member.cred.randomize()
    fake = dataclasses.replace(coin, W=thief.signer.public_point)  # any W the thief knows
    with pytest.raises(CredentialError):
        verify_credential(issuer, *fake)


def test_nonce_k_of_31_bytes(opener: OpenerSecret, issuer: IssuerSecret) -> None:
    signer = SoftwareDaaSigner(nonce_k_source=lambda: secrets.randbelow(2**248 - 1) + 1)
    cred, _ = issue_credential(issuer, signer.public_point)
    ctx = _ctx(cred.randomize(), opener.public)
    proof = make_spend_proof(signer, **ctx)
    assert len(proof.nonce_k) <= 31
    verify_spend_proof(proof, **ctx)
    for copy in (SpendProof.from_bytes(proof.to_bytes()), SpendProof.from_dict(proof.to_dict())):
        assert copy.nonce_k == proof.nonce_k
        verify_spend_proof(copy, **ctx)
    padded = dataclasses.replace(proof, nonce_k=proof.nonce_k.rjust(32, b"\x00"))
    with pytest.raises(SpendProofError):  # re-padding changes c: hash exactly as returned
        verify_spend_proof(padded, **ctx)
    join = make_join_proof(signer, b"n" * 32)
    assert len(join.nonce_k) <= 31
    assert JoinProof.from_bytes(join.to_bytes()) == join


# --- opening --------------------------------------------------------------------------------------


def test_opening_names_the_right_member(issuer: IssuerSecret, opener: OpenerSecret) -> None:
    members = {}
    registry: dict[bytes, str] = {}
    for i in range(5):
        signer = SoftwareDaaSigner()
        join = make_join_proof(signer, secrets.token_bytes(32))
        registry[join.t0.encode()] = f"member-{i}"
        members[f"member-{i}"] = Member(signer, issue_credential(issuer, signer.public_point)[0])
    for name, mem in members.items():
        proof, _ = _spend(mem, opener.public)
        opening = open_and_identify(opener.h, proof.c1, proof.c2, registry)
        assert opening.member == name
        verify_opening(opener.public, proof.c1, proof.c2, opening.t0, opening.proof)
        assert OpeningProof.from_bytes(opening.proof.to_bytes()) == opening.proof
        assert OpeningProof.from_dict(opening.proof.to_dict()) == opening.proof


def test_opening_proof_for_wrong_member_fails(opener: OpenerSecret, member: Member) -> None:
    proof, _ = _spend(member, opener.public)
    t0, op = open_proof(opener.h, proof.c1, proof.c2)
    assert t0 == member.signer.t0
    other_t0 = SoftwareDaaSigner().t0
    with pytest.raises(OpeningProofError):
        verify_opening(opener.public, proof.c1, proof.c2, other_t0, op)
    with pytest.raises(OpeningProofError):  # forged proof for the wrong member
        _, op2 = open_proof(opener.h, proof.c1, proof.c2)
        verify_opening(opener.public, proof.c1, proof.c2, other_t0, op2)
    with pytest.raises(OpeningProofError):
        verify_opening(OpenerSecret.generate().public, proof.c1, proof.c2, t0, op)
    with pytest.raises(OpeningProofError):
        bumped = dataclasses.replace(op, z=_bump(op.z))
        verify_opening(opener.public, proof.c1, proof.c2, t0, bumped)
    with pytest.raises(OpeningProofError):  # T0 = c2 makes c2 - T0 infinity
        verify_opening(opener.public, proof.c1, proof.c2, proof.c2, op)
    with pytest.raises(UnknownMemberError):
        identify_member({}, t0)
    wrong_key_t0, _ = open_proof(OpenerSecret.generate().h, proof.c1, proof.c2)
    assert wrong_key_t0 != t0


# --- signer semantics and misuse ----------------------------------------------------------------


def test_software_signer_follows_tpm_commit_semantics() -> None:
    signer = SoftwareDaaSigner()
    assert isinstance(signer, DaaSigner)
    s2_0, j0 = tracing_base()
    res = signer.commit(G, s2_0, j0.y_bytes())
    assert res.L is not None and res.E is not None
    assert signer.t0 == res.K
    nonce_k, s = signer.sign(b"d" * 32, res.counter)
    c = tpm_challenge(nonce_k, b"d" * 32)
    assert s * G - c * signer.public_point == res.E  # s = r + c*sk
    assert s * j0 - c * res.K == res.L
    with pytest.raises(SoftDaaError):  # commit values are single-use
        signer.sign(b"d" * 32, res.counter)
    only_j = signer.commit(None, s2_0, j0.y_bytes())
    assert only_j.E is None and only_j.K is not None
    only_e = signer.commit(None, None, None)
    assert only_e.K is None and only_e.L is None and only_e.E is not None
    with pytest.raises(SoftDaaError):
        signer.commit(G, s2_0, None)
    with pytest.raises(SoftDaaError):
        signer.commit(G, s2_0, (-j0).y_bytes()[:-1] + b"\x00")
    with pytest.raises(SoftDaaError):
        signer.sign(b"short", only_e.counter)


class _BrokenSigner:
    """A signer whose commit omits E (as a TPM does for s2 without P1)."""

    def __init__(self) -> None:
        self.inner = SoftwareDaaSigner()

    @property
    def public_point(self) -> Point:
        return self.inner.public_point

    def commit(self, p1: Point | None, s2: bytes | None, y2: bytes | None) -> CommitResult:
        return self.inner.commit(None, s2, y2)

    def sign(self, digest: bytes, counter: int) -> tuple[bytes, int]:
        return b"", 0


def test_unusable_signer_output_is_reported() -> None:
    with pytest.raises(SignerOutputError):
        make_join_proof(_BrokenSigner(), b"n" * 32)


def test_context_validation(opener: OpenerSecret, member: Member) -> None:
    ctx = _ctx(member.cred.randomize(), opener.public)
    for key, bad in (
        ("preq", b"x"),
        ("keyset_id", b"x" * 32),
        ("sigma", b""),
        ("epoch", -1),
        ("epoch", 2**32),
    ):
        with pytest.raises(GroupsigEncodingError):
            make_spend_proof(member.signer, **{**ctx, key: bad})


# --- decoder fuzzing ------------------------------------------------------------------------------

DECODERS: list[Callable[[bytes], object]] = [
    SpendProof.from_bytes,
    JoinProof.from_bytes,
    Credential.from_bytes,
    CredentialProof.from_bytes,
    RandomizedCredential.from_bytes,
    OpeningProof.from_bytes,
    IssuerSecret.from_bytes,
    OpenerSecret.from_bytes,
]


@settings(max_examples=200, deadline=None)
@given(st.sampled_from(DECODERS), st.binary(max_size=300))
def test_fuzz_byte_decoders_raise_only_project_errors(
    decoder: Callable[[bytes], object], data: bytes
) -> None:
    with contextlib.suppress(EcashError):
        decoder(data)


@pytest.fixture(scope="module")
def sample_proof(opener: OpenerSecret, member: Member) -> tuple[SpendProof, dict[str, Any]]:
    return _spend(member, opener.public)


@settings(max_examples=60, deadline=None)
@given(st.data())
def test_fuzz_mutated_spend_proof_is_rejected(
    sample_proof: tuple[SpendProof, dict[str, Any]], data: st.DataObject
) -> None:
    proof, ctx = sample_proof
    raw = bytearray(proof.to_bytes())
    pos = data.draw(st.integers(0, len(raw) - 1))
    raw[pos] ^= data.draw(st.integers(1, 255))
    try:
        mutated = SpendProof.from_bytes(bytes(raw))
    except EcashError:
        return
    with pytest.raises(ProofError):
        verify_spend_proof(mutated, **ctx)


json_values = st.one_of(st.text(max_size=120), st.integers(), st.none(), st.binary(max_size=8))


@settings(max_examples=200, deadline=None)
@given(
    st.sampled_from(
        [
            SpendProof,
            JoinProof,
            Credential,
            CredentialProof,
            RandomizedCredential,
            OpeningProof,
            IssuerPublic,
        ]
    ),
    st.one_of(
        st.dictionaries(st.text(max_size=8), json_values, max_size=8),
        st.lists(json_values, max_size=3),
        json_values,
    ),
)
def test_fuzz_dict_decoders_raise_only_project_errors(cls: Any, data: object) -> None:
    with contextlib.suppress(EcashError):
        cls.from_dict(data)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_fuzz_dict_fields_with_right_keys(
    sample_proof: tuple[SpendProof, dict[str, Any]], data: st.DataObject
) -> None:
    proof, _ = sample_proof
    d = proof.to_dict()
    key = data.draw(st.sampled_from(sorted(d)))
    d[key] = data.draw(st.one_of(st.text(max_size=100), st.binary(max_size=70).map(b64u_encode)))
    with contextlib.suppress(EcashError):
        SpendProof.from_dict(d)


# --- package docs ---------------------------------------------------------------------------------


def test_package_docstring_example_runs() -> None:
    import doctest

    import ecash_tpm.crypto.groupsig as groupsig

    result = doctest.testmod(groupsig)
    assert result.attempted > 0 and result.failed == 0
