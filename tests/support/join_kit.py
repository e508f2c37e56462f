"""Shared helpers for the join, issuer, supervision and wallet-join tests (no tests here).

Imported by those modules as ``from support.join_kit import ...`` (pytest puts tests/ on sys.path).
"""

from __future__ import annotations

import datetime as dt
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.serialization import Encoding
from cryptography.x509.oid import NameOID

from ecash_tpm.attest import parse_tpm2b_public
from ecash_tpm.attest.efi import EFI_GLOBAL_VARIABLE, variable_data
from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.clients.issuer import IssuerClient
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import OpenerSecret
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.issuer.domain import IssuerService
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.routes import create_issuer_app
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.protocol.api.issuer import JoinStartRequest
from ecash_tpm.protocol.join_auth import JOIN_AUTHORISATION_KIND, JoinAuthorisation, join_binding
from ecash_tpm.protocol.registry import InMemoryRegistry, MemberRegistry
from ecash_tpm.service.server import running_server
from ecash_tpm.swtpm.firmware import SYNTHETIC_BOOT, SyntheticEvent, measure_boot

PCRS = (0, 1, 2, 3, 7)


def swtpm_trust(swtpm: Any) -> EkTrustStore:
    """The hermetic CA of a swtpm instance as an EK trust store."""
    roots, inter = swtpm.ca_certificates()
    return EkTrustStore(tuple(roots), tuple(inter))


def current_policy(tpm: Any, pcrs: tuple[int, ...] = PCRS) -> PcrPolicy:
    """A policy whose golden values are the TPM's current ones (robust to other tests)."""
    values = tpm.pcr_read(list(pcrs))
    return PcrPolicy(pcrs, {i: [values[i]] for i in pcrs})


@dataclass
class IssuerEnv:
    """A running issuer on 127.0.0.1 with its domain object and registry."""

    url: str
    client: IssuerClient
    service: IssuerService
    registry: MemberRegistry
    opener: OpenerSecret
    data_dir: Path
    authority: JoinAuthority

    def member_rows(self) -> list[dict[str, Any]]:
        """Members straight from the database (not through the API)."""
        with self.service.db.read() as tx:
            return tx.fetchall("SELECT member_id, status, account_id FROM member")

    def authorisation(
        self, account_id: str, ak_public: bytes, *, ttl: int = 120, issued_at: int | None = None
    ) -> dict[str, Any]:
        """``{authorisation, cert}`` as the bank would sign it for ``account_id``'s login."""
        return self.authority.authorise(account_id, ak_public, ttl=ttl, issued_at=issued_at)

    def start_request(self, tpm: Any, keys: Any, account_id: str) -> JoinStartRequest:
        """join/start body with every further EK and a fresh bank authorisation."""
        from ecash_tpm.wallet.join import start_request

        grant = self.authorisation(account_id, keys.ak.public)
        return start_request(tpm, keys, account_id, grant)

    def authorised(self, req: JoinStartRequest) -> JoinStartRequest:
        """``req`` with a fresh authorisation for its (maybe altered) account and AK."""
        grant = self.authorisation(req.account_id, req.ak_public)
        return req.model_copy(
            update={"authorisation": grant["authorisation"], "authorisation_cert": grant["cert"]}
        )

    def join(self, tpm: Any, wallet_dir: Path, account_id: str, **kw: Any) -> Any:
        """The wallet's whole join, authorised by this test bank."""
        from ecash_tpm.wallet.join import join

        return join(
            tpm,
            self.client,
            wallet_dir,
            account_id=account_id,
            bank=self.bank_for(account_id),
            **kw,
        )

    def bank_for(self, account_id: str) -> Any:
        """A stand-in for a BankClient logged in as ``account_id`` (join authorisations only)."""
        return self.authority.bank_for(account_id)

    def join_row(self, join_id: str) -> dict[str, Any] | None:
        with self.service.db.read() as tx:
            return tx.fetchone(
                "SELECT consumed_at, outcome, secret FROM join_session WHERE join_id = :j",
                {"j": join_id},
            )


class JoinAuthority:
    """A central bank root with a certified bank key that signs join authorisations, as the
    bank's ``POST /v1/join-authorisation`` does, and a supervision key for revocation lifts
    (issuer tests without a bank). Certificates start 30 days back so that tests may move the
    issuer's clock into the past."""

    def __init__(self, directory: Path, clock: Callable[[], float] | None = None) -> None:
        start = dt.datetime.now(dt.UTC) - dt.timedelta(days=30)
        self.ca = CentralBankCA.create(directory, now=start)
        self.root_pem = self.ca.root_pem().decode("ascii")
        self.bank_key, self.supervision_key = PartyKey.generate(), PartyKey.generate()
        self.bank_cert_pem, self.supervision_cert_pem = (
            self.ca.certify(role, role, key.public_key, not_before=start, valid_days=90)
            .public_bytes(Encoding.PEM)
            .decode("ascii")
            for role, key in (("bank", self.bank_key), ("supervision", self.supervision_key))
        )
        self.clock = clock or time.time

    def sign(
        self, account_id: str, binding: str, *, ttl: int = 120, issued_at: int | None = None
    ) -> dict[str, Any]:
        now = int(self.clock()) if issued_at is None else issued_at
        body = JoinAuthorisation(account_id, binding, secrets.token_bytes(16), now, now + ttl)
        doc = sign_object(self.bank_key, JOIN_AUTHORISATION_KIND, body.to_body())
        return {"authorisation": doc, "cert": self.bank_cert_pem}

    def bank_for(self, account_id: str) -> Any:
        """A stand-in for a BankClient logged in as ``account_id`` (join authorisations only)."""
        authority = self

        class _Bank:
            def join_authorisation(self, binding: str) -> dict[str, Any]:
                return authority.sign(account_id, binding)

        return _Bank()

    def authorise(
        self, account_id: str, ak_public: bytes, *, ttl: int = 120, issued_at: int | None = None
    ) -> dict[str, Any]:
        return self.sign(account_id, join_binding(ak_public), ttl=ttl, issued_at=issued_at)


