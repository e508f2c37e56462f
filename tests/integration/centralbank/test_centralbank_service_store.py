"""The central bank's state in the data layer: sharing one CA between processes, CRL reuse,
import of a pre-database ``state.json``, and (with ``ECASH_TPM_TEST_PG_URL``) PostgreSQL."""

from __future__ import annotations

import datetime as dt
import json
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecash_tpm.centralbank.ca import CaExistsError, CaStateError, CentralBankCA
from ecash_tpm.centralbank.store import COMPONENT, MIGRATIONS
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.pki import CertificateRevokedError, verify_party_certificate
from ecash_tpm.storage import Database, sqlite_url


def _crl_number(crl: x509.CertificateRevocationList) -> int:
    return crl.extensions.get_extension_for_class(x509.CRLNumber).value.crl_number


def test_migrations_are_numbered_and_recorded(tmp_path: Path) -> None:
    assert [m.version for m in MIGRATIONS] == list(range(1, len(MIGRATIONS) + 1))
    with CentralBankCA.create(tmp_path / "ca") as ca:
        assert ca.store.db.schema_version(COMPONENT) == len(MIGRATIONS)
        assert ca.store.migrate() == []  # idempotent


def test_two_instances_share_one_ca(tmp_path: Path) -> None:
    """The service and the operator's CLI open the same CA at once: the database decides."""
    with (
        CentralBankCA.create(tmp_path / "ca") as first,
        CentralBankCA.load(tmp_path / "ca") as second,
    ):
        cert = first.certify("merchant", "shop-1", PartyKey.generate().public_key)
        assert second.get(cert.serial_number).name == "shop-1"
        numbers = [_crl_number(ca.crl()) for ca in (first, second, first, second)]
        assert numbers == sorted(set(numbers)) and len(numbers) == 4
        second.revoke(cert.serial_number, "keyCompromise")
        assert first.is_revoked(cert.serial_number)
        with pytest.raises(CertificateRevokedError):
            verify_party_certificate(
                cert, first.root_certificate, role="merchant", crl=first.published_crl()
            )


def test_published_crl_is_reused_until_stale_or_a_revocation(tmp_path: Path) -> None:
    with CentralBankCA.create(tmp_path / "ca") as ca:
        first = ca.published_crl()
        assert _crl_number(ca.published_crl()) == _crl_number(first)
        cert = ca.certify("ttp", "ttp-1", PartyKey.generate().public_key)
        assert _crl_number(ca.published_crl()) == _crl_number(first)  # issuing changes nothing
        ca.revoke(cert.serial_number)
        after = ca.published_crl()
        assert _crl_number(after) > _crl_number(first)
        assert after.get_revoked_certificate_by_serial_number(cert.serial_number) is not None
        later = dt.datetime.now(dt.UTC) + dt.timedelta(days=4)  # past half of 7 days
        assert _crl_number(ca.published_crl(now=later)) > _crl_number(after)


def test_database_of_another_ca_is_refused(tmp_path: Path) -> None:
    db = Database.open(sqlite_url(tmp_path / "shared.db"))
    try:
        CentralBankCA.create(tmp_path / "a", database=db).close()
        with pytest.raises(CaExistsError):
            CentralBankCA.create(tmp_path / "b", database=db)
        assert not (tmp_path / "b" / "root-key.pem").exists()
        # A CA whose log is missing (deleted database) does not start over silently.
        CentralBankCA.create(tmp_path / "c").close()
        (tmp_path / "c" / "centralbank.db").unlink()
        with pytest.raises(CaStateError):
            CentralBankCA.load(tmp_path / "c")
        with pytest.raises(CaStateError):
            CentralBankCA.load(tmp_path / "c", database=db)
    finally:
        db.close()


def _legacy_copy(ca: CentralBankCA, target: Path, crl_number: int) -> None:
    """Write ``target`` in the pre-database layout (key, root, state.json) of ``ca``."""
    target.mkdir(mode=0o700)
    for name in ("root-key.pem", "root-cert.pem"):
        shutil.copy2(ca.data_dir / name, target / name)
    issued, revoked = {}, {}
    for rec in ca.issued():
        serial_hex = format(rec.serial, "x")
        issued[serial_hex] = {
            "role": rec.role,
            "name": rec.name,
            "not_before": rec.not_before.isoformat(),
            "not_after": rec.not_after.isoformat(),
            "fingerprint": rec.fingerprint,
            "cert": b64u_encode(rec.certificate.public_bytes(serialization.Encoding.DER)),
        }
        if rec.revoked_at is not None:
            revoked[serial_hex] = {
                "reason": rec.revocation_reason,
                "revoked_at": rec.revoked_at.isoformat(),
            }
    state = {"version": 1, "crl_number": crl_number, "issued": issued, "revoked": revoked}
    (target / "state.json").write_text(json.dumps(state))


def test_legacy_state_json_is_imported_once(tmp_path: Path) -> None:
    with CentralBankCA.create(tmp_path / "src") as src:
        kept = src.certify("bank", "bank-1", PartyKey.generate().public_key)
        gone = src.certify("merchant", "shop-1", PartyKey.generate().public_key)
        src.revoke(gone.serial_number, "superseded")
        _legacy_copy(src, tmp_path / "old", crl_number=41)
        expected = src.issued()

    with CentralBankCA.load(tmp_path / "old") as ca:
        assert ca.issued() == expected
        assert ca.get(gone.serial_number).revocation_reason == "superseded"
        assert _crl_number(ca.crl()) == 42  # numbering continues, never restarts
        verify_party_certificate(kept, ca.root_certificate, role="bank", crl=ca.crl())
    assert not (tmp_path / "old" / "state.json").exists()
    assert (tmp_path / "old" / "state.json.imported").exists()
    with CentralBankCA.load(tmp_path / "old") as again:  # the database is the truth now
        assert len(again.issued()) == 2

    # A corrupt legacy file is an error, and nothing is half-imported.
    with CentralBankCA.create(tmp_path / "src2") as src2:
        _legacy_copy(src2, tmp_path / "bad", crl_number=0)
    (tmp_path / "bad" / "state.json").write_text("{not json")
    with pytest.raises(CaStateError):
        CentralBankCA.load(tmp_path / "bad")
    (tmp_path / "bad" / "state.json").write_text(json.dumps({"version": 9}))
    with pytest.raises(CaStateError):
        CentralBankCA.load(tmp_path / "bad")


@pytest.fixture
def pg_database(pg_server: str) -> Iterator[Database]:
    """A fresh database on the session's PostgreSQL server, dropped afterwards."""
    url = pg_server
    psycopg = pytest.importorskip("psycopg")
    from psycopg import sql

    name = "cb_" + uuid.uuid4().hex[:16]
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    db = Database.open(url.rpartition("/")[0] + "/" + name)
    try:
        yield db
    finally:
        db.close()
        with psycopg.connect(url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def test_ca_on_postgresql(tmp_path: Path, pg_database: Database) -> None:
    with CentralBankCA.create(tmp_path / "ca", database=pg_database) as ca:
        cert = ca.certify("bank", "bank-1", PartyKey.generate().public_key)
        first = _crl_number(ca.crl())
        ca.revoke(cert.serial_number, "keyCompromise")
        crl = ca.published_crl()
        assert _crl_number(crl) == first + 1
    with CentralBankCA.load(tmp_path / "ca", database=pg_database) as again:
        assert again.get(cert.serial_number).revocation_reason == "keyCompromise"
        with pytest.raises(CertificateRevokedError):
            verify_party_certificate(cert, again.root_certificate, role="bank", crl=crl)
