"""``ecash-tpm centralbank init|certify|revoke|admin-token|serve``: operate the root CA.

``init``, ``certify`` and ``revoke`` work on the CA's data directory directly (the operator's
console next to the key); the database defaults to ``DIR/centralbank.db`` like the service's,
so they can run while ``serve`` is up. ``serve`` reads ``[centralbank]`` from the TOML file
(and ``ECASH_TPM_CENTRALBANK_*``). ``admin-token`` makes a token for the HTTP admin routes and
prints the hash to configure.
"""

from __future__ import annotations

import argparse
import secrets
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.db_migrate import add_db_commands
from ecash_tpm.cli.output import emit
from ecash_tpm.cli.tls_certs import add_cert_renew_options, add_insecure_http, insecure_override
from ecash_tpm.errors import ConfigError

if TYPE_CHECKING:
    from ecash_tpm.centralbank.ca import CentralBankCA


@contextmanager
def _ca(
    args: argparse.Namespace, opener: Callable[..., CentralBankCA], *, create: bool = False
) -> Iterator[CentralBankCA]:
    """The CA of ``--data`` on ``--database-url`` (or its default SQLite), closed afterwards.

    Only ``init`` (``create``) may make the database a ``--database-url`` names."""
    from ecash_tpm.storage import Database

    database = (
        Database.open(args.database_url, must_exist=not create) if args.database_url else None
    )
    try:
        with opener(args.data, database=database) as ca:
            yield ca
    finally:
        if database is not None:
            database.close()


def _read_public_key(path: str) -> bytes:
    """SubjectPublicKeyInfo DER from a PEM (``BEGIN PUBLIC KEY``) or DER file."""
    from cryptography.hazmat.primitives import serialization

    from ecash_tpm.crypto.signing import load_public_key, public_key_bytes

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"cannot read public key file: {exc}", detail={"path": path}) from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        try:
            key = serialization.load_pem_public_key(data)
        except ValueError as exc:
            raise ConfigError(
                "not a PEM public key (expected BEGIN PUBLIC KEY)", detail={"path": path}
            ) from exc
        return public_key_bytes(load_public_key(key))  # type: ignore[arg-type]
    return public_key_bytes(load_public_key(data))


def _cmd_init(args: argparse.Namespace) -> int:
    from ecash_tpm.centralbank.ca import CentralBankCA

    def create(data: str, *, database: Any) -> CentralBankCA:
        return CentralBankCA.create(
            data, name=args.name, valid_days=args.valid_days, database=database
        )

    with _ca(args, create, create=True) as ca:
        root_path = ca.data_dir / "root-cert.pem"
        root = ca.root_certificate
        tls = _own_tls(args, ca)
        payload = {
            "data_dir": str(ca.data_dir),
            "root_cert": str(root_path),
            "fingerprint": ca.root_fingerprint(),
            "not_after": int(root.not_valid_after_utc.timestamp()),
            "tls": tls,
        }
        emit(
            args,
            payload,
            f"central bank CA created in {ca.data_dir}\n"
            f"root certificate: {root_path}\n"
            f"root SHA-256 fingerprint: {ca.root_fingerprint()}\n"
            f"TLS certificate: {tls['tls_cert_file']} ({tls['identity']})",
        )
    return 0


def _cb_settings(args: argparse.Namespace) -> Any:
    from ecash_tpm.centralbank.settings import CentralBankSettings
    from ecash_tpm.service.settings import load_settings

    return load_settings(
        CentralBankSettings,
        path=getattr(args, "config", None),
        overrides={"data_dir": getattr(args, "data", None)},
    )


def _own_tls(args: argparse.Namespace, ca: CentralBankCA) -> dict[str, Any]:
    """The central bank's own TLS key and certificate, issued by its CA directly."""
    from ecash_tpm.cli.tls_certs import CENTRAL_BANK_TLS_NAME, default_hosts, renew_tls

    settings = _cb_settings(args)
    valid_days = getattr(args, "tls_valid_days", None)

    def issue(role: str, name: str, public_key: Any, hosts: Any) -> Any:
        if valid_days is None:
            return ca.certify_tls(role, name, public_key, hosts=tuple(hosts))
        return ca.certify_tls(role, name, public_key, hosts=tuple(hosts), valid_days=valid_days)

    return renew_tls(
        settings,
        role="centralbank",
        name=getattr(args, "tls_name", None) or CENTRAL_BANK_TLS_NAME,
        root=ca.data_dir / "root-cert.pem",
        hosts=default_hosts(args, settings),
        issue=issue,
    )


