"""The bank as one object: accounts, keysets, withdrawals, deposits, blacklist, ledger.

:class:`BankDomain` is a thin facade that wires the parts together with the bank's identity
(certified P-256 key), the central-bank root, the injected protocols (issuer secrets,
membership, double-spend reporter), a policy and a clock. It has no HTTP in it; routes and the
CLI call its methods, tests call them directly.

    bank = BankDomain(
        db, bank_key=key, bank_cert=cert, central_bank_root=root, keys_dir=data / "keysets",
        issuer_secrets=issuer_store, membership=issuer_store, reporter=supervision,
        opener_public=hop, policy=BankPolicy(currency="EUR"), clock=lambda: int(time.time()),
    )
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import serialization

from ecash_tpm.bank.accounts import Accounts, ScryptParams
from ecash_tpm.bank.blacklist import Blacklist, login_subject, merchant_subject
from ecash_tpm.bank.deposit import Deposits
from ecash_tpm.bank.errors import BankNotInitializedError, IssuerEpochUnknownError
from ecash_tpm.bank.keysets import KeyGen, KeysetStore
from ecash_tpm.bank.ledger import ledger_check
from ecash_tpm.bank.models import (
    AccountInfo,
    BlacklistEntry,
    CoinStatus,
    DoubleSpendReport,
    KeysetsInfo,
    LoginToken,
    MerchantInfo,
    ReserveResult,
    WithdrawResult,
)
from ecash_tpm.bank.protocols import (
    DoubleSpendReporter,
    IssuerSecrets,
    KeysetCertifier,
    MembershipCheck,
)
from ecash_tpm.bank.redeem import Redeems
from ecash_tpm.bank.redeem_reports import RedeemReports
from ecash_tpm.bank.refunds import RefundResult, Refunds
from ecash_tpm.bank.reports import DoubleSpendReports
from ecash_tpm.bank.settings import DEFAULT_DENOMINATIONS, BankSettings
from ecash_tpm.bank.swap import Swaps
from ecash_tpm.bank.swap_reports import SwapReports
from ecash_tpm.bank.throttle import SourceThrottle
from ecash_tpm.bank.verify import DepositChecks
from ecash_tpm.bank.withdraw import Withdrawals, WithdrawItem
from ecash_tpm.clients.revocation import crl_source_for
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.crypto.signing import PartyKey, verify_object
from ecash_tpm.errors import ConfigError, EcashError, InputError
from ecash_tpm.pki import (
    CrlProvider,
    certificate_fingerprint,
    common_name,
    load_certificate,
    verify_party_certificate,
)
from ecash_tpm.progress import ProgressCallback
from ecash_tpm.protocol.certified import CertifiedKeysetList
from ecash_tpm.protocol.coins import LIFT_KIND, check_currency
from ecash_tpm.protocol.keysets import Fees, Keyset
from ecash_tpm.storage import Database

__all__ = ["BankDomain", "BankPolicy", "system_clock"]


def system_clock() -> int:
    """Unix seconds now (the production clock)."""
    return int(time.time())


@dataclass(frozen=True, slots=True)
class BankPolicy:
    """The bank's rules, separate from its identity so tests can tighten them."""

    currency: str = "EUR"
    bank_name: str | None = None  # default: CN of the bank certificate
    lock_period_s: int = 300
    blacklist_threshold: int = 5
    blacklist_window_s: int = 600
    login_threshold: int = 5
    login_window_s: int = 900
    token_ttl_s: int = 3600
    login_source_limit: int = 20  # failed logins per source (client address) and window
    login_source_window_s: int = 300
    scrypt: ScryptParams = field(default_factory=ScryptParams)
    denominations: tuple[int, ...] = tuple(DEFAULT_DENOMINATIONS)
    withdraw_period_s: int = 30 * 86400
    deposit_period_s: int = 365 * 86400
    rsa_bits: int = 2048
    max_withdraw_items: int = 64
    max_spends: int = 64
    #: furthest a payment request's deadline may lie ahead of the bank's clock (issue 10)
    max_deadline_s: int = 600
    #: fees of new keysets per denomination value (docs/protocol.md 4.2; others: zero)
    fees: Mapping[int, Fees] = field(default_factory=dict)

    @classmethod
    def from_settings(cls, settings: BankSettings) -> BankPolicy:
        return cls(
            currency=settings.currency,
            lock_period_s=settings.lock_period_s,
            blacklist_threshold=settings.blacklist_threshold,
            blacklist_window_s=settings.blacklist_window_s,
            login_threshold=settings.login_threshold,
            login_window_s=settings.login_window_s,
            token_ttl_s=settings.token_ttl_s,
            login_source_limit=settings.login_source_limit,
            login_source_window_s=settings.login_source_window_s,
            scrypt=ScryptParams(n=settings.scrypt_n),
            denominations=tuple(settings.denominations),
            withdraw_period_s=settings.withdraw_period_s,
            deposit_period_s=settings.deposit_period_s,
            rsa_bits=settings.rsa_bits,
            max_withdraw_items=settings.max_withdraw_items,
            max_spends=settings.max_spends,
            max_deadline_s=settings.max_deadline_s,
            fees={value: Fees(*fee) for value, fee in settings.fees.items()},
        )


