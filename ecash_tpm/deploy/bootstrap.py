"""Deployment bootstrap: keys, configuration and central-bank certificates for every party.

The same steps bring up the demo (every party a process on 127.0.0.1 under one base
directory, :class:`~ecash_tpm.deploy.local.LocalDeployment`) and the docker/ stack (each
container runs ``ecash-tpm deploy init-party`` for its own role before ``serve``, see
:mod:`ecash_tpm.cli.deploy_cmd`):

1. the central bank's root CA is made in its data directory (the operator's console next to
   the key) and the service runs with the SHA-256 of an admin token;
2. each party makes its own keys (``init_<role>``) and has its P-256 signing key certified over
   HTTPS (``POST /v1/certify`` with the admin token, :class:`CentralBankLink`), and its TLS key
   too (``tls-cert.pem``/``tls-key.pem``, :mod:`ecash_tpm.deploy.tls`); certificates and root go
   into the party's data directory. Certificates still valid for the key, role and name are
   kept, so re-running a step (a container restart) changes nothing. Every party then serves
   HTTPS (TLS 1.3, the central bank's root the only trust anchor) and every URL is https://;
3. the bank gets its keysets, customer accounts and merchant registrations (operator actions
   on its database: :func:`admin_bank`);
4. the parties start (``ecash-tpm <role> serve --config FILE``; the bank serves the group manager
   it operates with ``--with-issuer``).

What a party learns during its init and must be configured with (the opener key Hop for the
bank and the merchants, trust-anchor paths) comes back as :attr:`PartyInit.settings`: the demo
writes it into the party's TOML, the container entrypoint exports it as ``ECASH_TPM_*``.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import json
import secrets
import ssl
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from ecash_tpm.bank.domain import BankDomain
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.centralbank.settings import hash_admin_token
from ecash_tpm.clients.centralbank import CentralBankClient
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import PartyKey, write_file_atomic
from ecash_tpm.deploy.tls import (
    CENTRAL_BANK_NAME,
    LOCAL_HOSTS,
    TlsIssue,
    install_tls,
)
from ecash_tpm.errors import ConfigError, EcashError
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.pki import (
    certificate_fingerprint,
    load_certificate,
    tls_identity,
    verify_party_certificate,
)
from ecash_tpm.supervision.settings import SupervisionSettings

__all__ = [
    "DEMO_DENOMINATIONS",
    "MERCHANTS",
    "CentralBankLink",
    "Customer",
    "DeployError",
    "PartyInit",
    "admin_bank",
    "certify_bank_keysets",
    "create_customer",
    "init_bank",
    "init_central_bank",
    "init_central_bank_tls",
    "init_issuer",
    "init_merchant",
    "init_supervision",
    "init_ttp",
    "new_admin_token",
    "register_merchant",
    "ttp_available",
]

#: Binary denominations: a wallet holding 1, 2, 4 ... can pay any amount up to its balance
#: exactly (payments are change-free); seven RSA keys keep the bank's start-up short.
DEMO_DENOMINATIONS = (1, 2, 4, 8, 16, 32, 64)
#: The two shops of the demo (certificate CN = merchant id).
MERCHANTS = ("merchant-a", "merchant-b")
#: The parties of a local deployment (the bank process serves the group manager too); the TTP
#: joins them where it is installed (:func:`ttp_available`).
PARTIES = ("centralbank", "supervision", "bank", *MERCHANTS)
#: Renew a kept certificate when it expires sooner than this.
_RENEW_BEFORE_S = 7 * 86400
ROOT_FILE = "central-bank-root.pem"


class DeployError(ConfigError):
    """A bootstrap step failed (unexpected root, a party's files inconsistent, ...)."""

    code = "deploy.failed"


# --- central bank ------------------------------------------------------------------------------


def new_admin_token() -> tuple[str, str]:
    """A fresh admin bearer token and the SHA-256 the central bank is configured with."""
    token = secrets.token_urlsafe(32)
    return token, hash_admin_token(token)


def init_central_bank(data_dir: Path, *, name: str = "ecash-tpm central bank") -> dict[str, Any]:
    """Create the root CA in ``data_dir`` (kept if it exists); returns its fingerprint."""
    with CentralBankCA.open(data_dir, name=name) as ca:
        root = ca.root_certificate
        return {
            "root_subject": root.subject.rfc4514_string(),
            "root_fingerprint": ca.root_fingerprint(),
            "root_not_after": int(root.not_valid_after_utc.timestamp()),
        }


def _fetch_root_unverified(url: str, timeout: float = 10.0) -> bytes:
    """``GET /v1/root`` over a TLS connection whose certificate is not checked yet.

    A party's first start has nothing to check the central bank's certificate with: it learns
    the root here and pins it (``--root-fingerprint``, or the root it already holds). The
    answer is trusted only after that comparison and after a second, verified connection
    whose server certificate chains to the very root (:meth:`CentralBankLink.connect`); no
    credential is sent on this one.
    """
    import httpx

    blind = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    blind.minimum_version = ssl.TLSVersion.TLSv1_3
    blind.check_hostname = False
    blind.verify_mode = ssl.CERT_NONE
    try:
        with httpx.Client(verify=blind, timeout=timeout) as client:
            response = client.get(url.rstrip("/") + "/v1/root")
    except httpx.HTTPError as exc:
        raise DeployError(
            f"cannot fetch the central bank's root from {url}", detail={"url": url}
        ) from exc
    if response.status_code != 200:
        raise DeployError(
            "the central bank did not serve its root",
            detail={"url": url, "status": response.status_code},
        )
    return response.content


def init_central_bank_tls(settings: Any, *, hosts: Sequence[str] = LOCAL_HOSTS) -> PartyInit:
    """The central bank's own TLS key and certificate, issued by its CA on its database.

    The central bank cannot ask itself over HTTPS before it serves, so its certificate is
    issued here, before ``serve``, by the CA in ``settings.data_dir`` on
    ``settings.database_url`` (made now when ``init_if_missing``, as the service would):
    the certificate is in the CA's log like every other and revocable the same way.
    ``settings``: ``CentralBankSettings``.
    """
    from ecash_tpm.centralbank.store import MIGRATIONS
    from ecash_tpm.service.database import open_party_database

    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    db = open_party_database(settings, MIGRATIONS, mode="create", component="centralbank")
    try:
        if settings.init_if_missing:
            ca = CentralBankCA.open(settings.data_dir, database=db, name=settings.root_name)
        else:
            ca = CentralBankCA.load(settings.data_dir, database=db)
        with ca:

            def issue(
                role: str, name: str, public_key: Any, names: Sequence[str]
            ) -> x509.Certificate:
                return ca.certify_tls(role, name, public_key, hosts=tuple(names))

            tls = install_tls(
                "centralbank",
                CENTRAL_BANK_NAME,
                settings,
                ca.root_certificate,
                issue,
                hosts=hosts,
            )
            facts = {"root_fingerprint": ca.root_fingerprint()}
    finally:
        db.close()
    return PartyInit("centralbank", {"tls": tls}, facts)


@dataclass
class CentralBankLink:
    """A party's view of the central bank during bootstrap: the root (pinned by fingerprint
    when one is given), certification with the admin token, and TLS certificates.

    Over https the client checks the central bank's certificate against the root and its
    identity (``centralbank``) before the admin token leaves the process. ``tls_issue``
    replaces ``POST /v1/certify-tls`` where the bootstrap holds the CA itself;
    ``tls_hosts`` are the names the party's TLS certificate is issued for.
    """

    client: CentralBankClient
    root_pem: bytes
    tls_issue: TlsIssue | None = None
    tls_hosts: tuple[str, ...] = LOCAL_HOSTS
    #: The parties get TLS certificates (the central bank is reached over https).
    with_tls: bool = True

    @classmethod
    def connect(
        cls,
        url: str,
        admin_token: str,
        *,
        root_fingerprint: str | None = None,
        root_pem: bytes | None = None,
        tls_hosts: Sequence[str] = LOCAL_HOSTS,
        tls_issue: TlsIssue | None = None,
    ) -> CentralBankLink:
        """Connect to the central bank at ``url``; ``root_pem``: the root already held (else
        it is fetched and must match ``root_fingerprint`` when one is given)."""
        tls: dict[str, Any] = {}
        if url.startswith("https://"):
            from ecash_tpm.service.tls import client_context

            if root_pem is None:
                root_pem = _fetch_root_unverified(url)
                _check_pin(root_pem, root_fingerprint)
            held = _root_file_for(root_pem)
            tls = {
                "tls": client_context(held),
                "expect": ("centralbank", CENTRAL_BANK_NAME),
            }
        client = CentralBankClient(url, admin_token=admin_token, **tls)
        try:
            served = client.root_pem()
            _check_pin(served, root_fingerprint)
            if root_pem is not None and certificate_fingerprint(served) != (
                certificate_fingerprint(root_pem)
            ):
                raise DeployError("the central bank serves another root than the one held")
        except BaseException:
            client.close()
            raise
        return cls(client, served, tls_issue, tuple(tls_hosts), bool(tls) or tls_issue is not None)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CentralBankLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> x509.Certificate:
        return load_certificate(self.root_pem)

    def issue_tls(
        self, role: str, name: str, public_key: Any, hosts: Sequence[str]
    ) -> x509.Certificate:
        """A TLS certificate for ``role``/``name``: from the CA held, else over the admin API."""
        if self.tls_issue is not None:
            return self.tls_issue(role, name, public_key, hosts)
        answer: Any = self.client.certify_tls(role, name, public_key, hosts=list(hosts))  # type: ignore[attr-defined,unused-ignore]
        pem = answer if isinstance(answer, str | bytes) else getattr(answer, "cert", answer)
        if isinstance(pem, x509.Certificate):
            return pem
        return load_certificate(pem)

    def install_tls(
        self, role: str, name: str, settings: Any, *, extra_hosts: Sequence[str] = ()
    ) -> dict[str, Any]:
        """The party's TLS key and certificate in its data directory (kept while good)."""
        hosts = (*self.tls_hosts, *extra_hosts)
        return install_tls(role, name, settings, self.root, self.issue_tls, hosts=hosts)

    def install(
        self, role: str, name: str, key: PartyKey, cert_path: Path, root_path: Path
    ) -> dict[str, Any]:
        """Write the root and a certificate for ``key`` (kept if still good, else certified
        now over HTTP); returns what the certificate says."""
        write_file_atomic(root_path, self.root_pem, mode=0o644)
        cert = self._kept(role, name, key, cert_path)
        issued = cert is None
        if cert is None:
            answer = self.client.certify(role, name, key.public_key)
            cert = load_certificate(answer.cert)
            write_file_atomic(cert_path, answer.cert.encode("ascii"), mode=0o644)
        return {
            "role": role,
            "name": name,
            "serial": format(cert.serial_number, "x"),
            "fingerprint": certificate_fingerprint(cert),
            "subject": cert.subject.rfc4514_string(),
            "issuer": cert.issuer.rfc4514_string(),
            "not_after": int(cert.not_valid_after_utc.timestamp()),
            "issued_now": issued,
            "cert_file": str(cert_path),
        }

    def _kept(
        self, role: str, name: str, key: PartyKey, cert_path: Path
    ) -> x509.Certificate | None:
        if not cert_path.exists():
            return None
        soon = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=_RENEW_BEFORE_S)
        try:
            cert = load_certificate(cert_path.read_bytes())
            public = verify_party_certificate(cert, self.root, role=role, name=name, now=soon)
        except (OSError, EcashError):
            return None
        if public.public_numbers() != key.public_key.public_numbers():
            return None
        return cert