def _cmd_cert_renew(args: argparse.Namespace) -> int:
    from ecash_tpm.centralbank.ca import CentralBankCA
    from ecash_tpm.cli.tls_certs import renew_summary

    if args.data is None:
        args.data = str(_cb_settings(args).data_dir)
    args.tls_name, args.tls_valid_days = args.name, args.valid_days
    with _ca(args, CentralBankCA.load) as ca:
        done = _own_tls(args, ca)
    emit(args, done, renew_summary(done))
    return 0


def _cmd_certify(args: argparse.Namespace) -> int:
    from cryptography.hazmat.primitives import serialization

    from ecash_tpm.centralbank.ca import CentralBankCA
    from ecash_tpm.crypto.signing import write_file_atomic

    public_key = _read_public_key(args.public_key)
    with _ca(args, CentralBankCA.load) as ca:
        cert = ca.certify(args.role, args.name, public_key, valid_days=args.valid_days)
        record = ca.get(cert.serial_number)
    pem = cert.public_bytes(serialization.Encoding.PEM)
    if args.out:
        try:
            write_file_atomic(args.out, pem, mode=0o644)
        except OSError as exc:
            raise ConfigError(f"cannot write {args.out}: {exc}") from exc
    payload = {
        "serial": format(cert.serial_number, "x"),
        "role": record.role,
        "name": record.name,
        "fingerprint": record.fingerprint,
        "not_after": int(record.not_after.timestamp()),
        "out": args.out,
        "cert": pem.decode("ascii"),
    }
    if args.json:
        emit(args, payload, "")
    elif args.out:
        print(f"certified {args.role} {args.name!r}: serial {payload['serial']} -> {args.out}")
    else:
        print(f"certified {args.role} {args.name!r}: serial {payload['serial']}", file=sys.stderr)
        sys.stdout.write(pem.decode("ascii"))
    return 0


def _cmd_certify_issuer_epoch(args: argparse.Namespace) -> int:
    """docs/protocol.md 3.6: certify an issuer epoch key (once per epoch) from the JSON that
    ``issuer rotate-epoch --json`` prints (``{epoch, issuer_public: {X, Y}}``)."""
    from ecash_tpm.centralbank.ca import CentralBankCA
    from ecash_tpm.centralbank.certify import certify_issuer_epoch
    from ecash_tpm.cli.output import read_json
    from ecash_tpm.crypto.groupsig import IssuerPublic
    from ecash_tpm.crypto.signing import canonical_encode, write_file_atomic
    from ecash_tpm.errors import InputError

    info = read_json(args.public, "issuer public key file")
    if not isinstance(info, dict) or not isinstance(info.get("epoch"), int):
        raise InputError("expected {epoch, issuer_public: {X, Y}}", code="cli.bad_input")
    public = IssuerPublic.from_dict(info.get("issuer_public"))
    with _ca(args, CentralBankCA.load) as ca:
        doc = certify_issuer_epoch(ca, args.issuer, info["epoch"], public)
    if args.out:
        write_file_atomic(args.out, canonical_encode(doc), mode=0o644)
    emit(
        args,
        {"certificate": doc, "out": args.out},
        f"certified epoch {info['epoch']} of {args.issuer!r}"
        + (f" -> {args.out}" if args.out else ""),
    )
    return 0


def _cmd_revoke(args: argparse.Namespace) -> int:
    from ecash_tpm.centralbank.ca import CentralBankCA, parse_serial

    serial = parse_serial(args.serial)
    with _ca(args, CentralBankCA.load) as ca:
        ca.revoke(serial, args.reason)
        record = ca.get(serial)
    revoked_at = record.revoked_at
    payload = {
        "serial": format(serial, "x"),
        "role": record.role,
        "name": record.name,
        "reason": record.revocation_reason,
        "revoked_at": None if revoked_at is None else int(revoked_at.timestamp()),
    }
    emit(
        args,
        payload,
        f"revoked {record.role} {record.name!r} (serial {payload['serial']}, "
        f"reason {record.revocation_reason}); it is on the next CRL",
    )
    return 0


def _cmd_admin_token(args: argparse.Namespace) -> int:
    from ecash_tpm.centralbank.settings import hash_admin_token

    token = secrets.token_urlsafe(32)
    digest = hash_admin_token(token)
    emit(
        args,
        {"token": token, "admin_token_sha256": digest},
        f"admin token (give to operators, keep secret): {token}\n"
        f'configure in [centralbank]:  admin_token_sha256 = "{digest}"\n'
        f"or the environment:          ECASH_TPM_CENTRALBANK_ADMIN_TOKEN_SHA256={digest}",
    )
    return 0


