"""The central bank's root CA: issue party certificates, revoke them, publish CRLs (DESIGN §1).

Domain logic only: no HTTP here (see :mod:`ecash_tpm.centralbank.routes`). The CA lives in a
data directory plus a database —

* ``root-key.pem``  the root's P-256 key, PKCS#8, mode 0600 (never in the database);
* ``root-cert.pem`` the self-signed root certificate (the trust anchor every party pins);
* the database (component ``centralbank``, :mod:`ecash_tpm.centralbank.store`): issued
  certificates, revocations, the CRL counter and every CRL published. By default it is SQLite
  at ``centralbank.db`` in the data directory (the service's default ``database_url`` too);
  pass ``database=`` for PostgreSQL.

The database records the fingerprint of the root it belongs to, so a key directory is never
paired with another CA's log (CRL numbers going backwards, revocations forgotten). Because the
state is transactional, the HTTP service and an operator's CLI may use one CA at the same time.
A data directory from before the move (``state.json``) is imported once on :meth:`load` and
the file renamed to ``state.json.imported``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import ipaddress
import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecash_tpm.centralbank.store import CentralBankStore, RevokeOutcome, StoredCrl
from ecash_tpm.crypto.signing import PartyKey, load_public_key, sign_object, write_file_atomic
from ecash_tpm.errors import (
    ConflictError,
    EcashError,
    InputError,
    NotFoundError,
    StorageError,
)
from ecash_tpm.pki import (
    CERT_ORGANIZATION,
    TLS_DOMAIN,
    TLS_PURPOSES,
    check_name,
    check_role,
    load_certificate,
    tls_identity,
)
from ecash_tpm.storage import Database, Row, sqlite_url

__all__ = [
    "CLOCK_SKEW",
    "DB_FILE",
    "DEFAULT_CRL_VALIDITY",
    "DEFAULT_LEAF_DAYS",
    "DEFAULT_ROOT_DAYS",
    "DEFAULT_ROOT_NAME",
    "CaExistsError",
    "CaNotFoundError",
    "CaStateError",
    "CentralBankCA",
    "IssuedCertificate",
    "UnknownSerialError",
    "parse_serial",
]

DEFAULT_ROOT_DAYS = 3650
DEFAULT_LEAF_DAYS = 365
#: Longest leaf validity the CA will sign.
MAX_LEAF_DAYS = 3650
#: How far new certificates and CRLs are backdated, so a party whose clock is a little behind
#: does not refuse a certificate issued a moment ago.
CLOCK_SKEW = dt.timedelta(minutes=5)
DEFAULT_CRL_VALIDITY = dt.timedelta(days=7)
DEFAULT_ROOT_NAME = "ecash-tpm central bank"

KEY_FILE = "root-key.pem"
CERT_FILE = "root-cert.pem"
#: The default SQLite database inside the data directory (= the service's default URL).
DB_FILE = "centralbank.db"
#: The pre-database JSON state, imported once by :meth:`CentralBankCA.load`.
STATE_FILE = "state.json"
STATE_VERSION = 1
_SERIAL_ATTEMPTS = 8


class CaExistsError(ConflictError):
    """``create`` would overwrite an existing CA: a root key is never replaced silently."""

    code = "ca.exists"


class CaNotFoundError(NotFoundError):
    """No CA in the data directory."""

    code = "ca.not_found"


class CaStateError(StorageError):
    """The CA's files and database are incomplete or inconsistent (key/root/log mismatch)."""

    code = "ca.state_invalid"


class UnknownSerialError(NotFoundError):
    """No certificate with this serial was issued by this CA."""

    code = "cert.not_found"


@dataclass(frozen=True)
class IssuedCertificate:
    """One entry of the issuance log."""

    serial: int
    role: str
    name: str
    not_before: dt.datetime
    not_after: dt.datetime
    fingerprint: str  # lower-case hex SHA-256 of the DER certificate
    certificate: x509.Certificate
    revoked_at: dt.datetime | None = None
    revocation_reason: str | None = None


def _aware(now: dt.datetime | None) -> dt.datetime:
    if now is None:
        return dt.datetime.now(dt.UTC).replace(microsecond=0)
    if not isinstance(now, dt.datetime) or now.tzinfo is None:
        raise InputError("times must be timezone-aware datetimes")
    return now.astimezone(dt.UTC).replace(microsecond=0)