def _add_tls(
    cert: dict[str, Any],
    link: CentralBankLink,
    role: str,
    name: str,
    settings: Any,
    *,
    extra_hosts: Sequence[str] = (),
) -> None:
    """Add the party's TLS certificate (``cert["tls"]``) when the deployment runs TLS."""
    if link.with_tls:
        cert["tls"] = link.install_tls(role, name, settings, extra_hosts=extra_hosts)


def _check_pin(root_pem: bytes, pin: str | None) -> None:
    got = certificate_fingerprint(root_pem)
    if pin is not None and got != pin.lower():
        raise DeployError(
            "the central bank serves another root than the pinned one",
            detail={"expected": pin, "got": got},
        )


def _root_file_for(root_pem: bytes) -> Path:
    """A file holding ``root_pem`` (TLS contexts load their anchor from a file): in the
    user's cache directory, named by the root's fingerprint, so it never changes content."""
    import os
    import tempfile

    base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "ecash-tpm"
    try:
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError:
        base = Path(tempfile.gettempdir())
    path = base / f"root-{certificate_fingerprint(root_pem)[:32]}.pem"
    if not path.exists():
        write_file_atomic(path, root_pem, mode=0o644)
    return path


def _party_key(path: Path) -> PartyKey:
    """The party's P-256 key in ``path``, made (0600) on first use."""
    if path.exists():
        return PartyKey.load(path)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = PartyKey.generate()
    key.save(path)
    return key


