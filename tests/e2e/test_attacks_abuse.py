"""Issue 10, attacks 9 and 10, played over HTTPS against the real test servers (swtpm wallet).

9. Login abuse and resource exhaustion: a replayed correct TOTP code is no failure; 40 parallel
   wrong guesses get exactly ``login_threshold`` scrypt evaluations; one source is throttled
   before scrypt; oversized and half-sent bodies are refused without stalling the servers;
   expired payment requests and reservations are purged.
10. Revoked certificates: once the central bank revokes a merchant, the wallet, the bank (signed
    objects and mutual TLS), the TTP and the supervision department refuse it; a CRL past its
    next update makes verifiers refuse to act; the honest merchant and customer are unaffected.
"""

from __future__ import annotations

import secrets
import socket
import ssl
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlsplit

import pytest
from cryptography import x509
from support.system import System, WalletHandle, start_system

import ecash_tpm.bank.accounts as bank_accounts
from ecash_tpm.bank.store import deposits as deposit_rows
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.clients.supervision import HttpMemberRegistry, SupervisionClient
from ecash_tpm.crypto.bn256 import G, random_scalar
from ecash_tpm.crypto.groupsig import make_spend_proof
from ecash_tpm.crypto.signing import PartyKey, canonical_digest
from ecash_tpm.device import TpmDevice
from ecash_tpm.errors import EcashError
from ecash_tpm.merchant.store import PURGE_GRACE_S
from ecash_tpm.pki import cert_pem, tls_identity
from ecash_tpm.protocol.coins import Spend, sign_deposit, sign_reserve
from ecash_tpm.protocol.registry import RegistryEntry
from ecash_tpm.service.errors import RemoteCallError
from ecash_tpm.service.tls import client_context

pytestmark = pytest.mark.swtpm

THRESHOLD = 5  # login_threshold
LOGIN_WINDOW_S = 900
SOURCE_LIMIT = 8  # login_source_limit
SOURCE_WINDOW_S = 300
READ_TIMEOUT_S = 1.0


@pytest.fixture(scope="module")
def device(swtpm: Any) -> Iterator[TpmDevice]:
    with TpmDevice(swtpm.tcti) as dev:
        yield dev


@pytest.fixture(scope="module")
def system(
    swtpm: Any, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[System]:
    with start_system(
        tmp_path_factory.mktemp("abuse"),
        swtpm=swtpm,
        tpm=device,
        ttp=True,
        bank_policy={
            "login_threshold": THRESHOLD,
            "login_window_s": LOGIN_WINDOW_S,
            "login_source_limit": SOURCE_LIMIT,
            "login_source_window_s": SOURCE_WINDOW_S,
            "blacklist_threshold": 1000,
        },
        server_settings={"body_read_timeout_s": READ_TIMEOUT_S},
    ) as s:
        yield s


@pytest.fixture(scope="module")
def wallet(
    system: System, device: TpmDevice, tmp_path_factory: pytest.TempPathFactory
) -> WalletHandle:
    handle = system.open_wallet(device, tmp_path_factory.mktemp("wallet"))
    handle.withdraw(64)
    return handle


# --- helpers -------------------------------------------------------------------------------------


class ScryptCounter:
    """Counts the bank's scrypt evaluations (the expensive step a login attacker aims at)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls = 0
        self._lock = threading.Lock()
        real: Callable[..., bytes] = bank_accounts._scrypt

        def counted(*args: Any) -> bytes:
            with self._lock:
                self.calls += 1
            return real(*args)

        monkeypatch.setattr(bank_accounts, "_scrypt", counted)

    def take(self) -> int:
        with self._lock:
            calls, self.calls = self.calls, 0
        return calls


def login_code(system: System, account: str, password: str, totp: str) -> str:
    """The refusal code of one login from a fresh client ("ok" when it succeeds)."""
    with BankClient(system.bank_url, **system.link("bank")) as client:
        try:
            client.login(account, password, totp)
        except RemoteCallError as exc:
            return exc.code
    return "ok"


def raw_tls(system: System, url: str, role: str, name: str) -> ssl.SSLSocket:
    """A TLS connection to a party as an attacker's own HTTP client makes it."""
    parts = urlsplit(url)
    sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 443), 10)
    context = client_context(system.root_path)
    return context.wrap_socket(sock, server_hostname=tls_identity(role, name))


