"""Spend proofs with their commitments (E, R1, R2) (docs/protocol.md §7, §7.3; issue 13 item 2):
both encodings verify, the commitments are bound by c' and by the equations."""

from __future__ import annotations

import dataclasses
import secrets
from typing import Any

import pytest

from ecash_tpm.crypto.bn256 import G, N, Point, multi_mult, random_scalar, tpm_challenge
from ecash_tpm.crypto.groupsig import (
    GroupsigEncodingError,
    IssuerSecret,
    OpenerSecret,
    RandomizedCredential,
    SpendProof,
    SpendProofError,
    combine_terms,
    issue_credential,
    make_spend_proof,
    spend_challenge,
    spend_equation_terms,
    verify_spend_proof,
)
from ecash_tpm.crypto.groupsig.signer import _commit, _sign
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner


@pytest.fixture(scope="module")
def setup() -> tuple[SoftwareDaaSigner, Any, Point]:
    issuer, opener = IssuerSecret.generate(), OpenerSecret.generate()
    signer = SoftwareDaaSigner()
    cred, _ = issue_credential(issuer, signer.public_point)
    return signer, cred, opener.public


def _ctx(coin: RandomizedCredential, hop: Point) -> dict[str, Any]:
    return {
        "hop": hop,
        "preq": secrets.token_bytes(32),
        "keyset_id": secrets.token_bytes(16),
        "epoch": 3,
        "sigma": secrets.token_bytes(32),
        "coin": coin,
    }


def _proof(setup: Any) -> tuple[SpendProof, dict[str, Any]]:
    signer, cred, hop = setup
    ctx = _ctx(cred.randomize(), hop)
    return make_spend_proof(signer, **ctx), ctx


def test_new_and_old_encodings_verify_and_roundtrip(setup: Any) -> None:
    proof, ctx = _proof(setup)
    assert proof.commitments is not None
    assert set(proof.to_dict()) == {"c_prime", "nonce_k", "s", "c1", "c2", "st", "E", "R1", "R2"}
    old = dataclasses.replace(proof, commitments=None)
    assert set(old.to_dict()) == {"c_prime", "nonce_k", "s", "c1", "c2", "st"}
    for p in (proof, old):
        assert SpendProof.from_dict(p.to_dict()) == p
        assert SpendProof.from_bytes(p.to_bytes()) == p
        verify_spend_proof(p, **ctx)
    assert len(proof.to_bytes()) == len(old.to_bytes()) + 3 * 65


def test_partial_commitments_are_malformed(setup: Any) -> None:
    proof, _ = _proof(setup)
    d = proof.to_dict()
    del d["R2"]
    with pytest.raises(GroupsigEncodingError):
        SpendProof.from_dict(d)
    with pytest.raises(GroupsigEncodingError):
        SpendProof.from_bytes(proof.to_bytes()[:-1])


@pytest.mark.parametrize("which", [0, 1, 2])
def test_changed_commitment_fails_the_challenge(setup: Any, which: int) -> None:
    proof, ctx = _proof(setup)
    assert proof.commitments is not None
    pts = list(proof.commitments)
    pts[which] = pts[which] + G
    bad = dataclasses.replace(proof, commitments=(pts[0], pts[1], pts[2]))
    with pytest.raises(SpendProofError) as info:
        verify_spend_proof(bad, **ctx)
    assert info.value.code == "daa.spend_proof_invalid"
    assert info.value.detail["check"] == "challenge"


def test_commitments_hashed_but_false_fail_the_equations(setup: Any) -> None:
    """A signer that hashes a wrong E into c' (so c' matches the sent commitments) is caught by
    the weighted equation; the same proof in the old form fails the challenge."""
    signer, cred, hop = setup
    ctx = _ctx(cred.randomize(), hop)
    coin = ctx["coin"]
    t0, l_pt, e, counter = _commit(signer, coin.S)
    t, rt = random_scalar(), random_scalar()
    c1, c2, r1, r2 = t * G, t0 + t * hop, rt * G, l_pt + rt * hop
    bad_e = e + G
    fields = {k: ctx[k] for k in ("preq", "keyset_id", "epoch", "sigma", "coin")}
    c_prime = spend_challenge(**fields, e=bad_e, c1=c1, c2=c2, r1=r1, r2=r2)
    nonce_k, s = _sign(signer, c_prime, counter)
    st = (rt + tpm_challenge(nonce_k, c_prime) * t) % N
    forged = SpendProof(c_prime, nonce_k, s, c1, c2, st, (bad_e, r1, r2))
    with pytest.raises(SpendProofError) as info:
        verify_spend_proof(forged, **ctx)
    assert info.value.detail["check"] == "equations"
    with pytest.raises(SpendProofError) as info:
        verify_spend_proof(dataclasses.replace(forged, commitments=None), **ctx)
    assert info.value.detail["check"] == "challenge"
    # in a batch with honest proofs the weighted sum is not zero either
    honest = [_proof(setup) for _ in range(3)]
    terms = [t for p, c in honest for t in spend_equation_terms(p, c["coin"], hop)]
    assert multi_mult(combine_terms(terms)).is_infinity
    terms += spend_equation_terms(forged, coin, hop)
    assert not multi_mult(combine_terms(terms)).is_infinity
