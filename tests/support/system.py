"""A whole ecash-tpm system on 127.0.0.1 for end-to-end tests, benchmarks and the demo.

``start_system`` runs every party as a real HTTP server (``running_server``, uvicorn on a free
port of 127.0.0.1) in this process, each with its own SQLite database and keys in a directory
of ``base_dir``:

* a central-bank root CA (``ca/``) that certifies the bank, the issuer, the supervision
  department and two merchants (``shop-1``, ``shop-2``);
* the supervision department (opener key h, Hop = h*G), which receives member T0s and
  double-spend reports;
* the issuer (group manager), trusting the EK CA of the given swtpm, with a PCR policy (the
  TPM's current values when ``tpm`` is given, else trust-on-first-use);
* the bank with keysets for ``denominations``, one customer account (password + TOTP) funded
  with ``initial_balance``, both merchants registered;
* the two merchants, talking to the bank over HTTP.

Every party serves HTTPS (TLS 1.3) with a TLS certificate the root issued for its role and
name (``tls-cert.pem``/``tls-key.pem`` in its data directory), and every client checks the
server's chain and identity; calls between parties use mutual TLS with the caller's
certificate, as in a deployment. ``start_system(..., tls=False)`` runs every party with
``insecure_http`` instead, for the few tests (and the benchmarks' baseline) that need plain
HTTP.

All parties share one settable :class:`Clock`, so tests can move time (deadlines, keyset
windows, TOTP steps). Use::

    with start_system(tmp_path, swtpm=swtpm, tpm=tpm) as system:
        wallet = system.open_wallet(tpm, wallet_dir)        # attested join + store + TPM signer
        wallet.withdraw(100)                                # login (password + TOTP), blind, store
        paid = wallet.pay(37, "shop-1")                     # TPM spend proofs, merchant deposits
        wallet.recover()                                    # settle payments sent without answer
        system.customer_balance(), system.merchant_balance("shop-1"), system.outstanding()
        system.login(), system.bank_client(), system.merchant_client("shop-2")   # raw clients
        system.clock.advance(301)                           # move every party's time

With ``ttp=True`` a fair-exchange TTP (DESIGN §6) runs too, certified by the same root, asking
the bank over HTTP and the merchants at the URLs they register with; the merchants know its
URL::

        product = system.register_product("shop-1", title="song", price=5, content=b"...")
        result = wallet.buy(product.product_id, "shop-1")   # descriptor, X25519 key, pay, decrypt
        wallet.dispute(purchase_id)                         # key via the TTP (after its deadline)

No pytest import: benchmarks use it as a library (with ``tests/`` on ``sys.path``, import
``support.system``).
Everything is stopped on exit; files stay in ``base_dir`` (the caller's temporary directory).
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.twofactor.totp import TOTP

from ecash_tpm.apps.bank_wiring import HttpDoubleSpendReporter
from ecash_tpm.bank.accounts import ScryptParams
from ecash_tpm.bank.domain import BankDomain, BankPolicy
from ecash_tpm.bank.ledger import balance, customer_account, merchant_account
from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.bank.store import MIGRATIONS as BANK_MIGRATIONS
from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.clients.issuer import IssuerClient
from ecash_tpm.clients.merchant import MerchantClient
from ecash_tpm.clients.revocation import crl_source
from ecash_tpm.clients.supervision import HttpMemberRegistry, SupervisionClient
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import OpenerSecret
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.issuer.domain import IssuerService
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.routes import create_issuer_app
from ecash_tpm.issuer.settings import IssuerSettings
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.merchant.app import create_merchant_app
from ecash_tpm.merchant.domain import BankGateway, Merchant
from ecash_tpm.merchant.settings import MerchantSettings
from ecash_tpm.pki import cert_pem, load_certificate
from ecash_tpm.service.server import running_server
from ecash_tpm.service.tls import TlsFiles
from ecash_tpm.storage import Database, sqlite_url
from ecash_tpm.supervision.domain import SupervisionDepartment
from ecash_tpm.supervision.routes import create_supervision_app
from ecash_tpm.supervision.settings import SupervisionSettings
from support.certified import certify_epoch, keyset_certifier
from support.crl import CRL_VALID_S, publish_crl

__all__ = [
    "BINARY_DENOMINATIONS",
    "MERCHANTS",
    "Clock",
    "Customer",
    "System",
    "WalletHandle",
    "start_system",
]

BINARY_DENOMINATIONS = (1, 2, 4, 8, 16, 32, 64)
MERCHANTS = ("shop-1", "shop-2")
PCRS = (0, 1, 2, 3, 7)
_KEYS: list[rsa.RSAPrivateKey] = []
_KEYS_LOCK = threading.Lock()


class Clock:
    """Unix seconds, settable: shared by every party of a system."""

    def __init__(self, now: int | None = None) -> None:
        self._now = int(time.time()) if now is None else now
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self._now

    def advance(self, seconds: int) -> int:
        with self._lock:
            self._now += seconds
            return self._now


def _pooled_keygen() -> Callable[[int], rsa.RSAPrivateKey]:
    """RSA keys are the slow part of a bank start: reuse them across systems of one process.

    Each bank gets the process-wide keys in order (distinct keys for its keysets); sharing
    keys between *separate* test systems is harmless, they never see each other's coins.
    """
    used = 0

    def keygen(bits: int) -> rsa.RSAPrivateKey:
        nonlocal used
        if bits != 2048:
            return blindrsa.generate_key(bits)
        with _KEYS_LOCK:
            if used == len(_KEYS):
                _KEYS.append(blindrsa.generate_key(bits))
            key = _KEYS[used]
            used += 1
            return key

    return keygen


@dataclass
class Customer:
    """The bank customer the wallet belongs to."""

    account_id: str
    password: str
    totp_secret: bytes
    clock: Clock
    _last_step: int = -1

    def totp(self) -> str:
        """A TOTP code for the system clock; moves the clock to the next 30 s step if the
        current step's code was used already (the bank accepts each code once)."""
        step = self.clock() // 30
        if step <= self._last_step:
            self.clock.advance((self._last_step + 1) * 30 - self.clock())
            step = self.clock() // 30
        self._last_step = step
        totp = TOTP(self.totp_secret, 6, hashes.SHA1(), 30)  # noqa: S303 (RFC 6238)
        return totp.generate(self.clock()).decode("ascii")


