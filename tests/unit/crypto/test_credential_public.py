"""Public verification of coin credentials with pairings and G2 issuer keys (protocol §7.4)."""

from __future__ import annotations

import pytest

from ecash_tpm.crypto.bn256 import G
from ecash_tpm.crypto.groupsig import (
    CredentialError,
    IssuerKeyG2Error,
    IssuerPublic,
    IssuerSecret,
    RandomizedCredential,
    issue_credential,
    verify_credential_public,
    verify_credentials_public,
)
from ecash_tpm.crypto.pairing import P2
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner


@pytest.fixture(scope="module")
def world() -> tuple[IssuerSecret, IssuerPublic, IssuerSecret, IssuerPublic, list[object]]:
    s1, s2 = IssuerSecret.generate(), IssuerSecret.generate()
    signer = SoftwareDaaSigner()
    cred1, _ = issue_credential(s1, signer.public_point)
    cred2, _ = issue_credential(s2, signer.public_point)
    return s1, s1.public, s2, s2.public, [cred1, cred2]


def test_issuer_public_has_matching_g2_keys(world) -> None:  # type: ignore[no-untyped-def]
    s1, pub1, *_ = world
    assert pub1.has_g2 and s1.x * P2 == pub1.X2 and s1.y * P2 == pub1.Y2
    pub1.check_g2()
    again = IssuerPublic.from_dict(pub1.to_dict())
    assert again == pub1
    assert set(pub1.to_dict()) == {"X", "Y", "X2", "Y2"}
    assert IssuerPublic.from_dict({**pub1.g1.to_dict(), "X2": None, "Y2": None}) == pub1.g1


def test_check_g2_refuses_swapped_or_missing_keys(world) -> None:  # type: ignore[no-untyped-def]
    _, pub1, _, pub2, _ = world
    with pytest.raises(IssuerKeyG2Error) as e:
        IssuerPublic(pub1.X, pub1.Y, pub1.Y2, pub1.X2).check_g2()
    assert e.value.code == "daa.issuer_g2_key_mismatch"
    with pytest.raises(IssuerKeyG2Error):
        IssuerPublic(pub1.X, pub1.Y, pub2.X2, pub2.Y2).check_g2()
    with pytest.raises(IssuerKeyG2Error) as e:
        pub1.g1.check_g2()
    assert e.value.detail["check"] == "missing"


def test_one_coin_and_batch(world) -> None:  # type: ignore[no-untyped-def]
    _, pub1, _, pub2, (cred1, cred2) = world
    c1, c2, c3 = cred1.randomize(), cred1.randomize(), cred2.randomize()
    verify_credential_public(c1, pub1.X2, pub1.Y2)
    assert verify_credentials_public([])
    assert verify_credentials_public(
        [(c1, pub1.X2, pub1.Y2), (c2, pub1.X2, pub1.Y2), (c3, pub2.X2, pub2.Y2)]
    )
    # a coin under the wrong epoch key fails, alone and in a batch
    assert not verify_credentials_public([(c1, pub1.X2, pub1.Y2), (c3, pub1.X2, pub1.Y2)])
    with pytest.raises(CredentialError) as e:
        verify_credential_public(c3, pub1.X2, pub1.Y2)
    assert e.value.code == "daa.credential_invalid" and e.value.detail["check"] == "S"


def test_forged_credentials_fail(world) -> None:  # type: ignore[no-untyped-def]
    _, pub1, _, _, (cred1, _) = world
    c = cred1.randomize()
    bad_t = RandomizedCredential(c.R, c.S, c.T + G, c.W)
    with pytest.raises(CredentialError) as e:
        verify_credential_public(bad_t, pub1.X2, pub1.Y2)
    assert e.value.detail["check"] == "T"
    # W changed without T: the second equation fails too
    bad_w = RandomizedCredential(c.R, c.S, c.T, c.W + G)
    assert not verify_credentials_public([(c, pub1.X2, pub1.Y2), (bad_w, pub1.X2, pub1.Y2)])
    # a "credential" made without the issuer secret: S = 5R, T = 7(R + W)
    r, w = 3 * G, 11 * G
    forged = RandomizedCredential(r, 5 * r, 7 * (r + w), w)
    assert not verify_credentials_public([(forged, pub1.X2, pub1.Y2)])
    with pytest.raises(CredentialError):
        verify_credential_public(forged, pub1.X2, pub1.Y2)
