"""CrlSource (ecash_tpm.pki.revocation): every verifier's view of the central bank's CRL
(issue 10, attack 10; docs/protocol.md, "Revocation")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.clients.revocation import crl_source, file_fetcher
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import ConfigError
from ecash_tpm.pki import (
    CertificateRevokedError,
    CrlInvalidError,
    CrlSource,
    CrlStaleError,
    CrlUnavailableError,
    verify_party_certificate,
    verify_tls_peer,
)

UTC = dt.UTC
NOW = dt.datetime.now(UTC).replace(microsecond=0)
#: Certificates start before NOW: the suite may reach these tests minutes after import.
START = NOW - dt.timedelta(days=1)


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[CentralBankCA]:
    authority = CentralBankCA.create(tmp_path / "ca", now=START)
    yield authority
    authority.close()


def _pem(ca: CentralBankCA, *, now: dt.datetime = NOW, valid_s: int = 3600) -> bytes:
    crl = ca.crl(now=now, valid_for=dt.timedelta(seconds=valid_s))
    return crl.public_bytes(serialization.Encoding.PEM)


class Published:
    """What the central bank currently publishes; counts fetches."""

    def __init__(self, data: bytes) -> None:
        self.data = data
        self.fetches = 0
        self.fail = False

    def __call__(self) -> bytes:
        self.fetches += 1
        if self.fail:
            raise ConfigError("central bank unreachable (test)", code="remote.unreachable")
        return self.data


def test_revoked_certificate_refused_after_refresh(ca: CentralBankCA) -> None:
    shop = ca.certify("merchant", "shop-1", PartyKey.generate().public_key, not_before=START)
    published = Published(_pem(ca))
    source = CrlSource(ca.root_certificate, published, refresh_s=60)
    verify_party_certificate(shop, ca.root_certificate, role="merchant", crl=source, now=NOW)
    ca.revoke(shop.serial_number)
    published.data = _pem(ca)
    # within refresh_s the copy is kept (one fetch), after it the revocation is seen
    verify_party_certificate(shop, ca.root_certificate, role="merchant", crl=source, now=NOW)
    assert published.fetches == 1
    later = NOW + dt.timedelta(seconds=60)
    with pytest.raises(CertificateRevokedError) as info:
        verify_party_certificate(shop, ca.root_certificate, role="merchant", crl=source, now=later)
    assert info.value.code == "cert.revoked" and info.value.http_status == 403
    assert published.fetches == 2


def test_stale_list_refuses_to_act(ca: CentralBankCA) -> None:
    shop = ca.certify("merchant", "shop-1", PartyKey.generate().public_key, not_before=START)
    published = Published(_pem(ca, valid_s=3600))
    source = CrlSource(ca.root_certificate, published, refresh_s=60)
    source.current_crl(NOW)
    published.fail = True  # no fresh list to be had
    in_time = NOW + dt.timedelta(seconds=1800)
    verify_party_certificate(shop, ca.root_certificate, role="merchant", crl=source, now=in_time)
    too_late = NOW + dt.timedelta(seconds=3601)
    with pytest.raises(CrlStaleError) as info:
        verify_party_certificate(
            shop, ca.root_certificate, role="merchant", crl=source, now=too_late
        )
    assert info.value.code == "crl.stale" and info.value.http_status == 503
    assert info.value.detail["next_update"]
    # a stale list that is still all the central bank serves: the same refusal
    published.fail = False
    with pytest.raises(CrlStaleError):
        source.current_crl(too_late)
    # a fresh one: acting again
    published.data = _pem(ca, now=too_late)
    source.current_crl(too_late)


def test_no_list_at_all_is_unavailable(ca: CentralBankCA) -> None:
    published = Published(b"")
    published.fail = True
    source = CrlSource(ca.root_certificate, published)
    with pytest.raises(CrlUnavailableError) as info:
        source.current_crl(NOW)
    assert info.value.code == "crl.unavailable" and info.value.http_status == 503
    assert info.value.detail["code"] == "remote.unreachable"


def test_forged_list_refused(ca: CentralBankCA, tmp_path: Path) -> None:
    other = CentralBankCA.create(tmp_path / "other", now=START)  # same subject, another key
    try:
        source = CrlSource(ca.root_certificate, Published(_pem(other)))
        with pytest.raises(CrlInvalidError) as info:
            source.current_crl(NOW)
        assert info.value.code == "crl.invalid"
    finally:
        other.close()


def test_tls_peer_checked_against_source(ca: CentralBankCA) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    cert = ca.certify_tls(
        "merchant", "shop-1", ec.generate_private_key(ec.SECP256R1()).public_key(), not_before=START
    )
    ca.revoke(cert.serial_number)
    source = CrlSource(ca.root_certificate, Published(_pem(ca)), refresh_s=0)
    with pytest.raises(CertificateRevokedError):
        verify_tls_peer(cert, ca.root_certificate, role="merchant", crl=source, now=NOW)


def test_file_source_rereads_changed_file(ca: CentralBankCA, tmp_path: Path) -> None:
    shop = ca.certify("merchant", "shop-1", PartyKey.generate().public_key, not_before=START)
    path = tmp_path / "crl.pem"
    path.write_bytes(_pem(ca))
    source = crl_source(root=ca.root_certificate, crl_url=None, crl_file=path)
    assert source is not None
    verify_party_certificate(shop, ca.root_certificate, role="merchant", crl=source, now=NOW)
    ca.revoke(shop.serial_number)
    path.write_bytes(_pem(ca))
    with pytest.raises(CertificateRevokedError):
        verify_party_certificate(shop, ca.root_certificate, role="merchant", crl=source, now=NOW)
    path.unlink()
    with pytest.raises(ConfigError) as info:
        file_fetcher(path)()
    assert info.value.code == "config.tls_missing"
    assert crl_source(root=ca.root_certificate, crl_url=None, crl_file=None) is None
