"""What every ``<party> serve`` and ``<party> cert renew`` share: TLS by default.

``serve`` takes ``--insecure-http`` (the ``insecure_http`` setting) for local experiments and
otherwise serves TLS 1.3 with the party's ``tls_cert_file``/``tls_key_file``, trusting only the
central bank's root for client certificates: :func:`serve_options` hands ``serve`` the files
(``settings.tls_files``: ``config.tls_missing`` without them, ``config.insecure_http_refused``
when plain HTTP is asked for while a certificate is present) and the plain ``/healthz`` port.

``cert renew`` makes a new P-256 TLS key (never the signing key: rotating one must not touch
the other) and has the central bank certify it for the party's role and name
(:func:`renew_tls`): the central bank issues its own with its CA, every other party asks the
central bank's admin API (``POST /v1/certify-tls``) over TLS, checking the central bank's
certificate before the admin token is sent. The new certificate is checked against the root
(role, name, key) before anything is written; key (0600) and certificate are then each
replaced atomically, so a running ``serve`` keeps its loaded pair and the next start gets the
new one.
"""

from __future__ import annotations

import argparse
import ipaddress
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.errors import ConfigError

__all__ = [
    "ADMIN_TOKEN_ENV",
    "CENTRAL_BANK_TLS_NAME",
    "Issue",
    "add_cert_commands",
    "add_cert_renew_options",
    "add_insecure_http",
    "admin_issuer",
    "default_hosts",
    "insecure_override",
    "renew_summary",
    "renew_tls",
    "renew_via_central_bank",
    "serve_options",
]

#: The name in the central bank's own TLS identity (``centralbank.centralbank.parties...``).
CENTRAL_BANK_TLS_NAME = "centralbank"
#: Where ``cert renew`` reads the admin token when ``--admin-token-file`` is not given.
ADMIN_TOKEN_ENV = "ECASH_TPM_ADMIN_TOKEN"  # noqa: S105 - a variable name, not a token

#: ``issue(role, name, public_key, hosts) -> certificate``
Issue = Callable[[str, str, ec.EllipticCurvePublicKey, Sequence[str]], x509.Certificate]


def add_insecure_http(parser: argparse.ArgumentParser) -> None:
    """``--insecure-http``: plain HTTP for local experiments (refused with a certificate)."""
    parser.add_argument(
        "--insecure-http",
        action="store_true",
        help="serve and call plain HTTP (local experiments only; refused while a TLS "
        "certificate is present)",
    )


def insecure_override(args: argparse.Namespace) -> bool | None:
    """The ``insecure_http`` override of ``--insecure-http`` (None: keep the configuration)."""
    return True if getattr(args, "insecure_http", False) else None


def serve_options(settings: Any, root: Path) -> dict[str, Any]:
    """``tls=``, ``healthz_port=`` and ``workers=`` for :func:`ecash_tpm.service.server.serve`
    (``--workers`` of ``serve``, see :func:`add_workers`, overrides the ``workers`` setting)."""
    return {
        "tls": settings.tls_files(Path(root)),
        "healthz_port": settings.healthz_port,
        "workers": int(getattr(settings, "workers", 1)),
    }


def add_workers(parser: argparse.ArgumentParser) -> None:
    """``--workers N``: N server processes on one socket and one database (issue 13)."""
    parser.add_argument(
        "--workers",
        type=int,
        default=None,
        metavar="N",
        help="server processes sharing the port and the database (default: the workers setting, 1)",
    )


def workers_override(args: argparse.Namespace) -> int | None:
    """The ``workers`` override of ``--workers`` (None: keep the configuration)."""
    value = getattr(args, "workers", None)
    return None if value is None else int(value)


def add_cert_renew_options(parser: argparse.ArgumentParser, *, central_bank: bool) -> None:
    """The options of ``<party> cert renew`` (the central bank needs no URL or token)."""
    parser.add_argument(
        "--hosts",
        default=None,
        metavar="LIST",
        help="comma-separated DNS names / IP addresses the party is also reached by "
        "(default: the listen address, unless it is a wildcard)",
    )
    parser.add_argument("--name", default=None, help="party name (default: its signing CN)")
    parser.add_argument("--valid-days", type=int, default=None, help="certificate lifetime")
    if not central_bank:
        parser.add_argument(
            "--central-bank",
            required=True,
            metavar="URL",
            help="the central bank's https URL (its certificate is checked before the token)",
        )
        parser.add_argument(
            "--admin-token-file",
            default=None,
            metavar="FILE",
            help=f"the central bank's admin token (default: ${ADMIN_TOKEN_ENV})",
        )
    if not any(a.dest == "json" for a in parser._actions):
        parser.add_argument("--json", action="store_true", help="machine-readable output")


def default_hosts(args: argparse.Namespace, settings: Any) -> list[str]:
    """``--hosts``, else the listen address when it names one host (not ``0.0.0.0``/``::``)."""
    if args.hosts is not None:
        return [h.strip() for h in str(args.hosts).split(",") if h.strip()]
    host = str(settings.host)
    try:
        if ipaddress.ip_address(host).is_unspecified:
            return []
    except ValueError:
        pass
    return [host]


