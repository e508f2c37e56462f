"""Issuer epoch certificates with G2 keys (docs/protocol.md 3.6): the central bank refuses
unmatched G2 keys, every parser checks them, and pre-issue-14 certificates still parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.certify import IssuerEpochG2Error, certify_issuer_epoch
from ecash_tpm.crypto.groupsig import IssuerPublic, IssuerSecret
from ecash_tpm.crypto.signing import canonical_encode
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
    """protocol §7.4: keys come from root-signed certificates; only an epoch whose verified
    certificate has no G2 keys is left to the bank and listed. An epoch the publisher does not
    know refuses the coin, and so does a certificate that cannot be had or is another
    epoch's or issuer's (fail closed: the wallet names the epoch)."""
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
        docs[5] = certify_issuer_epoch(ca, "rogue", 5, secret.public)
    fetched: list[int] = []

    def fetch(epoch: int) -> dict[str, object]:
        fetched.append(epoch)
        if epoch not in docs:
            raise NotFoundError("no such epoch", code="bank.issuer_epoch_unknown")
        return docs[epoch]

    keys = CertifiedEpochKeys(fetch, root, issuer="issuer")
    assert keys(1) == secret.public and keys(1) == secret.public and fetched == [1]
    assert keys(2) == secret.public_g1
    for _ in range(2):
        with pytest.raises(EcashError) as exc:
            keys(3)
        assert (exc.value.code, exc.value.http_status) == ("coin.unknown_epoch", 400)
    assert fetched == [1, 2, 3]  # a refusal is not asked again at once
    with pytest.raises(EcashError) as exc:
        keys(5)  # another issuer's key
    assert exc.value.code == "issuer_epoch.unavailable" and exc.value.http_status == 503
    assert exc.value.detail["cause"] == "issuer_epoch.mismatch"
    assert dict(keys.bank_only) == {2: "issuer_epoch.no_g2"}
    with pytest.raises(EcashError) as exc:
        CertifiedEpochKeys(lambda e: docs[1], root)(7)  # another epoch's certificate
    assert exc.value.detail["cause"] == "issuer_epoch.mismatch"
    with pytest.raises(EcashError) as exc:
        CertifiedEpochKeys(lambda e: {"kind": "junk"}, root)(1)  # malformed: 503, not 500
    assert exc.value.code == "issuer_epoch.unavailable"

    cred, _ = issue_credential(secret, SoftwareDaaSigner().public_point)

    def coin(epoch: int, forged: bool = False) -> Coin:
        rc = cred.randomize()
        if forged:
            rc = type(rc)(rc.R, rc.R, rc.T, rc.W)
        return Coin(bytes(16), epoch, bytes(32), rc, bytes(32), b"sig")

    check = PublicCredentialCheck(keys)
    assert check.batch([coin(1), coin(1), coin(2)])
    assert check.verified == 2 and check.unverified == {2}
    check.check(coin(2, forged=True))  # a verified certificate without G2 keys: the bank decides
    assert not check.batch([coin(1), coin(1, forged=True)])
    with pytest.raises(EcashError) as exc:
        check.indexed(1, coin(1, forged=True))
    assert exc.value.code == "daa.credential_invalid"
    with pytest.raises(EcashError) as exc:
        PublicCredentialCheck(keys).batch([coin(1), coin(3)])
    assert exc.value.code == "coin.unknown_epoch" and exc.value.detail["index"] == 1
    with pytest.raises(EcashError) as exc:
        PublicCredentialCheck(keys).batch([coin(1), coin(2), coin(3)])
    assert exc.value.code == "payment.too_many_epochs"
    assert exc.value.detail == {"epochs": 3, "max": 2}
    with pytest.raises(EcashError) as exc:
        PublicCredentialCheck({1: secret.public}.get).check(coin(4))  # lookup says None
    assert exc.value.code == "coin.unknown_epoch"
    blind = PublicCredentialCheck(None)  # a deployment publishing no keys: all to the bank
    assert blind.batch([coin(1, forged=True), coin(4)]) and blind.unverified == {1, 4}


def test_epoch_caches_are_bounded(tmp_path: Path) -> None:
    """Finding 2: made-up epochs cannot grow the caches (LRU, ``max_epochs``)."""
    from ecash_tpm.clients.epochs import CertifiedEpochKeys
    from ecash_tpm.errors import NotFoundError

    secret = IssuerSecret.generate()
    with CentralBankCA.create(tmp_path / "ca") as ca:
        root = ca.root_certificate
        good = {e: certify_issuer_epoch(ca, "issuer", e, secret.public) for e in (1, 2, 3)}

    def fetch(epoch: int) -> dict[str, object]:
        if epoch not in good:
            raise NotFoundError("no such epoch", code="bank.issuer_epoch_unknown")
        return good[epoch]

    keys = CertifiedEpochKeys(fetch, root, issuer="issuer", max_epochs=2)
    for epoch in range(100, 200):
        with pytest.raises(EcashError):
            keys(epoch)
    for epoch in (1, 2, 3):
        assert keys(epoch) == secret.public
    assert len(keys._failed) == 2 and list(keys._keys) == [2, 3]


def test_a_pre_issue_14_epoch_is_upgraded_once(tmp_path: Path) -> None:
    """Finding 11: an epoch certified before issue 14 (X, Y only) gets its G2 keys exactly
    once, for the same X, Y, pairing-checked; the new document is kept and served; another
    key is still a conflict, and unmatched G2 keys are still refused."""
    from ecash_tpm.centralbank.certify import issuer_epoch_certificate

    secret, other = IssuerSecret.generate(), IssuerSecret.generate()
    with CentralBankCA.create(tmp_path / "ca") as ca:
        root = ca.root_certificate
        # what a central bank before issue 14 stored for epoch 1
        old = ca.sign_object(
            ISSUER_EPOCH_KIND,
            {
                "issuer": "issuer",
                "epoch": 1,
                **secret.public_g1.to_dict(),
                "certified_at": 1_700_000_000,
            },
        )
        xy = secret.public.X.encode() + secret.public.Y.encode()
        ca.store.insert_issuer_epoch("issuer", 1, xy, canonical_encode(old).decode(), 1)
        assert not IssuerEpochCertificate.from_signed(
            issuer_epoch_certificate(ca, "issuer", 1), root
        ).public.has_g2
        # G2 keys that do not belong to X, Y: refused, the old document stays
        pub, alien = secret.public, other.public
        with pytest.raises(IssuerEpochG2Error):
            certify_issuer_epoch(ca, "issuer", 1, IssuerPublic(pub.X, pub.Y, alien.X2, alien.Y2))
        assert issuer_epoch_certificate(ca, "issuer", 1) == old
        # another key: still a conflict
        with pytest.raises(EcashError) as exc:
            certify_issuer_epoch(ca, "issuer", 1, other.public)
        assert exc.value.code == "centralbank.issuer_epoch_conflict"
        # the upgrade: same X, Y with their G2 keys
        new = certify_issuer_epoch(ca, "issuer", 1, secret.public)
        cert = IssuerEpochCertificate.from_signed(new, root)
        assert cert.public == secret.public and cert.public.has_g2
        assert issuer_epoch_certificate(ca, "issuer", 1) == new
        assert certify_issuer_epoch(ca, "issuer", 1, secret.public) == new  # idempotent now


def test_the_issuer_upgrades_its_saved_pre_issue_14_certificate(tmp_path: Path) -> None:
    """Finding 11, the issuer's side: a saved certificate without X2, Y2 is certified again
    (the central bank's one upgrade) and the new one saved; ``save_epoch_certificate`` refuses
    the legacy document (it must carry the epoch's full key) and keeps the new one."""
    from types import SimpleNamespace

    from ecash_tpm.deploy.bootstrap import _certify_epoch
    from ecash_tpm.issuer.errors import IssuerKeyError
    from ecash_tpm.issuer.keys import IssuerKeyStore

    keys = IssuerKeyStore.create(tmp_path / "issuer-keys")
    public = keys.public_for_epoch(1)
    with CentralBankCA.create(tmp_path / "ca") as ca:
        old_body = {"issuer": "issuer", "epoch": 1, **public.to_dict(), "certified_at": 1}
        old = ca.sign_object(ISSUER_EPOCH_KIND, {k: v for k, v in old_body.items() if k[-1] != "2"})
        with pytest.raises(IssuerKeyError):
            keys.save_epoch_certificate(1, old)
        # what an issuer bootstrapped before issue 14 holds on disk
        (tmp_path / "issuer-keys" / "epoch-00000001.cert.json").write_bytes(canonical_encode(old))
        ca.store.insert_issuer_epoch(
            "issuer", 1, public.X.encode() + public.Y.encode(), canonical_encode(old).decode(), 1
        )
        link = SimpleNamespace(
            client=SimpleNamespace(
                certify_issuer_epoch=lambda name, epoch, key: certify_issuer_epoch(
                    ca, name, epoch, key
                )
            )
        )
        _certify_epoch(keys, link, "issuer")  # type: ignore[arg-type]
        saved = keys.epoch_certificate(1)
        assert saved is not None
        cert = IssuerEpochCertificate.from_signed(saved, ca.root_certificate)
        assert cert.public == public and cert.public.has_g2