class _LateRevoker:
    """Supervision starts before the issuer: revocations are forwarded once it runs."""

    def __init__(self) -> None:
        self.target: IssuerClient | None = None

    def revoke(self, member_id: str, evidence: dict[str, Any], cert: str | None) -> Any:
        if self.target is None:
            raise RuntimeError("issuer not running yet")
        return self.target.revoke(member_id, evidence, cert)


class _IssuerMembership:
    """The bank's MembershipCheck over the in-process issuer service."""

    def __init__(self, issuer: Callable[[], IssuerService]) -> None:
        self._issuer = issuer

    def is_active_member(self, account_id: str) -> bool:
        return self._issuer().account_may_withdraw(account_id)


@dataclass
class System:
    """A running system: URLs, in-process domain objects for assertions, helpers."""

    base_dir: Path
    clock: Clock
    ca: CentralBankCA
    root_pem: str
    opener: OpenerSecret
    customer: Customer
    currency: str
    issuer_url: str
    bank_url: str
    supervision_url: str
    merchant_urls: dict[str, str]
    issuer: IssuerService
    bank: BankDomain
    supervision: SupervisionDepartment
    merchants: dict[str, Merchant]
    ttp_url: str | None = None  # fair exchange (start_system(ttp=True))
    ttp: Any = None  # the in-process ecash_tpm.ttp.domain.Ttp
    tls: bool = True  # every party serves HTTPS (start_system(tls=False): plain HTTP)
    _closers: list[Callable[[], None]] = field(default_factory=list)
    _fx_clients: dict[str, Any] = field(default_factory=dict)  # fair-exchange clients, shared
    _merchant_clients: dict[str, MerchantClient] = field(default_factory=dict)
    _anonymous_bank: BankClient | None = None
    crl_path: Path | None = None  # the central bank's CRL every party checks (publish_crl)

    def publish_crl(self, valid_for_s: int | None = None) -> Path:
        """Publish the CA's current CRL (issued at the system clock's now) where every party
        reads it: what a deployment does after a revocation and before ``next_update``."""
        if self.crl_path is None:
            raise RuntimeError("this system has no CRL file")
        valid = CRL_VALID_S if valid_for_s is None else valid_for_s
        return publish_crl(self.ca, self.crl_path, self.clock(), valid)

    def crl_source(self) -> Any:
        """A fresh :class:`~ecash_tpm.pki.CrlSource` on the published CRL (as a wallet has)."""
        if self.crl_path is None:
            return None
        return crl_source(root=self.root_path, crl_url=None, crl_file=self.crl_path)

    @property
    def root_path(self) -> Path:
        return self.base_dir / "central-bank-root.pem"

    # --- clients -------------------------------------------------------------------------

    def link(self, role: str, name: str | None = None, *, client_of: str | None = None) -> Any:
        """``tls=``/``expect=`` for a client of the ``role`` called ``name`` (default: the
        role), as a wallet or operator makes it (``client_of``: that party's data directory
        name, for mutual TLS as the party); nothing over plain HTTP."""
        if not self.tls:
            return {}
        from ecash_tpm.service.tls import client_context

        client = None
        if client_of is not None:
            data = self.base_dir / client_of
            client = (data / "tls-cert.pem", data / "tls-key.pem")
        return {
            "tls": client_context(self.root_path, client=client),
            "expect": (role, name or role),
        }

    def client_tls(self) -> Any:
        """What a test's own ``httpx`` transport verifies with (a wrapper around
        ``httpx.HTTPTransport(verify=...)``): the root-only client context, or ``True``."""
        return self.link("bank").get("tls", True)

    def issuer_client(self) -> IssuerClient:
        client = IssuerClient(self.issuer_url, **self.link("issuer"))
        self._closers.append(client.close)
        return client

    def login(
        self, *, transport: httpx.BaseTransport | None = None, timeout: float = 30.0
    ) -> BankClient:
        """A :class:`BankClient` logged in as the customer (closed with the system)."""
        client = BankClient(
            self.bank_url, timeout=timeout, transport=transport, **self.link("bank")
        )
        self._closers.append(client.close)
        client.login(self.customer.account_id, self.customer.password, self.customer.totp())
        return client

    def bank_client(self, *, transport: httpx.BaseTransport | None = None) -> BankClient:
        """An anonymous :class:`BankClient` (keysets, coin status, deposits by hand)."""
        if transport is None and self._anonymous_bank is not None:
            return self._anonymous_bank
        client = BankClient(self.bank_url, transport=transport, **self.link("bank"))
        self._closers.append(client.close)
        if transport is None:
            self._anonymous_bank = client
        return client

    def bank_client_as(self, merchant: str) -> BankClient:
        """A :class:`BankClient` presenting ``merchant``'s TLS client certificate (mutual TLS):
        what the bank's merchant routes (deposit, reserve) require (closed with the system)."""
        client = BankClient(self.bank_url, **self.link("bank", client_of=merchant))
        self._closers.append(client.close)
        return client

    def merchant_client(
        self, name: str = MERCHANTS[0], *, transport: httpx.BaseTransport | None = None
    ) -> MerchantClient:
        """A client of merchant ``name``; without ``transport`` one shared client per shop
        (making an httpx client loads the CA bundle: ~40 ms)."""
        if transport is None and name in self._merchant_clients:
            return self._merchant_clients[name]
        link = self.link("merchant", name)
        client = MerchantClient(self.merchant_urls[name], transport=transport, **link)
        self._closers.append(client.close)
        if transport is None:
            self._merchant_clients[name] = client
        return client

    # --- fair exchange (issue 6) ------------------------------------------------------------

    def ttp_client(self) -> Any:
        """A :class:`~ecash_tpm.clients.ttp.TtpClient` (closed with the system)."""
        from ecash_tpm.clients.ttp import TtpClient

        if self.ttp_url is None:
            raise RuntimeError("start_system(ttp=True) to run a TTP")
        if "ttp" not in self._fx_clients:
            client = TtpClient(self.ttp_url, **self.link("ttp"))
            self._closers.append(client.close)
            self._fx_clients["ttp"] = client
        return self._fx_clients["ttp"]

    def shop_catalogue(self, merchant: str = MERCHANTS[0]) -> Any:
        """The shop's catalogue routes as the wallet reads them."""
        from ecash_tpm.wallet.purchases import ShopCatalogueClient

        if merchant not in self._fx_clients:
            client = ShopCatalogueClient(
                self.merchant_urls[merchant], **self.link("merchant", merchant)
            )
            self._closers.append(client.close)
            self._fx_clients[merchant] = client
        return self._fx_clients[merchant]

    def register_product(self, merchant: str, *, title: str, price: int, content: bytes) -> Any:
        """Register ``content`` with the TTP through ``merchant`` (its catalogue, in-process)."""
        catalogue = self.merchants[merchant].catalogue
        return catalogue.register(
            title=title, price=price, content=content, merchant_url=self.merchant_urls[merchant]
        )

    # --- the wallet's join ------------------------------------------------------------------

    def join(self, device: Any, wallet_dir: Path) -> Any:
        """Attested join of ``device`` (an open TpmDevice) for the customer account."""
        from ecash_tpm.wallet.join import join

        return join(
            device,
            self.issuer_client(),
            wallet_dir,
            account_id=self.customer.account_id,
            root=self.root_pem,
            bank=self.login(),  # the customer's own login authorises the join
        )

    def open_wallet(self, device: Any, wallet_dir: Path, *, join: bool = True) -> WalletHandle:
        """The wallet in ``wallet_dir`` on ``device`` (joined first unless ``join=False``)."""
        from ecash_tpm.wallet.membership import load_membership, open_signer
        from ecash_tpm.wallet.store import WalletStore

        if join:
            self.join(device, wallet_dir)
        membership = load_membership(wallet_dir)
        store = WalletStore.open(wallet_dir, self.clock)
        self._closers.append(store.close)
        signer = open_signer(device, wallet_dir, membership)
        handle = WalletHandle(self, Path(wallet_dir), store, membership, signer, device)
        self._closers.append(handle.close)
        return handle

    # --- balances --------------------------------------------------------------------------

    def _ledger(self, account: str) -> int:
        with self.bank.db.read() as tx:
            return balance(tx, account)

    def customer_balance(self) -> int:
        return self._ledger(customer_account(self.customer.account_id))

    def merchant_balance(self, name: str) -> int:
        return self._ledger(merchant_account(name))

    def outstanding(self) -> int:
        """Value of coins withdrawn and not yet deposited (sum over all keysets)."""
        with self.bank.db.read() as tx:
            rows = tx.fetchall(
                "SELECT SUM(amount) AS total FROM ledger_entry"
                " WHERE account LIKE 'coins-outstanding:%'"
            )
        return int(rows[0]["total"] or 0)


