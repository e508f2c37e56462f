"""Every party as its own process on 127.0.0.1: the demo's deployment, over TLS by default.

The phases of :class:`LocalDeployment` are the bootstrap of :mod:`ecash_tpm.deploy.bootstrap`
for all parties at once, with one base directory for data, configuration, logs and pids. The
deployment holds the central bank's CA (it made it), so it issues every TLS certificate with
it directly; clients built here trust the root only and expect each party's identity
(:meth:`LocalDeployment.client_kwargs`), and :meth:`LocalDeployment.probe_tls` is the
evidence the demo reports.
"""

from __future__ import annotations

import secrets
import ssl
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509

from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.deploy.bootstrap import (
    DEMO_DENOMINATIONS,
    MERCHANTS,
    PARTIES,
    CentralBankLink,
    Customer,
    DeployError,
    PartyInit,
    create_customer,
    init_bank,
    init_central_bank,
    init_issuer,
    init_merchant,
    init_supervision,
    init_ttp,
    new_admin_token,
    register_merchant,
    ttp_available,
    write_config,
)
from ecash_tpm.deploy.processes import LOOPBACK, PartyProcess, ProcessGroup, free_port
from ecash_tpm.deploy.tls import CENTRAL_BANK_NAME, TlsProbe, ca_issuer, install_tls, probe
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.pki import CrlSource, certificate_fingerprint, load_certificate
from ecash_tpm.service.settings import ServiceSettings
from ecash_tpm.supervision.settings import SupervisionSettings

__all__ = ["LocalDeployment"]


@dataclass
class LocalDeployment:
    """Every party as its own process on 127.0.0.1, data and configuration under ``base_dir``.

    Layout: ``config/<party>.toml``, ``<party>/`` (data dirs), ``customer/credentials.json``,
    ``logs/<party>.log``, ``run/parties.json`` (pids). Use the phases in order::

        dep = LocalDeployment.create(base)
        dep.start_central_bank()                         # its TLS certificate from the CA
        dep.init_parties(ek_trust=..., pcr_policy=...)   # certified over HTTPS
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
    #: Every party serves HTTPS with a certificate issued at bootstrap; ``False`` runs them
    #: with ``--insecure-http`` (benchmarks' baseline, local experiments).
    tls: bool = True
    _contexts: dict[str, ssl.SSLContext] = field(default_factory=dict, repr=False)

    @classmethod
    def create(
        cls, base_dir: Path, ports: Mapping[str, int] | None = None, *, tls: bool = True
    ) -> LocalDeployment:
        """A deployment in ``base_dir``; parties without a given port get a free one."""
        base = Path(base_dir).absolute()
        base.mkdir(mode=0o700, parents=True, exist_ok=True)
        with_ttp = ttp_available()
        chosen = dict(ports or {})
        for party in (*PARTIES, "ttp") if with_ttp else PARTIES:
            chosen.setdefault(party, free_port())
        token, digest = new_admin_token()
        return cls(base, chosen, ProcessGroup(base), token, digest, with_ttp=with_ttp, tls=tls)

    # --- where things are ---------------------------------------------------------------------

    def url(self, party: str) -> str:
        scheme = "https" if self.tls else "http"
        return f"{scheme}://{LOOPBACK}:{self.ports[party]}"

    def identity(self, party: str) -> tuple[str, str]:
        """``(role, name)`` a client expects at ``party``'s URL (the bank process also serves
        the group manager: its certificate names both, the bank's first)."""
        if party == "centralbank":
            return "centralbank", CENTRAL_BANK_NAME
        if party in MERCHANTS:
            return "merchant", party
        if party == "issuer":
            return "issuer", "issuer"
        return party, party

    def client_tls(self, *, client_of: str | None = None) -> ssl.SSLContext | None:
        """The client context every caller in this deployment uses: the central bank's root
        (the only trust anchor) and, with ``client_of``, that party's TLS certificate as
        client certificate (mutual TLS). ``None`` when the deployment runs plain HTTP."""
        if not self.tls:
            return None
        key = client_of or ""
        if key not in self._contexts:
            from ecash_tpm.service.tls import client_context

            client = None
            if client_of is not None:
                data = self.data_dir("bank" if client_of == "issuer" else client_of)
                client = (data / "tls-cert.pem", data / "tls-key.pem")
            self._contexts[key] = client_context(self.root_path, client=client)
        return self._contexts[key]

    def client_kwargs(self, party: str, *, client_of: str | None = None) -> dict[str, Any]:
        """``tls=`` and ``expect=`` for a client of ``party`` (nothing over plain HTTP)::

        BankClient(dep.url("bank"), **dep.client_kwargs("bank"))
        """
        context = self.client_tls(client_of=client_of)
        if context is None:
            return {}
        return {"tls": context, "expect": self.identity(party)}

    def probe_tls(self) -> dict[str, dict[str, Any]]:
        """One handshake with every running party: protocol, identity, mutual (the demo's
        evidence). Raises the client's ``tls.*`` error if one of them fails the checks."""
        context = self.client_tls()
        if context is None:
            return {}
        found: dict[str, dict[str, Any]] = {}
        for party in self.ports:
            if self.group.get(party) is None:
                continue
            seen: TlsProbe = probe(self.url(party), context)
            found[party] = seen.to_dict()
        return found

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
        if not self.tls:
            common["insecure_http"] = True
        if party != "centralbank":  # every certificate accepted is checked against its CRL
            common["crl_url"] = self.url("centralbank")
        return {**common, **values, **self.overrides.get(party, {})}

    def settings(self, party: str, cls: type[ServiceSettings]) -> Any:
        """The settings ``party`` reads from its configuration file (section of ``cls``)."""
        from ecash_tpm.service.settings import load_settings

        return load_settings(cls, path=self.config_path(party), environ={})

    # --- phases -------------------------------------------------------------------------------

    def start_central_bank(self) -> dict[str, Any]:
        """Root CA (operator console), its own TLS certificate, configuration with the
        admin-token hash, process up."""
        facts = init_central_bank(self.data_dir("centralbank"))
        if self.tls:
            from ecash_tpm.centralbank.settings import CentralBankSettings

            self.group.tls = self.client_tls()
            root = load_certificate(self.root_path.read_bytes())
            facts["tls"] = install_tls(
                "centralbank",
                CENTRAL_BANK_NAME,
                CentralBankSettings(data_dir=self.data_dir("centralbank")),
                root,
                ca_issuer(self.data_dir("centralbank")),
            )
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
        """Keys and configuration of every party; each key certified over HTTPS, each TLS
        certificate issued with the CA this deployment holds."""
        note = on_certified or (lambda _party, _init: None)
        root_pem = self.root_path.read_bytes()
        with CentralBankLink.connect(
            self.url("centralbank"),
            self.admin_token,
            root_fingerprint=certificate_fingerprint(root_pem),
            root_pem=root_pem if self.tls else None,
            tls_issue=ca_issuer(self.data_dir("centralbank")) if self.tls else None,
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
                "crl_url": self.url("centralbank"),
                **({} if self.tls else {"insecure_http": True}),
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
        bank = init_bank(self.settings("bank", BankSettings), link, with_issuer="issuer")
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
        self.group.tls = self.client_tls()
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

    def crl_source(self) -> CrlSource | None:
        """The central bank's CRL as a wallet of this deployment checks it (fetched from the
        central bank's ``/v1/crl``, as every party here does)."""
        from ecash_tpm.clients.revocation import crl_source

        return crl_source(
            root=self.root_path,
            crl_url=self.url("centralbank"),
            crl_file=None,
            insecure=not self.tls,
        )