@dataclass(frozen=True)
class PartyInit:
    """What one party's bootstrap did: its certificate, facts to show, settings to configure."""

    role: str
    certificate: dict[str, Any]
    facts: dict[str, Any] = field(default_factory=dict)
    settings: dict[str, Any] = field(default_factory=dict)


def _root_path(configured: Path | None, data_dir: Path) -> tuple[Path, dict[str, Any]]:
    """Where the party keeps the central-bank root, and the setting to add if it is unset."""
    if configured is not None:
        return Path(configured), {}
    path = data_dir / ROOT_FILE
    return path, {"central_bank_root": str(path)}


# --- parties -----------------------------------------------------------------------------------


def init_supervision(
    settings: SupervisionSettings, link: CentralBankLink, *, name: str = "supervision"
) -> PartyInit:
    """Opener secret h (0600) and Hop, signing key, certificate (role ``supervision``)."""
    from ecash_tpm.supervision.keys import (
        OPENER_PUBLIC_FILE,
        create_opener_secret,
        load_opener_secret,
        write_opener_public,
    )

    data = settings.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    key_path = settings.resolved_opener_key_file()
    opener = load_opener_secret(key_path) if key_path.exists() else create_opener_secret(key_path)
    write_opener_public(data / OPENER_PUBLIC_FILE, opener.public)
    key = _party_key(settings.resolved_signing_key_file())
    root_path, extra = _root_path(settings.central_bank_root, data)
    cert = link.install("supervision", name, key, settings.resolved_certificate_file(), root_path)
    _add_tls(cert, link, "supervision", name, settings)
    hop = b64u_encode(opener.public.encode())
    return PartyInit("supervision", cert, {"opener_public": hop}, extra)


