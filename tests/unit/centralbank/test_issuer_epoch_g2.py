"""Issuer epoch certificates with G2 keys (docs/protocol.md 3.6): the central bank refuses
unmatched G2 keys, every parser checks them, and pre-issue-14 certificates still parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.certify import IssuerEpochG2Error, certify_issuer_epoch
from ecash_tpm.crypto.groupsig import IssuerPublic, IssuerSecret
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.certified import ISSUER_EPOCH_KIND, IssuerEpochCertificate
from ecash_tpm.protocol.errors import IssuerEpochCertificateError


def test_certificates_with_and_without_g2(tmp_path: Path) -> None:
    secret, other = IssuerSecret.generate(), IssuerSecret.generate()
    with CentralBankCA.create(tmp_path / "ca") as ca:
        root = ca.root_certificate
        doc = certify_issuer_epoch(ca, "issuer", 1, secret.public)
        cert = IssuerEpochCertificate.from_signed(doc, root)
        assert cert.public == secret.public and cert.public.has_g2
        assert set(doc["body"]) == {"issuer", "epoch", "X", "Y", "X2", "Y2", "certified_at"}
        # refused at the central bank: no G2 keys, or G2 keys of another secret
        pub, alien = secret.public, other.public
        for bad in (secret.public_g1, IssuerPublic(pub.X, pub.Y, alien.X2, alien.Y2)):
            with pytest.raises(IssuerEpochG2Error) as exc:
                certify_issuer_epoch(ca, "issuer", 2, bad)
            assert exc.value.code == "centralbank.issuer_epoch_g2_mismatch"
        # a root-signed body whose G2 keys do not match is refused by every parser
        body = {**doc["body"], "epoch": 3, "X2": other.public.to_dict()["X2"]}
        forged = ca.sign_object(ISSUER_EPOCH_KIND, body)
        with pytest.raises(IssuerEpochCertificateError) as bad_cert:
            IssuerEpochCertificate.from_signed(forged, root)
        assert bad_cert.value.code == "issuer_epoch.g2_mismatch"
        # a certificate made before issue 14 ({X, Y} only) still parses, without G2 keys
        old = {k: v for k, v in doc["body"].items() if k not in ("X2", "Y2")}
        legacy = IssuerEpochCertificate.from_signed(ca.sign_object(ISSUER_EPOCH_KIND, old), root)
        assert legacy.public == secret.public_g1 and not legacy.public.has_g2


def test_certified_epoch_keys_and_the_public_check(tmp_path: Path) -> None:
    """protocol §7.4: keys come from root-signed certificates; an epoch certified without G2
    keys, or whose certificate cannot be had, is left to the bank and listed."""
    from ecash_tpm.clients.epochs import CertifiedEpochKeys
    from ecash_tpm.crypto.groupsig import issue_credential
    from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
    from ecash_tpm.errors import NotFoundError
    from ecash_tpm.protocol.coins import Coin
    from ecash_tpm.protocol.spend import PublicCredentialCheck

    secret = IssuerSecret.generate()
    with CentralBankCA.create(tmp_path / "ca") as ca:
        root = ca.root_certificate
        docs = {1: certify_issuer_epoch(ca, "issuer", 1, secret.public)}
        legacy = {k: v for k, v in docs[1]["body"].items() if k not in ("X2", "Y2")}
        docs[2] = ca.sign_object(ISSUER_EPOCH_KIND, {**legacy, "epoch": 2})
    fetched: list[int] = []

    def fetch(epoch: int) -> dict[str, object]:
        fetched.append(epoch)
        if epoch not in docs:
            raise NotFoundError("no such epoch", code="bank.issuer_epoch_unknown")
        return docs[epoch]

    keys = CertifiedEpochKeys(fetch, root)
    assert keys(1) == secret.public and keys(1) == secret.public and fetched == [1]
    assert keys(2) == secret.public_g1 and keys(3) is None and keys(3) is None
    assert fetched == [1, 2, 3]  # a failure is not asked again at once
    assert keys.bank_only == {2: "issuer_epoch.no_g2", 3: "bank.issuer_epoch_unknown"}
    assert CertifiedEpochKeys(lambda e: docs[1], root)(7) is None  # another epoch's certificate

    cred, _ = issue_credential(secret, SoftwareDaaSigner().public_point)

    def coin(epoch: int, forged: bool = False) -> Coin:
        rc = cred.randomize()
        if forged:
            rc = type(rc)(rc.R, rc.R, rc.T, rc.W)
        return Coin(bytes(16), epoch, bytes(32), rc, bytes(32), b"sig")

    check = PublicCredentialCheck(keys)
    assert check.batch([coin(1), coin(1), coin(2), coin(3)])
    assert check.verified == 2 and check.unverified == {2, 3}
    check.check(coin(2, forged=True))  # no G2 keys: the bank decides
    assert not check.batch([coin(1), coin(1, forged=True)])
    with pytest.raises(EcashError) as exc:
        check.indexed(1, coin(1, forged=True))
    assert exc.value.code == "daa.credential_invalid"
