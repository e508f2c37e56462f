"""``ecash-tpm demo``: the whole system told as one story, every party its own process.

The story (DESIGN §1, §4, §5), one step each, in this order (:data:`STEPS`):

1. ``provision_tpm``: two hermetic swtpm, device A (the customer's) and device B (a thief's);
2. ``certify_parties``: the central bank starts and certifies the supervision department, the
   group manager, the bank and two merchants over HTTP; every party starts on 127.0.0.1;
3. ``join``: device A joins the group (EK chain, AK, ActivateCredential, PCR quote, DAA proof);
4. ``withdraw``: the customer logs in (password + TOTP) and withdraws 100 as blind-signed coins
   (plus one coin of a keyset whose deposit window closes a few seconds later, for step 10);
5. ``pay``: 37 at merchant A with one TPM spend proof per coin;
6. ``deposit``: merchant A deposited; the bank's receipt is checked, balances on every side;
7. ``double_spend_rejected``: a re-spend of one of those coins at merchant B gets 409;
8. ``double_spender_identified``: the bank's report was opened by the supervision department;
   its openings name the member and are verified here;
9. ``stolen_coin_rejected``: a copy of the wallet on device B cannot spend;
10. ``expired_coin_rejected``: the short-lived keyset's coin is refused by merchant and bank;
11. ``audit``: the bank reports its money supply to the central bank; the supervision
    department audits the bank's database against it;
12. ``fair_exchange``: digital goods with an offline TTP (DESIGN §6): an honest purchase at
    merchant A that never involves the TTP, then a purchase at merchant B, which withholds
    the content key, resolved by the TTP releasing its escrowed key and striking merchant B.

The wallet runs in
this process on device A through the wallet library (its CLI does the same calls); attacks
that a correct wallet refuses to make are played by small helpers, as a modified wallet would.
"""

from __future__ import annotations

import concurrent.futures
import contextlib
import datetime as dt
import json
import secrets
import shutil
import signal
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ecash_tpm.clients.bank import BankClient
from ecash_tpm.clients.merchant import MerchantClient
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import DaaSigner
from ecash_tpm.demo.runner import StepFailed, StepRunner
from ecash_tpm.deploy.bootstrap import MERCHANTS, LocalDeployment, PartyInit, admin_bank
from ecash_tpm.deploy.processes import PartyProcess, port_is_free
from ecash_tpm.errors import EcashError

if TYPE_CHECKING:
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.swtpm import SwtpmInstance
    from ecash_tpm.wallet.coins import HeldCoin, SplitStrategy
    from ecash_tpm.wallet.membership import Membership
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.tpm_signer import TpmDaaSigner
    from ecash_tpm.wallet.withdraw import WithdrawResult

STEPS: tuple[str, ...] = (
    "provision_tpm",
    "certify_parties",
    "join",
    "withdraw",
    "pay",
    "deposit",
    "double_spend_rejected",
    "double_spender_identified",
    "stolen_coin_rejected",
    "expired_coin_rejected",
    "audit",
    "fair_exchange",
)

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

TITLES = {
    "provision_tpm": "Two hermetic TPMs: device A (the customer's), device B (a thief's)",
    "certify_parties": "The central bank certifies every party; each starts as its own process",
    "join": "Device A joins the group: EK chain, AK, PCR quote, DAA key",
    "withdraw": f"The customer withdraws {WITHDRAW_AMOUNT} as blind-signed coins",
    "pay": f"The customer pays {PAY_AMOUNT} at merchant A with TPM spend proofs",
    "deposit": "Merchant A deposited; the bank's receipt comes back",
    "double_spend_rejected": "A tampered wallet spends one of those coins again at merchant B",
    "double_spender_identified": "The supervision department opens both transcripts, names "
    "the member",
    "stolen_coin_rejected": "A copy of the wallet on device B tries to spend",
    "expired_coin_rejected": "A coin of an expired keyset is spent",
    "audit": "The bank reports its money supply; the supervision department audits the bank",
    "fair_exchange": "Digital goods with an offline TTP: an honest shop, then a cheating one",
}


class DemoCheckError(EcashError):
    """Something the story expects did not happen (a refusal that did not come, ...)."""

    code = "demo.check_failed"


def _now() -> int:
    return int(time.time())


def _short(text: str, n: int = 16) -> str:
    return text if len(text) <= n else text[:n] + "..."


def _error_of(call: Callable[[], Any]) -> EcashError | None:
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


def _refusal(call: Callable[[], Any], *, what: str) -> Refusal:
    """Run ``call``, which a party must refuse; the refusal (the wallet's wrapper of a
    merchant's answer keeps the remote code and status, like RemoteCallError)."""
    try:
        call()
    except EcashError as exc:
        status = getattr(exc, "status", None)
        return Refusal(exc.code, exc.http_status if status is None else status, dict(exc.detail))
    raise DemoCheckError(f"{what} was accepted; it must be refused")


