"""``ecash-tpm wallet ...``: the customer wallet on the device with the TPM.

``wallet join --issuer URL --data DIR [--tcti T | --swtpm-state DIR] [--account ID] [--bank URL]
[--ek rsa2048|ecc_p384|ecc_p256] [--ek-cert FILE] [--ek-cert-url TEMPLATE]
[--event-log FILE | --no-event-log] [--json]`` runs the attested join (DESIGN §4) and stores the
membership in DIR (``membership.json`` + TPM key blobs under ``tpm/``); the EK certificate comes
from NV unless a file or URL supplies it, and the boot's event log goes with the quote. With
``--bank`` the wallet first logs in as the account (password, TOTP) for the bank-signed join
authorisation the issuer requires (docs/protocol.md 3.2.1).

Sub-commands are registered by group functions listed in :data:`COMMAND_GROUPS`; coin commands
(withdraw, balance, pay, history) go in their own ``register_*`` function added to that list.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import getpass
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.cli.output import Progress, emit, loads_json, money, prompt, when

if TYPE_CHECKING:
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.clients.connect import Link
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.wallet.context import SpendingContext, WalletContext
    from ecash_tpm.wallet.ek_source import EkCertificateSource
    from ecash_tpm.wallet.membership import Membership
    from ecash_tpm.wallet.store import WalletStore


def resolve_tcti(args: argparse.Namespace) -> str:
    """--tcti, else the running swtpm of --swtpm-state, else $ECASH_TPM_TCTI / $TPM2TOOLS_TCTI,
    else the kernel resource manager."""
    if getattr(args, "tcti", None):
        return str(args.tcti)
    if getattr(args, "swtpm_state", None):
        from ecash_tpm.swtpm import SwtpmInstance, SwtpmNotRunningError

        inst = SwtpmInstance.load(args.swtpm_state)
        if not inst.is_running():
            raise SwtpmNotRunningError(
                f"swtpm in {inst.state_dir} is not running (ecash-tpm swtpm start)",
                detail={"state_dir": str(inst.state_dir)},
            )
        return inst.tcti
    env = os.environ.get("ECASH_TPM_TCTI") or os.environ.get("TPM2TOOLS_TCTI")
    if env:
        return env
    from ecash_tpm.device import DEFAULT_TCTI

    return str(DEFAULT_TCTI)


def add_device_args(p: argparse.ArgumentParser) -> None:
    """--data, --tcti, --swtpm-state, --json: what every wallet command takes."""
    p.add_argument("--data", type=Path, required=True, help="wallet data directory")
    p.add_argument("--tcti", default=None, help="TCTI, e.g. swtpm:host=127.0.0.1,port=2321")
    p.add_argument("--swtpm-state", metavar="DIR", help="use this hermetic swtpm's TCTI")
    p.add_argument("--json", action="store_true", help="machine-readable output")


EK_CERT_URL_ENV = "ECASH_TPM_EK_CERT_URL"
#: The central bank's CRL in the wallet directory: every server's certificate is checked
#: against it when it is there (``--crl FILE`` names another).
WALLET_CRL_FILE = "central-bank-crl.pem"


def _ek_source(args: argparse.Namespace) -> EkCertificateSource:
    """--ek-cert / --ek-cert-url (else $ECASH_TPM_EK_CERT_URL) as an EkCertificateSource."""
    from ecash_tpm.wallet.ek_source import EkCertificateSource

    url = getattr(args, "ek_cert_url", None) or os.environ.get(EK_CERT_URL_ENV) or None
    return EkCertificateSource(file=getattr(args, "ek_cert", None), url_template=url)


def _event_log(args: argparse.Namespace, tcti: str) -> bytes | None:
    """The boot's TCG event log for join/finish: --event-log FILE, else the log the swtpm of
    --swtpm-state wrote at its synthetic boot, else (the host's own TPM) the kernel's."""
    from ecash_tpm.wallet.join import read_event_log

    if getattr(args, "no_event_log", False):
        return None
    if getattr(args, "event_log", None):
        return read_event_log(args.event_log)
    if getattr(args, "swtpm_state", None) and not getattr(args, "tcti", None):
        from ecash_tpm.swtpm import SwtpmInstance

        path = SwtpmInstance.load(args.swtpm_state).event_log_path
        return read_event_log(path) if path.is_file() else None
    if tcti.split(":", 1)[0] in ("device", "tabrmd"):  # the host's TPM: the host's boot
        return read_event_log()
    return None


def _link(args: argparse.Namespace, url: str, *, role: str, name: str | None) -> Link:
    """How the wallet reaches ``role`` ``name`` at ``url``: TLS trusting only the central bank
    root kept in the wallet (``--root``), the server's certificate checked for that role and
    name in the handshake, before the password, TOTP, join data or coins are sent. Plain
    ``http://`` only with ``--insecure-http``. The wallet presents no client certificate."""
    from ecash_tpm.clients.connect import link
    from ecash_tpm.errors import ConfigError

    secure = not url.lower().startswith("http://")
    if secure and not name:
        raise ConfigError(
            f"which {role} is at {url}? pass --{role}-name (its certificate's name)",
            code="wallet.party_name_required",
            detail={"url": url, "role": role},
        )
    root = Path(args.data) / WALLET_ROOT_FILE
    crl = getattr(args, "crl", None) or Path(args.data) / WALLET_CRL_FILE
    return link(
        url,
        role=role,
        name=name or "",
        root=root if root.is_file() else None,
        crl=Path(crl) if getattr(args, "crl", None) or Path(crl).is_file() else None,
        insecure=bool(getattr(args, "insecure_http", False)),
    )


def add_tls_args(p: argparse.ArgumentParser) -> None:
    """``--insecure-http``: allow plain http:// parties (local experiments only); ``--crl``:
    the central bank's revocation list every server is checked against (default: the wallet
    directory's ``central-bank-crl.pem`` when present)."""
    if not any(a.dest == "insecure_http" for a in p._actions):
        p.add_argument(
            "--insecure-http",
            action="store_true",
            help="allow plain http:// URLs (local experiments; nothing is verified)",
        )
    if not any(a.dest == "centralbank" for a in p._actions):
        p.add_argument(
            "--centralbank",
            default=None,
            metavar="URL",
            help="the central bank, whose revocation list is fetched on every run (remembered)",
        )
    if not any(a.dest == "crl" for a in p._actions):
        p.add_argument(
            "--crl",
            type=Path,
            default=None,
            metavar="FILE",
            help=f"the central bank's CRL (PEM); default <data>/{WALLET_CRL_FILE} if present",
        )


def _cmd_join(args: argparse.Namespace) -> int:
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.wallet.join import join

    ek_source = _ek_source(args)  # a bad URL template fails before the TPM is opened
    cfg = _coin_settings(args)  # keeps --root and --bank
    has_root = (Path(args.data) / WALLET_ROOT_FILE).exists()
    root = _coin_root(args) if has_root else None
    conn = _link(args, args.issuer, role="issuer", name=args.issuer_name)
    tcti = resolve_tcti(args)
    event_log = _event_log(args, tcti)
    with (
        IssuerClient(args.issuer, tls=conn.tls, expect=conn.expect) as issuer,
        TpmDevice(tcti) as device,
        Progress(args) as progress,
        contextlib.ExitStack() as stack,
    ):
        bank = None  # the join authorisation comes from the account's own login at the bank
        if cfg.get("bank_url"):
            bank = stack.enter_context(_bank_client(args, cfg))
            progress.note("logging in at the bank for the join authorisation")
            from ecash_tpm.wallet.session import SessionKeeper

            # a fresh login, kept as the wallet's bank session (protocol.md 11.2): the first
            # `wallet withdraw` after the join needs no second TOTP code
            SessionKeeper(
                Path(args.data),
                bank,
                account_id=args.account or getpass.getuser(),
                bank_url=str(cfg["bank_url"]),
                clock=_now,
                credentials=lambda: (_password(args), _totp_code(args)),
            ).login()
        membership = join(
            device,
            issuer,
            args.data,
            account_id=args.account,
            ek_kind=args.ek,
            ek_source=ek_source,
            progress=progress,
            event_log=event_log,
            root=root,  # 3.6: the credential must be under the certified epoch key
            bank=bank,
        )
    summary: dict[str, Any] = membership.summary()
    emit(
        args,
        summary,
        f"joined as {summary['member_id']} (epoch {summary['epoch']}, "
        f"{summary['ek_kind']} EK, account {summary['account_id']}); "
        f"membership in {Path(args.data) / 'membership.json'}",
    )
    return 0


def register_join(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet join``."""
    p = sub.add_parser("join", help="attested join: get the anonymous membership credential")
    add_device_args(p)
    p.add_argument("--issuer", required=True, metavar="URL", help="issuer base URL")
    p.add_argument("--issuer-name", default="issuer", help="expected issuer certificate name")
    p.add_argument("--root", default=None, metavar="PEM", help="central bank root (kept)")
    add_tls_args(p)
    p.add_argument("--account", default=None, help="bank account id (default: user name)")
    p.add_argument("--bank", default=None, metavar="URL", help="bank base URL (remembered)")
    p.add_argument("--bank-name", default=None, help="expected bank certificate CN")
    p.add_argument("--password-file", default=None, help="else $ECASH_TPM_PASSWORD or prompt")
    p.add_argument("--totp", default=None, help="TOTP code (else --totp-secret-file or prompt)")
    p.add_argument("--totp-secret-file", default=None, help="base32 TOTP secret")
    p.add_argument(
        "--ek",
        choices=["rsa2048", "ecc_p384", "ecc_p256"],
        default=None,
        help="EK to attest with (default: RSA-2048 if present)",
    )
    p.add_argument(
        "--ek-cert",
        type=Path,
        default=None,
        metavar="FILE",
        help="EK certificate (PEM or DER) to use instead of NV, e.g. from tpm2_getekcertificate; "
        "its key must be this TPM's EK (the type follows from it unless --ek is given)",
    )
    p.add_argument(
        "--ek-cert-url",
        default=None,
        metavar="TEMPLATE",
        help="where to fetch the EK certificate when NV has none (default: $"
        + EK_CERT_URL_ENV
        + "); placeholders {ek_hash} (hex SHA-256 of the EK's DER SubjectPublicKeyInfo), "
        "{intel_ek_hash}, {amd_ek_hash}; see docs/real-tpm.md",
    )
    log = p.add_mutually_exclusive_group()
    log.add_argument(
        "--event-log",
        type=Path,
        default=None,
        metavar="FILE",
        help="the boot's TCG event log to send (default: the swtpm's of --swtpm-state, or "
        "/sys/kernel/security/tpm0/binary_bios_measurements for the host's TPM if readable)",
    )
    log.add_argument(
        "--no-event-log", action="store_true", help="send no event log (golden-PCR issuers)"
    )
    p.set_defaults(func=_cmd_join)


# --- coin commands: withdraw, balance, pay, recover, history ---------------------------------
# (added with the wallet's coin code: ecash_tpm.wallet.{store,withdraw,pay})

WALLET_SETTINGS_FILE = "wallet-settings.json"
WALLET_ROOT_FILE = "central-bank-root.pem"


def _now() -> int:
    return int(time.time())


def _coin_settings(args: argparse.Namespace, *, need_bank: bool = False) -> dict[str, Any]:
    """``<data>/wallet-settings.json`` (bank URL, bank name, currency), updated from flags;
    ``--root`` is copied to ``<data>/central-bank-root.pem``."""
    from ecash_tpm.crypto.signing import write_file_atomic
    from ecash_tpm.errors import ConfigError

    data = Path(args.data)
    path = data / WALLET_SETTINGS_FILE
    try:
        text = path.read_text(encoding="utf-8") if path.exists() else "{}"
    except (OSError, ValueError) as exc:
        raise ConfigError(f"cannot read {path}: {exc}", code="wallet.settings_invalid") from exc
    cfg = loads_json(
        text, f"wallet settings {path}", error=ConfigError, code="wallet.settings_invalid"
    )
    if not isinstance(cfg, dict):
        raise ConfigError(f"{path} is not a JSON object", code="wallet.settings_invalid")
    changed = False
    for flag, key in (
        ("bank", "bank_url"),
        ("bank_name", "bank_name"),
        ("currency", "currency"),
        ("max_deadline", "max_deadline_s"),  # issue 10 attack 5: no hostage deadlines
        ("centralbank", "centralbank_url"),  # issue 10 attack 10: where the CRL comes from
    ):
        value = getattr(args, flag, None)
        if value and cfg.get(key) != value:
            cfg[key], changed = value, True
    root = getattr(args, "root", None)
    if root:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(data / WALLET_ROOT_FILE, Path(root).read_bytes(), mode=0o644)
    if changed:
        data.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(path, (json.dumps(cfg, indent=2) + "\n").encode(), mode=0o600)
    if need_bank and not cfg.get("bank_url"):
        raise ConfigError(
            "the wallet does not know its bank yet: pass --bank URL (remembered)",
            code="wallet.not_configured",
        )
    if cfg.get("centralbank_url") and (data / WALLET_ROOT_FILE).is_file():
        _fetch_crl(args, cfg["centralbank_url"])
    return cfg


def _fetch_crl(args: argparse.Namespace, url: str) -> None:
    """``--centralbank URL`` (remembered): fetch the central bank's current CRL into
    ``<data>/central-bank-crl.pem`` on every run, so merchant and bank certificates are checked
    against what the central bank revoked up to now (docs/protocol.md 13.2). The CRL is checked
    against the root before it replaces the file; when the central bank cannot be reached, the
    file on hand is used, and a stale one is refused when it is read (``crl.stale``)."""
    from cryptography.hazmat.primitives.serialization import Encoding

    from ecash_tpm.clients.centralbank import CentralBankClient
    from ecash_tpm.clients.connect import link
    from ecash_tpm.crypto.signing import write_file_atomic
    from ecash_tpm.errors import EcashError
    from ecash_tpm.pki import CrlSource, load_certificate

    data = Path(args.data)
    root = data / WALLET_ROOT_FILE
    conn = link(  # no CRL for this one connection: it is how the CRL arrives
        url,
        role="centralbank",
        name="centralbank",
        root=root,
        insecure=bool(getattr(args, "insecure_http", False)),
    )
    try:
        with CentralBankClient(url, tls=conn.tls, expect=conn.expect) as central:
            pem = central.crl().public_bytes(Encoding.PEM)
    except EcashError:
        if (data / WALLET_CRL_FILE).is_file():
            return
        raise
    now = dt.datetime.now(dt.UTC)
    CrlSource(load_certificate(root.read_bytes()), lambda: pem).current_crl(now)  # root-signed
    write_file_atomic(data / WALLET_CRL_FILE, pem, mode=0o644)


def _existing_wallet(args: argparse.Namespace) -> Path:
    """``--data`` of a command that only reads the wallet: it must exist (never created)."""
    from ecash_tpm.errors import ConfigError

    data = Path(args.data)
    if not data.is_dir():
        raise ConfigError(
            f"no wallet in {data}: check --data (a wallet is made by `ecash-tpm wallet join`)",
            code="wallet.not_found",
            detail={"data_dir": str(data)},
        )
    return data


def _coin_root(args: argparse.Namespace) -> bytes:
    from ecash_tpm.errors import ConfigError

    path = Path(args.data) / WALLET_ROOT_FILE
    try:
        return path.read_bytes()
    except OSError as exc:
        raise ConfigError(
            "no central bank root in the wallet: pass --root FILE (remembered)",
            code="wallet.not_configured",
            detail={"path": str(path)},
        ) from exc


def _wallet_context(
    store: WalletStore, root: bytes, cfg: dict[str, Any], args: argparse.Namespace | None = None
) -> WalletContext:
    """The wallet as its verbs take it: coin store, remembered root and bank name, system clock,
    and the central bank's CRL (``--crl`` or ``<data>/central-bank-crl.pem``) that merchant and
    bank certificates are checked against (docs/protocol.md, "Revocation")."""
    from ecash_tpm.clients.revocation import crl_source
    from ecash_tpm.pki import load_certificate
    from ecash_tpm.wallet.context import MAX_REQUEST_DEADLINE_S, WalletContext

    crl = None
    if args is not None:
        path = Path(getattr(args, "crl", None) or Path(args.data) / WALLET_CRL_FILE)
        if getattr(args, "crl", None) or path.is_file():
            crl = crl_source(root=load_certificate(root), crl_url=None, crl_file=path)
    max_deadline = int(cfg.get("max_deadline_s") or MAX_REQUEST_DEADLINE_S)
    return WalletContext(
        store, root, _now, cfg.get("bank_name") or "bank", crl=crl, max_deadline_s=max_deadline
    )


def _spending_context(
    ctx: WalletContext, device: TpmDevice, data: Path, membership: Membership
) -> SpendingContext:
    """``ctx`` with the member's TPM signer (its key checked against the membership)."""
    from ecash_tpm.wallet.membership import open_signer

    return ctx.spending(
        open_signer(device, data, membership),
        hop=membership.opener_public,
        expected_t0=membership.t0,
    )


def _password(args: argparse.Namespace) -> str:
    if args.password_file:
        return Path(args.password_file).read_text(encoding="utf-8").rstrip("\n")
    env = os.environ.get("ECASH_TPM_PASSWORD")
    if env:
        return env
    return prompt("bank password: ", secret=True)


def _totp_code(args: argparse.Namespace) -> str:
    if args.totp:
        return str(args.totp)
    if args.totp_secret_file:
        import base64
        import binascii

        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.twofactor.totp import TOTP

        from ecash_tpm.errors import InputError

        path = args.totp_secret_file
        try:
            text = Path(path).read_text(encoding="ascii").strip().replace(" ", "")
            secret = base64.b32decode(text.upper() + "=" * (-len(text) % 8))
        except (UnicodeDecodeError, binascii.Error) as exc:
            raise InputError(
                f"--totp-secret-file {path} does not hold a base32 secret", detail={"path": path}
            ) from exc
        totp = TOTP(secret, 6, hashes.SHA1(), 30)  # noqa: S303 (RFC 6238 is SHA-1)
        return totp.generate(_now()).decode("ascii")
    return prompt("TOTP code: ").strip()


def _bank_client(args: argparse.Namespace, cfg: dict[str, Any]) -> BankClient:
    """The remembered bank over TLS (its name: ``--bank-name``, remembered, else ``bank``)."""
    from ecash_tpm.clients.bank import BankClient

    url = cfg["bank_url"]
    conn = _link(args, url, role="bank", name=cfg.get("bank_name") or "bank")
    return BankClient(url, tls=conn.tls, expect=conn.expect)


def _merchant_name(args: argparse.Namespace, offer: Any = None) -> str | None:
    """``--merchant-name``, else the CN of the offer's certificate (checked against the root
    with the request itself), else unknown (an https shop then needs ``--merchant-name``)."""
    if getattr(args, "merchant_name", None):
        return str(args.merchant_name)
    if isinstance(offer, dict) and isinstance(offer.get("cert"), str):
        from ecash_tpm.pki import common_name

        try:
            return common_name(offer["cert"]) or None
        except ValueError:
            return None
    return None


# --- fair exchange (issue 6): buy, dispute, purchases ----------------------------------------


def _cmd_buy(args: argparse.Namespace) -> int:
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.wallet.membership import load_membership
    from ecash_tpm.wallet.purchases import Buyer, PurchaseStore, ShopCatalogueClient
    from ecash_tpm.wallet.store import WalletStore

    cfg = _coin_settings(args)
    root = _coin_root(args)
    membership = load_membership(args.data)
    conn = _link(args, args.merchant, role="merchant", name=_merchant_name(args))
    with (
        Progress(args) as progress,
        MerchantClient(args.merchant, tls=conn.tls, expect=conn.expect) as shop,
        ShopCatalogueClient(args.merchant, tls=conn.tls, expect=conn.expect) as catalogue,
        TpmDevice(resolve_tcti(args)) as device,
        WalletStore.open(args.data, _now) as store,
        PurchaseStore.open(args.data, _now) as purchases,
    ):
        wallet = _wallet_context(store, root, cfg, args)
        ctx = _spending_context(wallet, device, args.data, membership)
        buyer = Buyer(ctx, purchases)
        progress.note(f"checking product {args.product} (TTP-signed descriptor, ciphertext hash)")
        progress.note("paying with a fresh per-purchase key; the TPM makes the spend proofs")
        result = buyer.buy(args.product, source=catalogue, shop=shop, merchant_url=shop.base_url)
    d = result.to_dict()
    emit(
        args,
        d,
        f"bought {d['title']!r} ({money(d['price'], d['currency'])}) from {d['merchant_id']}: "
        f"{d['size']} bytes in {d['content_file']} (purchase {d['purchase_id']})",
    )
    return 0


def _cmd_dispute(args: argparse.Namespace) -> int:
    from ecash_tpm.clients.ttp import TtpClient
    from ecash_tpm.errors import ConfigError, EcashError
    from ecash_tpm.wallet.purchases import PurchaseStore, dispute

    done: list[dict[str, Any]] = []
    waiting: list[dict[str, Any]] = []
    with PurchaseStore.open(_existing_wallet(args), _now) as purchases:
        targets = [purchases.get(args.purchase)] if args.purchase else purchases.open_disputes()
        for p in targets:
            url = args.ttp or p.ttp_url
            if not url:
                raise ConfigError("which TTP? pass --ttp URL", code="wallet.not_configured")
            conn = _link(args, url, role="ttp", name=args.ttp_name)
            with TtpClient(url, tls=conn.tls, expect=conn.expect) as ttp:
                try:
                    done.append(dispute(purchases, p.purchase_id, ttp=ttp, clock=_now).to_dict())
                except EcashError as exc:
                    if args.purchase and exc.code != "ttp.dispute_pending":
                        raise
                    waiting.append({"purchase_id": p.purchase_id, "error": exc.to_dict()})
    lines = [f"{d['purchase_id']}: content in {d['content_file']} (key via the TTP)" for d in done]
    lines += [f"{w['purchase_id']}: {w['error']['code']} {w['error']['detail']}" for w in waiting]
    emit(args, {"resolved": done, "waiting": waiting}, "\n".join(lines) or "nothing open")
    return 0 if not waiting or done else 2


def _cmd_purchases(args: argparse.Namespace) -> int:
    from ecash_tpm.wallet.purchases import PurchaseStore

    with PurchaseStore.open(_existing_wallet(args), _now) as purchases:
        rows = [p.to_dict() for p in purchases.purchases(limit=args.limit)]
    text = "\n".join(
        f"{when(r['created_at'])}  {r['state']:<11} {money(r['price'], r['currency']):>12}  "
        f"{r['merchant_id']:<10} {r['product_id']}  {r['purchase_id']}"
        for r in rows
    )
    emit(args, {"purchases": rows}, text or "no purchases")
    return 0


def register_fair_exchange(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """``wallet buy|dispute|purchases`` (digital goods with an offline TTP, DESIGN §6)."""
    p = sub.add_parser("buy", help="buy a digital product (key escrowed with the TTP)")
    add_device_args(p)
    p.add_argument("--merchant", required=True, metavar="URL", help="the shop's base URL")
    p.add_argument("--product", required=True, help="product id (see the shop's /v1/products)")
    p.add_argument(
        "--merchant-name", default=None, help="expected shop certificate name (merchant id)"
    )
    add_tls_args(p)
    p.set_defaults(func=_cmd_buy)

    p = sub.add_parser("dispute", help="paid but no (good) key: get it through the TTP")
    p.add_argument("--data", type=Path, required=True, help="wallet data directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--ttp", default=None, metavar="URL", help="TTP base URL (else the shop's)")
    p.add_argument("--ttp-name", default="ttp", help="expected TTP certificate name")
    add_tls_args(p)
    p.add_argument("--purchase", default=None, help="purchase id (default: every open one)")
    p.set_defaults(func=_cmd_dispute)

    p = sub.add_parser("purchases", help="purchases, newest first")
    p.add_argument("--data", type=Path, required=True, help="wallet data directory")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.add_argument("--limit", type=int, default=50)
    p.set_defaults(func=_cmd_purchases)


def register_coins(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The coin commands (withdraw, logout, balance, pay, ...): see ecash_tpm.cli.wallet_coins."""
    from ecash_tpm.cli.wallet_coins import register_coins as register

    register(sub)


COMMAND_GROUPS: list[Callable[[argparse._SubParsersAction[argparse.ArgumentParser]], None]] = [
    register_join,
    register_coins,
    register_fair_exchange,
]
"""Functions adding wallet sub-commands; coin commands append their own ``register_*``."""


#: ``ecash-tpm wallet --help``: for the wallet's user (the module docstring is for developers).
WALLET_DESCRIPTION = """\
The customer wallet: anonymous coins bound to this device's TPM.

Start with `wallet join --issuer URL --bank URL --root FILE --data-dir DIR` (the TPM
proves it is genuine; you log in to your bank account once for that). Then `wallet withdraw
AMOUNT` takes coins from your account, `wallet pay` spends them at a shop and `wallet balance`
shows what you hold.

The wallet logs in to the bank with your password and one-time code only when it has no
valid session; `wallet logout` ends the session. Amounts are given in minor units (cents
for EUR: 1050 is 10.50 EUR) and shown in the currency's units; --json prints raw integers."""


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add ``wallet`` and the sub-commands of every group in :data:`COMMAND_GROUPS`."""
    parser = subparsers.add_parser("wallet", help="customer wallet", description=WALLET_DESCRIPTION)
    sub = parser.add_subparsers(dest="wallet_command", metavar="COMMAND", required=True)
    for group in COMMAND_GROUPS:
        group(sub)
