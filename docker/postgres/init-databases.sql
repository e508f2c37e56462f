-- One database and one login role per party, and a read-only role for the supervision
-- department's audit of the bank (DESIGN §7: each party keeps its own state). Least privilege:
-- a party role owns its own database and nothing else (no superuser, no CREATEDB/CREATEROLE,
-- no CONNECT on any other database), so a party that is broken into can read and change its
-- own state only. The superuser (POSTGRES_USER) is used by no party.
--
-- Run by the postgres image on the first start of an empty data volume
-- (/docker-entrypoint-initdb.d, as the superuser, psql -v ON_ERROR_STOP=1). Idempotent: run it
-- again by hand to upgrade a stack made before the roles existed (docs/operations.md, "Database
-- roles"); it then adopts the existing tables and resets the passwords.
--
-- The passwords come from the postgres container's environment, where compose.yaml makes each
-- one required (${VAR:?}); psql 15's \getenv reads them, so they are in no file.

\set ON_ERROR_STOP on

-- 1. Passwords: refuse to make a role without one (an empty password would only fail later,
--    at the party's first connection, far from the cause).
\set pw_centralbank ''
\set pw_supervision ''
\set pw_issuer ''
\set pw_bank ''
\set pw_merchant_a ''
\set pw_merchant_b ''
\set pw_ttp ''
\set pw_audit ''
\getenv pw_centralbank ECASH_TPM_DB_PASSWORD_CENTRALBANK
\getenv pw_supervision ECASH_TPM_DB_PASSWORD_SUPERVISION
\getenv pw_issuer ECASH_TPM_DB_PASSWORD_ISSUER
\getenv pw_bank ECASH_TPM_DB_PASSWORD_BANK
\getenv pw_merchant_a ECASH_TPM_DB_PASSWORD_MERCHANT_A
\getenv pw_merchant_b ECASH_TPM_DB_PASSWORD_MERCHANT_B
\getenv pw_ttp ECASH_TPM_DB_PASSWORD_TTP
\getenv pw_audit ECASH_TPM_DB_PASSWORD_AUDIT

SELECT string_agg(name, ', ' ORDER BY name) AS missing_passwords
  FROM (VALUES ('ECASH_TPM_DB_PASSWORD_CENTRALBANK', :'pw_centralbank'),
               ('ECASH_TPM_DB_PASSWORD_SUPERVISION', :'pw_supervision'),
               ('ECASH_TPM_DB_PASSWORD_ISSUER', :'pw_issuer'),
               ('ECASH_TPM_DB_PASSWORD_BANK', :'pw_bank'),
               ('ECASH_TPM_DB_PASSWORD_MERCHANT_A', :'pw_merchant_a'),
               ('ECASH_TPM_DB_PASSWORD_MERCHANT_B', :'pw_merchant_b'),
               ('ECASH_TPM_DB_PASSWORD_TTP', :'pw_ttp'),
               ('ECASH_TPM_DB_PASSWORD_AUDIT', :'pw_audit')) AS p (name, pw)
 WHERE length(pw) < 16 \gset
\if :{?missing_passwords}
SET ecash.missing_passwords = :'missing_passwords';
DO $$
BEGIN
    RAISE EXCEPTION 'unset or shorter than 16 characters: %',
        current_setting('ecash.missing_passwords')
        USING HINT = 'docker/gen-env.sh writes them all (docker/README.md)';
END
$$;
\endif

-- 2. Roles: login, nothing else. (Not NOINHERIT: a database owner reaches its public schema
--    through the implicit pg_database_owner membership, which NOINHERIT would cut off.)
CREATE TEMP TABLE party (db name PRIMARY KEY, owner name NOT NULL);
INSERT INTO party VALUES
    ('centralbank', 'ecash_centralbank'),
    ('supervision', 'ecash_supervision'),
    ('issuer', 'ecash_issuer'),
    ('bank', 'ecash_bank'),
    ('merchant_a', 'ecash_merchant_a'),
    ('merchant_b', 'ecash_merchant_b'),
    ('ttp', 'ecash_ttp');

SELECT format('CREATE ROLE %I', r)
  FROM (SELECT owner FROM party UNION ALL SELECT 'ecash_audit') AS roles (r)
 WHERE NOT EXISTS (SELECT FROM pg_roles WHERE rolname = r) \gexec

ALTER ROLE ecash_centralbank WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_centralbank';
ALTER ROLE ecash_supervision WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_supervision';
ALTER ROLE ecash_issuer WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_issuer';
ALTER ROLE ecash_bank WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_bank';
ALTER ROLE ecash_merchant_a WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_merchant_a';
ALTER ROLE ecash_merchant_b WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_merchant_b';
ALTER ROLE ecash_ttp WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_ttp';
-- The audit reads: every transaction it starts is read-only even if a grant were too wide.
ALTER ROLE ecash_audit WITH LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE INHERIT NOREPLICATION NOBYPASSRLS PASSWORD :'pw_audit';
ALTER ROLE ecash_audit SET default_transaction_read_only = on;

-- 3. Databases, each owned by its party (PostgreSQL 15: the owner also owns the public schema,
--    so the party's migrations can create its tables). CONNECT is revoked from PUBLIC, here and
--    on this maintenance database: a party role can connect to its own database only.
SELECT format('CREATE DATABASE %I OWNER %I', db, owner)
  FROM party
 WHERE NOT EXISTS (SELECT FROM pg_database WHERE datname = db) \gexec

SELECT format('ALTER DATABASE %I OWNER TO %I', db, owner),
       format('REVOKE ALL ON DATABASE %I FROM PUBLIC', db)
  FROM party \gexec
SELECT format('REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database()) \gexec

-- 4. Tables made before the roles existed (an upgraded stack) change hands to the party.
\set db centralbank
\set owner ecash_centralbank
\ir party-database.psql
\set db supervision
\set owner ecash_supervision
\ir party-database.psql
\set db issuer
\set owner ecash_issuer
\ir party-database.psql
\set db merchant_a
\set owner ecash_merchant_a
\ir party-database.psql
\set db merchant_b
\set owner ecash_merchant_b
\ir party-database.psql
\set db ttp
\set owner ecash_ttp
\ir party-database.psql
\set db bank
\set owner ecash_bank
\ir party-database.psql

-- 5. The audit role on the bank's database (connected to it by the include above): CONNECT on
--    this database only, and SELECT on exactly the tables the supervision audit reads
--    (ecash_tpm/supervision/audit/store.py; tests/unit/deploy/test_postgres_roles.py keeps the
--    two lists equal). Not on customer_auth (password hashes, TOTP secrets), auth_token, or the
--    accounts: the auditor needs none of them.
--    The bank makes its tables on its first start, after this script: an event trigger grants
--    SELECT when a listed table is created (it runs as the bank role, which owns the new table).
--    To let the audit read another table later: INSERT its name into ecash_admin.audit_table and
--    GRANT SELECT ON it TO ecash_audit (as the bank role).
GRANT CONNECT ON DATABASE bank TO ecash_audit;
GRANT USAGE ON SCHEMA public TO ecash_audit;

CREATE SCHEMA IF NOT EXISTS ecash_admin;
REVOKE ALL ON SCHEMA ecash_admin FROM PUBLIC;
GRANT USAGE ON SCHEMA ecash_admin TO ecash_bank;
CREATE TABLE IF NOT EXISTS ecash_admin.audit_table (name name PRIMARY KEY);
REVOKE ALL ON ecash_admin.audit_table FROM PUBLIC;
GRANT SELECT ON ecash_admin.audit_table TO ecash_bank;
INSERT INTO ecash_admin.audit_table (name) VALUES
    ('schema_migrations'),
    ('keyset'),
    ('withdrawal'),
    ('withdrawal_item'),
    ('ledger_txn'),
    ('ledger_entry'),
    ('deposit'),
    ('spend_transcript'),
    ('spent_coin'),
    ('merchant'),
    ('blacklist'),
    ('verification_failure'),
    ('double_spend_report'),
    ('refund'),
    ('refund_coin'),
    ('refund_item'),
    ('swap'),
    ('swap_input'),
    ('swap_output'),
    ('redeem_request'),
    ('redeem'),
    ('redeem_input'),
    ('redeem_report'),
    ('swap_report')
ON CONFLICT (name) DO NOTHING;

CREATE OR REPLACE FUNCTION ecash_admin.audit_grant_on_create() RETURNS event_trigger
LANGUAGE plpgsql AS $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN
        SELECT c.oid::regclass
          FROM pg_event_trigger_ddl_commands() AS cmd
          JOIN pg_class AS c ON c.oid = cmd.objid
          JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE cmd.classid = 'pg_class'::regclass
           AND c.relkind IN ('r', 'p')
           AND n.nspname = 'public'
           AND c.relname IN (SELECT name FROM ecash_admin.audit_table)
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO ecash_audit', rel);
    END LOOP;
END
$$;
REVOKE ALL ON FUNCTION ecash_admin.audit_grant_on_create() FROM PUBLIC;
DROP EVENT TRIGGER IF EXISTS ecash_audit_grant_on_create;
CREATE EVENT TRIGGER ecash_audit_grant_on_create ON ddl_command_end
    WHEN TAG IN ('CREATE TABLE')
    EXECUTE FUNCTION ecash_admin.audit_grant_on_create();

-- Listed tables that exist already (an upgraded or restored stack).
DO $$
DECLARE
    rel regclass;
BEGIN
    FOR rel IN
        SELECT c.oid::regclass
          FROM pg_class AS c
          JOIN pg_namespace AS n ON n.oid = c.relnamespace
         WHERE c.relkind IN ('r', 'p')
           AND n.nspname = 'public'
           AND c.relname IN (SELECT name FROM ecash_admin.audit_table)
    LOOP
        EXECUTE format('GRANT SELECT ON %s TO ecash_audit', rel);
    END LOOP;
END
$$;