@dataclass
class WalletHandle:
    """A joined wallet of the system's customer: store, membership, TPM signer, bank login.

    Thin glue over :mod:`ecash_tpm.wallet.withdraw` / :mod:`ecash_tpm.wallet.pay` with the
    system's URLs, root and clock filled in.
    """

    system: System
    data_dir: Path
    store: Any  # WalletStore
    membership: Any  # Membership
    signer: Any  # TpmDaaSigner
    device: Any  # TpmDevice
    _bank: BankClient | None = None
    _buyer: Any = None  # fair exchange: wallet.purchases.Buyer

    def close(self) -> None:
        """Flush the DAA key from the TPM (swtpm has 3 object slots; it reloads on use)."""
        with contextlib.suppress(Exception):
            self.device.unload(self.signer.key)

    def bank(self) -> BankClient:
        """The logged-in bank client of this wallet (one login: TOTP codes are single use)."""
        if self._bank is None:
            self._bank = self.system.login()
        return self._bank

    def context(self) -> Any:
        """The :class:`~ecash_tpm.wallet.context.WalletContext` of this wallet."""
        from ecash_tpm.wallet.context import WalletContext

        system = self.system
        return WalletContext(
            self.store, system.root_pem, system.clock, "bank", crl=system.crl_source()
        )

    def spending(self, signer: Any = None) -> Any:
        """The :class:`~ecash_tpm.wallet.context.SpendingContext` with this wallet's TPM signer
        (or ``signer``, whose T0 is then not checked)."""
        if signer is not None:
            return self.context().spending(signer, hop=self.membership.opener_public)
        return self.context().spending(
            self.signer, hop=self.membership.opener_public, expected_t0=self.membership.t0
        )

    def withdraw(self, amount: int, *, bank: BankClient | None = None, **kw: Any) -> Any:
        from ecash_tpm.wallet.withdraw import withdraw

        return withdraw(
            self.context(),
            bank or self.bank(),
            credential=self.membership.credential,
            epoch=self.membership.epoch,
            amount=amount,
            currency=self.system.currency,
            **kw,
        )

    def resume_withdrawals(self, *, bank: BankClient | None = None) -> Any:
        from ecash_tpm.wallet.withdraw import resume_withdrawals

        return resume_withdrawals(self.context(), bank or self.bank())

    def request(self, amount: int, merchant: str = MERCHANTS[0]) -> dict[str, Any]:
        """A signed payment request from ``merchant`` (``{request, cert}``)."""
        return self.system.merchant_client(merchant).create_request(amount)

    def pay(
        self,
        amount: int | None = None,
        merchant: str = MERCHANTS[0],
        *,
        request: dict[str, Any] | None = None,
        transport: httpx.BaseTransport | None = None,
        signer: Any = None,
        **kw: Any,
    ) -> Any:
        """Pay ``amount`` at ``merchant`` (or a given ``{request, cert}``) with the TPM."""
        from ecash_tpm.wallet.pay import pay

        if request is None:
            if amount is None:
                raise ValueError("give an amount or a request")
            request = self.request(amount, merchant)
        client = self.system.merchant_client(merchant, transport=transport)
        return pay(
            self.spending(signer),
            request["request"],
            request["cert"],
            merchant=client,
            merchant_url=client.base_url,
            **kw,
        )

    # --- fair exchange (issue 6) ------------------------------------------------------------

    def buyer(self) -> Any:
        """A :class:`~ecash_tpm.wallet.purchases.Buyer` on this wallet (purchases.db in its
        dir)."""
        from ecash_tpm.wallet.purchases import Buyer, PurchaseStore

        if self._buyer is None:
            purchases = PurchaseStore.open(self.data_dir, self.system.clock)
            self.system._closers.append(purchases.close)
            self._buyer = Buyer(self.spending(), purchases)
        return self._buyer

    def buy(self, product_id: str, merchant: str = MERCHANTS[0], *, shop: Any = None) -> Any:
        """Buy a product from ``merchant`` (descriptor and ciphertext from the shop); ``shop``
        replaces the wallet's ``ShopApi`` (e.g. the benchmarks' online-TTP relay)."""
        client = self.system.merchant_client(merchant)
        shop = client if shop is None else shop
        return self.buyer().buy(
            product_id,
            source=self.system.shop_catalogue(merchant),
            shop=shop,
            merchant_url=client.base_url,
        )

    def dispute(self, purchase_id: str) -> Any:
        """Ask the TTP for the key of a purchase."""
        return self.buyer().dispute(purchase_id, ttp=self.system.ttp_client())

    def recover(self, **kw: Any) -> Any:
        from ecash_tpm.wallet.pay import recover_payments

        kw.setdefault("clock", self.system.clock)
        kw.setdefault("crl", self.system.crl_source())
        return recover_payments(
            self.store, self.system.bank_client(), root=self.system.root_pem, bank_name="bank", **kw
        )

    def balance(self) -> int:
        """Unspent, depositable value in the system currency."""
        return int(self.store.balance().get(self.system.currency, {}).get("unspent", 0))