def read_all(conn: ssl.SSLSocket, timeout: float) -> bytes:
    """Everything the server sends until it closes the connection (or ``timeout``)."""
    conn.settimeout(timeout)
    data = b""
    try:
        while chunk := conn.recv(65536):
            data += chunk
    except (TimeoutError, ssl.SSLError, ConnectionError):
        pass
    return data


def status_of(answer: bytes) -> int:
    return int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/1.1 ") else 0


def spend_for(wallet: WalletHandle, value: int, request: dict[str, Any]) -> tuple[Any, Any]:
    """``(held coin, spend dict)``: a TPM spend of an unspent coin of ``value`` for ``request``
    (the coin stays unspent in the wallet's store)."""
    held = next(hc for hc in wallet.store.coins("unspent") if hc.value == value)
    proof = make_spend_proof(
        wallet.signer,
        hop=wallet.membership.opener_public,
        preq=canonical_digest(request["request"]["body"]),
        keyset_id=held.coin.keyset_id,
        epoch=held.coin.epoch,
        sigma=held.coin.sigma,
        coin=held.coin.credential,
    )
    return held, Spend(held.coin, proof).to_dict()


def refusal(call: Callable[[], Any]) -> EcashError:
    with pytest.raises(EcashError) as info:
        call()
    return info.value


def serial_of(pem: str | bytes) -> int:
    data = pem if isinstance(pem, bytes) else pem.encode("ascii")
    return x509.load_pem_x509_certificate(data).serial_number


# --- attack 9 ------------------------------------------------------------------------------------