@dataclass
class Story:
    """The demo's state from step to step, and the steps themselves."""

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
    paid: dict[str, Any] = field(default_factory=dict)
    respent: dict[str, Any] = field(default_factory=dict)
    expiring: dict[str, Any] = field(default_factory=dict)
    _closers: list[Callable[[], object]] = field(default_factory=list)

    # --- helpers ------------------------------------------------------------------------------

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
    def wallet_dir(self) -> Path:
        return self.workdir / "wallet-a"

    def say(self, text: str = "") -> None:
        self.runner.say(text)

    def fact(self, label: str, value: object) -> None:
        self.runner.fact(label, value)

    def merchant(self, name: str) -> MerchantClient:
        if name not in self.merchants:
            client = MerchantClient(self.dep.url(name))
            self.merchants[name] = client
            self._closers.append(client.close)
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
        from ecash_tpm.protocol.coins import Spend
        from ecash_tpm.protocol.payments import verify_payment_request

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
        with BankClient(self.dep.url("bank")) as bank:
            return bank.deposit(signed, cert)

    # --- the story ----------------------------------------------------------------------------

    def run(self) -> None:
        """Every step in order; the first failure ends the story (StepFailed)."""
        bodies: dict[str, Callable[[dict[str, Any]], None]] = {
            "provision_tpm": self.provision_tpm,
            "certify_parties": self.certify_parties,
            "join": self.join,
            "withdraw": self.withdraw,
            "pay": self.pay,
            "deposit": self.deposit,
            "double_spend_rejected": self.double_spend,
            "double_spender_identified": self.identify,
            "stolen_coin_rejected": self.stolen,
            "expired_coin_rejected": self.expired,
            "audit": self.audit,
            "fair_exchange": self.fair_exchange,
        }
        for name in STEPS:
            with self.runner.step(name, TITLES[name]) as detail:
                bodies[name](detail)

    # 1 -----------------------------------------------------------------------------------------

    def provision_tpm(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.device import TpmDevice
        from ecash_tpm.swtpm import SwtpmInstance

        tpms = {dev: SwtpmInstance(self.workdir / f"tpm-{dev.lower()}") for dev in ("A", "B")}
        self.tpms = tpms
        with concurrent.futures.ThreadPoolExecutor(max_workers=2) as pool:
            for future in [pool.submit(t.provision) for t in tpms.values()]:
                future.result()
        for dev, tpm in tpms.items():
            tpm.start()  # from this thread: the emulator dies with the demo
            self._closers.append(tpm.stop)
            device = TpmDevice(tpm.tcti)
            self.devices[dev] = device
            self._closers.append(device.close)
            facts = self._tpm_facts(dev, tpm, device)
            detail[f"device_{dev.lower()}"] = facts

    def _tpm_facts(self, dev: str, tpm: SwtpmInstance, device: TpmDevice) -> dict[str, Any]:
        from ecash_tpm.attest import verify_ek_certificate

        info = device.info()
        roots, inters = tpm.ca_certificates()
        eks = {}
        for kind, raw in info.ek_certificates.items():
            cert = verify_ek_certificate(raw, roots, inters)
            eks[kind.value] = {
                "subject": cert.subject.rfc4514_string() or "(empty)",
                "issuer": cert.issuer.rfc4514_string(),
                "chain": "valid",
            }
        who = "the customer's" if dev == "A" else "a thief's, for the stolen copy"
        self.say(f"      device {dev} ({who}): swtpm pid {tpm.pid}, {tpm.tcti}")
        self.fact(
            "manufacturer",
            f"{info.manufacturer} ({info.vendor}), firmware "
            f"{info.firmware_version}, spec {info.spec_version}",
        )
        self.fact(
            "EK certificates",
            ", ".join(eks) + f" (CA inside the work dir: {roots[0].subject.rfc4514_string()})",
        )
        self.fact("ECDAA on BN_P256", "yes" if info.bn_p256_supported else "NO")
        return {
            "tcti": tpm.tcti,
            "pid": tpm.pid,
            "manufacturer": info.manufacturer,
            "firmware": info.firmware_version,
            "pcr_banks": info.pcr_banks,
            "ecdaa_bn_p256": info.ecdaa_supported and info.bn_p256_supported,
            "eks": eks,
        }

    # 2 -----------------------------------------------------------------------------------------

    def certify_parties(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.issuer.policy import PcrPolicy

        dep = LocalDeployment.create(self.workdir)
        self.deployment = dep
        self._closers.append(dep.close)
        # Merchant B withholds content keys (case 1 of the fair-exchange seed); the TTP gives
        # merchants a short deadline so the dispute resolves within the demo.
        dep.overrides["merchant-b"] = {"cheat": "no_key"}
        dep.overrides["ttp"] = {"dispute_window_s": DISPUTE_WINDOW_S}
        cb = dep.start_central_bank()
        self.fact("central bank", f"{cb['url']}, root {cb['root_subject']}")
        self.fact("root fingerprint", f"SHA-256 {cb['root_fingerprint']}")
        detail["central_bank"] = {"url": cb["url"], "root_fingerprint": cb["root_fingerprint"]}

        golden = self.devices["A"].pcr_read(list(PCRS))
        policy = PcrPolicy(PCRS, {i: [golden[i]] for i in PCRS})
        self.fact(
            "issuer's PCR policy",
            f"sha256 PCRs {list(PCRS)} must equal golden values (device A's platform as "
            "provisioned; all-zero: swtpm has no firmware measurements); TOFU off",
        )
        self.fact("issuer's EK trust", "the CAs of device A's and device B's manufacturer")
        trust = [c for tpm in self.tpms.values() for c in sum(tpm.ca_certificates(), [])]
        certs: dict[str, Any] = {}
        self.fact("certification", "each party's P-256 key, POST /v1/certify with the admin token:")

        def certified(party: str, init: PartyInit) -> None:
            c = init.certificate
            certs[party] = {k: c[k] for k in ("role", "name", "serial", "fingerprint")}
            self.say(
                f"        {party:<12} role {c['role']:<12} CN={c['name']:<12} serial {c['serial']}"
            )

        dep.init_parties(ek_trust=trust, pcr_policy=policy, on_certified=certified)
        detail["certificates"] = certs
        setup = dep.setup_bank()
        account = setup["account"]
        self.fact(
            "customer account",
            f"{account['account_id']}: {account['balance']} {account['currency']} "
            "(scrypt password + TOTP)",
        )
        self.fact("merchants registered", ", ".join(m["merchant_id"] for m in setup["merchants"]))
        dep.start_parties()
        self.fact("parties", "each its own process on 127.0.0.1, own data dir, SQLite, config:")
        parties = {}
        for party in dep.group.parties:
            role = "bank + group manager" if party.name == "bank" else party.name
            parties[party.name] = {"pid": party.pid, "url": party.url}
            self.say(f"        {role:<21} {party.url:<24} pid {party.pid}")
        detail["parties"] = parties

    # 3 -----------------------------------------------------------------------------------------

    def join(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.attest import verify_ek_certificate
        from ecash_tpm.clients.issuer import IssuerClient
        from ecash_tpm.wallet.join import (
            answer_challenge,
            finalize_membership,
            prepare_keys,
            release_keys,
            start_request,
        )

        device, dep = self.devices["A"], self.dep
        with IssuerClient(dep.url("bank")) as issuer:
            info = issuer.info()
            keys = prepare_keys(device, self.wallet_dir)
            try:
                start = start_request(device, keys, dep.customer.account_id)
                roots, inters = self.tpms["A"].ca_certificates()
                ek = verify_ek_certificate(start.ek_cert, roots, inters)
                chain = self._chain(ek, roots + inters)
                self.fact(
                    "EK", f"{keys.ek_kind.value}, certificate chain (the issuer verifies it):"
                )
                for hop in chain:
                    self.say(f"        {hop['subject']}  <-  issued by {hop['issuer']}")
                self.fact("AK", f"restricted signing key, name {_short(keys.ak.name.hex(), 20)}")
                challenge = issuer.join_start(start)
                self.fact(
                    "join/start",
                    f"join {_short(challenge.join_id, 12)}: MakeCredential "
                    f"to the EK, nonce {_short(challenge.nonce.hex(), 16)}",
                )
                finish = answer_challenge(device, keys, challenge)
                pcrs = {int(i): v.hex() for i, v in finish.pcr_values.items()}
                bank = challenge.pcr_selection.bank
                self.fact(
                    "PCR quote",
                    f"{bank} PCRs {sorted(pcrs)} signed by the AK, qualifying "
                    "data from the activated credential",
                )
                for i, value in sorted(pcrs.items()):
                    self.say(f"        PCR {i:>2} = {value}")
                self.fact(
                    "PCR policy",
                    f"PCRs {list(info.pcr_selection.pcrs)} must equal the issuer's golden "
                    "values (checked with the quote at join/finish)",
                )
                answer = issuer.join_finish(finish)
                membership = finalize_membership(
                    self.wallet_dir,
                    keys=keys,
                    start=start,
                    finish=finish,
                    answer=answer,
                    info=info,
                    issuer_url=issuer.base_url,
                )
            finally:
                release_keys(device, keys)
            record = issuer.member(membership.member_id)
        self.membership = membership
        self.fact(
            "member",
            f"{membership.member_id} (epoch {membership.epoch}, "
            f"{record.status}); credential proof checked by the wallet",
        )
        detail.update(
            member_id=membership.member_id,
            epoch=membership.epoch,
            status=record.status,
            account_id=membership.account_id,
            ek={"type": keys.ek_kind.value, "chain": chain, "fingerprint": record.ek_fingerprint},
            ak_name=keys.ak.name.hex(),
            pcr_values=pcrs,
            pcr_policy={"bank": bank, "pcrs": list(info.pcr_selection.pcrs), "mode": "allow-list"},
        )

    @staticmethod
    def _chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[dict[str, str]]:
        """EK -> intermediate -> root as subject/issuer pairs (the verifier checked the hops)."""
        chain, cert = [], leaf
        for _ in range(len(pool) + 1):
            chain.append(
                {
                    "subject": cert.subject.rfc4514_string() or "(empty subject)",
                    "issuer": cert.issuer.rfc4514_string(),
                }
            )
            if cert.subject == cert.issuer:
                break
            parent = next((c for c in pool if c.subject == cert.issuer), None)
            if parent is None:
                break
            cert = parent
        return chain

    # 4 -----------------------------------------------------------------------------------------

    def withdraw(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.crypto import blindrsa
        from ecash_tpm.wallet.store import WalletStore

        dep = self.dep
        bank = BankClient(dep.url("bank"))
        self._closers.append(bank.close)
        customer = dep.customer
        login = bank.login(customer.account_id, customer.password, customer.totp())
        self.bank = bank
        self.fact(
            "login",
            f"{customer.account_id}: password + TOTP -> session until "
            f"{dt.datetime.fromtimestamp(login['expires_at'], dt.UTC):%H:%M:%S} UTC",
        )
        store = WalletStore.open(self.wallet_dir, _now)
        self.store = store
        self._closers.append(store.close)
        result = self._withdraw(WITHDRAW_AMOUNT)
        coins = result.to_dict()["coins"]
        self.fact(
            "coins",
            f"{' + '.join(map(str, coins))} = {result.amount} {result.currency} "
            "(blinded: the bank never saw them)",
        )
        # Coins for the two purchases of the fair-exchange step: after the double spend the
        # member is revoked and gets no new coins (coins already held stay spendable).
        goods = self._withdraw(2 * PRODUCT_PRICE).to_dict()["coins"]
        self.fact("for digital goods", " + ".join(map(str, goods)))

        # A keyset whose deposit window closes in a few seconds, and one coin of it.
        key = blindrsa.generate_key(2048)  # first, so that the window starts after it
        with admin_bank(dep.bank_settings(), keygen=lambda _bits: key) as admin:
            now = _now()
            ks = admin.keysets.create(
                value=EXPIRING_VALUE,
                currency=dep.currency,
                withdraw_from=now,
                withdraw_until=now + EXPIRING_WINDOW_S,
                deposit_until=now + EXPIRING_WINDOW_S,
                now=now,
            )
        short = self._withdraw(EXPIRING_VALUE, strategy="fewest")
        (held,) = short.coins
        self.expiring = {
            "keyset_id": ks.hex_id,
            "deposit_until": ks.deposit_until,
            "sigma": held.sigma,
            "value": held.value,
        }
        self.fact(
            "short-lived keyset",
            f"{ks.hex_id[:16]}...: one {EXPIRING_VALUE} "
            f"{dep.currency} coin, deposit window closes in {EXPIRING_WINDOW_S} s",
        )
        account = bank.account()
        wallet = self.wallet_balance()
        self.fact("bank account", f"{account['balance']} {account['currency']}")
        self.fact("wallet", f"{wallet.get('unspent', 0)} spendable")
        detail.update(
            amount=result.amount,
            currency=result.currency,
            coins=coins,
            expiring_coin={
                "value": EXPIRING_VALUE,
                "keyset_id": ks.hex_id,
                "deposit_until": ks.deposit_until,
            },
            customer_balance=account["balance"],
            wallet=wallet,
        )

    def _withdraw(self, amount: int, *, strategy: SplitStrategy = "payable") -> WithdrawResult:
        from ecash_tpm.wallet.withdraw import withdraw

        dep, member = self.dep, self.member
        return withdraw(
            self.wallet,
            self.bank_session,
            credential=member.credential,
            epoch=member.epoch,
            root=dep.root_pem(),
            amount=amount,
            currency=dep.currency,
            clock=_now,
            strategy=strategy,
            bank_name="bank",
        )

    # 5 -----------------------------------------------------------------------------------------

    def pay(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.wallet.membership import open_signer
        from ecash_tpm.wallet.pay import pay

        dep, member = self.dep, self.member
        shop = self.merchant("merchant-a")
        offer = shop.create_request(PAY_AMOUNT)
        body = offer["request"]["body"]
        self.fact(
            "payment request",
            f"{body['amount']} {body['currency']} from "
            f"{body['merchant_id']}, signed by its certified key",
        )
        self.signer = open_signer(self.devices["A"], self.wallet_dir, member)
        result = pay(
            self.wallet,
            offer["request"],
            offer["cert"],
            merchant=shop,
            signer=self.signer,
            hop=member.opener_public,
            root=dep.root_pem(),
            clock=_now,
            expected_t0=member.t0,
            bank_name="bank",
            merchant_url=shop.base_url,
        )
        self.paid = {
            "offer": offer,
            "result": result,
            "serials": self.wallet.payment(result.payment_id).serials,
        }
        timings = {k: round(v * 1000, 1) for k, v in result.timings.items()}
        self.fact("coins paid", " + ".join(map(str, result.coins)))
        self.fact(
            "TPM spend proofs",
            f"{len(result.coins)} (one TPM2_Commit + TPM2_Sign each), "
            f"{timings.get('proofs_s', 0):.0f} ms",
        )
        self.fact(
            "merchant A",
            f"checked the proofs, deposited, answered in {timings.get('merchant_s', 0):.0f} ms",
        )
        detail.update(
            payment_id=result.payment_id,
            merchant_id=result.merchant_id,
            amount=result.amount,
            coins=result.coins,
            timings_ms={k.removesuffix("_s"): v for k, v in timings.items()},
        )

    # 6 -----------------------------------------------------------------------------------------

    def deposit(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.protocol.payments import verify_payment_request, verify_receipt

        dep, offer, result = self.dep, self.paid["offer"], self.paid["result"]
        serials = self.paid["serials"]
        req = verify_payment_request(offer["request"], offer["cert"], dep.root_pem())
        body = verify_receipt(
            result.receipt,
            self.bank_session.keysets().bank_cert,
            dep.root_pem(),
            preq=req.preq,
            merchant_id=req.merchant_id,
            amount=req.amount,
            currency=req.currency,
            serials=serials,
        )
        states = {b64u_encode(s)[:12]: self.bank_session.coin_status(s)["state"] for s in serials}
        if set(states.values()) != {"spent"}:
            raise DemoCheckError("the paid coins are not spent at the bank", detail=states)
        books = self.books()
        wallet = self.wallet_balance()
        self.fact(
            "receipt",
            f"deposit {body.deposit_id}, {body.amount} {body.currency}, "
            f"{len(body.serials)} serials; bank signature valid (cert from the root)",
        )
        self.fact("coins at the bank", ", ".join(f"{s}... {st}" for s, st in states.items()))
        self.fact("customer (bank)", f"{books['customer']} {dep.currency}")
        self.fact(
            "customer (wallet)",
            f"{wallet.get('unspent', 0)} spendable, {wallet.get('pending', 0)} pending",
        )
        self.fact("merchant A (bank)", f"{books['merchant-a']} {dep.currency}")
        self.fact("coins outstanding", f"{books['outstanding']} {dep.currency}")
        detail.update(
            receipt={
                "deposit_id": body.deposit_id,
                "amount": body.amount,
                "serials": len(body.serials),
                "verified": True,
            },
            coin_states=sorted(set(states.values())),
            balances={
                "customer_bank": books["customer"],
                "wallet": wallet,
                "merchant_a": books["merchant-a"],
                "merchant_b": books["merchant-b"],
                "outstanding": books["outstanding"],
            },
        )

    # 7 -----------------------------------------------------------------------------------------

    def double_spend(self, detail: dict[str, Any]) -> None:
        spent = [hc for hc in self.wallet.coins("spent") if hc.sigma in self.paid["serials"]]
        hc = min(spent, key=lambda c: c.value)
        shop = self.merchant("merchant-b")
        offer = shop.create_request(hc.value)
        self.fact(
            "re-spent coin",
            f"{hc.value} {self.dep.currency}, serial "
            f"{b64u_encode(hc.sigma)[:16]}... (already spent at merchant A)",
        )
        spend = self.spend(hc, offer)
        err = _refusal(lambda: shop.pay(offer["request"], [spend]), what="the double spend")
        if err.code != "bank.double_spend" or err.status != 409:
            raise DemoCheckError(
                f"expected 409 bank.double_spend, got {err.status} {err.code}",
                detail={"code": err.code},
            )
        self.respent = {"sigma": hc.sigma, "spend": spend}
        self.fact(
            "merchant B",
            f"refused: HTTP {err.status} {err.code} (bank's verdict), "
            f"earlier transcript #{err.detail.get('transcript_id')}",
        )
        credited = self.books()["merchant-b"]
        self.fact("merchant B (bank)", f"{credited} {self.dep.currency}: nothing was credited")
        detail.update(
            refused=True,
            http_status=err.status,
            code=err.code,
            serial=err.detail.get("serial"),
            transcript_id=err.detail.get("transcript_id"),
            merchant="merchant-b",
            merchant_b_balance=credited,
        )

    # 8 -----------------------------------------------------------------------------------------

    def identify(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.clients.issuer import IssuerClient
        from ecash_tpm.clients.supervision import SupervisionClient
        from ecash_tpm.crypto.groupsig import OpeningProof, verify_opening
        from ecash_tpm.crypto.signing import verify_object
        from ecash_tpm.pki import load_certificate, verify_party_certificate
        from ecash_tpm.supervision.settings import SupervisionSettings

        dep, member = self.dep, self.member
        sigma = b64u_encode(self.respent["sigma"])
        with admin_bank(dep.bank_settings()) as bank:
            reports = [r for r in bank.deposits.reports() if r["sigma"] == sigma]
        if not reports or reports[0]["status"] != "sent" or not reports[0]["result"]:
            raise DemoCheckError("the bank did not report the double spend", detail={"r": reports})
        case = reports[0]["result"]
        self.fact(
            "bank report",
            f"#{reports[0]['report_id']}: both transcripts of serial "
            f"{sigma[:16]}... sent to the supervision department",
        )
        with SupervisionClient(dep.url("supervision")) as sup:
            hop = sup.opener_public()
        sup_settings = dep.settings("supervision", SupervisionSettings)
        sup_cert = load_certificate(sup_settings.resolved_certificate_file().read_bytes())
        key = verify_party_certificate(sup_cert, dep.root_pem(), role="supervision")
        evidence = verify_object(case["evidence"], key, "double-spend-evidence")
        transcripts = [t["body"] for t in evidence["transcripts"]]
        openings = []
        for opening, transcript in zip(evidence["openings"], transcripts, strict=True):
            c1, c2, t0 = (Point.decode(b64u_decode(opening[k])) for k in ("c1", "c2", "t0"))
            proof = transcript["spend"]["proof"]
            if (b64u_encode(c1.encode()), b64u_encode(c2.encode())) != (proof["c1"], proof["c2"]):
                raise DemoCheckError("an opening is not of its transcript's ciphertext")
            verify_opening(hop, c1, c2, t0, OpeningProof.from_dict(opening["proof"]))
            openings.append(
                {
                    "transcript_id": opening.get("transcript_id"),
                    "merchant_id": transcript["merchant_id"],
                    "t0": b64u_encode(t0.encode()),
                    "proof_verified": True,
                }
            )
        same_t0 = {o["t0"] for o in openings} == {b64u_encode(member.t0.encode())}
        with IssuerClient(dep.url("bank")) as issuer:
            record = issuer.member(case["member_id"])
        self.fact(
            "case",
            f"#{case['case_id']}: evidence signed by the supervision department "
            "(certificate checked against the root)",
        )
        for o in openings:
            self.fact(
                f"opening of #{o['transcript_id']}",
                f"{o['merchant_id']}: T0 = {o['t0'][:16]}..., Chaum-Pedersen proof verified here",
            )
        self.fact(
            "named member",
            f"{case['member_id']} (joined as {member.member_id}: "
            f"{'same' if case['member_id'] == member.member_id else 'DIFFERENT'})",
        )
        self.fact(
            "group manager",
            f"member {record.status}"
            + (f" ({record.revocation_reason})" if record.revocation_reason else ""),
        )
        if not same_t0:
            raise DemoCheckError("the openings do not name the joined device's T0")
        detail.update(
            member_id=case["member_id"],
            joined_member_id=member.member_id,
            proof_verified=True,
            case_id=case["case_id"],
            openings=openings,
            revocation=case["revocation"]["status"],
            member_status=record.status,
        )

    # 9 -----------------------------------------------------------------------------------------

    def stolen(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.wallet.membership import load_membership, open_signer
        from ecash_tpm.wallet.pay import pay
        from ecash_tpm.wallet.store import WalletStore
        from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

        dep, device = self.dep, self.devices["B"]
        copy = self.workdir / "wallet-b-copy"
        shutil.copytree(self.wallet_dir, copy)
        membership = load_membership(copy)
        attempts: list[dict[str, Any]] = []
        self.fact("copy", f"{copy.name}: membership, coins and TPM key blobs of wallet A")
        blob_error = _error_of(lambda: open_signer(device, copy, membership))
        if blob_error is None:
            raise DemoCheckError("device B loaded device A's DAA key blob")
        attempts.append(
            {
                "how": "load the copied DAA key blob on TPM B",
                "layer": "device (TPM B)",
                "code": blob_error.code,
            }
        )
        self.fact(
            "1. copied key blob",
            f"refused by TPM B: {blob_error.code} (wrapped by TPM A's storage key)",
        )
        for blob in ("daa.pub", "daa.priv"):
            (copy / "tpm" / blob).unlink()
        key = device.load_or_create_daa_key(copy / "tpm")
        thief = TpmDaaSigner(device, key)
        shop = self.merchant("merchant-a")
        with WalletStore.open(copy, _now) as stolen:
            offer = shop.create_request(STOLEN_AMOUNT)
            err = _refusal(
                lambda: pay(
                    stolen,
                    offer["request"],
                    offer["cert"],
                    merchant=shop,
                    signer=thief,
                    hop=membership.opener_public,
                    root=dep.root_pem(),
                    clock=_now,
                    bank_name="bank",
                    merchant_url=shop.base_url,
                    self_check=False,
                ),
                what="the stolen coins",
            )
            coins = [hc.sigma for hc in stolen.coins("pending")]
        device.unload(key)
        if err.code != "daa.spend_proof_invalid":
            raise DemoCheckError(f"expected daa.spend_proof_invalid, got {err.code}")
        attempts.append(
            {
                "how": "fresh DAA key on TPM B, the wallet's own checks bypassed",
                "layer": "merchant",
                "code": err.code,
                "http_status": err.status,
            }
        )
        states = sorted({self.bank_session.coin_status(s)["state"] for s in coins})
        self.fact(
            "2. fresh key on TPM B",
            f"merchant A refused: HTTP {err.status} {err.code} "
            "(W = sk*S binds each coin to TPM A's key)",
        )
        self.fact("the coins", f"still {', '.join(states)} at the bank: the owner keeps them")
        detail.update(
            refused=True,
            layer=attempts[-1]["layer"],
            code=err.code,
            attempts=attempts,
            coin_states_at_bank=states,
        )

    # 10 ----------------------------------------------------------------------------------------

    def expired(self, detail: dict[str, Any]) -> None:
        exp = self.expiring
        wait = exp["deposit_until"] + 0.2 - time.time()
        if wait > 0:
            self.fact("waiting", f"{wait:.1f} s for the keyset's deposit window to close")
            time.sleep(wait)
        hc = next(c for c in self.wallet.coins() if c.sigma == exp["sigma"])
        wallet = self.wallet_balance()
        self.fact(
            "wallet",
            f"shows the {hc.value} coin as expired ({wallet.get('expired')} "
            "expired): it would not offer it",
        )
        shop = self.merchant("merchant-a")
        offer = shop.create_request(hc.value)
        spend = self.spend(hc, offer)
        at_merchant = _refusal(lambda: shop.pay(offer["request"], [spend]), what="expired coin")
        at_bank = _refusal(
            lambda: self.deposit_at_bank("merchant-a", offer, [spend]), what="expired deposit"
        )
        codes = (at_merchant.code, at_bank.code)
        if codes != ("coin.keyset_expired", "bank.keyset_expired"):
            raise DemoCheckError(f"expected keyset_expired refusals, got {codes}")
        self.fact("merchant A", f"refused: HTTP {at_merchant.status} {at_merchant.code}")
        self.fact("bank (direct deposit)", f"refused: HTTP {at_bank.status} {at_bank.code}")
        detail.update(
            refused=True,
            keyset_id=exp["keyset_id"],
            deposit_until=exp["deposit_until"],
            merchant={"code": at_merchant.code, "http_status": at_merchant.status},
            bank={"code": at_bank.code, "http_status": at_bank.status},
        )

    # 11 ----------------------------------------------------------------------------------------

    def audit(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.bank.supply import send_supply_report
        from ecash_tpm.clients.centralbank import CentralBankClient
        from ecash_tpm.issuer.keys import IssuerKeyStore
        from ecash_tpm.issuer.settings import IssuerSettings
        from ecash_tpm.supervision.audit import run_audit

        dep = self.dep
        bank = dep.bank_settings()
        issuer = dep.settings("bank", IssuerSettings)
        published = self.bank_session.keysets().signed
        with CentralBankClient(dep.url("centralbank")) as central_bank:
            with admin_bank(bank) as books:  # the bank reports its money supply
                sent = send_supply_report(books, central_bank)
            supply = central_bank.latest_supply_report(sent["report"]["body"]["bank_id"])
        self.fact(
            "supply report",
            f"the bank's signed report #{sent['receipt']['report_id']} accepted by the "
            "central bank; the audit compares it with the bank's books",
        )
        report = run_audit(
            bank.database_url,
            bank_cert=bank.path("cert_file").read_bytes(),
            central_bank_root=dep.root_pem(),
            opener_public=self.member.opener_public,
            issuer_secrets=IssuerKeyStore.open(issuer.resolved_key_dir()),
            keyset_descriptors=published,
            supply_report=supply.model_dump(mode="json"),
        )
        for line in report.summary().splitlines():
            self.say(f"      {line}")
        detail.update(
            ok=report.ok,
            violations=[v.to_dict() for v in report.violations],
            counts=report.counts,
            skipped=report.skipped,
            outstanding_total=report.outstanding_total(),
            supply_report=report.supply_report,
        )
        if not report.ok:
            raise DemoCheckError(
                f"the audit found {len(report.violations)} violation(s)",
                detail={"kinds": sorted(report.kinds())},
            )

    # 12 ----------------------------------------------------------------------------------------

    def fair_exchange(self, detail: dict[str, Any]) -> None:
        from ecash_tpm.demo.fair_exchange import run_fair_exchange_story
        from ecash_tpm.wallet.buy import Buyer, PurchaseStore

        dep = self.dep
        if self.signer is None:
            raise DemoCheckError("the wallet's TPM signer is not open")
        purchases = PurchaseStore.open(self.wallet_dir, _now)
        self._closers.append(purchases.close)
        buyer = Buyer(
            purchases=purchases,
            wallet=self.wallet,
            signer=self.signer,
            hop=self.member.opener_public,
            root=dep.root_pem(),
            clock=_now,
            expected_t0=self.member.t0,
            bank_name="bank",
        )
        shops = {"honest": dep.url("merchant-a"), "cheating": dep.url("merchant-b")}
        self.fact("TTP", f"{dep.url('ttp')}: escrows each product's AES-256-GCM key")
        story = run_fair_exchange_story(
            buyer=buyer,
            ttp_url=dep.url("ttp"),
            honest_url=shops["honest"],
            cheating_url=shops["cheating"],
            admin_tokens={url: dep.merchant_token for url in shops.values()},
            price=PRODUCT_PRICE,
        )
        honest, cheating = story["honest"], story["cheating"]
        self.fact(
            "merchant A (honest)",
            f"{honest['bytes']} bytes delivered by {honest['delivered_by']}; "
            f"TTP contacted: {'yes' if honest['ttp_contacted'] else 'no'}",
        )
        self.fact(
            "merchant B (withholds)",
            f"{cheating['failure']} -> dispute {_short(str(cheating['dispute_id']), 12)}, "
            f"{cheating['resolution']} after {cheating['waited_s']} s; "
            f"{cheating['bytes']} bytes delivered by {cheating['delivered_by']}",
        )
        self.fact("strike", f"merchant B: {cheating['strike']}")
        detail.update(story)
        if honest["ttp_contacted"] or not cheating["strike"]:
            raise DemoCheckError(
                "the honest purchase must not involve the TTP, and the cheater must get a strike",
                detail=story,
            )

    # --- the end ------------------------------------------------------------------------------

    def close(self) -> None:
        """Stop everything this story started (processes by pid), newest first."""
        while self._closers:
            closer = self._closers.pop()
            with contextlib.suppress(Exception):
                closer()

    def failed_party(self, step: str) -> PartyProcess | None:
        """The party most likely behind a failed step (its log is worth reading)."""
        if self.deployment is None:
            return None
        group = self.deployment.group
        stopped = [p.name for p in group.parties if not p.running()]
        suspects = stopped or {
            "certify_parties": ["centralbank"],
            "pay": ["merchant-a", "bank"],
            "double_spend_rejected": ["merchant-b", "bank"],
            "double_spender_identified": ["supervision", "bank"],
            "stolen_coin_rejected": ["merchant-a"],
            "expired_coin_rejected": ["merchant-a", "bank"],
            "fair_exchange": ["ttp", "merchant-b", "merchant-a"],
        }.get(step, ["bank"])
        return next((p for p in map(group.get, suspects) if p is not None), None)


def _prepare_workdir(path: Path | None) -> tuple[Path, bool]:
    """The work directory and whether it is a temporary one; a given one must be empty."""
    import tempfile

    if path is None:
        return Path(tempfile.mkdtemp(prefix="ecash-tpm-demo-")), True
    workdir = Path(path).absolute()
    if workdir.exists() and any(workdir.iterdir()):
        raise DemoCheckError(
            f"{workdir} is not empty; give an empty or new directory",
            code="demo.workdir_not_empty",
        )
    workdir.mkdir(mode=0o700, parents=True, exist_ok=True)
    return workdir, False


@contextlib.contextmanager
def _shielded() -> Iterator[None]:
    """Ignore Ctrl-C/SIGTERM/SIGHUP while cleaning up: a second signal must not cut it short."""
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, signal.SIG_IGN) for sig in sigs}
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)


def run_demo(*, json_mode: bool = False, workdir: Path | None = None, keep: bool = False) -> int:
    """Run the story; 0 only if every step passed. Everything started is stopped on the way
    out, also on Ctrl-C/SIGTERM; the work directory is removed unless ``keep``."""
    from ecash_tpm.deploy.processes import termination_as_interrupt

    runner = StepRunner(json_mode=json_mode)
    directory, temporary = _prepare_workdir(workdir)
    runner.say(f"ecash-tpm demo: every party is its own process on 127.0.0.1; work dir {directory}")
    story = Story(runner, directory)
    interrupted = False
    started = time.perf_counter()
    with termination_as_interrupt():
        try:
            story.run()
        except StepFailed as failed:
            interrupted = isinstance(failed.__cause__, KeyboardInterrupt)
            _report_failure(runner, story, failed)
        except KeyboardInterrupt:
            interrupted = True
        finally:
            with _shielded():
                ports = dict(story.deployment.ports) if story.deployment else {}
                story.close()
                _check_ports_free(runner, ports)
                if not keep:
                    _remove_files(directory, whole=temporary)
    total = time.perf_counter() - started
    ok = runner.ok and [r.step for r in runner.results][: len(STEPS)] == list(STEPS)
    if json_mode:
        runner.emit_json()
    else:
        verdict = "every step ok" if ok else "interrupted" if interrupted else "FAILED"
        runner.say(
            f"\ndemo {verdict} in {total:.1f} s; all parties and TPMs stopped"
            + (f"; files kept in {directory}" if keep else "")
        )
    if interrupted:
        return 130
    return 0 if ok else 1


def _remove_files(directory: Path, *, whole: bool) -> None:
    """Delete the work directory (``whole``) or what the demo put into a given one."""
    if whole:
        shutil.rmtree(directory, ignore_errors=True)
        return
    for child in directory.iterdir():
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child, ignore_errors=True)
        else:
            child.unlink(missing_ok=True)


def _report_failure(runner: StepRunner, story: Story, failed: StepFailed) -> None:
    """Name the failed step and show the tail of the relevant party's log (on stderr); an
    unexpected exception (a bug, not a refusal) also gets its traceback."""
    import sys
    import traceback

    step = str(failed)
    result = next((r for r in runner.results if r.step == step), None)
    error = result.detail.get("error", {}) if result else {}
    if error.get("code") == "demo.interrupted":
        print(f"\ndemo: interrupted during step {step}; stopping everything", file=sys.stderr)
        return
    party = story.failed_party(step)
    if party is not None and result is not None:
        result.detail["log"] = {"party": party.name, "tail": party.log_tail(1500)}
    lines = [f"\ndemo: step {step} failed: [{error.get('code')}] {error.get('message')}"]
    if error.get("detail"):
        lines.append("  detail: " + json.dumps(error["detail"], default=str)[:1500])
    cause = failed.__cause__
    if cause is not None and not isinstance(cause, EcashError):
        lines += traceback.format_exception(cause)
    if party is not None:
        lines.append(f"  last lines of {party.log_path}:")
        lines += ["    " + line for line in party.log_tail().splitlines()[-15:]]
    print("\n".join(lines), file=sys.stderr, flush=True)


def _check_ports_free(runner: StepRunner, ports: dict[str, int]) -> None:
    busy = [f"{name}:{port}" for name, port in ports.items() if not port_is_free(port)]
    if busy:
        runner.say(f"warning: ports still in use after stopping: {', '.join(busy)}")