def _certify(ca: CentralBankCA, role: str, name: str) -> tuple[PartyKey, str]:
    key = PartyKey.generate()
    return key, cert_pem(ca.certify(role, name, key.public_key))


def _write(path: Path, data: bytes | str, mode: int = 0o644) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data if isinstance(data, bytes) else data.encode("ascii"))
    path.chmod(mode)
    return path


def _tls_files(ca: CentralBankCA, role: str, name: str, data_dir: Path, root: Path) -> TlsFiles:
    """The party's TLS key and certificate (127.0.0.1, localhost) in ``data_dir``, 0600, where
    its settings look for them (so its own clients present them: mutual TLS)."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1())
    cert = ca.certify_tls(role, name, key.public_key(), hosts=("127.0.0.1", "localhost"))
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    cert_pem_bytes = cert.public_bytes(serialization.Encoding.PEM)
    return TlsFiles(
        cert=_write(data_dir / "tls-cert.pem", cert_pem_bytes, 0o600),
        key=_write(data_dir / "tls-key.pem", key_pem, 0o600),
        root=root,
    )


@contextlib.contextmanager
def start_system(
    base_dir: Path,
    *,
    swtpm: Any,
    tpm: Any = None,
    denominations: Sequence[int] = BINARY_DENOMINATIONS,
    initial_balance: int = 1000,
    currency: str = "EUR",
    clock: Clock | None = None,
    request_ttl_s: int = 300,
    reserve: bool = False,
    bank_policy: dict[str, Any] | None = None,
    merchant_banks: dict[str, BankGateway] | None = None,
    withdraw_period_s: int = 30 * 86400,
    deposit_period_s: int = 365 * 86400,
    ttp: bool = False,
    dispute_window_s: int = 600,
    merchant_admin_token: str | None = None,
    tls: bool = True,
    server_settings: dict[str, Any] | None = None,
) -> Iterator[System]:
    """Start the system (see the module docstring); stops every server on exit.

    ``tls=False``: every party serves plain HTTP (``insecure_http``), no TLS certificates.

    ``swtpm``: the SwtpmInstance whose EK CA the issuer trusts. ``tpm``: an open TpmDevice on
    it to take the PCR policy from (else TOFU). ``merchant_banks`` replaces a merchant's HTTP
    link to the bank (e.g. a timing wrapper for benchmarks).
    """
    base = Path(base_dir)
    tick = clock or Clock()
    with contextlib.ExitStack() as stack:
        ca = CentralBankCA.create(base / "ca")
        stack.callback(ca.close)
        root_pem = ca.root_pem().decode("ascii")
        root_path = _write(base / "central-bank-root.pem", root_pem)
        # The central bank's CRL, kept fresh by this "deployment" (System.publish_crl): every
        # party checks the certificates it accepts against it (docs/protocol.md, "Revocation").
        crl_path = base / "central-bank-crl.pem"
        publish_crl(ca, crl_path, tick(), CRL_VALID_S)
        plain: dict[str, Any] = {"insecure_http": True} if not tls else {}
        plain.update(server_settings or {})  # e.g. body_read_timeout_s for every party

        def tls_files(role: str, name: str, data_dir: Path) -> TlsFiles | None:
            """Issued before the party's app is made: its clients present them (mTLS)."""
            return _tls_files(ca, role, name, data_dir, root_path) if tls else None

        def link(role: str, name: str, caller: Path | None) -> dict[str, Any]:
            if not tls:
                return {}
            from ecash_tpm.service.tls import client_context

            client = None if caller is None else (caller / "tls-cert.pem", caller / "tls-key.pem")
            return {"tls": client_context(root_path, client=client), "expect": (role, name)}

        opener = OpenerSecret.generate()
        hop_b64 = b64u_encode(opener.public.encode())

        # supervision department
        sup_key, sup_cert = _certify(ca, "supervision", "supervision")
        revoker = _LateRevoker()
        sup_settings = SupervisionSettings(
            data_dir=base / "supervision", central_bank_root=root_path, crl_file=crl_path, **plain
        )
        _write(sup_settings.resolved_certificate_file(), sup_cert)
        sup_app = create_supervision_app(
            sup_settings, revoker=revoker, opener=opener, signer=sup_key, clock=tick
        )
        sup_tls = tls_files("supervision", "supervision", base / "supervision")
        sup_url = stack.enter_context(running_server(sup_app, tls=sup_tls))

        # issuer
        iss_key, iss_cert = _certify(ca, "issuer", "issuer")
        iss_dir = base / "issuer"
        keys = IssuerKeyStore.create(iss_dir / "issuer-keys")
        certify_epoch(ca, keys, tick)  # docs/protocol.md 3.6
        iss_tls = tls_files("issuer", "issuer", iss_dir)
        roots, inter = swtpm.ca_certificates()
        if tpm is not None:
            values = tpm.pcr_read(list(PCRS))
            policy = PcrPolicy(PCRS, {i: [values[i]] for i in PCRS})
        else:
            policy = PcrPolicy(PCRS, {}, tofu=True)
        sup_client = SupervisionClient(sup_url, **link("supervision", "supervision", iss_dir))
        stack.callback(sup_client.close)
        iss_app = create_issuer_app(
            IssuerSettings(
                data_dir=iss_dir, central_bank_root=root_path, crl_file=crl_path, **plain
            ),
            registry=HttpMemberRegistry(sup_client, iss_key, iss_cert),
            clock=tick,
            trust=EkTrustStore(tuple(roots), tuple(inter)),
            policy=policy,
            opener_public=opener.public,
        )
        iss_url = stack.enter_context(running_server(iss_app, tls=iss_tls))
        sup_dir = base / "supervision"
        revoker.target = stack.enter_context(
            IssuerClient(iss_url, **link("issuer", "issuer", sup_dir))
        )
        issuer: IssuerService = iss_app.state.issuer

        # bank
        bank_key, bank_cert = _certify(ca, "bank", "bank")
        bank_dir = base / "bank"
        bank_dir.mkdir(parents=True)
        bank_db = Database.open(sqlite_url(bank_dir / "bank.db"))
        stack.callback(bank_db.close)
        bank_db.migrate(BANK_MIGRATIONS, component="bank")
        from ecash_tpm.clients.connect import link as party_link

        bank_tls = tls_files("bank", "bank", bank_dir)
        reporter = HttpDoubleSpendReporter(
            sup_url,
            bank_cert,
            link=party_link(
                sup_url,
                role="supervision",
                name="supervision",
                root=root_path,
                client=None if bank_tls is None else (bank_tls.cert, bank_tls.key),
                insecure=not tls,
            ),
        )
        stack.callback(reporter.close)
        policy_kw: dict[str, Any] = {
            "currency": currency,
            "denominations": tuple(denominations),
            "scrypt": ScryptParams(n=2**10),
            "withdraw_period_s": withdraw_period_s,
            "deposit_period_s": deposit_period_s,
            **(bank_policy or {}),
        }
        bank = BankDomain(
            bank_db,
            bank_key=bank_key,
            bank_cert=load_certificate(bank_cert),
            central_bank_root=ca.root_certificate,
            keys_dir=bank_dir / "keysets",
            issuer_secrets=keys,
            membership=_IssuerMembership(lambda: issuer),
            reporter=reporter,
            opener_public=opener.public,
            policy=BankPolicy(**policy_kw),
            clock=tick,
            keygen=_pooled_keygen(),
            keyset_certifier=keyset_certifier(ca, tick),  # docs/protocol.md 4.1
            crl=crl_source(root=root_path, crl_url=None, crl_file=crl_path),
        )
        customer = Customer("alice", "correct horse battery", secrets.token_bytes(20), tick)
        bank.create_customer(
            customer.account_id,
            customer.password,
            customer.totp_secret,
            initial_balance=initial_balance,
        )
        bank_app = create_bank_app(
            bank, BankSettings(data_dir=bank_dir, currency=currency, **plain)
        )
        bank_url = stack.enter_context(running_server(bank_app, tls=bank_tls))

        # fair-exchange TTP (issue 6): certified by the root, asks the bank over HTTP
        ttp_url: str | None = None
        ttp_domain: Any = None
        if ttp:
            from ecash_tpm.ttp.routes import create_ttp_app
            from ecash_tpm.ttp.settings import TtpSettings

            ttp_key, ttp_cert = _certify(ca, "ttp", "ttp")
            ttp_settings = TtpSettings(
                data_dir=base / "ttp",
                bank_url=bank_url,
                dispute_window_s=dispute_window_s,
                crl_file=crl_path,
                **plain,
            )
            _write(ttp_settings.resolved_key_file(), ttp_key.private_pem(), 0o600)
            _write(ttp_settings.resolved_cert_file(), ttp_cert)
            _write(ttp_settings.resolved_root_cert(), root_pem)
            ttp_tls = tls_files("ttp", "ttp", base / "ttp")
            ttp_app = create_ttp_app(ttp_settings, clock=tick)
            ttp_url = stack.enter_context(running_server(ttp_app, tls=ttp_tls))
            ttp_domain = ttp_app.state.ttp

        # merchants
        merchant_urls: dict[str, str] = {}
        merchants: dict[str, Merchant] = {}
        for name in MERCHANTS:
            m_key, m_cert = _certify(ca, "merchant", name)
            bank.add_merchant(m_cert)
            settings = MerchantSettings(
                data_dir=base / name,
                name=name,
                bank_url=bank_url,
                bank_name="bank",
                opener_public=hop_b64,
                issuer_url=None,
                currencies=[currency],
                request_ttl_s=request_ttl_s,
                reserve=reserve,
                ttp_url=ttp_url,
                admin_token=merchant_admin_token,
                crl_file=crl_path,
                **plain,
            )
            _write(settings.resolved_key_file(), m_key.private_pem(), 0o600)
            _write(settings.resolved_cert_file(), m_cert)
            _write(settings.resolved_root_cert(), root_pem)
            m_tls = tls_files("merchant", name, base / name)
            app = create_merchant_app(settings, clock=tick, bank=(merchant_banks or {}).get(name))
            merchant_urls[name] = stack.enter_context(running_server(app, tls=m_tls))
            merchants[name] = app.state.merchant

        system = System(
            base_dir=base,
            clock=tick,
            ca=ca,
            root_pem=root_pem,
            opener=opener,
            customer=customer,
            currency=currency,
            issuer_url=iss_url,
            bank_url=bank_url,
            supervision_url=sup_url,
            merchant_urls=merchant_urls,
            issuer=issuer,
            bank=bank,
            supervision=sup_app.state.supervision,
            merchants=merchants,
            ttp_url=ttp_url,
            ttp=ttp_domain,
            tls=tls,
            crl_path=crl_path,
        )
        try:
            yield system
        finally:
            for close in reversed(system._closers):
                with contextlib.suppress(Exception):
                    close()