def load_opener_public(text: str | None) -> Point:
    """Hop from its base64url encoding (settings); a clear ConfigError when missing."""
    if not text:
        raise ConfigError(
            "opener_public (the supervision department's Hop) is not configured",
            detail={"setting": "opener_public"},
        )
    try:
        return Point.decode(b64u_decode(text))
    except EcashError as exc:
        raise ConfigError("opener_public is not a valid BN_P256 point") from exc


class BankDomain:
    """Facade over the bank's parts; every method is safe to call from several threads."""

    def __init__(
        self,
        db: Database,
        *,
        bank_key: PartyKey,
        bank_cert: x509.Certificate,
        central_bank_root: x509.Certificate,
        keys_dir: Path,
        issuer_secrets: IssuerSecrets,
        membership: MembershipCheck,
        reporter: DoubleSpendReporter,
        opener_public: Point | None,
        policy: BankPolicy | None = None,
        clock: Callable[[], int] = system_clock,
        keygen: KeyGen = blindrsa.generate_key,
        keyset_certifier: KeysetCertifier | None = None,
        crl: CrlProvider | None = None,
    ) -> None:
        self.policy = policy if policy is not None else BankPolicy()
        #: The central bank's current CRL, checked for every certificate the bank accepts.
        self.crl = crl
        self.keyset_certifier = keyset_certifier
        self.clock = clock
        self.db = db
        now = dt.datetime.fromtimestamp(clock(), dt.UTC)
        cert_key = verify_party_certificate(bank_cert, central_bank_root, role="bank", now=now)
        if cert_key.public_numbers() != bank_key.public_key.public_numbers():
            raise BankNotInitializedError("the bank certificate is not for the bank's key")
        self.bank_key = bank_key
        self.bank_cert = bank_cert
        self.central_bank_root = central_bank_root
        self.bank_name = self.policy.bank_name or common_name(bank_cert)
        self.currency = check_currency(self.policy.currency)
        signer = certificate_fingerprint(bank_cert)
        self.login_blacklist = Blacklist(
            db,
            threshold=self.policy.login_threshold,
            window_s=self.policy.login_window_s,
            clock=clock,
        )
        self.merchant_blacklist = Blacklist(
            db,
            threshold=self.policy.blacklist_threshold,
            window_s=self.policy.blacklist_window_s,
            clock=clock,
        )
        self.accounts = Accounts(
            db,
            self.login_blacklist,
            central_bank_root=central_bank_root,
            currency=self.currency,
            token_ttl_s=self.policy.token_ttl_s,
            scrypt=self.policy.scrypt,
            clock=clock,
            crl=crl,
            source_throttle=SourceThrottle(
                limit=self.policy.login_source_limit,
                window_s=self.policy.login_source_window_s,
                clock=clock,
            ),
        )
        self._issuer_secrets = issuer_secrets
        self.keysets = KeysetStore(db, keys_dir, bank_key, keygen=keygen, signer_hint=signer)
        self.keysets.refresh_signatures()
        self.withdrawals = Withdrawals(
            db,
            self.keysets,
            membership,
            currency=self.currency,
            max_items=self.policy.max_withdraw_items,
            clock=clock,
        )
        self.reports = DoubleSpendReports(
            db,
            reporter=reporter,
            bank_key=bank_key,
            bank_signer=signer,
            clock=clock,
            descriptor=self.keysets.signed_descriptor,
        )
        # docs/protocol.md 9.4: double spends whose first spend was a redeem
        self.redeem_reports = RedeemReports(db, reports=self.reports, clock=clock)
        # docs/protocol.md 9.3: double spends whose first spend was a swap
        self.swap_reports = SwapReports(db, reports=self.reports, clock=clock)
        checks = DepositChecks(
            keysets=self.keysets,
            accounts=self.accounts,
            blacklist=self.merchant_blacklist,
            issuer_secrets=issuer_secrets,
            bank_name=self.bank_name,
            currency=self.currency,
            opener_public=opener_public,
            max_spends=self.policy.max_spends,
        )
        self.deposits = Deposits(
            db,
            checks=checks,
            reports=self.reports,
            bank_key=bank_key,
            bank_signer=signer,
            lock_period_s=self.policy.lock_period_s,
            clock=clock,
            bank_name=self.bank_name,
            bank_cert_pem=bank_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            max_deadline_s=self.policy.max_deadline_s,
            redeem_reports=self.redeem_reports,
            swap_reports=self.swap_reports,
        )
        # issue 12 (#5): coins back into an account (docs/protocol.md 9.4)
        self.redeems = Redeems(
            db,
            checks=checks,
            accounts=self.accounts,
            reports=self.reports,
            redeem_reports=self.redeem_reports,
            swap_reports=self.swap_reports,
            bank_key=bank_key,
            bank_signer=signer,
            bank_name=self.bank_name,
            bank_cert_pem=bank_cert.public_bytes(serialization.Encoding.PEM).decode("ascii"),
            currency=self.currency,
            max_deadline_s=self.policy.max_deadline_s,
            clock=clock,
        )
        # issue 12: anonymous change and refresh (docs/protocol.md 9.3)
        self.swaps = Swaps(
            db,
            checks=checks,
            keysets=self.keysets,
            reports=self.reports,
            redeem_reports=self.redeem_reports,
            swap_reports=self.swap_reports,
            bank_name=self.bank_name,
            currency=self.currency,
            max_deadline_s=self.policy.max_deadline_s,
            clock=clock,
        )
        self.refunds = Refunds(  # issue 12 (#3): refund claims (docs/protocol.md 9.2)
            db,
            accounts=self.accounts,
            keysets=self.keysets,
            opener_public=opener_public,
            currency=self.currency,
            clock=clock,
        )

    @classmethod
    def from_settings(
        cls,
        settings: BankSettings,
        db: Database,
        *,
        issuer_secrets: IssuerSecrets,
        membership: MembershipCheck,
        reporter: DoubleSpendReporter,
        clock: Callable[[], int] = system_clock,
        keygen: KeyGen = blindrsa.generate_key,
    ) -> BankDomain:
        """Load key, certificate and root from the files ``bank init`` wrote.

        Without ``opener_public`` in the settings the domain still serves accounts, keysets and
        withdrawals (admin commands), but refuses deposits and reservations.
        """
        paths = {n: settings.path(n) for n in ("key_file", "cert_file", "central_bank_root")}
        missing = [str(p) for p in paths.values() if not p.exists()]
        if missing:
            raise BankNotInitializedError(
                "bank key/certificate/root missing: run 'ecash-tpm bank init'",
                detail={"missing": missing},
            )
        return cls(
            db,
            bank_key=PartyKey.load(paths["key_file"]),
            bank_cert=load_certificate(paths["cert_file"].read_bytes()),
            central_bank_root=load_certificate(paths["central_bank_root"].read_bytes()),
            keys_dir=settings.path("keys_dir"),
            issuer_secrets=issuer_secrets,
            membership=membership,
            reporter=reporter,
            opener_public=(
                load_opener_public(settings.opener_public) if settings.opener_public else None
            ),
            policy=BankPolicy.from_settings(settings),
            clock=clock,
            keygen=keygen,
            crl=crl_source_for(settings, paths["central_bank_root"]),
        )

    # --- identity and keysets -----------------------------------------------------------------

    def bank_cert_pem(self) -> str:
        return self.bank_cert.public_bytes(serialization.Encoding.PEM).decode("ascii")

    def issuer_epoch_certificate(self, epoch: int) -> dict[str, Any]:
        """The central bank's ``issuer-epoch-key`` of ``epoch`` as the issuer store keeps it,
        published so merchants, the TTP and auditors verify coins publicly (protocol §3.6,
        §7.4; root-signed, so nobody has to trust the bank for it)."""
        lookup = getattr(self._issuer_secrets, "epoch_certificate", None)
        doc = None
        if lookup is not None and not isinstance(epoch, bool) and 0 <= epoch < 2**32:
            doc = lookup(epoch)
        if doc is None:
            raise IssuerEpochUnknownError(
                "no certified issuer key for this epoch", detail={"epoch": epoch}
            )
        return dict(doc)

    def keysets_info(self) -> KeysetsInfo:
        """The bank certificate and the signed descriptors of keysets still depositable."""
        return KeysetsInfo(
            bank_cert=self.bank_cert_pem(),
            keysets=self.keysets.signed_descriptors(now=self.clock()),
            keyset_list=self.keysets.certified_list(),
        )

    def certify_keysets(self) -> dict[str, Any] | None:
        """Have the central bank certify the published keysets (docs/protocol.md 4.1) and keep
        its list; None without a certifier (the operator installs the list instead)."""
        if self.keyset_certifier is None:
            return None
        descriptors = self.keysets.signed_descriptors(now=self.clock())
        doc = self.keyset_certifier(self.bank_cert_pem(), descriptors)
        self.install_keyset_list(doc)
        return doc

    def install_keyset_list(self, doc: dict[str, Any]) -> CertifiedKeysetList:
        """Keep a ``bank-keyset-list`` after checking it is the root's and names this bank."""
        listed = CertifiedKeysetList.from_signed(
            doc, self.central_bank_root, bank_name=self.bank_name
        )
        self.keysets.save_certified_list(doc)
        return listed

    def rotate_keysets(
        self,
        *,
        start: int | None = None,
        denominations: Sequence[int] | None = None,
        progress: ProgressCallback | None = None,
        only_missing: bool = False,
        fees: Mapping[int, Fees] | None = None,
    ) -> list[Keyset]:
        """New keysets for every denomination from ``start`` (default now); ``fees`` per
        denomination value replace the configured ones (docs/protocol.md 4.2)."""
        made = self.keysets.rotate(
            denominations=list(denominations or self.policy.denominations),
            currency=self.currency,
            now=self.clock(),
            withdraw_period_s=self.policy.withdraw_period_s,
            deposit_period_s=self.policy.deposit_period_s,
            start=start,
            bits=self.policy.rsa_bits,
            progress=progress,
            only_missing=only_missing,
            fees={**self.policy.fees, **(fees or {})},
        )
        self.certify_keysets()  # 4.1: new keysets go on the central bank's list at once
        return made

    def ensure_keysets(self, *, progress: ProgressCallback | None = None) -> list[Keyset]:
        """Rotate only if some denomination has no keyset open for withdrawal now."""
        now = self.clock()
        open_values = {k.value for k in self.keysets.list_keysets(now=now) if k.can_withdraw(now)}
        missing = [d for d in self.policy.denominations if d not in open_values]
        if not missing:
            if self.keysets.certified_list() is None:
                self.certify_keysets()
            return []
        # only_missing: another worker starting at the same time may have created them already
        return self.rotate_keysets(denominations=missing, progress=progress, only_missing=True)

    # --- customers ----------------------------------------------------------------------------

    def create_customer(
        self, account_id: str, password: str, totp_secret: bytes, *, initial_balance: int = 0
    ) -> AccountInfo:
        return self.accounts.create_customer(
            account_id, password, totp_secret, initial_balance=initial_balance
        )

    def fund(self, account_id: str, amount: int, *, ref: str | None = None) -> AccountInfo:
        return self.accounts.fund(account_id, amount, ref=ref)

    def login(
        self, account_id: str, password: str, totp: str, *, source: str | None = None
    ) -> LoginToken:
        return self.accounts.login(account_id, password, totp, source=source)

    def authenticate(self, token: str | None) -> str:
        return self.accounts.authenticate(token)

    def account(self, account_id: str) -> AccountInfo:
        return self.accounts.account_info(account_id)

    def withdraw(
        self, account_id: str, request_id: str, items: Sequence[WithdrawItem]
    ) -> WithdrawResult:
        return self.withdrawals.withdraw(account_id, request_id, items)

    # --- merchants ----------------------------------------------------------------------------

    def add_merchant(self, cert_pem: str | bytes) -> MerchantInfo:
        return self.accounts.add_merchant(cert_pem)

    def reserve(self, signed: Any, cert_pem: str | bytes) -> ReserveResult:
        return self.deposits.reserve(signed, cert_pem)

    def deposit(self, signed: Any, cert_pem: str | bytes) -> dict[str, Any]:
        """The bank-signed ``deposit-receipt`` (a signed wire document, kept as a mapping)."""
        return self.deposits.deposit(signed, cert_pem)

    def claim_refund(
        self,
        *,
        claim_id: str,
        permission: Mapping[str, Any],
        merchant_cert: str,
        outputs: Sequence[tuple[bytes, bytes]],
        proofs: Sequence[Mapping[str, Any]],
    ) -> RefundResult:
        """Fresh coins for a merchant's refund permission (docs/protocol.md "Refunds")."""
        return self.refunds.claim(
            claim_id=claim_id,
            permission=permission,
            merchant_cert=merchant_cert,
            outputs=outputs,
            proofs=proofs,
        )

    def coin_status(self, sigma: bytes) -> CoinStatus:
        return self.deposits.coin_status(sigma)

    def signed_status(self, sigmas: Sequence[bytes]) -> dict[str, Any]:
        """The bank-signed ``coin-status`` of ``sigmas`` (docs/protocol.md 10.1)."""
        return self.deposits.signed_status(sigmas)

    def swap(self, wire: Any) -> tuple[str, list[bytes]]:
        """Coins in, blind signatures on new coins out (docs/protocol.md 9.3)."""
        return self.swaps.swap(wire)

    def redeem_request(self, account_id: str, amount: int) -> dict[str, Any]:
        """A bank-signed, single-use redeem request for this account (docs/protocol.md 9.4)."""
        return self.redeems.issue(account_id, amount)

    def redeem(self, account_id: str, wire: Any) -> dict[str, Any]:
        """Coins into the account: ``{receipt, cert}`` (docs/protocol.md 9.4)."""
        return self.redeems.redeem(account_id, wire)

    # --- blacklist ----------------------------------------------------------------------------

    def lift_blacklist(
        self, subject: str, *, lifted_by: str, reason: str, entry_id: int | None = None
    ) -> BlacklistEntry:
        """Lift a merchant (``merchant:<id>``) or login (``login:<id>``) blacklist entry."""
        if subject.startswith("merchant:"):
            blacklist = self.merchant_blacklist
        elif subject.startswith("login:"):
            blacklist = self.login_blacklist
        else:
            raise InputError("subject must start with merchant: or login:")
        return blacklist.lift(subject, lifted_by=lifted_by, reason=reason, entry_id=entry_id)

    def lift_blacklist_signed(self, signed: Mapping[str, Any], cert_pem: str) -> BlacklistEntry:
        """A lift ordered by the supervision department: signed object kind ``blacklist-lift``
        with body ``{subject, entry_id, reason}`` and the department's certificate."""
        now = dt.datetime.fromtimestamp(self.clock(), dt.UTC)
        key = verify_party_certificate(
            cert_pem, self.central_bank_root, role="supervision", now=now, crl=self.crl
        )
        body = verify_object(signed, key, LIFT_KIND)
        if set(body) != {"subject", "entry_id", "reason"}:
            raise InputError("lift body must have exactly subject, entry_id, reason")
        entry_id = body["entry_id"]
        if isinstance(entry_id, bool) or not isinstance(entry_id, int):
            raise InputError("entry_id must be an integer")
        if not isinstance(body["subject"], str) or not isinstance(body["reason"], str):
            raise InputError("subject and reason must be strings")
        who = "supervision:" + common_name(load_certificate(cert_pem))
        return self.lift_blacklist(
            body["subject"], lifted_by=who, reason=body["reason"], entry_id=entry_id
        )

    def blacklist_entries(self) -> list[BlacklistEntry]:
        return self.merchant_blacklist.entries()

    @staticmethod
    def merchant_subject(merchant_id: str) -> str:
        return merchant_subject(merchant_id)

    @staticmethod
    def login_subject(account_id: str) -> str:
        return login_subject(account_id)

    # --- audit --------------------------------------------------------------------------------

    def ledger_check(self) -> dict[str, Any]:
        """See :func:`ecash_tpm.bank.ledger.ledger_check`; raises if an invariant fails."""
        return ledger_check(self.db)

    def audit(self) -> dict[str, Any]:
        """Ledger invariants plus blacklist justification (entries not backed by failures),
        as the JSON-ready report the CLI prints."""
        return {
            "ledger": self.ledger_check(),
            "unjustified_blacklist_entries": [e.to_dict() for e in self.merchant_blacklist.audit()],
            "double_spend_reports": [r.to_dict() for r in self.reports.all()],
        }

    def double_spend_reports(self) -> list[DoubleSpendReport]:
        """Every double-spend report with its status and supervision's answer."""
        return self.reports.all()

    def retry_double_spend_reports(self) -> dict[str, int]:
        """``{sent, failed}`` after sending every pending or failed report again."""
        done = self.reports.retry()
        redeemed = self.redeem_reports.retry()  # 9.4: reports whose first spend was a redeem
        swapped = self.swap_reports.retry()  # 9.3: reports whose first spend was a swap
        return {k: done[k] + redeemed[k] + swapped[k] for k in ("sent", "failed")}