def _ts(value: dt.datetime) -> int:
    return int(value.timestamp())


def _from_ts(value: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(value), dt.UTC)


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


def _host_name(host: str) -> x509.GeneralName:
    """A SAN entry for ``host``: an IP address as such, anything else as a DNS name."""
    if not isinstance(host, str) or not host.strip():
        raise InputError("TLS host names must be non-empty strings", code="cert.invalid_host")
    try:
        return x509.IPAddress(ipaddress.ip_address(host.strip("[]")))
    except ValueError:
        pass
    try:
        host.encode("ascii")
    except UnicodeEncodeError as exc:
        raise InputError(
            "TLS host names must be ASCII (IDNA-encode them first)",
            code="cert.invalid_host",
            detail={"host": host[:80]},
        ) from exc
    name = host.lower().rstrip(".")
    # Clients verify a party by its identity name alone (docs/operations.md, "TLS"): a host in
    # that domain, or a wildcard, would let this certificate answer for another party.
    if "*" in name or name == TLS_DOMAIN or name.endswith("." + TLS_DOMAIN):
        raise InputError(
            "TLS host names may not be wildcards or names in the identity domain "
            f"{TLS_DOMAIN} (the certificate's own identity is added by the central bank)",
            code="cert.invalid_host",
            detail={"host": host[:80]},
        )
    return x509.DNSName(name)


def _co_hosted_identity(role: str, host: str) -> x509.GeneralName | None:
    """The one identity a certificate may carry besides its own: the group manager's, in the
    bank's certificate, because ``bank serve --with-issuer`` serves both from one process and
    one operator runs them (docs/architecture.md, "Parties")."""
    name = host.lower().rstrip(".") if isinstance(host, str) else ""
    suffix = ".issuer." + TLS_DOMAIN
    if role != "bank" or not name.endswith(suffix):
        return None
    label = name[: -len(suffix)]
    return x509.DNSName(tls_identity("issuer", label))  # pki.name_not_dns for a bad label


def _reason(reason: x509.ReasonFlags | str) -> x509.ReasonFlags:
    try:
        flag = reason if isinstance(reason, x509.ReasonFlags) else x509.ReasonFlags(reason)
    except ValueError as exc:
        raise InputError(
            f"unknown revocation reason {reason!r}",
            code="crl.invalid_reason",
            detail={"known": [f.value for f in x509.ReasonFlags if f.name != "remove_from_crl"]},
        ) from exc
    if flag is x509.ReasonFlags.remove_from_crl:
        raise InputError("removeFromCRL is only for delta CRLs", code="crl.invalid_reason")
    return flag


def _fingerprint(cert: x509.Certificate) -> str:
    return hashlib.sha256(cert.public_bytes(serialization.Encoding.DER)).hexdigest()


def _open_store(directory: Path, database: Database | None) -> tuple[CentralBankStore, bool]:
    """The CA's store, migrated; ``owned`` is True when we opened (and must close) the DB."""
    if database is not None:
        store = CentralBankStore(database)
        store.migrate()
        return store, False
    try:
        db = Database.open(sqlite_url(directory / DB_FILE))
    except EcashError as exc:
        raise CaStateError(
            f"CA database in {os.fspath(directory)!r} cannot be opened: {exc}"
        ) from exc
    try:
        store = CentralBankStore(db)
        store.migrate()
    except EcashError as exc:
        db.close()
        raise CaStateError(f"CA database in {os.fspath(directory)!r} is unusable: {exc}") from exc
    return store, True


