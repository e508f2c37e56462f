"""PartyCertCache (ecash_tpm.pki.certcache, issue 13 item 3): a cached merchant certificate
check gives the same answers as the full check, including after a revocation or expiry."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.pki import CertificateExpiredError, CertificateRevokedError, CrlSource, certcache
from ecash_tpm.pki.certcache import PartyCertCache

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
START = NOW - dt.timedelta(days=1)


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[CentralBankCA]:
    authority = CentralBankCA.create(tmp_path / "ca", now=START)
    yield authority
    authority.close()


class Published:
    def __init__(self, ca: CentralBankCA) -> None:
        self.ca = ca
        self.publish()

    def publish(self) -> None:
        crl = self.ca.crl(now=NOW, valid_for=dt.timedelta(hours=1))
        self.data = crl.public_bytes(serialization.Encoding.PEM)

    def __call__(self) -> bytes:
        return self.data


def test_cached_check_follows_revocation_and_validity(
    ca: CentralBankCA, monkeypatch: pytest.MonkeyPatch
) -> None:
    shop = ca.certify(
        "merchant",
        "shop-1",
        PartyKey.generate().public_key,
        not_before=START,
    )
    pem = shop.public_bytes(serialization.Encoding.PEM)
    published = Published(ca)
    cache = PartyCertCache(
        ca.root_certificate, crl=CrlSource(ca.root_certificate, published, refresh_s=60)
    )
    key = cache.verify(pem, role="merchant", name="shop-1", now=NOW)
    calls = []
    full = certcache.verify_party_certificate
    monkeypatch.setattr(
        certcache, "verify_party_certificate", lambda *a, **k: calls.append(1) or full(*a, **k)
    )
    assert cache.verify(pem.decode(), role="merchant", name="shop-1", now=NOW) == key
    assert calls == []  # a hit: no full check
    with pytest.raises(Exception) as wrong:  # another name is another entry: full check
        cache.verify(pem, role="merchant", name="shop-2", now=NOW)
    assert getattr(wrong.value, "code", None) == "cert.wrong_name" and calls == [1]
    # a new CRL is a new key: the revocation is seen at once
    ca.revoke(shop.serial_number)
    published.publish()
    later = NOW + dt.timedelta(seconds=61)
    with pytest.raises(CertificateRevokedError) as info:
        cache.verify(pem, role="merchant", name="shop-1", now=later)
    assert info.value.code == "cert.revoked"


def test_cached_check_refuses_an_expired_certificate(ca: CentralBankCA) -> None:
    shop = ca.certify(
        "merchant",
        "shop-1",
        PartyKey.generate().public_key,
        not_before=START,
        valid_days=2,
    )
    pem = shop.public_bytes(serialization.Encoding.PEM)
    cache = PartyCertCache(ca.root_certificate, crl=None)
    cache.verify(pem, role="merchant", name="shop-1", now=NOW)
    with pytest.raises(CertificateExpiredError) as info:
        cache.verify(pem, role="merchant", name="shop-1", now=NOW + dt.timedelta(days=1, hours=1))
    assert info.value.code == "cert.expired"
