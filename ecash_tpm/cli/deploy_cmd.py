"""``ecash-tpm deploy init-party|register-merchant``: the deployment bootstrap, one party at a time.

The steps the demo runs for all parties (:mod:`ecash_tpm.deploy.bootstrap`), for a deployment where
each party has its own machine or container (docker/entrypoint.sh runs ``init-party`` before
``serve``)::

    ecash-tpm deploy init-party --role bank --central-bank URL --admin-token-file FILE \\
        [--supervision-url URL] [--root-fingerprint HEX] [--tls-host NAME] [--config FILE]
        [--export]

makes the party's keys on first use, has its signing key certified by the central bank over
HTTPS (admin token; a certificate still valid for the key is kept), installs the root, and
gets its TLS certificate (``tls-cert.pem``/``tls-key.pem`` in its data directory, for
127.0.0.1, localhost and every ``--tls-host``, e.g. the container name). The root is pinned:
by ``--root-fingerprint``, else by the root the party already holds, so a restarted party
never trusts another central bank; the central bank's TLS certificate must chain to it and
name the central bank before the admin token is sent. For ``--role centralbank`` it issues
the central bank's own TLS certificate with its CA (made here when ``init_if_missing``), and
exports the admin token's hash. A party configured with ``insecure_http`` gets no TLS
certificate. What the party learns (the opener key Hop
from the supervision department, trust-anchor paths) is printed as settings, or with
``--export`` as ``export ECASH_TPM_<SECTION>_<KEY>=...`` lines for a shell to ``eval``. For
``--role centralbank`` it only exports the admin token's hash (the service makes its CA).

    ecash-tpm deploy register-merchant --merchant-url URL [--config FILE]

registers a running shop at the bank (its certificate from ``GET /v1/merchant``, checked
against the bank's central-bank root), on the bank's database (operator console).
"""

from __future__ import annotations

import argparse
import shlex
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.output import emit
from ecash_tpm.errors import ConfigError

if TYPE_CHECKING:
    from ecash_tpm.crypto.bn256 import Point
    from ecash_tpm.deploy.bootstrap import PartyInit

ROLES = ("centralbank", "supervision", "issuer", "bank", "merchant", "ttp")


def _settings_class(role: str) -> Any:
    from ecash_tpm.bank.settings import BankSettings
    from ecash_tpm.centralbank.settings import CentralBankSettings
    from ecash_tpm.issuer.settings import IssuerSettings
    from ecash_tpm.merchant.settings import MerchantSettings
    from ecash_tpm.supervision.settings import SupervisionSettings

    if role == "ttp":
        from ecash_tpm.ttp.settings import TtpSettings

        return TtpSettings
    classes = {
        "centralbank": CentralBankSettings,
        "supervision": SupervisionSettings,
        "issuer": IssuerSettings,
        "bank": BankSettings,
        "merchant": MerchantSettings,
    }
    return classes[role]


def _root_file(role: str, settings: Any) -> Path:
    """Where the party keeps the central-bank root (what ``init_<role>`` writes)."""
    from ecash_tpm.deploy.bootstrap import ROOT_FILE

    if role == "bank":
        return Path(settings.path("central_bank_root"))
    if role in ("merchant", "ttp"):
        return Path(settings.resolved_root_cert())
    configured = getattr(settings, "central_bank_root", None)
    return Path(configured) if configured is not None else settings.data_dir / ROOT_FILE


def _read_token(path: str) -> str:
    try:
        token = Path(path).read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise ConfigError(
            f"cannot read the admin token file: {exc}", detail={"path": path}
        ) from exc
    if not token:
        raise ConfigError("the admin token file is empty", detail={"path": path})
    return token


def _hop(url: str | None, root_pem: bytes) -> Point:
    from ecash_tpm.clients.supervision import SupervisionClient

    if not url:
        raise ConfigError("this role needs --supervision-url (where Hop is published)")
    tls: dict[str, Any] = {}
    if url.startswith("https://"):
        from ecash_tpm.deploy.bootstrap import _root_file_for
        from ecash_tpm.service.tls import client_context

        tls = {
            "tls": client_context(_root_file_for(root_pem)),
            "expect": ("supervision", "supervision"),
        }
    with SupervisionClient(url, **tls) as client:
        return client.opener_public()


def _init(args: argparse.Namespace, settings: Any, token: str) -> PartyInit:
    from ecash_tpm.crypto.encoding import b64u_encode
    from ecash_tpm.deploy import bootstrap as deploy
    from ecash_tpm.deploy.tls import LOCAL_HOSTS
    from ecash_tpm.pki import certificate_fingerprint

    role = args.role
    pin = args.root_fingerprint
    held = _root_file(role, settings)
    held_pem = held.read_bytes() if held.exists() else None
    if pin is None and held_pem is not None:
        pin = certificate_fingerprint(held_pem)
    link = deploy.CentralBankLink.connect(
        args.central_bank,
        token,
        root_fingerprint=pin,
        root_pem=held_pem,
        tls_hosts=(*LOCAL_HOSTS, *(args.tls_host or ())),
    )
    if getattr(settings, "insecure_http", False):
        link.with_tls = False
    with link:
        if role == "supervision":
            return deploy.init_supervision(settings, link)
        if role == "issuer":
            from ecash_tpm.cli.tpm_cmd import load_trust_store

            roots, inters = load_trust_store(args.ek_trust) if args.ek_trust else ([], [])
            return deploy.init_issuer(
                settings,
                link,
                opener_public=_hop(args.supervision_url, link.root_pem),
                ek_trust=roots + inters,
            )
        if role == "bank":
            init = deploy.init_bank(settings, link)
            if not settings.opener_public:
                hop = b64u_encode(_hop(args.supervision_url, link.root_pem).encode())
                init = deploy.PartyInit(
                    init.role, init.certificate, init.facts, {"opener_public": hop}
                )
            return init
        if role == "merchant":
            return deploy.init_merchant(settings, link)
        return deploy.init_ttp(settings, link)


