"""What the demo's steps hand to each other: one :class:`StoryContext`, plus the story's numbers.

Each step of :mod:`ecash_tpm.demo.steps` is a function of the context and the step's ``detail``
dict; a step reads what earlier steps left here (the deployment, the devices, the wallet, the
coins paid, ...) through accessors that fail with :class:`DemoCheckError` when a step is
missing, and registers everything it starts with :meth:`StoryContext.on_close` so that the
runner can stop it all, newest first.
"""

from __future__ import annotations

import contextlib
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.clients.bank import BankClient
from ecash_tpm.clients.merchant import MerchantClient
from ecash_tpm.demo.runner import StepRunner
from ecash_tpm.deploy.bootstrap import MERCHANTS, admin_bank
from ecash_tpm.deploy.local import LocalDeployment
from ecash_tpm.errors import EcashError

if TYPE_CHECKING:
    from ecash_tpm.crypto.groupsig import DaaSigner
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.swtpm import SwtpmInstance
    from ecash_tpm.wallet.coins import HeldCoin
    from ecash_tpm.wallet.membership import Membership
    from ecash_tpm.wallet.pay import PayResult
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

# --- the story's numbers ----------------------------------------------------------------------

PCRS = (0, 1, 2, 3, 7)
WITHDRAW_AMOUNT = 100
PAY_AMOUNT = 37
STOLEN_AMOUNT = 10
#: The short-lived keyset's value (not a regular denomination, so no other withdrawal uses it)
#: and how long after its creation its coins may be deposited.
EXPIRING_VALUE = 5
EXPIRING_WINDOW_S = 4
#: Fair exchange: the price of each of the two products, and the TTP's dispute window (the
#: cheating merchant's deadline to hand the key over before the TTP releases its own copy).
PRODUCT_PRICE = 3
DISPUTE_WINDOW_S = 3

# --- small helpers ----------------------------------------------------------------------------


#: Hears the story as it happens (``ecash-tpm demo --web``): called with the step's name, a
#: status and its data. Statuses: ``start``, ``ok``, ``failed`` (from
#: :func:`ecash_tpm.demo.story.run_story`), ``say``, ``fact``, and the kinds of structured facts
#: that :mod:`ecash_tpm.demo.observe` and a few steps publish. It never changes the report.
StoryObserver = Callable[[str, str, dict[str, Any]], None]


class DemoCheckError(EcashError):
    """Something the story expects did not happen (a refusal that did not come, ...)."""

    code = "demo.check_failed"


def now() -> int:
    """The wall clock in whole seconds (the clock the wallet library takes)."""
    return int(time.time())


def short(text: str, n: int = 16) -> str:
    """``text`` cut to ``n`` characters for narration."""
    return text if len(text) <= n else text[:n] + "..."


def error_of(call: Callable[[], Any]) -> EcashError | None:
    """The typed error ``call`` raises, or None if it succeeds."""
    try:
        call()
    except EcashError as exc:
        return exc
    return None


@dataclass(frozen=True)
class Refusal:
    """A party's refusal as the caller saw it: stable code and HTTP status."""

    code: str
    status: int | None
    detail: dict[str, Any]


def refusal(call: Callable[[], Any], *, what: str) -> Refusal:
    """Run ``call``, which a party must refuse; the refusal (the wallet's wrapper of a
    merchant's answer keeps the remote code and status, like RemoteCallError)."""
    try:
        call()
    except EcashError as exc:
        status = getattr(exc, "status", None)
        return Refusal(exc.code, exc.http_status if status is None else status, dict(exc.detail))
    raise DemoCheckError(f"{what} was accepted; it must be refused")


# --- what one step hands to a later one -------------------------------------------------------


@dataclass(frozen=True)
class Paid:
    """Step ``pay``'s purchase, for ``deposit`` and ``double_spend_rejected``."""

    offer: dict[str, Any]
    result: PayResult
    serials: tuple[bytes, ...]


@dataclass(frozen=True)
class Respent:
    """Step ``double_spend_rejected``'s re-spent coin, for ``double_spender_identified``."""

    sigma: bytes
    spend: dict[str, Any]


@dataclass(frozen=True)
class ExpiringCoin:
    """The coin of the short-lived keyset (step ``withdraw``), for ``expired_coin_rejected``."""

    keyset_id: str
    deposit_until: int
    sigma: bytes
    value: int


# --- the context ------------------------------------------------------------------------------