def _admin_token(args: argparse.Namespace) -> str:
    if args.admin_token_file:
        try:
            token = Path(args.admin_token_file).read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise ConfigError(
                f"cannot read the admin token file: {exc.strerror or exc}",
                detail={"path": str(args.admin_token_file)},
            ) from exc
    else:
        token = os.environ.get(ADMIN_TOKEN_ENV, "").strip()
    if not token:
        raise ConfigError(
            f"the central bank's admin token is needed: --admin-token-file or ${ADMIN_TOKEN_ENV}",
            code="config.admin_token_missing",
        )
    return token


def admin_issuer(args: argparse.Namespace, settings: Any, root: Path) -> tuple[Issue, Any]:
    """An :data:`Issue` over the central bank's admin API, and the client to close.

    The connection is TLS to the central bank's own identity, checked against ``root`` (and
    the party's CRL) before the admin token is sent.
    """
    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.clients.connect import link
    from ecash_tpm.pki import load_certificate

    conn = link(
        args.central_bank,
        role="centralbank",
        name=CENTRAL_BANK_TLS_NAME,
        root=root,
        crl=settings.crl_file,
        insecure=False,
    )
    client = CentralBankClient(
        args.central_bank, admin_token=_admin_token(args), tls=conn.tls, expect=conn.expect
    )

    def issue(
        role: str, name: str, public_key: ec.EllipticCurvePublicKey, hosts: Sequence[str]
    ) -> x509.Certificate:
        answer = client.certify_tls(
            role, name, public_key, hosts=list(hosts), valid_days=args.valid_days
        )
        return load_certificate(answer.cert)

    return issue, client


def signing_name(cert_file: Path, fallback: str) -> str:
    """The CN of the party's signing certificate (its name everywhere), else ``fallback``."""
    from ecash_tpm.pki import common_name, load_certificate

    try:
        return common_name(load_certificate(cert_file.read_bytes()))
    except (OSError, ValueError):
        return fallback


def renew_tls(
    settings: Any,
    *,
    role: str,
    name: str,
    root: Path,
    hosts: Sequence[str],
    issue: Issue,
) -> dict[str, Any]:
    """New TLS key + certificate for ``role``/``name`` into the settings' TLS files.

    The certificate is verified (chain to ``root``, role, name, the new key) before either
    file is replaced; returns what ``cert renew`` prints.
    """
    from ecash_tpm.crypto.signing import write_file_atomic
    from ecash_tpm.pki import certificate_fingerprint, tls_identity, verify_tls_peer

    cert_path = Path(settings.tls_cert_file or settings.data_dir / "tls-cert.pem")
    key_path = Path(settings.tls_key_file or settings.data_dir / "tls-key.pem")
    try:
        root_pem = Path(root).read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the central bank root {root}: {exc.strerror or exc}",
            code="config.tls_root_missing",
            detail={"root": str(root)},
        ) from exc
    key = ec.generate_private_key(ec.SECP256R1())
    cert = issue(role, name, key.public_key(), list(hosts))
    der = cert.public_bytes(serialization.Encoding.DER)
    got = verify_tls_peer(der, root_pem, role=role)
    issued_key = cert.public_key()
    if (
        got != name
        or not isinstance(issued_key, ec.EllipticCurvePublicKey)
        or issued_key.public_numbers() != key.public_key().public_numbers()
    ):
        raise ConfigError(
            "the central bank issued a TLS certificate for another name or key",
            code="cert.tls_mismatch",
            detail={"expected": name, "got": got},
        )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file_atomic(key_path, key_pem, mode=0o600)
    write_file_atomic(cert_path, cert.public_bytes(serialization.Encoding.PEM), mode=0o644)
    return {
        "role": role,
        "name": name,
        "identity": tls_identity(role, name),
        "hosts": list(hosts),
        "serial": format(cert.serial_number, "x"),
        "fingerprint": certificate_fingerprint(cert),
        "not_after": int(cert.not_valid_after_utc.timestamp()),
        "tls_cert_file": str(cert_path),
        "tls_key_file": str(key_path),
    }


def renew_summary(done: dict[str, Any]) -> str:
    """The human-readable lines of ``cert renew``."""
    return (
        f"TLS certificate for {done['identity']} (serial {done['serial']})\n"
        f"certificate  {done['tls_cert_file']}\n"
        f"key          {done['tls_key_file']} (0600)\n"
        "restart the service to use it"
    )


def renew_via_central_bank(
    args: argparse.Namespace, settings: Any, *, role: str, root: Path, signing_cert: Path
) -> dict[str, Any]:
    """``<party> cert renew`` for a party other than the central bank."""
    name = args.name or signing_name(signing_cert, role)
    issue, client = admin_issuer(args, settings, root)
    try:
        return renew_tls(
            settings,
            role=role,
            name=name,
            root=root,
            hosts=default_hosts(args, settings),
            issue=issue,
        )
    finally:
        client.close()


def add_cert_commands(
    sub: argparse._SubParsersAction[argparse.ArgumentParser],
    common: Callable[[argparse.ArgumentParser], object],
    func: Callable[[argparse.Namespace], int],
    *,
    central_bank: bool = False,
) -> None:
    """``<party> cert renew``: ``common`` adds the party's --config/--data options."""
    cert = sub.add_parser("cert", help="the party's TLS certificate")
    csub = cert.add_subparsers(dest="cert_command", metavar="COMMAND", required=True)
    p = csub.add_parser("renew", help="new TLS key and certificate from the central bank")
    common(p)
    add_cert_renew_options(p, central_bank=central_bank)
    p.set_defaults(func=func)
