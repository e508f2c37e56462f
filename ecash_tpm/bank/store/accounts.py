"""Queries on ``bank_account``, ``customer_auth``, ``auth_token`` and ``merchant``."""

from __future__ import annotations

from dataclasses import dataclass

from ecash_tpm.storage import Transaction

__all__ = [
    "AccountRow",
    "CustomerAuthRow",
    "account",
    "account_kind",
    "delete_expired_tokens",
    "insert_account",
    "insert_customer_auth",
    "insert_merchant",
    "insert_token",
    "customer_auth",
    "merchant_key_id",
    "token",
    "update_merchant",
    "use_totp_step",
]


@dataclass(frozen=True, slots=True)
class AccountRow:
    account_id: str
    kind: str
    currency: str


@dataclass(frozen=True, slots=True)
class CustomerAuthRow:
    """What a login needs: the scrypt hash and its parameters, the TOTP secret and last step."""

    password_salt: bytes
    password_hash: bytes
    scrypt_n: int
    scrypt_r: int
    scrypt_p: int
    totp_secret: bytes
    last_totp_step: int


# --- bank_account ------------------------------------------------------------------------------


def insert_account(tx: Transaction, account_id: str, kind: str, currency: str, now: int) -> None:
    """A duplicate id raises ``UniqueViolationError`` (run it inside a savepoint)."""
    tx.execute(
        "INSERT INTO bank_account (account_id, kind, currency, created_at)"
        " VALUES (:a, :k, :c, :now)",
        {"a": account_id, "k": kind, "c": currency, "now": now},
    )


def account(tx: Transaction, account_id: str) -> AccountRow | None:
    row = tx.fetchone(
        "SELECT account_id, kind, currency FROM bank_account WHERE account_id = :a",
        {"a": account_id},
    )
    if row is None:
        return None
    return AccountRow(str(row["account_id"]), str(row["kind"]), str(row["currency"]))


def account_kind(tx: Transaction, account_id: str) -> str | None:
    row = tx.fetchone("SELECT kind FROM bank_account WHERE account_id = :a", {"a": account_id})
    return None if row is None else str(row["kind"])


# --- customer_auth -----------------------------------------------------------------------------


def insert_customer_auth(
    tx: Transaction,
    account_id: str,
    *,
    salt: bytes,
    pw_hash: bytes,
    n: int,
    r: int,
    p: int,
    totp_secret: bytes,
) -> None:
    tx.execute(
        "INSERT INTO customer_auth (account_id, password_salt, password_hash, scrypt_n,"
        " scrypt_r, scrypt_p, totp_secret) VALUES (:a, :salt, :hash, :n, :r, :p, :totp)",
        {
            "a": account_id,
            "salt": salt,
            "hash": pw_hash,
            "n": n,
            "r": r,
            "p": p,
            "totp": totp_secret,
        },
    )


def customer_auth(tx: Transaction, account_id: str) -> CustomerAuthRow | None:
    row = tx.fetchone(
        "SELECT password_salt, password_hash, scrypt_n, scrypt_r, scrypt_p, totp_secret,"
        " last_totp_step FROM customer_auth WHERE account_id = :a",
        {"a": account_id},
    )
    if row is None:
        return None
    return CustomerAuthRow(
        password_salt=bytes(row["password_salt"]),
        password_hash=bytes(row["password_hash"]),
        scrypt_n=int(row["scrypt_n"]),
        scrypt_r=int(row["scrypt_r"]),
        scrypt_p=int(row["scrypt_p"]),
        totp_secret=bytes(row["totp_secret"]),
        last_totp_step=int(row["last_totp_step"]),
    )


def use_totp_step(tx: Transaction, account_id: str, step: int) -> bool:
    """Record ``step`` as used; False when it (or a later one) was used already."""
    updated = tx.execute(
        "UPDATE customer_auth SET last_totp_step = :step"
        " WHERE account_id = :a AND last_totp_step < :step",
        {"step": step, "a": account_id},
    )
    return updated == 1


# --- auth_token --------------------------------------------------------------------------------


def insert_token(
    tx: Transaction, token_hash: bytes, account_id: str, now: int, expires_at: int
) -> None:
    tx.execute(
        "INSERT INTO auth_token (token_hash, account_id, created_at, expires_at)"
        " VALUES (:h, :a, :now, :exp)",
        {"h": token_hash, "a": account_id, "now": now, "exp": expires_at},
    )


def delete_expired_tokens(tx: Transaction, now: int) -> None:
    tx.execute("DELETE FROM auth_token WHERE expires_at <= :now", {"now": now})


def token(tx: Transaction, token_hash: bytes) -> tuple[str, int] | None:
    """``(account_id, expires_at)`` of a token, by the hash the bank stores."""
    row = tx.fetchone(
        "SELECT account_id, expires_at FROM auth_token WHERE token_hash = :h", {"h": token_hash}
    )
    return None if row is None else (str(row["account_id"]), int(row["expires_at"]))


# --- merchant ----------------------------------------------------------------------------------


def insert_merchant(tx: Transaction, merchant_id: str, pem: str, kid: str, now: int) -> None:
    tx.execute(
        "INSERT INTO merchant (merchant_id, cert_pem, key_id, updated_at)"
        " VALUES (:m, :pem, :kid, :now)",
        {"m": merchant_id, "pem": pem, "kid": kid, "now": now},
    )


def update_merchant(tx: Transaction, merchant_id: str, pem: str, kid: str, now: int) -> None:
    tx.execute(
        "UPDATE merchant SET cert_pem = :pem, key_id = :kid, updated_at = :now"
        " WHERE merchant_id = :m",
        {"m": merchant_id, "pem": pem, "kid": kid, "now": now},
    )


def merchant_key_id(tx: Transaction, merchant_id: str) -> str | None:
    """The key id registered for a merchant, or None if it is not registered."""
    row = tx.fetchone("SELECT key_id FROM merchant WHERE merchant_id = :m", {"m": merchant_id})
    return None if row is None else str(row["key_id"])