def _cmd_init_party(args: argparse.Namespace) -> int:
    from ecash_tpm.centralbank.settings import hash_admin_token
    from ecash_tpm.service.settings import load_settings

    cls = _settings_class(args.role)
    settings = load_settings(cls, path=args.config)
    token = _read_token(args.admin_token_file)
    learned: dict[str, Any]
    certificate: dict[str, Any] = {}
    if args.role == "centralbank":
        learned = (
            {} if settings.admin_token_sha256 else {"admin_token_sha256": hash_admin_token(token)}
        )
        if not getattr(settings, "insecure_http", False):
            from ecash_tpm.deploy.bootstrap import init_central_bank_tls
            from ecash_tpm.deploy.tls import LOCAL_HOSTS

            hosts = (*LOCAL_HOSTS, *(args.tls_host or ()))
            certificate = init_central_bank_tls(settings, hosts=hosts).certificate
    else:
        if not args.central_bank:
            raise ConfigError("--central-bank URL is required for this role")
        init = _init(args, settings, token)
        learned, certificate = dict(init.settings), init.certificate
    section = cls.section
    if args.export:
        for key, value in learned.items():
            name = f"ECASH_TPM_{section}_{key}".upper()
            print(f"export {name}={shlex.quote(str(value))}")
    else:
        lines = []
        if "serial" in certificate:
            state = "certified now" if certificate["issued_now"] else "certificate kept"
            lines.append(
                f"{args.role} {certificate['name']}: {state}, serial {certificate['serial']}, "
                f"{certificate['cert_file']}"
            )
        tls = certificate.get("tls")
        if tls:
            state = "issued now" if tls["issued_now"] else "kept"
            lines.append(
                f"{args.role} TLS {tls['identity']} ({', '.join(tls['hosts'])}): {state}, "
                f"serial {tls['serial']}, {tls['cert_file']}"
            )
        lines += [f"configure [{section}] {key} = {value!r}" for key, value in learned.items()]
        emit(
            args,
            {"role": args.role, "certificate": certificate, "settings": learned},
            "\n".join(lines),
        )
    return 0


def _cmd_register_merchant(args: argparse.Namespace) -> int:
    from ecash_tpm.bank.settings import BankSettings
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.deploy.bootstrap import register_merchant
    from ecash_tpm.pki import verify_party_certificate
    from ecash_tpm.service.settings import load_settings

    settings = load_settings(BankSettings, path=args.config)
    root = settings.path("central_bank_root").read_bytes()
    tls: dict[str, Any] = {}
    if args.merchant_url.startswith("https://"):
        from ecash_tpm.service.tls import client_context

        if not args.merchant_name:
            raise ConfigError("an https merchant URL needs --merchant-name (its TLS identity)")
        tls = {
            "tls": client_context(settings.path("central_bank_root")),
            "expect": ("merchant", args.merchant_name),
        }
    with MerchantClient(args.merchant_url, **tls) as shop:
        info = shop.info()
    verify_party_certificate(info["cert"], root, role="merchant", name=info["merchant_id"])
    result = register_merchant(settings, info["cert"])
    emit(args, result, f"merchant {result['merchant_id']} registered at the bank")
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``deploy init-party|register-merchant``."""
    parser = subparsers.add_parser(
        "deploy",
        help="bootstrap a party: keys, central-bank certificate, configuration",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="deploy_command", metavar="COMMAND", required=True)

    p = sub.add_parser("init-party", help="keys and certificate of one party (idempotent)")
    p.add_argument("--role", required=True, choices=ROLES)
    p.add_argument("--config", default=None, help="TOML file (default $ECASH_TPM_CONFIG)")
    p.add_argument("--central-bank", default=None, metavar="URL", help="central bank base URL")
    p.add_argument(
        "--admin-token-file", required=True, metavar="FILE", help="the central bank's admin token"
    )
    p.add_argument("--root-fingerprint", default=None, help="expected SHA-256 of the root (hex)")
    p.add_argument(
        "--supervision-url",
        default=None,
        metavar="URL",
        help="where Hop is fetched (GET /v1/opener)",
    )
    p.add_argument(
        "--ek-trust", action="append", metavar="PATH", help="issuer: EK CA file or directory"
    )
    p.add_argument(
        "--tls-host",
        action="append",
        metavar="NAME",
        help="a further DNS name or IP of the party's TLS certificate (e.g. the container name)",
    )
    out = p.add_mutually_exclusive_group()
    out.add_argument("--export", action="store_true", help="print shell export lines")
    out.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_init_party)

    p = sub.add_parser("register-merchant", help="register a running shop at the bank")
    p.add_argument("--merchant-url", required=True, metavar="URL")
    p.add_argument(
        "--merchant-name", default=None, help="the merchant id its TLS certificate must name"
    )
    p.add_argument(
        "--config", default=None, help="TOML file with [bank] (default $ECASH_TPM_CONFIG)"
    )
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_cmd_register_merchant)
