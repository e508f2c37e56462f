"""Issuer epoch certificates with G2 keys (docs/protocol.md 3.6): the central bank refuses
unmatched G2 keys, every parser checks them, and pre-issue-14 certificates still parse."""

from __future__ import annotations

from pathlib import Path

import pytest

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.certify import IssuerEpochG2Error, certify_issuer_epoch
from ecash_tpm.crypto.groupsig import IssuerPublic, IssuerSecret
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
