"""The bank's schema as numbered migrations (component ``bank``), portable SQLite/PostgreSQL.

Kept in Python rather than ``.sql`` package data so an installed wheel can never ship without
its schema. Design points:

- money is append-only: ``ledger_txn`` + ``ledger_entry`` (signed amounts, every transaction
  sums to zero); balances are sums of entries, so there is no hot balance row for concurrent
  deposits to fight over on PostgreSQL;
- idempotency keys are primary keys: ``withdrawal.request_id``, ``deposit.deposit_id``,
  ``ledger_txn (kind, ref)``; the spent-coin table is keyed by the serial;
- at most one *active* blacklist entry per subject (partial unique index); lifted entries
  stay for the audit together with the failures that justified them.
"""

from __future__ import annotations

from ecash_tpm.storage import Migration

__all__ = ["MIGRATIONS"]

MIGRATIONS: list[Migration] = [
    Migration(
        1,
        "bank",
        """
        CREATE TABLE bank_account (
            account_id TEXT PRIMARY KEY,
            kind TEXT NOT NULL CHECK (kind IN ('customer', 'merchant')),
            currency TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE TABLE customer_auth (
            account_id TEXT PRIMARY KEY REFERENCES bank_account (account_id),
            password_salt {blob} NOT NULL,
            password_hash {blob} NOT NULL,
            scrypt_n BIGINT NOT NULL,
            scrypt_r INTEGER NOT NULL,
            scrypt_p INTEGER NOT NULL,
            totp_secret {blob} NOT NULL,
            last_totp_step BIGINT NOT NULL DEFAULT -1
        );
        CREATE TABLE merchant (
            merchant_id TEXT PRIMARY KEY REFERENCES bank_account (account_id),
            cert_pem TEXT NOT NULL,
            key_id TEXT NOT NULL,
            updated_at BIGINT NOT NULL
        );
        CREATE TABLE auth_token (
            token_hash {blob} PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES bank_account (account_id),
            created_at BIGINT NOT NULL,
            expires_at BIGINT NOT NULL
        );
        CREATE TABLE keyset (
            keyset_id {blob} PRIMARY KEY,
            value BIGINT NOT NULL CHECK (value > 0),
            currency TEXT NOT NULL,
            withdraw_from BIGINT NOT NULL,
            withdraw_until BIGINT NOT NULL,
            deposit_until BIGINT NOT NULL,
            public_key {blob} NOT NULL,
            variant TEXT NOT NULL,
            descriptor TEXT NOT NULL,
            key_file TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            CHECK (withdraw_from < withdraw_until AND withdraw_until <= deposit_until)
        );
        CREATE TABLE ledger_txn (
            txn_id {pk},
            kind TEXT NOT NULL,
            ref TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            UNIQUE (kind, ref)
        );
        CREATE TABLE ledger_entry (
            entry_id {pk},
            txn_id BIGINT NOT NULL REFERENCES ledger_txn (txn_id),
            account TEXT NOT NULL,
            amount BIGINT NOT NULL CHECK (amount <> 0),
            currency TEXT NOT NULL
        );
        CREATE INDEX ledger_entry_account ON ledger_entry (account);
        CREATE INDEX ledger_entry_txn ON ledger_entry (txn_id);
        CREATE TABLE withdrawal (
            request_id TEXT PRIMARY KEY,
            account_id TEXT NOT NULL REFERENCES bank_account (account_id),
            items_digest {blob} NOT NULL,
            amount BIGINT NOT NULL CHECK (amount > 0),
            txn_id BIGINT NOT NULL REFERENCES ledger_txn (txn_id),
            created_at BIGINT NOT NULL
        );
        CREATE TABLE withdrawal_item (
            request_id TEXT NOT NULL REFERENCES withdrawal (request_id),
            idx INTEGER NOT NULL,
            keyset_id {blob} NOT NULL REFERENCES keyset (keyset_id),
            blinded_msg {blob} NOT NULL,
            blind_sig {blob} NOT NULL,
            PRIMARY KEY (request_id, idx)
        );
        CREATE INDEX withdrawal_item_keyset ON withdrawal_item (keyset_id);
        CREATE TABLE deposit (
            deposit_id TEXT PRIMARY KEY,
            merchant_id TEXT NOT NULL REFERENCES merchant (merchant_id),
            content_digest {blob} NOT NULL,
            preq {blob} NOT NULL,
            amount BIGINT NOT NULL CHECK (amount > 0),
            currency TEXT NOT NULL,
            receipt TEXT NOT NULL,
            txn_id BIGINT NOT NULL REFERENCES ledger_txn (txn_id),
            created_at BIGINT NOT NULL
        );
        CREATE TABLE spend_transcript (
            transcript_id {pk},
            deposit_id TEXT NOT NULL REFERENCES deposit (deposit_id),
            sigma {blob} NOT NULL,
            merchant_id TEXT NOT NULL,
            keyset_id {blob} NOT NULL,
            preq {blob} NOT NULL,
            body TEXT NOT NULL,
            created_at BIGINT NOT NULL
        );
        CREATE INDEX spend_transcript_sigma ON spend_transcript (sigma);
        CREATE TABLE spent_coin (
            sigma {blob} PRIMARY KEY,
            keyset_id {blob} NOT NULL REFERENCES keyset (keyset_id),
            transcript_id BIGINT NOT NULL UNIQUE REFERENCES spend_transcript (transcript_id),
            deposit_id TEXT NOT NULL REFERENCES deposit (deposit_id),
            spent_at BIGINT NOT NULL
        );
        CREATE INDEX spent_coin_keyset ON spent_coin (keyset_id);
        CREATE TABLE coin_lock (
            sigma {blob} PRIMARY KEY,
            merchant_id TEXT NOT NULL,
            preq {blob} NOT NULL,
            locked_at BIGINT NOT NULL,
            locked_until BIGINT NOT NULL
        );
        CREATE TABLE verification_failure (
            failure_id {pk},
            subject TEXT NOT NULL,
            reason TEXT NOT NULL,
            code TEXT NOT NULL,
            detail TEXT NOT NULL,
            at BIGINT NOT NULL
        );
        CREATE INDEX verification_failure_subject ON verification_failure (subject, at);
        CREATE TABLE blacklist (
            entry_id {pk},
            subject TEXT NOT NULL,
            listed_at BIGINT NOT NULL,
            reason TEXT NOT NULL,
            failure_ids TEXT NOT NULL,
            threshold INTEGER NOT NULL,
            window_s BIGINT NOT NULL,
            lifted_at BIGINT,
            lifted_by TEXT,
            lift_reason TEXT,
            lift_failure_id BIGINT
        );
        CREATE UNIQUE INDEX blacklist_active ON blacklist (subject) WHERE lifted_at IS NULL;
        CREATE TABLE double_spend_report (
            report_id {pk},
            sigma {blob} NOT NULL,
            first_transcript_id BIGINT NOT NULL REFERENCES spend_transcript (transcript_id),
            second_preq {blob} NOT NULL,
            second_transcript TEXT NOT NULL,
            created_at BIGINT NOT NULL,
            status TEXT NOT NULL CHECK (status IN ('pending', 'sent', 'failed')),
            attempts INTEGER NOT NULL DEFAULT 0,
            result TEXT,
            error TEXT,
            UNIQUE (sigma, second_preq)
        );
        """,
    ),
]