@dataclass
class StoryContext:
    """The demo's state from step to step; steps fill it in the order of the story."""

    runner: StepRunner
    workdir: Path
    tpms: dict[str, SwtpmInstance] = field(default_factory=dict)
    devices: dict[str, TpmDevice] = field(default_factory=dict)
    deployment: LocalDeployment | None = None
    membership: Membership | None = None
    store: WalletStore | None = None
    bank: BankClient | None = None
    merchants: dict[str, MerchantClient] = field(default_factory=dict)
    signer: TpmDaaSigner | None = None
    paid_order: Paid | None = None
    respent_coin: Respent | None = None
    expiring_coin: ExpiringCoin | None = None
    events: StoryObserver | None = None
    step_name: str = ""
    _closers: list[Callable[[], object]] = field(default_factory=list)

    @property
    def dep(self) -> LocalDeployment:
        if self.deployment is None:
            raise DemoCheckError("the parties are not deployed yet")
        return self.deployment

    @property
    def member(self) -> Membership:
        if self.membership is None:
            raise DemoCheckError("the wallet has not joined yet")
        return self.membership

    @property
    def wallet(self) -> WalletStore:
        if self.store is None:
            raise DemoCheckError("the wallet has no coin store yet")
        return self.store

    @property
    def bank_session(self) -> BankClient:
        if self.bank is None:
            raise DemoCheckError("the customer is not logged in")
        return self.bank

    @property
    def paid(self) -> Paid:
        if self.paid_order is None:
            raise DemoCheckError("the customer has not paid yet")
        return self.paid_order

    @property
    def respent(self) -> Respent:
        if self.respent_coin is None:
            raise DemoCheckError("no coin has been spent twice yet")
        return self.respent_coin

    @property
    def expiring(self) -> ExpiringCoin:
        if self.expiring_coin is None:
            raise DemoCheckError("the wallet holds no coin of the short-lived keyset")
        return self.expiring_coin

    @property
    def wallet_dir(self) -> Path:
        return self.workdir / "wallet-a"

    def say(self, text: str = "") -> None:
        self.runner.say(text)
        self.publish("say", {"text": text})

    def fact(self, label: str, value: object) -> None:
        self.runner.fact(label, value)
        self.publish("fact", {"label": label, "value": str(value)})

    def publish(self, status: str, data: dict[str, Any]) -> None:
        """Tell the observer, if there is one, what the current step is doing (the dashboard
        listens here; the progress lines and the ``--json`` report stay as they are)."""
        if self.events is not None:
            self.events(self.step_name, status, data)

    def on_close(self, closer: Callable[[], object]) -> None:
        """Have :meth:`close` call ``closer`` (what a step started must not outlive the demo)."""
        self._closers.append(closer)

    def close(self) -> None:
        """Stop everything the story started (processes by pid), newest first."""
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()

    # --- shared by several steps --------------------------------------------------------------

    def merchant(self, name: str) -> MerchantClient:
        """One client per merchant for the whole story."""
        if name not in self.merchants:
            client = MerchantClient(self.dep.url(name), **self.dep.client_kwargs(name))
            self.merchants[name] = client
            self.on_close(client.close)
        return self.merchants[name]

    def books(self) -> dict[str, int]:
        """The bank's ledger (operator view): customer, merchants, coins outstanding."""
        from ecash_tpm.bank.ledger import balance, customer_account, merchant_account

        with admin_bank(self.dep.bank_settings()) as bank:
            outstanding = int(bank.ledger_check()["outstanding_total"])
            with bank.db.read() as tx:
                out = {"customer": balance(tx, customer_account(self.dep.customer.account_id))}
                for name in MERCHANTS:
                    out[name] = balance(tx, merchant_account(name))
        out["outstanding"] = outstanding
        return out

    def wallet_balance(self) -> dict[str, int]:
        bal = self.wallet.balance().get(self.dep.currency, {})
        return {k: int(v) for k, v in bal.items()}

    def spend(
        self, hc: HeldCoin, offer: dict[str, Any], signer: DaaSigner | None = None
    ) -> dict[str, Any]:
        """A spend of ``hc`` for ``offer`` made with the TPM, whatever the coin's state in the
        wallet (what a modified wallet would do); checks the request like the wallet does."""
        from ecash_tpm.crypto.groupsig import make_spend_proof
        from ecash_tpm.protocol.coins import Spend, verify_payment_request

        req = verify_payment_request(offer["request"], offer["cert"], self.dep.root_pem())
        signer = signer if signer is not None else self.signer
        if signer is None:
            raise DemoCheckError("the wallet's TPM signer is not open")
        proof = make_spend_proof(
            signer,
            hop=self.member.opener_public,
            preq=req.preq,
            keyset_id=hc.coin.keyset_id,
            epoch=hc.coin.epoch,
            sigma=hc.coin.sigma,
            coin=hc.coin.credential,
            self_check=False,
        )
        return Spend(hc.coin, proof).to_dict()

    def deposit_at_bank(self, merchant: str, offer: dict[str, Any], spends: list[Any]) -> Any:
        """Merchant ``merchant``'s deposit straight at the bank (its own key, no local checks)."""
        from ecash_tpm.crypto.signing import PartyKey
        from ecash_tpm.merchant.settings import MerchantSettings
        from ecash_tpm.protocol.coins import sign_deposit

        settings = self.dep.settings(merchant, MerchantSettings)
        signed = sign_deposit(
            PartyKey.load(settings.resolved_key_file()),
            deposit_id="dep-" + secrets.token_hex(8),
            merchant_id=merchant,
            request=offer["request"],
            spends=spends,
        )
        cert = settings.resolved_cert_file().read_text("ascii")
        link = self.dep.client_kwargs("bank", client_of=merchant)  # mutual TLS as the shop
        with BankClient(self.dep.url("bank"), **link) as bank:
            return bank.deposit(signed, cert)