def test_attack_9_login_abuse(
    system: System, wallet: WalletHandle, monkeypatch: pytest.MonkeyPatch
) -> None:
    customer = system.customer
    scrypt = ScryptCounter(monkeypatch)
    system.clock.advance(SOURCE_WINDOW_S + LOGIN_WINDOW_S)  # fresh windows

    # (a) a second correct login within one TOTP step: refused as a replay, not a failure
    code = customer.totp()
    assert login_code(system, customer.account_id, customer.password, code) == "ok"
    assert login_code(system, customer.account_id, customer.password, code) == "auth.totp_reused"
    assert system.bank.login_blacklist.failures("login:alice") == []
    scrypt.take()

    # (b) 40 parallel wrong guesses: exactly THRESHOLD evaluated, the account locked
    barrier = threading.Barrier(40)

    def guess(i: int) -> str:
        barrier.wait(10)
        return login_code(system, customer.account_id, f"guess-{i:04d}", "123456")

    with ThreadPoolExecutor(max_workers=40) as pool:
        codes = list(pool.map(guess, range(40)))
    assert scrypt.take() == THRESHOLD
    assert codes.count("auth.invalid_credentials") == THRESHOLD
    assert set(codes) <= {"auth.invalid_credentials", "auth.locked", "auth.throttled"}
    # the others: refused by the account lock or, while slots are held, the source throttle
    # even the right password and code are refused while locked, without any hash
    assert login_code(system, customer.account_id, customer.password, customer.totp()) == (
        "auth.locked"
    )
    assert scrypt.take() == 0
    # ... and the lock expires: the honest customer logs in again, nothing was blacklisted
    system.clock.advance(LOGIN_WINDOW_S)
    assert login_code(system, customer.account_id, customer.password, customer.totp()) == "ok"
    assert system.bank.login_blacklist.entries() == []

    # (c) anonymous logins for made-up accounts from one source: throttled before scrypt
    system.clock.advance(SOURCE_WINDOW_S)
    scrypt.take()
    codes = [login_code(system, f"nobody-{i}", "password-guess", "123456") for i in range(20)]
    assert codes[:SOURCE_LIMIT] == ["auth.invalid_credentials"] * SOURCE_LIMIT
    assert codes[SOURCE_LIMIT:] == ["auth.throttled"] * (20 - SOURCE_LIMIT)
    assert scrypt.take() == SOURCE_LIMIT
    system.clock.advance(SOURCE_WINDOW_S)

    # (d) an 8 MiB body to the TTP and to the bank: 413 at once, the servers keep serving
    for url, role in ((system.ttp_url, "ttp"), (system.bank_url, "bank")):
        assert url is not None
        with raw_tls(system, url, role, role) as conn:
            started = time.monotonic()
            conn.sendall(
                b"POST /v1/disputes HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                b"Content-Length: 8388608\r\n\r\n" + b'{"request": "' + b"A" * 4096
            )
            answer = read_all(conn, 5.0)
            assert time.monotonic() - started < 3.0
        assert status_of(answer) == 413 and b'"input.too_large"' in answer
    assert system.ttp_client().products()["products"] is not None
    assert system.bank_client().coin_status(secrets.token_bytes(32))["state"] == "unspent"

    # (e) a half-sent body: dropped after the read timeout, other requests served meanwhile
    with raw_tls(system, system.bank_url, "bank", "bank") as conn:
        conn.sendall(
            b"POST /v1/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 1000\r\n\r\n{"account_id": "al'
        )
        started = time.monotonic()
        assert system.bank_client().coin_status(secrets.token_bytes(32))["state"] == "unspent"
        assert time.monotonic() - started < READ_TIMEOUT_S
        answer = read_all(conn, 10.0)
        waited = time.monotonic() - started
    assert status_of(answer) == 408 and b'"input.read_timeout"' in answer
    assert READ_TIMEOUT_S * 0.5 <= waited < READ_TIMEOUT_S + 5.0

    # (f) expired payment requests are purged at the merchant ...
    shop = system.merchants["shop-1"]
    stale = wallet.request(1, "shop-1")
    stale_preq = canonical_digest(stale["request"]["body"])
    assert shop.store.get(stale_preq) is not None
    system.clock.advance(300 + PURGE_GRACE_S + 1)  # past deadline (request_ttl_s) and grace
    fresh = wallet.request(1, "shop-1")
    assert shop.store.get(stale_preq) is None
    assert shop.store.get(canonical_digest(fresh["request"]["body"])) is not None

    # ... and expired reservations at the bank, while the coin stays the customer's
    held, spend = spend_for(wallet, 1, fresh)
    m = shop.config
    as_shop = system.bank_client_as("shop-1")
    signed = sign_reserve(m.key, merchant_id="shop-1", request=fresh["request"], spends=[spend])
    as_shop.reserve(signed, m.cert_pem)
    with system.bank.db.read() as tx:
        assert deposit_rows.lock(tx, held.sigma) is not None
    system.clock.advance(system.bank.policy.lock_period_s + 1)
    other = wallet.request(2, "shop-1")
    _, spend2 = spend_for(wallet, 2, other)
    signed2 = sign_reserve(m.key, merchant_id="shop-1", request=other["request"], spends=[spend2])
    as_shop.reserve(signed2, m.cert_pem)
    with system.bank.db.read() as tx:
        assert deposit_rows.lock(tx, held.sigma) is None  # purged
    assert system.bank_client().coin_status(held.sigma)["state"] == "unspent"
    system.clock.advance(system.bank.policy.lock_period_s + 1)
    assert system.bank.ledger_check()["ok"] is True


# --- attack 10 -----------------------------------------------------------------------------------


