"""docker/postgres/init-databases.sql: one database role per party, least privilege, and a
read-only audit role on the bank's database (issue 15).

The compose stack used to connect every party as the one PostgreSQL superuser. Statically: the
script makes a login role per party that owns exactly that party's database, with no other
attribute, and an audit role whose grants are CONNECT on the bank's database and SELECT on the
tables the supervision audit reads (ecash_tpm/supervision/audit/store.py), nothing else.

For real, when the throwaway PostgreSQL of tests/conftest.py is available (``pg_server``): the
script runs with psql as the postgres image runs it, refuses to run without the passwords, makes
a party role unable to connect to any other party's database, lets the bank's migrations run as
the bank role, lets the audit read what it reads and refuses it anything else (no INSERT, not
even after turning read-only off; no customer secrets), and adopts tables of a stack made before
the roles existed.
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pytest

REPO = Path(__file__).resolve().parents[3]
POSTGRES_DIR = REPO / "docker" / "postgres"
INIT_SQL = POSTGRES_DIR / "init-databases.sql"
PARTY_SNIPPET = POSTGRES_DIR / "party-database.psql"
COMPOSE = REPO / "docker" / "compose.yaml"

#: database -> owning role, as the compose file's database URLs name them.
PARTY_DATABASES = {
    "centralbank": "ecash_centralbank",
    "supervision": "ecash_supervision",
    "issuer": "ecash_issuer",
    "bank": "ecash_bank",
    "merchant_a": "ecash_merchant_a",
    "merchant_b": "ecash_merchant_b",
    "ttp": "ecash_ttp",
}
AUDIT_ROLE = "ecash_audit"
ROLES = (*PARTY_DATABASES.values(), AUDIT_ROLE)
PASSWORD_VARS = {
    role: "ECASH_TPM_DB_PASSWORD_" + role.removeprefix("ecash_").upper() for role in ROLES
}
#: Role attributes a party or the auditor must never have (PostgreSQL's names).
FORBIDDEN_ATTRIBUTES = ("SUPERUSER", "CREATEDB", "CREATEROLE", "REPLICATION", "BYPASSRLS")


def _sql() -> str:
    return INIT_SQL.read_text()


def _statements_without_comments(text: str) -> str:
    return "\n".join(line.split("--", 1)[0] for line in text.splitlines())


def _audit_tables_in_sql() -> set[str]:
    block = _sql().split("INSERT INTO ecash_admin.audit_table (name) VALUES", 1)[1]
    block = block.split("ON CONFLICT", 1)[0]
    return set(re.findall(r"\('(\w+)'\)", block))


def _tables_the_audit_reads() -> set[str]:
    from ecash_tpm.supervision.audit import store

    tables: set[str] = set()
    for name, value in vars(store).items():
        if name.startswith("SQL_") and isinstance(value, str):
            tables |= set(re.findall(r"\b(?:FROM|JOIN)\s+(\w+)", value, flags=re.I))
    return tables


# --- static --------------------------------------------------------------------------------------


def test_one_database_per_party_owned_by_its_role() -> None:
    rows = dict(re.findall(r"\('(\w+)', '(ecash_\w+)'\)", _sql()))
    assert rows == PARTY_DATABASES
    assert "CREATE DATABASE %I OWNER %I" in _sql()
    # and the compose file connects each party as that role to that database
    compose = COMPOSE.read_text()
    for database, role in PARTY_DATABASES.items():
        url = rf"postgresql://{role}:\$\{{\w+:\?[^}}]*\}}@postgres:5432/{database}\n"
        assert re.search(url, compose), database


def test_roles_log_in_and_nothing_else() -> None:
    code = _statements_without_comments(_sql())
    for role in ROLES:
        (line,) = [ln for ln in code.splitlines() if ln.startswith(f"ALTER ROLE {role} WITH ")]
        words = line.rstrip(";").split()
        assert "LOGIN" in words
        for attribute in FORBIDDEN_ATTRIBUTES:
            assert attribute not in words and f"NO{attribute}" in words, (role, attribute)
        password = words[words.index("PASSWORD") + 1]
        assert password == f":'pw_{role.removeprefix('ecash_')}'", line
    # nowhere else does the script give a role an attribute or a membership
    for attribute in FORBIDDEN_ATTRIBUTES:
        assert not re.search(rf"(?<!NO){attribute}\b", code), attribute
    assert not re.search(r"GRANT\s+(pg_\w+|ecash_\w+)\s+TO", code), "role memberships"
    assert f"ALTER ROLE {AUDIT_ROLE} SET default_transaction_read_only = on;" in code


def test_every_password_comes_from_a_required_variable() -> None:
    code = _sql()
    for role, var in PASSWORD_VARS.items():
        short = role.removeprefix("ecash_")
        assert f"\\getenv pw_{short} {var}\n" in code
        assert f"('{var}', :'pw_{short}')" in code, "not checked before use"
        # compose makes it required for the postgres container, which runs the script
        assert re.search(rf"\n      {var}: \$\{{{var}:\?[^}}]+\}}\n", COMPOSE.read_text()), var
    assert "RAISE EXCEPTION" in code and "length(pw) < 16" in code


def test_connect_is_revoked_from_public() -> None:
    code = _statements_without_comments(_sql())
    assert "REVOKE ALL ON DATABASE %I FROM PUBLIC', db)" in code
    assert "REVOKE ALL ON DATABASE %I FROM PUBLIC', current_database())" in code
    grants = re.findall(r"GRANT ([^;]+?) TO ecash_audit", code)
    assert sorted(grants) == sorted(
        [
            "CONNECT ON DATABASE bank",
            "USAGE ON SCHEMA public",
            "SELECT ON %s",  # listed tables, at creation and for existing ones
            "SELECT ON %s",
        ]
    )


def test_the_audit_role_reads_exactly_what_the_audit_reads() -> None:
    """The allow-list in the SQL equals the tables named in the audit's own SQL: a new table
    in the audit fails here until the role may read it; customer secrets are never listed."""
    assert _audit_tables_in_sql() == _tables_the_audit_reads()
    assert not _audit_tables_in_sql() & {"customer_auth", "auth_token", "account", "bank_account"}


def test_the_party_snippet_is_included_for_every_database() -> None:
    code = _sql()
    includes = re.findall(r"\\set db (\w+)\n\\set owner (\w+)\n\\ir party-database\.psql\n", code)
    assert dict(includes) == PARTY_DATABASES
    snippet = PARTY_SNIPPET.read_text()
    assert snippet.count('\\connect :"db"') == 1 and "OWNER TO %I" in snippet


# --- for real, against a throwaway PostgreSQL ----------------------------------------------------


def _psql() -> str:
    found = [shutil.which("psql"), *sorted(glob.glob("/usr/lib/postgresql/*/bin/psql"))]
    for exe in found:
        if not exe:
            continue
        version = subprocess.run([exe, "--version"], capture_output=True, text=True, timeout=30)
        major = re.search(r"(\d+)(?:\.\d+)?", version.stdout)
        if major and int(major.group(1)) >= 15:  # \getenv is new in psql 15
            return exe
    pytest.skip("psql 15 or newer not installed (the postgres:15 image has it)")


def _url(server: str, *, user: str | None = None, database: str | None = None) -> str:
    parts = urlsplit(server)
    netloc = parts.netloc
    if user is not None:
        netloc = f"{user}@{netloc.rsplit('@', 1)[-1]}"
    path = parts.path if database is None else f"/{database}"
    return urlunsplit((parts.scheme, netloc, path, parts.query, parts.fragment))


@dataclass
class Cluster:
    server: str
    maintenance: str
    passwords: dict[str, str]
    first_run: subprocess.CompletedProcess[str]
    refused_run: subprocess.CompletedProcess[str]

    def url(self, role: str, database: str) -> str:
        return _url(self.server, user=role, database=database)

    def superuser(self, database: str) -> Any:
        import psycopg

        return psycopg.connect(_url(self.server, database=database), autocommit=True)


def _run_init(psql: str, url: str, passwords: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """As the postgres image runs an init file: psql -v ON_ERROR_STOP=1 --no-psqlrc -f."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ECASH_TPM_DB_", "PG"))}
    env.update(passwords)
    return subprocess.run(
        [psql, "-v", "ON_ERROR_STOP=1", "--no-psqlrc", "-q", "-d", url, "-f", str(INIT_SQL)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture(scope="module")
def cluster(pg_server: str) -> Iterator[Cluster]:
    """The init script run on the test server (roles are cluster-wide: skipped if the server
    already has any of them), with an "upgraded stack" issuer database made beforehand."""
    import psycopg
    from psycopg import sql

    psql = _psql()
    with psycopg.connect(pg_server, autocommit=True) as conn:
        taken = conn.execute(
            "SELECT rolname FROM pg_roles WHERE rolname = ANY(%s) UNION ALL "
            "SELECT datname FROM pg_database WHERE datname = ANY(%s)",
            (list(ROLES), list(PARTY_DATABASES)),
        ).fetchall()
        if taken:
            pytest.skip(f"the test server already has {taken}: not touching them")
        maintenance = "ecash_init_" + uuid.uuid4().hex[:12]
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(maintenance)))
        conn.execute("CREATE DATABASE issuer")  # a stack made before the roles: superuser's
    with psycopg.connect(_url(pg_server, database="issuer"), autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE member (id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY, t0 TEXT)"
        )
        conn.execute("CREATE VIEW member_ids AS SELECT id FROM member")
    url = _url(pg_server, database=maintenance)
    passwords = {var: f"{role}-pw-{uuid.uuid4().hex}" for role, var in PASSWORD_VARS.items()}
    try:
        refused = _run_init(psql, url, {**passwords, PASSWORD_VARS["ecash_bank"]: "too-short"})
        first = _run_init(psql, url, passwords)
        assert first.returncode == 0, first.stderr
        again = _run_init(psql, url, passwords)  # idempotent: an operator may run it again
        assert again.returncode == 0, again.stderr
        yield Cluster(pg_server, maintenance, passwords, first, refused)
    finally:
        with psycopg.connect(pg_server, autocommit=True) as conn:
            for database in (*PARTY_DATABASES, maintenance):
                conn.execute(
                    sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(
                        sql.Identifier(database)
                    )
                )
            for role in ROLES:
                conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def test_init_refuses_to_run_without_every_password(cluster: Cluster) -> None:
    refused = cluster.refused_run
    assert refused.returncode != 0
    assert "unset or shorter than 16 characters: ECASH_TPM_DB_PASSWORD_BANK" in refused.stderr
    assert "pw-" not in refused.stderr, "a password was printed"