#: The bank's service token for the issuer's member list in these tests.
MEMBERS_TOKEN = "members-" + "m" * 24


@contextmanager
def issuer_env(
    data_dir: Path,
    *,
    trust: EkTrustStore,
    policy: PcrPolicy,
    registry: MemberRegistry | None = None,
    clock: Callable[[], float] | None = None,
    opener: OpenerSecret | None = None,
    authority: JoinAuthority | None = None,
    **settings: Any,
) -> Iterator[IssuerEnv]:
    """Start an issuer (fresh SQLite DB and epoch key in ``data_dir``) over real HTTP."""
    IssuerKeyStore.create(data_dir / "issuer-keys")
    own = authority is None
    authority = authority or JoinAuthority(data_dir / "pki", clock)
    # the TLS-anchor path: the issuer checks bank join authorisations against it
    (data_dir / "central-bank-root.pem").write_text(authority.root_pem)
    opener = opener or OpenerSecret.generate()
    reg = registry if registry is not None else InMemoryRegistry()
    settings.setdefault("members_token", MEMBERS_TOKEN)
    app = create_issuer_app(
        IssuerSettings(data_dir=data_dir, **settings),
        registry=reg,
        clock=clock,
        trust=trust,
        policy=policy,
        opener_public=opener.public,
    )
    with running_server(app) as url, IssuerClient(url, token=settings["members_token"]) as client:
        try:
            yield IssuerEnv(url, client, app.state.issuer, reg, opener, data_dir, authority)
        finally:
            if own:
                authority.ca.close()


# --- certificates for attack scenarios ---------------------------------------------------------


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(
    cn: str = "Other TPM Root", *, days: int = 3650
) -> tuple[x509.Certificate, ec.EllipticCurvePrivateKey]:
    """A self-signed CA (another manufacturer's root, unknown to the issuer)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=365))
        .not_valid_after(now + dt.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=1), critical=True)
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
        .sign(key, hashes.SHA256())
    )
    return cert, key


def make_ek_cert(
    ek_public: bytes,
    ca_cert: x509.Certificate,
    ca_key: ec.EllipticCurvePrivateKey,
    *,
    not_before: dt.datetime,
    not_after: dt.datetime,
) -> bytes:
    """An EK certificate (DER) for the TPM's real EK public key, issued by ``ca_cert``."""
    key = parse_tpm2b_public(ek_public).to_crypto_key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([]))
        .issuer_name(ca_cert.subject)
        .public_key(key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.DirectoryName(_name("TPM"))]), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(Encoding.DER)


def point_of(public: bytes) -> Point:
    pt = parse_tpm2b_public(public).ecc_point()
    return Point.from_xy_bytes(pt.x, pt.y)


# --- measured boot ------------------------------------------------------------------------------


def synthetic_boot(*, secure_boot: bool = True) -> tuple[SyntheticEvent, ...]:
    """The swtpm's synthetic boot (ecash_tpm.swtpm.firmware), with Secure Boot off if asked."""
    marker = "SecureBoot".encode("utf-16-le")
    value = b"\x01" if secure_boot else b"\x00"
    return tuple(
        replace(ev, data=variable_data(EFI_GLOBAL_VARIABLE, "SecureBoot", value))
        if marker in ev.data
        else ev
        for ev in SYNTHETIC_BOOT
    )


def booted_swtpm(factory: Callable[..., Any], events: tuple[SyntheticEvent, ...]) -> Any:
    """A new swtpm whose PCRs hold ``events`` (not the standard boot), with their event log."""
    inst = factory(start=False)
    inst.measured_boot = False  # PCRs stay zero at start; measure our own boot instead
    inst.start()
    inst.event_log_path.write_bytes(measure_boot(inst.host, inst.port, events=events))
    return inst


def flip(data: bytes, pos: int) -> bytes:
    """``data`` with the byte at ``pos`` changed."""
    return data[:pos] + bytes([data[pos] ^ 0x01]) + data[pos + 1 :]


# --- a stand-in bank for CLI joins (login + join authorisation only) ----------------------------


@contextmanager
def fake_bank(authority: JoinAuthority, password_file: Path) -> Iterator[list[str]]:
    """A plain-HTTP bank with ``/v1/login`` and ``/v1/join-authorisation`` signing with
    ``authority``'s bank key; yields the ``wallet join`` flags that use it."""
    from fastapi import FastAPI, Header

    app = FastAPI()

    @app.get("/healthz")
    def healthz() -> dict[str, Any]:
        return {"status": "ok"}

    @app.post("/v1/login")
    def login(body: dict[str, Any]) -> dict[str, Any]:
        return {"token": "t-" + str(body["account_id"]), "expires_at": int(time.time()) + 600}

    @app.post("/v1/join-authorisation")
    def join_authorisation(
        body: dict[str, Any], authorization: str = Header(default="")
    ) -> dict[str, Any]:
        account = authorization.removeprefix("Bearer ").removeprefix("t-")
        return authority.sign(account, str(body["binding"]))

    password_file.write_text("pw\n")
    with running_server(app) as url:
        yield ["--bank", url, "--password-file", str(password_file), "--totp", "000000"]