def _cmd_serve(args: argparse.Namespace) -> int:
    from ecash_tpm.centralbank.service import serve_centralbank
    from ecash_tpm.centralbank.settings import CentralBankSettings
    from ecash_tpm.service.settings import load_settings

    settings = load_settings(
        CentralBankSettings,
        path=args.config,
        overrides={
            "host": args.host,
            "port": args.port,
            "insecure_http": insecure_override(args),
        },
    )
    serve_centralbank(settings)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``centralbank`` and its sub-commands to the top-level parser."""
    parser = subparsers.add_parser(
        "centralbank",
        help="the root CA: init, certify, revoke, serve",
        description="The central bank: root CA of the system and receiver of supply reports.",
    )
    sub = parser.add_subparsers(dest="centralbank_command", metavar="COMMAND", required=True)
    add_db_commands(sub, "centralbank")

    def data(p: argparse.ArgumentParser) -> None:
        p.add_argument("--data", required=True, metavar="DIR", help="the CA's data directory")
        p.add_argument(
            "--database-url",
            metavar="URL",
            help="sqlite:///... or postgresql://... (default: SQLite in DIR, as the service)",
        )
        p.add_argument("--json", action="store_true", help="machine-readable output")

    p = sub.add_parser("init", help="create the root key and certificate")
    data(p)
    p.add_argument("--name", default="ecash-tpm central bank", help="root CN")
    p.add_argument("--valid-days", type=int, default=3650, help="root lifetime in days")
    p.add_argument(
        "--hosts",
        default=None,
        metavar="LIST",
        help="names/addresses of the central bank's own TLS certificate (default 127.0.0.1)",
    )
    p.set_defaults(func=_cmd_init, host="127.0.0.1")

    p = sub.add_parser("certify", help="issue a party certificate")
    data(p)
    p.add_argument("--role", required=True, help="bank, issuer, opener, merchant, ttp, supervision")
    p.add_argument("--name", required=True, help="the party's name (certificate CN)")
    p.add_argument(
        "--public-key", required=True, metavar="FILE", help="P-256 public key, PEM or DER"
    )
    p.add_argument("--out", metavar="FILE", help="write the certificate PEM here")
    p.add_argument("--valid-days", type=int, default=365, help="leaf lifetime in days")
    p.set_defaults(func=_cmd_certify)

    p = sub.add_parser(
        "certify-issuer-epoch", help="certify an issuer epoch key (X, Y), once per epoch"
    )
    data(p)
    p.add_argument("--issuer", default="issuer", help="the issuer's name (certificate CN)")
    p.add_argument(
        "--public", required=True, metavar="FILE", help="`issuer rotate-epoch --json` output"
    )
    p.add_argument("--out", metavar="FILE", help="write the signed issuer-epoch-key here")
    p.set_defaults(func=_cmd_certify_issuer_epoch)

    p = sub.add_parser("revoke", help="revoke a certificate by serial")
    data(p)
    p.add_argument("--serial", required=True, help="certificate serial (hex)")
    p.add_argument(
        "--reason",
        default="unspecified",
        help="RFC 5280 reason, e.g. keyCompromise, superseded, cessationOfOperation",
    )
    p.set_defaults(func=_cmd_revoke)

    p = sub.add_parser("admin-token", help="make an admin token and its hash for the config")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_admin_token)

    p = sub.add_parser("serve", help="run the central bank HTTP service")
    p.add_argument(
        "--config", metavar="FILE", help="TOML file with [centralbank] (default $ECASH_TPM_CONFIG)"
    )
    p.add_argument("--host", default=None, help="override the listen address")
    p.add_argument("--port", type=int, default=None, help="override the listen port")
    add_insecure_http(p)
    p.set_defaults(func=_cmd_serve)

    cert = sub.add_parser("cert", help="the central bank's own TLS certificate")
    csub = cert.add_subparsers(dest="cert_command", metavar="COMMAND", required=True)
    p = csub.add_parser("renew", help="new TLS key and certificate, issued by the CA here")
    p.add_argument("--config", metavar="FILE", help="TOML file with [centralbank]")
    p.add_argument("--data", default=None, metavar="DIR", help="the CA's data directory")
    p.add_argument("--database-url", metavar="URL", help="as for init (default: SQLite in DIR)")
    add_cert_renew_options(p, central_bank=True)
    p.set_defaults(func=_cmd_cert_renew)