def test_roles_have_passwords_and_no_privileges(cluster: Cluster) -> None:
    with cluster.superuser(cluster.maintenance) as conn:
        rows = conn.execute(
            "SELECT rolname, rolcanlogin, rolsuper, rolcreatedb, rolcreaterole, rolreplication,"
            " rolbypassrls, rolpassword LIKE 'SCRAM-SHA-256$%%' FROM pg_authid"
            " WHERE rolname = ANY(%s)",
            (list(ROLES),),
        ).fetchall()
        members = conn.execute(
            "SELECT r.rolname FROM pg_auth_members m JOIN pg_roles r ON r.oid = m.member"
            " WHERE r.rolname = ANY(%s)",
            (list(ROLES),),
        ).fetchall()
    assert {r[0] for r in rows} == set(ROLES)
    for name, login, *attributes, scram in rows:
        assert login and scram and not any(attributes), name
    assert members == [], "no party role is a member of another role"


def test_a_party_role_connects_to_its_own_database_only(cluster: Cluster) -> None:
    import psycopg

    databases = [*PARTY_DATABASES, cluster.maintenance, "postgres"]
    for own, role in PARTY_DATABASES.items():
        with psycopg.connect(cluster.url(role, own)) as conn:
            assert conn.execute("SELECT current_user").fetchone() == (role,)
        for other in databases:
            if other == own:
                continue
            if other == "postgres":
                continue  # the test server's own database (the image's is the maintenance one)
            with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
                psycopg.connect(cluster.url(role, other)).close()
    for other in databases:
        if other in ("bank", "postgres"):
            continue
        with pytest.raises(psycopg.OperationalError, match="CONNECT privilege"):
            psycopg.connect(cluster.url(AUDIT_ROLE, other)).close()