def init_issuer(
    settings: IssuerSettings,
    link: CentralBankLink,
    *,
    opener_public: Point,
    ek_trust: Sequence[x509.Certificate] = (),
    pcr_policy: PcrPolicy | None = None,
    name: str = "issuer",
) -> PartyInit:
    """Epoch secret, EK trust store, PCR policy, Hop, signing key and certificate (``issuer``).

    ``pcr_policy`` replaces the policy file; without one an existing file is kept and a
    missing one becomes the default (all-zero PCRs, what a swtpm without firmware reports).
    """
    from ecash_tpm.issuer.keys import IssuerKeyStore
    from ecash_tpm.issuer.trust import EkTrustStore
    from ecash_tpm.supervision.keys import OPENER_PUBLIC_FILE, write_opener_public

    data = settings.data_dir
    data.mkdir(mode=0o700, parents=True, exist_ok=True)
    keys = IssuerKeyStore.create(settings.resolved_key_dir())
    trust_dir = settings.resolved_trust_dir()
    EkTrustStore.install(trust_dir, ek_trust)
    store = EkTrustStore.load(trust_dir)
    policy_file = settings.resolved_policy_file()
    if pcr_policy is not None:
        pcr_policy.save(policy_file)
    elif not policy_file.exists():
        PcrPolicy.default().save(policy_file)
    write_opener_public(data / OPENER_PUBLIC_FILE, opener_public)
    key = _party_key(settings.resolved_signing_key_file())
    root_path, extra = _root_path(settings.central_bank_root, data)
    cert = link.install("issuer", name, key, settings.resolved_certificate_file(), root_path)
    _add_tls(cert, link, "issuer", name, settings)
    info = keys.public_info().to_dict()
    _certify_epoch(keys, link, name)
    facts = {
        "epoch": info["epoch"],
        "ek_trust_roots": len(store.roots),
        "ek_trust_intermediates": len(store.intermediates),
        "pcr_policy": PcrPolicy.load(policy_file).to_dict(),
    }
    return PartyInit("issuer", cert, facts, extra)


