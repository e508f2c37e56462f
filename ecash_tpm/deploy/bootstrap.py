"""Deployment bootstrap: keys, configuration and central-bank certificates for every party.

The same steps bring up the demo (every party a process on 127.0.0.1 under one base directory,
:class:`LocalDeployment`) and the docker/ stack (each container runs ``ecash-tpm deploy
init-party`` for its own role before ``serve``, see :mod:`ecash_tpm.cli.deploy_cmd`):

1. the central bank's root CA is made in its data directory (the operator's console next to
   the key) and the service runs with the SHA-256 of an admin token;
2. each party makes its own keys (``init_<role>``) and has its P-256 signing key certified over
   HTTP (``POST /v1/certify`` with the admin token, :class:`CentralBankLink`); certificate and
   root go into the party's data directory. Certificates still valid for the key, role and name
   are kept, so re-running a step (a container restart) changes nothing;
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
from ecash_tpm.deploy.processes import LOOPBACK, PartyProcess, ProcessGroup, free_port
from ecash_tpm.errors import ConfigError, EcashError
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.pki import (
    certificate_fingerprint,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.supervision.settings import SupervisionSettings

__all__ = [
    "DEMO_DENOMINATIONS",
    "MERCHANTS",
    "CentralBankLink",
    "Customer",
    "DeployError",
    "LocalDeployment",
    "PartyInit",
    "admin_bank",
    "create_customer",
    "init_bank",
    "init_central_bank",
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


@dataclass
class CentralBankLink:
    """A party's view of the central bank during bootstrap: the root (pinned by fingerprint
    when one is given) and certification with the admin token."""

    client: CentralBankClient
    root_pem: bytes

    @classmethod
    def connect(
        cls, url: str, admin_token: str, *, root_fingerprint: str | None = None
    ) -> CentralBankLink:
        client = CentralBankClient(url, admin_token=admin_token)
        try:
            root_pem = client.root_pem()
            got = certificate_fingerprint(root_pem)
            if root_fingerprint is not None and got != root_fingerprint.lower():
                raise DeployError(
                    "the central bank serves another root than the pinned one",
                    detail={"expected": root_fingerprint, "got": got},
                )
        except BaseException:
            client.close()
            raise
        return cls(client, root_pem)

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> CentralBankLink:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def root(self) -> x509.Certificate:
        return load_certificate(self.root_pem)

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
    info = keys.public_info().to_dict()
    facts = {
        "epoch": info["epoch"],
        "ek_trust_roots": len(store.roots),
        "ek_trust_intermediates": len(store.intermediates),
        "pcr_policy": PcrPolicy.load(policy_file).to_dict(),
    }
    return PartyInit("issuer", cert, facts, extra)


def init_bank(settings: BankSettings, link: CentralBankLink, *, name: str = "bank") -> PartyInit:
    """Bank key, certificate (role ``bank``), root, and a keyset for every denomination."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _party_key(settings.path("key_file"))
    cert = link.install(
        "bank", name, key, settings.path("cert_file"), settings.path("central_bank_root")
    )
    with admin_bank(settings, create=True) as bank:
        made = bank.ensure_keysets()
        keysets = bank.keysets.list_keysets(now=bank.clock())
    facts = {
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
    return PartyInit("merchant", cert, {"merchant_id": settings.name})


def init_ttp(settings: Any, link: CentralBankLink) -> PartyInit:
    """TTP key and certificate (role ``ttp``, CN = its name); ``settings``: ``TtpSettings``."""
    settings.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    key = _party_key(settings.resolved_key_file())
    cert = link.install(
        "ttp", settings.name, key, settings.resolved_cert_file(), settings.resolved_root_cert()
    )
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


# --- everything on 127.0.0.1 -------------------------------------------------------------------


@dataclass
class LocalDeployment:
    """Every party as its own process on 127.0.0.1, data and configuration under ``base_dir``.

    Layout: ``config/<party>.toml``, ``<party>/`` (data dirs), ``customer/credentials.json``,
    ``logs/<party>.log``, ``run/parties.json`` (pids). Use the phases in order::

        dep = LocalDeployment.create(base)
        dep.start_central_bank()
        dep.init_parties(ek_trust=..., pcr_policy=...)   # certified over HTTP
        dep.setup_bank()                                 # accounts, merchants
        dep.start_parties()
        ...
        dep.close()                                      # stops every process it started
    """

    base_dir: Path
    ports: dict[str, int]
    group: ProcessGroup
    admin_token: str
    admin_token_sha256: str
    currency: str = "EUR"
    initial_balance: int = 1000
    customer: Customer = field(default_factory=lambda: Customer.generate("alice"))
    open_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    opener_public: str | None = None
    inits: dict[str, PartyInit] = field(default_factory=dict)
    with_ttp: bool = False
    merchant_token: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    #: party -> settings that replace the deployment's own in its main section (set before
    #: :meth:`init_parties`; e.g. the TTP's dispute window).
    overrides: dict[str, dict[str, Any]] = field(default_factory=dict)
    #: party -> ``python -m`` module and arguments that :meth:`start_parties` runs instead of
    #: ``ecash_tpm <role> serve`` (``--config FILE`` is appended), e.g. a demo-only entry point.
    commands: dict[str, list[str]] = field(default_factory=dict)

    @classmethod
    def create(cls, base_dir: Path, ports: Mapping[str, int] | None = None) -> LocalDeployment:
        """A deployment in ``base_dir``; parties without a given port get a free one."""
        base = Path(base_dir).absolute()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        with_ttp = ttp_available()
        chosen = dict(ports or {})
        for party in (*PARTIES, "ttp") if with_ttp else PARTIES:
            chosen.setdefault(party, free_port())
        token, digest = new_admin_token()
        return cls(base, chosen, ProcessGroup(base), token, digest, with_ttp=with_ttp)

    # --- where things are ---------------------------------------------------------------------

    def url(self, party: str) -> str:
        return f"http://{LOOPBACK}:{self.ports[party]}"

    def data_dir(self, party: str) -> Path:
        return self.base_dir / party

    def config_path(self, party: str) -> Path:
        return self.base_dir / "config" / f"{party}.toml"

    @property
    def root_path(self) -> Path:
        return self.data_dir("centralbank") / "root-cert.pem"

    def _section(self, party: str, **values: Any) -> dict[str, Any]:
        """``party``'s main configuration section: common keys, ``values``, its overrides."""
        common = {
            "host": LOOPBACK,
            "port": self.ports[party],
            "data_dir": self.data_dir(party),
            "log_level": "info",
        }
        return {**common, **values, **self.overrides.get(party, {})}

    def settings(self, party: str, cls: type[ServiceSettings]) -> Any:
        """The settings ``party`` reads from its configuration file (section of ``cls``)."""
        from ecash_tpm.service.settings import load_settings

        return load_settings(cls, path=self.config_path(party), environ={})

    # --- phases -------------------------------------------------------------------------------

    def start_central_bank(self) -> dict[str, Any]:
        """Root CA (operator console), configuration with the admin-token hash, process up."""
        facts = init_central_bank(self.data_dir("centralbank"))
        write_config(
            self.config_path("centralbank"),
            {
                "centralbank": self._section(
                    "centralbank", admin_token_sha256=self.admin_token_sha256
                )
            },
        )
        self.group.start(
            "centralbank",
            ["centralbank", "serve", "--config", str(self.config_path("centralbank"))],
            self.ports["centralbank"],
        )
        return {**facts, "url": self.url("centralbank")}

    def init_parties(
        self,
        *,
        ek_trust: Sequence[x509.Certificate],
        pcr_policy: PcrPolicy | None,
        on_certified: Callable[[str, PartyInit], None] | None = None,
    ) -> dict[str, PartyInit]:
        """Keys and configuration of every party; each key certified over HTTP."""
        note = on_certified or (lambda _party, _init: None)
        fingerprint = certificate_fingerprint(self.root_path.read_bytes())
        with CentralBankLink.connect(
            self.url("centralbank"), self.admin_token, root_fingerprint=fingerprint
        ) as link:
            sup = self._init_supervision(link)
            note("supervision", sup)
            issuer, bank = self._init_bank_and_issuer(link, ek_trust, pcr_policy)
            note("issuer", issuer)
            note("bank", bank)
            for name in MERCHANTS:
                note(name, self._init_merchant(link, name))
            if self.with_ttp:
                note("ttp", self._init_ttp(link))
        return self.inits

    def _init_supervision(self, link: CentralBankLink) -> PartyInit:
        path = self.config_path("supervision")
        sections = {
            "supervision": self._section(
                "supervision",
                issuer_url=self.url("bank"),  # the bank process serves the group manager
                open_token=self.open_token,
            )
        }
        write_config(path, sections)
        init = init_supervision(self.settings("supervision", SupervisionSettings), link)
        sections["supervision"].update(init.settings)
        write_config(path, sections)
        self.opener_public = str(init.facts["opener_public"])
        self.inits["supervision"] = init
        return init

    def _init_bank_and_issuer(
        self,
        link: CentralBankLink,
        ek_trust: Sequence[x509.Certificate],
        pcr_policy: PcrPolicy | None,
    ) -> tuple[PartyInit, PartyInit]:
        from ecash_tpm.crypto.encoding import b64u_decode

        if self.opener_public is None:
            raise DeployError("the supervision department must be initialised first")
        path = self.config_path("bank")
        sections: dict[str, dict[str, Any]] = {
            "bank": self._section(
                "bank",
                currency=self.currency,
                opener_public=self.opener_public,
                supervision_url=self.url("supervision"),
                denominations=list(DEMO_DENOMINATIONS),
            ),
            "issuer": {
                "host": LOOPBACK,
                "data_dir": self.data_dir("issuer"),
                "supervision_url": self.url("supervision"),
                "log_level": "info",
            },
        }
        write_config(path, sections)
        issuer = init_issuer(
            self.settings("bank", IssuerSettings),
            link,
            opener_public=Point.decode(b64u_decode(self.opener_public)),
            ek_trust=ek_trust,
            pcr_policy=pcr_policy,
        )
        sections["issuer"].update(issuer.settings)
        write_config(path, sections)
        bank = init_bank(self.settings("bank", BankSettings), link)
        self.inits["issuer"], self.inits["bank"] = issuer, bank
        return issuer, bank

    def _init_merchant(self, link: CentralBankLink, name: str) -> PartyInit:
        fair_exchange: dict[str, Any] = {}
        if self.with_ttp:  # products are escrowed with the TTP (fair exchange)
            fair_exchange = {
                "ttp_url": self.url("ttp"),
                "public_url": self.url(name),
                "admin_token": self.merchant_token,
            }
        values = self._section(
            name,
            name=name,
            bank_url=self.url("bank"),
            bank_name="bank",
            opener_public=self.opener_public,
            currencies=[self.currency],
            **fair_exchange,
        )
        write_config(self.config_path(name), {"merchant": values})
        init = init_merchant(self.settings(name, MerchantSettings), link)
        self.inits[name] = init
        return init

    def _init_ttp(self, link: CentralBankLink) -> PartyInit:
        from ecash_tpm.ttp.settings import TtpSettings

        write_config(
            self.config_path("ttp"),
            {"ttp": self._section("ttp", name="ttp", bank_url=self.url("bank"))},
        )
        init = init_ttp(self.settings("ttp", TtpSettings), link)
        self.inits["ttp"] = init
        return init

    def setup_bank(self) -> dict[str, Any]:
        """The customer's account and both merchants' registrations at the bank."""
        settings = self.settings("bank", BankSettings)
        account = create_customer(settings, self.customer, self.initial_balance)
        path = self.data_dir("customer") / "credentials.json"
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        write_file_atomic(path, self.customer.to_json().encode("utf-8"), mode=0o600)
        merchants = []
        for name in MERCHANTS:
            cert_pem = self.settings(name, MerchantSettings).resolved_cert_file().read_bytes()
            merchants.append(register_merchant(settings, cert_pem))
        return {"account": account, "merchants": merchants}

    def start_parties(self, *, timeout: float = 60.0) -> list[PartyProcess]:
        """Start the other parties in parallel and wait until all of them answer."""
        argv = {
            "supervision": ["supervision", "serve"],
            "bank": ["bank", "serve", "--with-issuer"],
            **{name: ["merchant", "serve"] for name in MERCHANTS},
            **({"ttp": ["ttp", "serve"]} if self.with_ttp else {}),
        }
        started = []
        for party, args in argv.items():
            module, *role_args = self.commands.get(party, ["ecash_tpm", *args])
            role_args += ["--config", str(self.config_path(party))]
            started.append(self.group.spawn(party, role_args, self.ports[party], module=module))
        self.group.wait_healthy(started, timeout=timeout)
        return started

    def close(self) -> None:
        """Stop every process this deployment started (by pid)."""
        self.group.close()

    # --- operator views used by the story ---------------------------------------------------

    def bank_settings(self) -> BankSettings:
        settings: BankSettings = self.settings("bank", BankSettings)
        return settings

    def root_pem(self) -> bytes:
        return self.root_path.read_bytes()