def test_the_audit_role_reads_the_bank_and_cannot_write(cluster: Cluster) -> None:
    import psycopg

    from ecash_tpm.bank.store import MIGRATIONS
    from ecash_tpm.storage import Database
    from ecash_tpm.supervision.audit.store import BankTables, open_bank_database, schema_version

    # the bank makes its tables on its first start, as its own role (after the init script)
    with Database.open(cluster.url("ecash_bank", "bank")) as bank:
        bank.migrate(MIGRATIONS, component="bank")
        with bank.transaction() as tx:
            tx.execute(
                "INSERT INTO bank_account (account_id, kind, currency, created_at)"
                " VALUES ('shop', 'merchant', 'EUR', 1)"
            )
            tx.execute(
                "INSERT INTO merchant (merchant_id, cert_pem, key_id, updated_at)"
                " VALUES ('shop', 'pem', 'k', 1)"
            )

    # every query of the audit runs under the audit role
    with open_bank_database(cluster.url(AUDIT_ROLE, "bank")) as db:
        assert schema_version(db) >= 1
        with db.read() as tx:
            tables = BankTables(tx)
            readers = [m for m in vars(BankTables) if not m.startswith("_")]
            assert len(readers) >= 12
            for name in readers:
                getattr(tables, name)()
            assert tables.merchants() == [{"merchant_id": "shop", "cert_pem": "pem"}]

    with psycopg.connect(cluster.url(AUDIT_ROLE, "bank"), autocommit=True) as conn:
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM customer_auth")  # password hashes, TOTP secrets
        with pytest.raises(psycopg.errors.InsufficientPrivilege):
            conn.execute("SELECT * FROM auth_token")
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DELETE FROM merchant")
        # the read-only default is a second wall, not the only one
        conn.execute("SET default_transaction_read_only = off")
        for statement in (
            "INSERT INTO verification_failure (subject, reason, code, detail, at)"
            " VALUES ('s', 'r', 'c', 'd', 1)",
            "UPDATE ledger_entry SET amount = amount + 1",
            "DELETE FROM spent_coin",
            "CREATE TABLE mine (x INT)",
        ):
            with pytest.raises(psycopg.errors.InsufficientPrivilege):
                conn.execute(statement)


def test_tables_of_an_upgraded_stack_change_hands(cluster: Cluster) -> None:
    """A database made before the roles (tables of the superuser) is adopted by its party."""
    import psycopg

    with cluster.superuser("issuer") as conn:
        owners = dict(
            conn.execute(
                "SELECT c.relname, pg_get_userbyid(c.relowner) FROM pg_class c"
                " JOIN pg_namespace n ON n.oid = c.relnamespace"
                " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'v', 'S')"
            ).fetchall()
        )
    assert owners == {
        "member": "ecash_issuer",
        "member_ids": "ecash_issuer",
        "member_id_seq": "ecash_issuer",  # followed its table
    }
    with psycopg.connect(cluster.url("ecash_issuer", "issuer"), autocommit=True) as conn:
        conn.execute("INSERT INTO member (t0) VALUES ('t0')")
        assert conn.execute("SELECT count(*) FROM member_ids").fetchone() == (1,)