def _certify_epoch(keys: Any, link: CentralBankLink, name: str) -> None:
    """docs/protocol.md 3.6: the central bank certifies the current epoch's (X, Y) once; the
    issuer hands the certificate to every member with its credential (kept when present). A
    kept certificate made before issue 14 (no X2, Y2) is upgraded once: same X, Y, with G2."""
    epoch = keys.current_epoch
    held = keys.epoch_certificate(epoch)
    body = held.get("body") if isinstance(held, dict) else None
    if held is None or (isinstance(body, dict) and not {"X2", "Y2"} <= body.keys()):
        doc = link.client.certify_issuer_epoch(name, epoch, keys.public_for_epoch(epoch))
        keys.save_epoch_certificate(epoch, doc)


def certify_bank_keysets(bank: BankDomain, central_bank: CentralBankClient) -> Any:
    """docs/protocol.md 4.1: have the central bank certify the bank's published keysets (the
    list wallets withdraw under) and keep it where ``GET /v1/keysets`` serves it; returns the
    :class:`~ecash_tpm.protocol.certified.CertifiedKeysetList`."""
    descriptors = bank.keysets.signed_descriptors(now=bank.clock())
    return bank.install_keyset_list(
        central_bank.certify_keyset_list(bank.bank_cert_pem(), descriptors)
    )


def init_bank(
    settings: BankSettings,
    link: CentralBankLink,
    *,
    name: str = "bank",
    with_issuer: str | None = None,
) -> PartyInit:
    """Bank key, certificate (role ``bank``), root, and a keyset for every denomination.

    ``with_issuer``: the name of the group manager the bank serves in its own process
    (``bank serve --with-issuer``); its TLS identity is added to the bank's TLS certificate,
    so a client that expects the issuer at that URL finds it there.
    """
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _party_key(settings.path("key_file"))
    cert = link.install(
        "bank", name, key, settings.path("cert_file"), settings.path("central_bank_root")
    )
    also = () if with_issuer is None else (tls_identity("issuer", with_issuer),)
    _add_tls(cert, link, "bank", name, settings, extra_hosts=also)
    with admin_bank(settings, create=True) as bank:
        made = bank.ensure_keysets()
        keysets = bank.keysets.list_keysets(now=bank.clock())
        listed = certify_bank_keysets(bank, link.client)
    facts = {
        "keyset_list": listed.to_summary(),
        "keysets_created": len(made),
        "denominations": sorted({k.value for k in keysets}),
        "currency": settings.currency,
    }
    return PartyInit("bank", cert, facts)


def init_merchant(settings: MerchantSettings, link: CentralBankLink) -> PartyInit:
    """Merchant key and certificate (role ``merchant``, CN = the merchant id)."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _party_key(settings.resolved_key_file())
    cert = link.install(
        "merchant",
        settings.name,
        key,
        settings.resolved_cert_file(),
        settings.resolved_root_cert(),
    )
    _add_tls(cert, link, "merchant", settings.name, settings)
    return PartyInit("merchant", cert, {"merchant_id": settings.name})


def init_ttp(settings: Any, link: CentralBankLink) -> PartyInit:
    """TTP key and certificate (role ``ttp``, CN = its name); ``settings``: ``TtpSettings``."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _party_key(settings.resolved_key_file())
    cert = link.install(
        "ttp", settings.name, key, settings.resolved_cert_file(), settings.resolved_root_cert()
    )
    _add_tls(cert, link, "ttp", settings.name, settings)
    return PartyInit("ttp", cert, {"name": settings.name})