def test_attack_10_revoked_certificate(system: System, wallet: WalletHandle) -> None:
    customer0, coins0 = system.customer_balance(), wallet.balance()
    shop1_0, shop2_0 = system.merchant_balance("shop-1"), system.merchant_balance("shop-2")

    # before: shop-1 is paid normally
    wallet.pay(1, "shop-1")
    assert system.merchant_balance("shop-1") == shop1_0 + 1

    # the central bank revokes shop-1's signing certificate and publishes its CRL
    shop1 = system.merchants["shop-1"].config
    system.ca.revoke(serial_of(shop1.cert_pem), "keyCompromise")
    system.publish_crl()

    # the wallet refuses shop-1's payment request before spending anything
    before = wallet.balance()
    err = refusal(lambda: wallet.pay(2, "shop-1"))
    assert err.code == "cert.revoked"
    assert wallet.balance() == before and not wallet.store.coins("pending")

    # the bank refuses its deposits and reservations (its TLS certificate still valid)
    req = wallet.request(2, "shop-1")
    _, spend = spend_for(wallet, 2, req)
    as_shop1 = system.bank_client_as("shop-1")
    deposit = sign_deposit(
        shop1.key,
        deposit_id="dep-revoked",
        merchant_id="shop-1",
        request=req["request"],
        spends=[spend],
    )
    err = refusal(lambda: as_shop1.deposit(deposit, shop1.cert_pem))
    assert err.code == "cert.revoked"
    reserve = sign_reserve(shop1.key, merchant_id="shop-1", request=req["request"], spends=[spend])
    err = refusal(lambda: as_shop1.reserve(reserve, shop1.cert_pem))
    assert err.code == "cert.revoked"

    # the TTP refuses to escrow products for it
    err = refusal(
        lambda: system.register_product("shop-1", title="song", price=3, content=b"la la la")
    )
    assert err.code == "cert.revoked"

    # ... and with its TLS certificate revoked too, the bank refuses the mTLS connection
    tls_pem = (system.base_dir / "shop-1" / "tls-cert.pem").read_bytes()
    system.ca.revoke(serial_of(tls_pem), "keyCompromise")
    system.publish_crl()
    err = refusal(lambda: as_shop1.deposit(deposit, shop1.cert_pem))
    assert err.code == "tls.client_revoked"

    # the supervision department refuses a revoked issuer key (no member registered by it)
    rogue = PartyKey.generate()
    rogue_cert = cert_pem(system.ca.certify("issuer", "issuer", rogue.public_key))
    system.ca.revoke(serial_of(rogue_cert), "keyCompromise")
    system.publish_crl()
    as_issuer = SupervisionClient(
        system.supervision_url, **system.link("supervision", client_of="issuer")
    )
    try:
        registry = HttpMemberRegistry(as_issuer, rogue, rogue_cert)
        entry = RegistryEntry("m-rogue", random_scalar() * G, "mallory", 1)
        err = refusal(lambda: registry.register(entry))
    finally:
        as_issuer.close()
    assert err.code == "cert.revoked"
    assert all(r["member_id"] != "m-rogue" for r in system.supervision.registry())

    # a CRL past its next update: verifiers refuse to act (503 crl.stale), nothing moves
    system.publish_crl(valid_for_s=60)
    system.clock.advance(120)
    err = refusal(lambda: wallet.pay(1, "shop-2"))
    assert err.code == "crl.stale"
    shop2 = system.merchants["shop-2"].config
    req2 = wallet.request(1, "shop-2")
    _, spend2 = spend_for(wallet, 1, req2)
    stale_deposit = sign_deposit(
        shop2.key,
        deposit_id="dep-stale",
        merchant_id="shop-2",
        request=req2["request"],
        spends=[spend2],
    )
    err = refusal(lambda: system.bank_client_as("shop-2").deposit(stale_deposit, shop2.cert_pem))
    assert err.code == "crl.stale" and isinstance(err, RemoteCallError) and err.status == 503

    # a fresh CRL: the honest merchant and customer are unaffected
    system.publish_crl()
    paid = wallet.pay(2, "shop-2")
    assert paid.merchant_id == "shop-2"
    assert system.merchant_balance("shop-2") == shop2_0 + 2
    assert system.merchant_balance("shop-1") == shop1_0 + 1  # nothing after the revocation
    assert wallet.balance() == coins0 - 3
    assert system.customer_balance() == customer0
    assert system.bank.ledger_check()["ok"] is True