class CentralBankCA:
    """The root CA of the system. Create once with :meth:`create`, afterwards :meth:`load`.

    Thread- and process-safe: every state change is one database transaction. Close it (or use
    ``with``) to release a database it opened itself; a ``database=`` passed in stays the
    caller's.
    """

    def __init__(
        self,
        data_dir: Path,
        key: PartyKey,
        root: x509.Certificate,
        store: CentralBankStore,
        *,
        owns_database: bool = False,
    ) -> None:
        self._dir = data_dir
        self._key = key
        self._root = root
        self._store = store
        self._owns_database = owns_database

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        name: str = DEFAULT_ROOT_NAME,
        valid_days: int = DEFAULT_ROOT_DAYS,
        now: dt.datetime | None = None,
        database: Database | None = None,
    ) -> CentralBankCA:
        """Generate the root key and a self-signed root (CA:true, pathlen 0) in ``data_dir``.

        Refuses (``ca.exists``) when the directory already has a CA or the database already
        belongs to one.
        """
        directory = Path(data_dir)
        check_name(name)
        if not isinstance(valid_days, int) or isinstance(valid_days, bool) or valid_days < 1:
            raise InputError("valid_days must be a positive integer")
        if any((directory / f).exists() for f in (KEY_FILE, CERT_FILE, STATE_FILE)):
            raise CaExistsError(f"a CA already exists in {os.fspath(directory)!r}")
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise CaStateError(f"cannot create {os.fspath(directory)!r}: {exc}") from exc
        store, owned = _open_store(directory, database)
        try:
            if store.root() is not None:
                raise CaExistsError("the CA database already belongs to a root CA")
            ca = cls._create_root(directory, store, owned, name, valid_days, _aware(now))
        except BaseException:
            if owned:
                store.db.close()
            raise
        return ca

    @classmethod
    def _create_root(
        cls,
        directory: Path,
        store: CentralBankStore,
        owned: bool,
        name: str,
        valid_days: int,
        issued_at: dt.datetime,
    ) -> CentralBankCA:
        key = PartyKey.generate()
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, CERT_ORGANIZATION),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        public = key.public_key
        root = (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(subject)
            .public_key(public)
            .serial_number(x509.random_serial_number())
            .not_valid_before(issued_at - CLOCK_SKEW)
            .not_valid_after(issued_at + dt.timedelta(days=valid_days))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(
                    digital_signature=False,
                    content_commitment=False,
                    key_encipherment=False,
                    data_encipherment=False,
                    key_agreement=False,
                    key_cert_sign=True,
                    crl_sign=True,
                    encipher_only=False,
                    decipher_only=False,
                ),
                critical=True,
            )
            .add_extension(_ski(public), critical=False)
            .sign(key.private_key, hashes.SHA256())
        )
        written: list[Path] = []
        try:
            write_file_atomic(
                directory / CERT_FILE, root.public_bytes(serialization.Encoding.PEM), mode=0o644
            )
            written.append(directory / CERT_FILE)
            # Key after the certificate: a directory with a key file is a complete CA.
            key.save(directory / KEY_FILE)
            written.append(directory / KEY_FILE)
            if not store.init_root(_fingerprint(root), root.subject.rfc4514_string()):
                raise CaExistsError("the CA database already belongs to a root CA")
        except BaseException as exc:
            for path in written:  # a half-made CA must not look like a CA
                path.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                raise CaStateError(
                    f"cannot write the CA to {os.fspath(directory)!r}: {exc}"
                ) from exc
            raise
        return cls(directory, key, root, store, owns_database=owned)

    @classmethod
    def load(
        cls, data_dir: str | os.PathLike[str], *, database: Database | None = None
    ) -> CentralBankCA:
        """Open the CA in ``data_dir``, checking that key, root and database belong together."""
        directory = Path(data_dir)
        if not (directory / KEY_FILE).exists():
            raise CaNotFoundError(f"no CA in {os.fspath(directory)!r}")
        try:
            key = PartyKey.load(directory / KEY_FILE)
            root = load_certificate((directory / CERT_FILE).read_bytes())
        except (OSError, EcashError) as exc:
            raise CaStateError(f"CA in {os.fspath(directory)!r} is unreadable: {exc}") from exc
        if key.public_key_bytes() != root.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise CaStateError("root key does not match the root certificate")
        store, owned = _open_store(directory, database)
        try:
            record = store.root()
            if record is None:
                # Imported here: the legacy importer uses this module's errors and helpers.
                from ecash_tpm.centralbank.legacy import import_legacy_state

                import_legacy_state(directory, store, root)
                record = store.root()
            if record is None or record["fingerprint"] != _fingerprint(root):
                raise CaStateError(
                    "the CA database belongs to another root CA",
                    detail={"database": store.db.url},
                )
        except BaseException:
            if owned:
                store.db.close()
            raise
        return cls(directory, key, root, store, owns_database=owned)

    @classmethod
    def open(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        database: Database | None = None,
        **create_kwargs: Any,
    ) -> CentralBankCA:
        """:meth:`load` if a CA exists in ``data_dir``, else :meth:`create` one."""
        if (Path(data_dir) / KEY_FILE).exists():
            return cls.load(data_dir, database=database)
        return cls.create(data_dir, database=database, **create_kwargs)

    def close(self) -> None:
        """Close the database if this CA opened it (idempotent)."""
        if self._owns_database:
            self._store.db.close()
            self._owns_database = False

    def __enter__(self) -> CentralBankCA:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- accessors ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._dir

    @property
    def store(self) -> CentralBankStore:
        """The CA's data access (the service stores supply reports through it too)."""
        return self._store

    @property
    def root_certificate(self) -> x509.Certificate:
        """The trust anchor: distribute it to every party out of band."""
        return self._root

    def root_pem(self) -> bytes:
        return self._root.public_bytes(serialization.Encoding.PEM)

    def root_fingerprint(self) -> str:
        """Lower-case hex SHA-256 of the DER root: what operators compare out of band."""
        return _fingerprint(self._root)

    def sign_object(self, kind: str, body: dict[str, Any]) -> dict[str, Any]:
        """Sign ``body`` with the root key (the central bank's certified epoch keys and keyset
        lists, docs/protocol.md 3.6 and 4.1); verifiers check it against the root they pin."""
        return sign_object(self._key, kind, body, signer=self.root_fingerprint())

    def issued(self) -> list[IssuedCertificate]:
        """Every certificate this CA signed, oldest first."""
        return [_record(row) for row in self._store.certificates()]

    def get(self, serial: int) -> IssuedCertificate:
        """The issuance record of ``serial``; :class:`UnknownSerialError` if none."""
        serial_hex = _serial_hex(serial)
        row = self._store.certificate(serial_hex)
        if row is None:
            raise UnknownSerialError(
                "no certificate with this serial", detail={"serial": serial_hex}
            )
        return _record(row)

    def is_revoked(self, serial: int) -> bool:
        return self._store.is_revoked(_serial_hex(serial))

    # --- operations --------------------------------------------------------------------------
    def certify(
        self,
        role: str,
        name: str,
        public_key: ec.EllipticCurvePublicKey | bytes,
        *,
        valid_days: int = DEFAULT_LEAF_DAYS,
        not_before: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Issue a party certificate binding ``public_key`` to ``role`` and ``name``.

        Roles are those of :data:`~ecash_tpm.pki.certificates.ROLES`; ``bank-keyset`` is refused
        because keyset descriptors are signed by the bank's key, not certified. The certificate
        is CA:false, digitalSignature only, with the role in ``OU=`` and in a critical EKU.
        Without ``not_before`` it starts :data:`CLOCK_SKEW` ago and ends ``valid_days`` from now.
        """
        role_oid = check_role(role)
        check_name(name)
        key = load_public_key(public_key)
        nb, na = self._validity(valid_days, not_before)
        return self._issue(role, name, key, nb, na, [(x509.ExtendedKeyUsage([role_oid]), True)])

    def certify_tls(
        self,
        role: str,
        name: str,
        public_key: ec.EllipticCurvePublicKey | bytes,
        *,
        hosts: Sequence[str] = (),
        valid_days: int = DEFAULT_LEAF_DAYS,
        not_before: dt.datetime | None = None,
    ) -> x509.Certificate:
        """Issue the party's TLS certificate (server and client), next to its signing one.

        Same subject as :meth:`certify` (``O=ecash-tpm, OU=<role>, CN=<name>``), but the EKU is
        *non-critical* and lists ``serverAuth``, ``clientAuth`` and the role OID, so TLS stacks
        accept it while :func:`~ecash_tpm.pki.verify_party_certificate` refuses it as a signing
        certificate. The SAN carries :func:`~ecash_tpm.pki.tls_identity` (what clients verify:
        ``name`` must be a DNS label, ``pki.name_not_dns``) and each of ``hosts`` (IP addresses
        as such, anything else as a DNS name) for generic tools that connect by address. It is
        logged and revocable like every certificate, so the CRL covers it.
        """
        role_oid = check_role(role)
        check_name(name)
        identity = tls_identity(role, name)
        key = load_public_key(public_key)
        nb, na = self._validity(valid_days, not_before)
        names: list[x509.GeneralName] = [x509.DNSName(identity)]
        for host in hosts:
            general = _co_hosted_identity(role, host) or _host_name(host)
            if general not in names:
                names.append(general)
        extensions: list[tuple[x509.ExtensionType, bool]] = [
            (x509.ExtendedKeyUsage([*TLS_PURPOSES, role_oid]), False),
            (x509.SubjectAlternativeName(names), False),
        ]
        return self._issue(role, name, key, nb, na, extensions)

    def _validity(
        self, valid_days: int, not_before: dt.datetime | None
    ) -> tuple[dt.datetime, dt.datetime]:
        if (
            not isinstance(valid_days, int)
            or isinstance(valid_days, bool)
            or not 1 <= valid_days <= MAX_LEAF_DAYS
        ):
            raise InputError(
                f"valid_days must be an integer in 1..{MAX_LEAF_DAYS}",
                code="cert.invalid_validity",
            )
        if not_before is None:
            start = _aware(None)
            nb, na = start - CLOCK_SKEW, start + dt.timedelta(days=valid_days)
        else:
            nb = _aware(not_before)
            na = nb + dt.timedelta(days=valid_days)
        if na > self._root.not_valid_after_utc or nb < self._root.not_valid_before_utc:
            raise InputError(
                "certificate validity must lie within the root's",
                code="cert.invalid_validity",
                detail={"root_not_after": self._root.not_valid_after_utc.isoformat()},
            )
        return nb, na

    def _issue(
        self,
        role: str,
        name: str,
        key: ec.EllipticCurvePublicKey,
        nb: dt.datetime,
        na: dt.datetime,
        extensions: Sequence[tuple[x509.ExtensionType, bool]],
    ) -> x509.Certificate:
        """Sign a CA:false, digitalSignature-only leaf with ``extensions`` and log it."""
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, CERT_ORGANIZATION),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        for _ in range(_SERIAL_ATTEMPTS):
            serial = x509.random_serial_number()
            builder = (
                x509.CertificateBuilder()
                .subject_name(subject)
                .issuer_name(self._root.subject)
                .public_key(key)
                .serial_number(serial)
                .not_valid_before(nb)
                .not_valid_after(na)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(
                    x509.KeyUsage(
                        digital_signature=True,
                        content_commitment=False,
                        key_encipherment=False,
                        data_encipherment=False,
                        key_agreement=False,
                        key_cert_sign=False,
                        crl_sign=False,
                        encipher_only=False,
                        decipher_only=False,
                    ),
                    critical=True,
                )
            )
            for extension, critical in extensions:
                builder = builder.add_extension(extension, critical=critical)
            cert = (
                builder.add_extension(_ski(key), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key),
                    critical=False,
                )
                .sign(self._key.private_key, hashes.SHA256())
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            # The unique serial column decides: a (2^-159) collision just draws again.
            if self._store.insert_certificate(
                serial_hex=_serial_hex(serial),
                role=role,
                name=name,
                not_before=_ts(nb),
                not_after=_ts(na),
                fingerprint=hashlib.sha256(der).hexdigest(),
                cert_der=der,
            ):
                return cert
        raise CaStateError("could not allocate a fresh certificate serial")

    def revoke(
        self,
        serial: int,
        reason: x509.ReasonFlags | str = x509.ReasonFlags.unspecified,
        *,
        now: dt.datetime | None = None,
    ) -> None:
        """Put ``serial`` on the CRL. Revoking twice is a no-op (the first reason stands)."""
        flag = _reason(reason)
        serial_hex = _serial_hex(serial)
        revoked_at = _aware(now)
        outcome = self._store.revoke(serial_hex, flag.value, _ts(revoked_at))
        if outcome is RevokeOutcome.UNKNOWN_SERIAL:
            raise UnknownSerialError(
                "no certificate with this serial", detail={"serial": serial_hex}
            )

    def crl(
        self,
        *,
        now: dt.datetime | None = None,
        valid_for: dt.timedelta = DEFAULT_CRL_VALIDITY,
    ) -> x509.CertificateRevocationList:
        """A freshly signed CRL of every revoked serial, valid until ``now + valid_for``.

        Each call takes the next CRL number, so relying parties can tell newer from older.
        Use :meth:`published_crl` to serve a CRL to the public (it reuses a fresh one).
        """
        stored = self._issue_crl(now, valid_for)
        return x509.load_der_x509_crl(stored.der)

    def published_crl(
        self,
        *,
        now: dt.datetime | None = None,
        valid_for: dt.timedelta = DEFAULT_CRL_VALIDITY,
    ) -> x509.CertificateRevocationList:
        """The CRL to hand out: the last one published while it is current, else a new one.

        "Current" means no revocation since it was signed and more than half of ``valid_for``
        left, so anonymous fetches cannot make the CA sign (and number) a CRL per request, yet
        a revocation shows up at the next fetch.
        """
        if not isinstance(valid_for, dt.timedelta) or valid_for <= dt.timedelta(0):
            raise InputError("valid_for must be a positive timedelta")
        moment = _ts(_aware(now))
        latest = self._store.latest_crl()
        if (
            latest is not None
            and latest.revoked_count == self._store.revocation_count()
            and latest.this_update <= moment
            and latest.next_update - moment > valid_for.total_seconds() / 2
        ):
            return x509.load_der_x509_crl(latest.der)
        return x509.load_der_x509_crl(self._issue_crl(now, valid_for).der)

    def _issue_crl(self, now: dt.datetime | None, valid_for: dt.timedelta) -> StoredCrl:
        if not isinstance(valid_for, dt.timedelta) or valid_for <= dt.timedelta(0):
            raise InputError("valid_for must be a positive timedelta")
        issued_at = _aware(now)
        this_update = issued_at - CLOCK_SKEW
        next_update = issued_at + valid_for

        def build(number: int, revocations: list[Row]) -> tuple[bytes, int, int]:
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(self._root.subject)
                .last_update(this_update)
                .next_update(next_update)
                .add_extension(x509.CRLNumber(number), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key),
                    critical=False,
                )
            )
            for row in revocations:
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(row["serial"], 16))
                    .revocation_date(_from_ts(row["revoked_at"]))
                )
                flag = x509.ReasonFlags(row["reason"])
                if flag is not x509.ReasonFlags.unspecified:
                    # RFC 5280 §5.3.1: omit the reason code rather than say "unspecified".
                    revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
                builder = builder.add_revoked_certificate(revoked.build())
            crl = builder.sign(self._key.private_key, hashes.SHA256())
            return crl.public_bytes(serialization.Encoding.DER), _ts(this_update), _ts(next_update)

        return self._store.issue_crl(build)


def parse_serial(text: str) -> int:
    """A serial as the API and CLI spell it: hex (``0x`` optional, any case)."""
    cleaned = text.strip().lower() if isinstance(text, str) else ""
    cleaned = cleaned.removeprefix("0x")
    if not cleaned or len(cleaned) > 40 or any(c not in "0123456789abcdef" for c in cleaned):
        raise InputError(
            "certificate serial must be 1..40 hex digits", detail={"serial": repr(text)[:80]}
        )
    value = int(cleaned, 16)
    _serial_hex(value)
    return value


def _serial_hex(serial: int) -> str:
    if not isinstance(serial, int) or isinstance(serial, bool) or serial <= 0:
        raise InputError("certificate serial must be a positive integer")
    return format(serial, "x")


def _record(row: Row) -> IssuedCertificate:
    try:
        revoked_at = row["revoked_at"]
        return IssuedCertificate(
            serial=int(row["serial"], 16),
            role=str(row["role"]),
            name=str(row["name"]),
            not_before=_from_ts(row["not_before"]),
            not_after=_from_ts(row["not_after"]),
            fingerprint=str(row["fingerprint"]),
            certificate=x509.load_der_x509_certificate(bytes(row["cert_der"])),
            revoked_at=None if revoked_at is None else _from_ts(revoked_at),
            revocation_reason=row["revocation_reason"],
        )
    except (KeyError, ValueError, TypeError) as exc:
        raise CaStateError(f"issuance record {row.get('serial')!r} is corrupt") from exc
