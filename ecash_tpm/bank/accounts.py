"""Customer and merchant accounts: passwords, TOTP, bearer tokens, merchant certificates.

Customers log in with password + TOTP and get a short-lived bearer token:

- passwords are hashed with scrypt (per-user 16-byte salt, parameters stored per user so they
  can be raised later) and compared in constant time; an unknown account costs the same scrypt
  so timing does not reveal which accounts exist;
- TOTP is RFC 6238 (SHA-1, 6 digits, 30 s) with one step of clock skew either way; a code is
  accepted at most once (RFC 6238 §5.2: the last used time step is stored); a correct code used
  again is ``auth.totp_reused``, which is *not* a failed login;
- tokens are 32 random bytes; only their SHA-256 is stored, so a database leak yields no
  usable token;
- every attempt first claims a slot per source (:class:`SourceThrottle`, 429
  ``auth.throttled``) and per account id (``login_guard``, one atomic SQL update; 429
  ``auth.locked`` once ``login_threshold`` failures are counted in ``login_window_s``), both
  before scrypt; success gives the slots back. The lock-out ends with its window. Failures are
  logged under subject ``login:<account>`` for the audit; an account put on the login blacklist
  (by an operator) gets 403 ``auth.blacklisted`` even with the right password.

Merchants are identified by the central bank's certificate (role ``merchant``, CN = merchant
id). The bank registers the certified key and later requires exactly that key: a merchant that
rotates its key re-registers (``bank merchant add``).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import NoReturn

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.twofactor import InvalidToken
from cryptography.hazmat.primitives.twofactor.totp import TOTP
from cryptography.x509.oid import NameOID

from ecash_tpm.bank.blacklist import Blacklist, login_subject
from ecash_tpm.bank.errors import (
    AccountExistsError,
    InvalidCredentialsError,
    InvalidTokenError,
    LoginBlacklistedError,
    LoginLockedError,
    LoginThrottledError,
    MerchantKeyMismatchError,
    TotpReusedError,
    UnknownAccountError,
    UnknownMerchantError,
)
from ecash_tpm.bank.ledger import (
    EXTERNAL_FUNDING,
    balance,
    customer_account,
    post_transaction,
)
from ecash_tpm.bank.models import AccountInfo, LoginToken, MerchantInfo
from ecash_tpm.bank.store import accounts as rows
from ecash_tpm.bank.store import guards as guard_rows
from ecash_tpm.bank.store.accounts import AccountRow
from ecash_tpm.bank.throttle import SourceThrottle
from ecash_tpm.crypto.signing import key_id
from ecash_tpm.errors import InputError
from ecash_tpm.pki import CrlProvider, load_certificate, verify_party_certificate
from ecash_tpm.pki.certcache import PartyCertCache
from ecash_tpm.protocol.coins import check_currency, check_identifier
from ecash_tpm.storage import Database, Transaction, UniqueViolationError

__all__ = ["Accounts", "ScryptParams"]

TOTP_DIGITS = 6
TOTP_STEP_S = 30
TOTP_DRIFT_STEPS = 1
MIN_PASSWORD_LEN = 8
MIN_TOTP_SECRET_LEN = 16  # RFC 4226 minimum of 128 bits (cryptography enforces it too)


@dataclass(frozen=True, slots=True)
class ScryptParams:
    """scrypt cost (RFC 7914). n=2^14, r=8, p=1 takes ~16 MiB and tens of ms per check."""

    n: int = 2**14
    r: int = 8
    p: int = 1

    def __post_init__(self) -> None:
        if self.n < 2**10 or self.n & (self.n - 1) or self.r < 1 or self.p < 1:
            raise InputError("scrypt n must be a power of two >= 1024, r and p >= 1")


def _scrypt(password: str, salt: bytes, n: int, r: int, p: int) -> bytes:
    return hashlib.scrypt(
        password.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=256 * n * r + 2**20, dklen=32
    )


def _token_hash(token: str) -> bytes:
    return hashlib.sha256(token.encode("ascii", "replace")).digest()


def _utc(ts: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, dt.UTC)


class Accounts:
    """Customer accounts, logins and tokens; merchant registration and authentication."""

    def __init__(
        self,
        db: Database,
        login_blacklist: Blacklist,
        *,
        central_bank_root: x509.Certificate,
        currency: str,
        token_ttl_s: int,
        scrypt: ScryptParams,
        clock: Callable[[], int],
        source_throttle: SourceThrottle | None = None,
        crl: CrlProvider | None = None,
    ) -> None:
        self._db = db
        self._blacklist = login_blacklist
        # The login lock-out per account uses the login rule's threshold and window.
        self._lock_limit = login_blacklist.threshold
        self._lock_window_s = login_blacklist.window_s
        self._sources = source_throttle
        self._crl = crl  # the central bank's current CRL (docs/protocol.md, "Revocation")
        db.migrate(guard_rows.MIGRATIONS, component=guard_rows.COMPONENT)
        self._root = central_bank_root
        self._merchant_certs = PartyCertCache(central_bank_root, crl=crl)
        self.currency = check_currency(currency)
        self._token_ttl_s = token_ttl_s
        self._scrypt = scrypt
        self._clock = clock

    # --- customers ----------------------------------------------------------------------------

    def create_customer(
        self, account_id: str, password: str, totp_secret: bytes, *, initial_balance: int = 0
    ) -> AccountInfo:
        """Open a customer account (optionally funded from outside in the same transaction)."""
        check_identifier(account_id, "account_id")
        if not isinstance(password, str) or len(password) < MIN_PASSWORD_LEN:
            raise InputError(f"password must have at least {MIN_PASSWORD_LEN} characters")
        if not isinstance(totp_secret, bytes) or len(totp_secret) < MIN_TOTP_SECRET_LEN:
            raise InputError(f"TOTP secret must be at least {MIN_TOTP_SECRET_LEN} bytes")
        if isinstance(initial_balance, bool) or not isinstance(initial_balance, int):
            raise InputError("initial balance must be an integer")
        if initial_balance < 0:
            raise InputError("initial balance must not be negative")
        salt = secrets.token_bytes(16)
        params = self._scrypt
        pw_hash = _scrypt(password, salt, params.n, params.r, params.p)
        now = self._clock()

        def run(tx: Transaction) -> None:
            self._insert_account(tx, account_id, "customer", now)
            rows.insert_customer_auth(
                tx,
                account_id,
                salt=salt,
                pw_hash=pw_hash,
                n=params.n,
                r=params.r,
                p=params.p,
                totp_secret=totp_secret,
            )
            if initial_balance:
                self._fund(tx, account_id, initial_balance, "open:" + account_id, now)

        self._db.run_in_transaction(run)
        return self.account_info(account_id)

    def _insert_account(self, tx: Transaction, account_id: str, kind: str, now: int) -> None:
        try:
            with tx.savepoint():
                rows.insert_account(tx, account_id, kind, self.currency, now)
        except UniqueViolationError as exc:
            raise AccountExistsError(
                "an account with this id already exists", detail={"account_id": account_id}
            ) from exc

    def _fund(self, tx: Transaction, account_id: str, amount: int, ref: str, now: int) -> int:
        return post_transaction(
            tx,
            kind="fund",
            ref=ref,
            entries=[(customer_account(account_id), amount), (EXTERNAL_FUNDING, -amount)],
            currency=self.currency,
            now=now,
        )

    def fund(self, account_id: str, amount: int, *, ref: str | None = None) -> AccountInfo:
        """Credit a customer with money from outside (counter deposit, transfer); idempotent
        by ``ref`` (a second call with the same ref is a 409 from the ledger's unique key)."""
        if isinstance(amount, bool) or not isinstance(amount, int) or amount <= 0:
            raise InputError("amount must be a positive integer")
        now = self._clock()
        reference = ref if ref is not None else "fund:" + secrets.token_hex(16)

        def run(tx: Transaction) -> None:
            self._require_kind(tx, account_id, "customer")
            self._fund(tx, account_id, amount, reference, now)

        self._db.run_in_transaction(run)
        return self.account_info(account_id)

    def _require_kind(self, tx: Transaction, account_id: str, kind: str) -> AccountRow:
        row = rows.account(tx, account_id)
        if row is None or row.kind != kind:
            raise UnknownAccountError(
                f"no {kind} account with this id", detail={"account_id": account_id}
            )
        return row

    def account_info(self, account_id: str) -> AccountInfo:
        """The account with its balance (one snapshot)."""
        with self._db.read() as tx:
            row = rows.account(tx, account_id)
            if row is None:
                raise UnknownAccountError("no such account", detail={"account_id": account_id})
            prefix = "customer:" if row.kind == "customer" else "merchant:"
            bal = balance(tx, prefix + account_id)
        return AccountInfo(account_id=account_id, kind=row.kind, balance=bal, currency=row.currency)

    # --- login and tokens ---------------------------------------------------------------------

    def login(
        self, account_id: str, password: str, totp: str, *, source: str | None = None
    ) -> LoginToken:
        """Password + TOTP -> ``{token, expires_at}`` (docs/protocol.md, "Login").

        Order matters: (1) a login blacklist entry refuses; (2) the per-source throttle and
        (3) the per-account guard each *claim* a slot before anything expensive runs, so
        neither many sources nor many parallel guesses get more than their limit of scrypt
        evaluations; (4) password, (5) TOTP with +-1 step of skew. A correct code of a step
        used already is ``auth.totp_reused`` and gives its slots back: an accepted code is
        never a failure.
        """
        account_id = str(account_id)
        subject = login_subject(account_id[:64])
        self._blacklist.check(subject, LoginBlacklistedError)
        if source is not None and self._sources is not None:
            wait = self._sources.acquire(source)
            if wait is not None:
                raise LoginThrottledError(
                    "too many failed logins from this address; try again later",
                    detail={"retry_after": wait},
                )
        now = self._clock()
        guard_key = account_id[:64]
        if not self._claim(guard_key, now):
            self._release_source(source)  # refused without a hash: not the source's failure
            with self._db.read() as tx:
                started = guard_rows.guard_window(tx, guard_key)
            wait = max(1, (started if started is not None else now) + self._lock_window_s - now)
            raise LoginLockedError(
                "too many failed logins for this account; try again later",
                detail={"retry_after": wait},
            )
        with self._db.read() as tx:
            row = rows.customer_auth(tx, account_id)
        if row is None:
            params = self._scrypt
            _scrypt(str(password), secrets.token_bytes(16), params.n, params.r, params.p)
            self._login_failed(subject, "unknown_account")
        computed = _scrypt(
            str(password), row.password_salt, row.scrypt_n, row.scrypt_r, row.scrypt_p
        )
        if not hmac.compare_digest(computed, row.password_hash):
            self._login_failed(subject, "bad_password")
        step = self._totp_step(row.totp_secret, str(totp), now)
        if step is None:
            self._login_failed(subject, "bad_totp")
        token = secrets.token_urlsafe(32)
        expires_at = now + self._token_ttl_s

        def run(tx: Transaction) -> bool:
            # Re-check under the write lock: two logins racing with one code get one token.
            if not rows.use_totp_step(tx, account_id, step):
                guard_rows.release_attempt(tx, guard_key)
                return False
            rows.insert_token(tx, _token_hash(token), account_id, now, expires_at)
            rows.delete_expired_tokens(tx, now)
            guard_rows.reset_guard(tx, guard_key)
            guard_rows.delete_stale_guards(tx, before=now - self._lock_window_s)
            return True

        accepted = self._db.run_in_transaction(run)
        self._release_source(source)
        if not accepted:
            raise TotpReusedError(
                "this TOTP code was used already; wait for the next one",
                detail={"retry_after": (step + 1) * TOTP_STEP_S - now},
            )
        return LoginToken(token=token, expires_at=expires_at)

    def _claim(self, guard_key: str, now: int) -> bool:
        def run(tx: Transaction) -> bool:
            return guard_rows.claim_attempt(
                tx, guard_key, now=now, limit=self._lock_limit, window_s=self._lock_window_s
            )

        return self._db.run_in_transaction(run)

    def _release_source(self, source: str | None) -> None:
        if source is not None and self._sources is not None:
            self._sources.release(source)

    def _totp_step(self, secret: bytes, code: str, now: int) -> int | None:
        """The time step ``code`` is valid for: now, one step back or one ahead (clock skew,
        RFC 6238 §5.2). Whether it was used already is decided under the write lock."""
        if len(code) != TOTP_DIGITS or not code.isdigit():
            return None
        totp = TOTP(secret, TOTP_DIGITS, hashes.SHA1(), TOTP_STEP_S)  # noqa: S303 (RFC 6238)
        current = now // TOTP_STEP_S
        for step in (current, current - TOTP_DRIFT_STEPS, current + TOTP_DRIFT_STEPS):
            try:
                totp.verify(code.encode("ascii"), step * TOTP_STEP_S)
            except InvalidToken:
                continue
            return step
        return None

    def _login_failed(self, subject: str, reason: str) -> NoReturn:
        """Log the failure for the audit; the claimed slots stay counted (no blacklisting: a
        login lock-out ends with its window, so guessing cannot shut a customer out for good)."""
        self._blacklist.log_failure(subject, reason, InvalidCredentialsError.code)
        raise InvalidCredentialsError("wrong account, password or TOTP code")

    def authenticate(self, token: str | None) -> str:
        """Bearer token -> account id; 401 ``auth.invalid_token`` otherwise."""
        if not token:
            raise InvalidTokenError("a bearer token is required")
        now = self._clock()
        with self._db.read() as tx:
            found = rows.token(tx, _token_hash(token))
        if found is None or found[1] <= now:
            raise InvalidTokenError("unknown or expired token")
        return found[0]

    # --- merchants ----------------------------------------------------------------------------

    def add_merchant(self, cert_pem: str | bytes) -> MerchantInfo:
        """Register (or re-key) a merchant from its central-bank certificate."""
        cert = load_certificate(cert_pem)
        now = self._clock()
        public_key = verify_party_certificate(
            cert, self._root, role="merchant", now=_utc(now), crl=self._crl
        )
        cns = cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)
        merchant_id = check_identifier(str(cns[0].value) if cns else "", "merchant_id")
        pem = cert.public_bytes(serialization.Encoding.PEM).decode("ascii")
        kid = key_id(public_key)

        def run(tx: Transaction) -> None:
            kind = rows.account_kind(tx, merchant_id)
            if kind is None:
                self._insert_account(tx, merchant_id, "merchant", now)
                rows.insert_merchant(tx, merchant_id, pem, kid, now)
            elif kind != "merchant":
                raise AccountExistsError(
                    "a customer account has this id", detail={"account_id": merchant_id}
                )
            else:
                rows.update_merchant(tx, merchant_id, pem, kid, now)

        self._db.run_in_transaction(run)
        return MerchantInfo(
            merchant_id=merchant_id, key_id=kid, account=self.account_info(merchant_id)
        )

    def merchant_key(self, merchant_id: str, cert_pem: str | bytes) -> ec.EllipticCurvePublicKey:
        """Check a presented merchant certificate and return its (registered) key."""
        check_identifier(merchant_id, "merchant_id")
        with self._db.read() as tx:
            registered = rows.merchant_key_id(tx, merchant_id)
        if registered is None:
            raise UnknownMerchantError(
                "merchant is not registered with this bank", detail={"merchant_id": merchant_id}
            )
        # cached per certificate and CRL (issue 13 item 3); validity re-checked on every call
        public_key = self._merchant_certs.verify(
            cert_pem, role="merchant", name=merchant_id, now=_utc(self._clock())
        )
        if key_id(public_key) != registered:
            raise MerchantKeyMismatchError(
                "certificate key differs from the registered merchant key (re-register it)",
                detail={"merchant_id": merchant_id},
            )
        return public_key