def ttp_available() -> bool:
    """True when this installation has the fair-exchange TTP (``ecash-tpm ttp``)."""
    import importlib.util

    return importlib.util.find_spec("ecash_tpm.cli.ttp_cmd") is not None


# --- the bank's operator actions ---------------------------------------------------------------


@contextlib.contextmanager
def admin_bank(
    settings: BankSettings,
    *,
    keygen: Callable[[int], rsa.RSAPrivateKey] | None = None,
    create: bool = False,
) -> Iterator[BankDomain]:
    """The bank's domain on its database, for operator actions (no issuer, no reports).

    ``keygen`` replaces RSA key generation for new keysets (e.g. a key made in advance, so
    a keyset's windows can be fixed after the slow part). Only :func:`init_bank` may
    ``create`` the database: every other action needs the bank it made, so a forgotten
    ``database_url`` is an error (``storage.database_missing``, ``storage.schema_missing``,
    ``config.database_mismatch``) instead of a registration in a stale or new SQLite file.
    """
    from ecash_tpm.apps.bank_wiring import AdminOnly
    from ecash_tpm.bank.store import MIGRATIONS
    from ecash_tpm.service.database import open_party_database

    db = open_party_database(
        settings,
        MIGRATIONS,
        mode="create" if create else "existing",
        hint="initialise the bank first (ecash-tpm deploy init-party --role bank)",
    )
    try:
        stub = AdminOnly()
        kwargs: dict[str, Any] = {} if keygen is None else {"keygen": keygen}
        yield BankDomain.from_settings(
            settings, db, issuer_secrets=stub, membership=stub, reporter=stub, **kwargs
        )
    finally:
        db.close()


def register_merchant(settings: BankSettings, cert_pem: str | bytes) -> dict[str, Any]:
    """Register (or re-key) a merchant at the bank from its central-bank certificate."""
    with admin_bank(settings) as bank:
        return bank.add_merchant(cert_pem).to_dict()


@dataclass(frozen=True)
class Customer:
    """A bank customer's credentials (password and TOTP secret), as the customer keeps them."""

    account_id: str
    password: str
    totp_secret: bytes

    def totp(self, now: float | None = None) -> str:
        """The current RFC 6238 code (SHA-1, 6 digits, 30 s)."""
        totp = TOTP(self.totp_secret, 6, hashes.SHA1(), 30)  # noqa: S303 (RFC 6238)
        return totp.generate(time.time() if now is None else now).decode("ascii")

    def to_json(self) -> str:
        return json.dumps(
            {
                "account_id": self.account_id,
                "password": self.password,
                "totp_secret": base64.b32encode(self.totp_secret).decode("ascii"),
            },
            indent=2,
        )

    @classmethod
    def generate(cls, account_id: str) -> Customer:
        return cls(account_id, secrets.token_urlsafe(18), secrets.token_bytes(20))


def create_customer(settings: BankSettings, customer: Customer, balance: int) -> dict[str, Any]:
    """Open the customer's account (scrypt password + TOTP) with an initial balance."""
    with admin_bank(settings) as bank:
        return bank.create_customer(
            customer.account_id, customer.password, customer.totp_secret, initial_balance=balance
        ).to_dict()


# --- configuration files -----------------------------------------------------------------------


def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, str | Path):
        return json.dumps(str(value))  # JSON string escapes are valid TOML basic strings
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise DeployError(f"cannot write {type(value).__name__} to TOML")


def write_config(path: Path, sections: Mapping[str, Mapping[str, Any]]) -> Path:
    """Write a TOML file with one table per section (0600: it may hold tokens)."""
    lines = ["# written by ecash-tpm's deployment bootstrap (ecash_tpm/deploy/bootstrap.py)"]
    for section, values in sections.items():
        lines.append(f"\n[{section}]")
        lines += [f"{key} = {_toml_value(v)}" for key, v in values.items() if v is not None]
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    write_file_atomic(path, ("\n".join(lines) + "\n").encode("utf-8"), mode=0o600)
    return path
