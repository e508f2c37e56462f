"""The central bank's root CA: issue party certificates, revoke them, publish CRLs (DESIGN §1).

Domain logic only: no HTTP here. State lives in a data directory —

* ``root-key.pem``  the root's P-256 key, PKCS#8, mode 0600;
* ``root-cert.pem`` the self-signed root certificate (the trust anchor every party pins);
* ``state.json``    issued certificates, revocations and the CRL counter.

Every write is atomic (temp file + ``os.replace``). The JSON state is an interim store for one
process; it moves to the shared data layer later.
"""

from __future__ import annotations

import copy
import datetime as dt
import hashlib
import json
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from ecash_tpm.centralbank.pki import (
    CERT_ORGANIZATION,
    check_name,
    check_role,
    load_certificate,
)
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import PartyKey, load_public_key, write_file_atomic
from ecash_tpm.errors import (
    ConflictError,
    EcashError,
    InputError,
    NotFoundError,
    StorageError,
)

__all__ = [
    "CLOCK_SKEW",
    "DEFAULT_CRL_VALIDITY",
    "DEFAULT_LEAF_DAYS",
    "DEFAULT_ROOT_DAYS",
    "CaExistsError",
    "CaNotFoundError",
    "CaStateError",
    "CentralBankCA",
    "IssuedCertificate",
    "UnknownSerialError",
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
STATE_FILE = "state.json"
STATE_VERSION = 1


class CaExistsError(ConflictError):
    """``create`` would overwrite an existing CA: a root key is never replaced silently."""

    code = "ca.exists"


class CaNotFoundError(NotFoundError):
    """No CA in the data directory."""

    code = "ca.not_found"


class CaStateError(StorageError):
    """The data directory is incomplete or inconsistent (key does not match the root, bad JSON)."""

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


def _ski(public_key: ec.EllipticCurvePublicKey) -> x509.SubjectKeyIdentifier:
    return x509.SubjectKeyIdentifier.from_public_key(public_key)


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


class CentralBankCA:
    """The root CA of the system. Create once with :meth:`create`, afterwards :meth:`load`.

    Thread-safe within one process (an instance lock serialises state changes); two processes must
    not share one data directory until the state moves to the data layer.
    """

    def __init__(
        self, data_dir: Path, key: PartyKey, root: x509.Certificate, state: dict[str, Any]
    ) -> None:
        self._dir = data_dir
        self._key = key
        self._root = root
        self._state = state
        self._lock = threading.Lock()

    # --- lifecycle ---------------------------------------------------------------------------

    @classmethod
    def create(
        cls,
        data_dir: str | os.PathLike[str],
        *,
        name: str = DEFAULT_ROOT_NAME,
        valid_days: int = DEFAULT_ROOT_DAYS,
        now: dt.datetime | None = None,
    ) -> CentralBankCA:
        """Generate the root key and a self-signed root (CA:true, pathlen 0) in ``data_dir``."""
        directory = Path(data_dir)
        check_name(name)
        if not isinstance(valid_days, int) or isinstance(valid_days, bool) or valid_days < 1:
            raise InputError("valid_days must be a positive integer")
        if any((directory / f).exists() for f in (KEY_FILE, CERT_FILE, STATE_FILE)):
            raise CaExistsError(f"a CA already exists in {os.fspath(directory)!r}")
        issued_at = _aware(now)
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
        state: dict[str, Any] = {
            "version": STATE_VERSION,
            "crl_number": 0,
            "issued": {},
            "revoked": {},
        }
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
            # Key last: a directory with a key file is a complete CA.
            write_file_atomic(directory / STATE_FILE, _dump_state(state), mode=0o600)
            write_file_atomic(
                directory / CERT_FILE, root.public_bytes(serialization.Encoding.PEM), mode=0o644
            )
            key.save(directory / KEY_FILE)
        except OSError as exc:
            raise CaStateError(f"cannot write the CA to {os.fspath(directory)!r}: {exc}") from exc
        return cls(directory, key, root, state)

    @classmethod
    def load(cls, data_dir: str | os.PathLike[str]) -> CentralBankCA:
        """Open the CA in ``data_dir``, checking that key, root and state belong together."""
        directory = Path(data_dir)
        if not (directory / KEY_FILE).exists():
            raise CaNotFoundError(f"no CA in {os.fspath(directory)!r}")
        try:
            key = PartyKey.load(directory / KEY_FILE)
            root = load_certificate((directory / CERT_FILE).read_bytes())
            state = _load_state((directory / STATE_FILE).read_bytes())
        except (OSError, EcashError) as exc:
            raise CaStateError(f"CA in {os.fspath(directory)!r} is unreadable: {exc}") from exc
        if key.public_key_bytes() != root.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        ):
            raise CaStateError("root key does not match the root certificate")
        return cls(directory, key, root, state)

    @classmethod
    def open(cls, data_dir: str | os.PathLike[str], **create_kwargs: Any) -> CentralBankCA:
        """:meth:`load` if a CA exists in ``data_dir``, else :meth:`create` one."""
        if (Path(data_dir) / KEY_FILE).exists():
            return cls.load(data_dir)
        return cls.create(data_dir, **create_kwargs)

    # --- accessors ---------------------------------------------------------------------------

    @property
    def data_dir(self) -> Path:
        return self._dir

    @property
    def root_certificate(self) -> x509.Certificate:
        """The trust anchor: distribute it to every party out of band."""
        return self._root

    def root_pem(self) -> bytes:
        return self._root.public_bytes(serialization.Encoding.PEM)

    def issued(self) -> list[IssuedCertificate]:
        """Every certificate this CA signed, oldest first."""
        with self._lock:
            entries = list(self._state["issued"].items())
            revoked = dict(self._state["revoked"])
        return [
            _record(serial_hex, entry, revoked.get(serial_hex)) for serial_hex, entry in entries
        ]

    def get(self, serial: int) -> IssuedCertificate:
        """The issuance record of ``serial``; :class:`UnknownSerialError` if none."""
        serial_hex = _serial_hex(serial)
        with self._lock:
            entry = self._state["issued"].get(serial_hex)
            revoked = self._state["revoked"].get(serial_hex)
        if entry is None:
            raise UnknownSerialError(
                "no certificate with this serial", detail={"serial": serial_hex}
            )
        return _record(serial_hex, entry, revoked)

    def is_revoked(self, serial: int) -> bool:
        with self._lock:
            return _serial_hex(serial) in self._state["revoked"]

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

        Roles are those of :data:`~ecash_tpm.centralbank.pki.ROLES`; ``bank-keyset`` is refused
        because keyset descriptors are signed by the bank's key, not certified. The certificate
        is CA:false, digitalSignature only, with the role in ``OU=`` and in a critical EKU.
        Without ``not_before`` it starts :data:`CLOCK_SKEW` ago and ends ``valid_days`` from now.
        """
        role_oid = check_role(role)
        check_name(name)
        key = load_public_key(public_key)
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
        subject = x509.Name(
            [
                x509.NameAttribute(NameOID.ORGANIZATION_NAME, CERT_ORGANIZATION),
                x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, role),
                x509.NameAttribute(NameOID.COMMON_NAME, name),
            ]
        )
        with self._lock:
            serial = x509.random_serial_number()
            while _serial_hex(serial) in self._state["issued"]:
                serial = x509.random_serial_number()
            cert = (
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
                .add_extension(x509.ExtendedKeyUsage([role_oid]), critical=True)
                .add_extension(_ski(key), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key),
                    critical=False,
                )
                .sign(self._key.private_key, hashes.SHA256())
            )
            der = cert.public_bytes(serialization.Encoding.DER)
            new_state = copy.deepcopy(self._state)
            new_state["issued"][_serial_hex(serial)] = {
                "role": role,
                "name": name,
                "not_before": nb.isoformat(),
                "not_after": na.isoformat(),
                "fingerprint": hashlib.sha256(der).hexdigest(),
                "cert": b64u_encode(der),
            }
            self._commit(new_state)
        return cert

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
        with self._lock:
            if serial_hex not in self._state["issued"]:
                raise UnknownSerialError(
                    "no certificate with this serial", detail={"serial": serial_hex}
                )
            if serial_hex in self._state["revoked"]:
                return
            new_state = copy.deepcopy(self._state)
            new_state["revoked"][serial_hex] = {
                "reason": flag.value,
                "revoked_at": revoked_at.isoformat(),
            }
            self._commit(new_state)

    def crl(
        self,
        *,
        now: dt.datetime | None = None,
        valid_for: dt.timedelta = DEFAULT_CRL_VALIDITY,
    ) -> x509.CertificateRevocationList:
        """A freshly signed CRL of every revoked serial, valid until ``now + valid_for``.

        Each call takes the next CRL number, so relying parties can tell newer from older.
        """
        if not isinstance(valid_for, dt.timedelta) or valid_for <= dt.timedelta(0):
            raise InputError("valid_for must be a positive timedelta")
        issued_at = _aware(now)
        with self._lock:
            new_state = copy.deepcopy(self._state)
            new_state["crl_number"] += 1
            builder = (
                x509.CertificateRevocationListBuilder()
                .issuer_name(self._root.subject)
                .last_update(issued_at - CLOCK_SKEW)
                .next_update(issued_at + valid_for)
                .add_extension(x509.CRLNumber(new_state["crl_number"]), critical=False)
                .add_extension(
                    x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key),
                    critical=False,
                )
            )
            for serial_hex, entry in sorted(new_state["revoked"].items()):
                revoked = (
                    x509.RevokedCertificateBuilder()
                    .serial_number(int(serial_hex, 16))
                    .revocation_date(dt.datetime.fromisoformat(entry["revoked_at"]))
                )
                flag = x509.ReasonFlags(entry["reason"])
                if flag is not x509.ReasonFlags.unspecified:
                    # RFC 5280 §5.3.1: omit the reason code rather than say "unspecified".
                    revoked = revoked.add_extension(x509.CRLReason(flag), critical=False)
                builder = builder.add_revoked_certificate(revoked.build())
            crl = builder.sign(self._key.private_key, hashes.SHA256())
            self._commit(new_state)
        return crl

    # --- persistence -------------------------------------------------------------------------

    def _commit(self, new_state: dict[str, Any]) -> None:
        """Write the new state, then adopt it: on a failed write memory keeps the old state."""
        try:
            write_file_atomic(self._dir / STATE_FILE, _dump_state(new_state), mode=0o600)
        except OSError as exc:
            raise CaStateError(f"cannot write CA state: {exc}") from exc
        self._state = new_state


def _serial_hex(serial: int) -> str:
    if not isinstance(serial, int) or isinstance(serial, bool) or serial <= 0:
        raise InputError("certificate serial must be a positive integer")
    return format(serial, "x")


def _dump_state(state: dict[str, Any]) -> bytes:
    return json.dumps(state, indent=1, sort_keys=True).encode("utf-8") + b"\n"


def _load_state(data: bytes) -> dict[str, Any]:
    try:
        state = json.loads(data)
    except ValueError as exc:
        raise CaStateError("state.json is not JSON") from exc
    if (
        not isinstance(state, dict)
        or state.get("version") != STATE_VERSION
        or not isinstance(state.get("crl_number"), int)
        or not isinstance(state.get("issued"), dict)
        or not isinstance(state.get("revoked"), dict)
    ):
        raise CaStateError("state.json has an unknown layout")
    return state


def _record(
    serial_hex: str, entry: dict[str, Any], revoked: dict[str, Any] | None
) -> IssuedCertificate:
    try:
        cert = x509.load_der_x509_certificate(b64u_decode(entry["cert"]))
        return IssuedCertificate(
            serial=int(serial_hex, 16),
            role=entry["role"],
            name=entry["name"],
            not_before=dt.datetime.fromisoformat(entry["not_before"]),
            not_after=dt.datetime.fromisoformat(entry["not_after"]),
            fingerprint=entry["fingerprint"],
            certificate=cert,
            revoked_at=None
            if revoked is None
            else dt.datetime.fromisoformat(revoked["revoked_at"]),
            revocation_reason=None if revoked is None else revoked["reason"],
        )
    except (KeyError, ValueError, TypeError, EcashError) as exc:
        raise CaStateError(f"issuance record {serial_hex} is corrupt") from exc
