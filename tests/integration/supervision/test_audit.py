"""The supervision department's audit of a bank (issue 5 item 4), from outside the bank's code.

One bank is built per module with real withdrawals, deposits, a refused double spend, a merchant
blacklisted, lifted and blacklisted again; the audit of that database is clean.
Then a *copy* of the database is tampered with the way a buggy or dishonest bank could (raw
SQL, constraints dropped where needed) and each tampering must be reported with the right
violation kind, table, row and serial.
"""

from __future__ import annotations

import ast
import hashlib
import json
import secrets
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from support.bankworld import BankWorld, make_world, refused
from support.coinmint import KeyPool, Pki

from ecash_tpm.bank import errors as E
from ecash_tpm.centralbank.certify import certify_issuer_epoch
from ecash_tpm.cli import main as cli_main
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import N
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import IssuerSecret, SpendProofError
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.protocol.coins import Spend
from ecash_tpm.storage import sqlite_url
from ecash_tpm.supervision.audit import run_audit
from ecash_tpm.supervision.audit_report import (
    VIOLATION_KINDS,
    AuditReport,
    BankDatabaseError,
)

PACKAGE = Path(__file__).resolve().parents[3] / "ecash_tpm"


# --- the audited bank -----------------------------------------------------------------------------


@dataclass
class AuditWorld:
    """A bank built for auditing, its database closed (so files can be copied)."""

    world: BankWorld
    db_path: Path
    data_dir: Path
    now: int
    descriptors: list[dict[str, Any]]
    ledger: dict[str, Any]
    deposit_ids: dict[str, str]  # name -> deposit id
    lifted_entry: int

    @property
    def pki(self) -> Pki:
        return self.world.pki

    def audit(self, db: str | None = None, **overrides: Any) -> AuditReport:
        kwargs: dict[str, Any] = {
            "bank_cert": self.pki.bank.cert_pem,
            "central_bank_root": self.pki.root_pem,
            "opener_public": self.world.issuer.hop,
            "issuer_secrets": self.world.issuer,
            "issuer_public": {e: s.public for e, s in self.world.issuer.secrets.items()},
            "keyset_descriptors": self.descriptors,
            "now": self.now,
        }
        kwargs.update(overrides)
        return run_audit(db or sqlite_url(self.db_path), **kwargs)

    def copy(self, directory: Path) -> Path:
        target = directory / "tampered.db"
        shutil.copyfile(self.db_path, target)
        return target


def _bad_proof(spend: Spend) -> Spend:
    return Spend(spend.coin, replace(spend.proof, st=(spend.proof.st + 1) % N))


def build_audit_world(db_url: str, data_dir: Path, pki: Pki, keys: KeyPool) -> BankWorld:
    """Withdrawals, deposits, a refused double spend, blacklists (one lifted, one active)."""
    w = make_world(db_url=db_url, data_dir=data_dir, pki=pki, keys=keys)
    alice, bob = w.customer("alice", 100), w.customer("bob", 100)
    w.pay(alice, "shop-a", 7)  # two coins, 5 + 2
    w.pay(bob, "shop-b", 10)
    w.withdraw(alice, 13)  # kept by the wallet: outstanding
    coin = w.withdraw(bob, 5)
    req_a, req_b = w.request("shop-a", 5), w.request("shop-b", 5)
    w.deposit("shop-a", req_a, w.spends(bob, coin, req_a), deposit_id="d-spent-first")
    with pytest.raises(E.DoubleSpendError):
        w.deposit("shop-b", req_b, w.spends(bob, coin, req_b))
    coins = w.withdraw(alice, 1)
    request = w.request("shop-b", 1)
    good = w.spends(alice, coins, request)
    for _ in range(3):
        with refused(SpendProofError, "bank.bad_proof"):
            w.deposit("shop-b", request, [_bad_proof(good[0])])
    w.bank.lift_blacklist(
        "merchant:shop-b", lifted_by="supervision:supervision", reason="merchant fixed its keys"
    )
    w.deposit("shop-b", request, good)
    request_b = w.request("shop-b", 1)
    for _ in range(3):  # an active entry (failed logins lock out for a while, they never list)
        with refused(SpendProofError, "bank.bad_proof"):
            w.deposit("shop-b", request_b, [_bad_proof(good[0])])
    return w


@pytest.fixture(scope="module")
def keys() -> KeyPool:
    return KeyPool(4)


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Pki]:
    p = Pki.create(tmp_path_factory.mktemp("pki"), merchants=("shop-a", "shop-b"))
    yield p
    p.close()


@pytest.fixture(scope="module")
def aw(tmp_path_factory: pytest.TempPathFactory, pki: Pki, keys: KeyPool) -> AuditWorld:
    data_dir = tmp_path_factory.mktemp("bank")
    db_path = data_dir / "bank.db"
    w = build_audit_world(sqlite_url(db_path), data_dir, pki, keys)
    ledger = w.bank.ledger_check()
    assert w.bank.merchant_blacklist.audit() == [] and w.bank.login_blacklist.audit() == []
    descriptors = w.bank.keysets_info()["keysets"]
    with w.db.read() as tx:
        rows = tx.fetchall("SELECT deposit_id, merchant_id, amount FROM deposit")
        lifted = tx.fetchval("SELECT entry_id FROM blacklist WHERE lifted_at IS NOT NULL")
    by_name = {f"{r['merchant_id']}:{r['amount']}": str(r["deposit_id"]) for r in rows}
    w.db.close()  # checkpoints the WAL: the file alone is the database
    return AuditWorld(w, db_path, data_dir, w.clock(), descriptors, ledger, by_name, int(lifted))


# --- clean -------------------------------------------------------------------------------------


def test_clean_bank_passes_the_audit(aw: AuditWorld) -> None:
    before = hashlib.sha256(aw.db_path.read_bytes()).digest()
    report = aw.audit()
    assert report.ok, report.summary()
    assert report.skipped == []
    assert report.bank_id == "bank" and report.schema_version >= 1
    c = report.counts
    assert c["deposits"] == 4 and c["transcripts"] == 5 == c["spent_coins"] == c["coins_verified"]
    assert c["credentials_checked"] == 5
    assert c["withdrawals"] == 5 and c["withdrawal_items"] == 8
    assert c["blacklist_entries"] == 2 and c["blacklist_lifted"] == 1
    assert c["double_spend_reports"] == 1 and c["verification_failures"] == 6
    # the audit's outstanding figures equal the bank's own ledger check, per keyset
    ours = {b64u_decode(k.keyset_id).hex(): k for k in report.keysets}
    for k in aw.ledger["keysets"]:
        mine = ours[k["keyset_id"]]
        assert (mine.outstanding_value, mine.ledger_outstanding) == (k["outstanding"],) * 2
        assert mine.issued_count - mine.spent_count == mine.outstanding_count
    assert report.outstanding_total() == aw.ledger["outstanding_total"] == 13
    assert json.loads(report.to_json())["ok"] is True
    # read-only: the audited file is byte for byte what it was
    assert hashlib.sha256(aw.db_path.read_bytes()).digest() == before


def test_without_issuer_secrets_the_credential_check_is_public(aw: AuditWorld) -> None:
    """docs/protocol.md 7.4: with the epochs' certified keys (X2, Y2) and no secret, every
    coin's credential is checked with pairings; the certificates themselves will do."""
    report = aw.audit(issuer_secrets=None)
    assert report.ok and report.skipped == []
    assert report.counts["credentials_checked_public"] == 5
    assert "credentials_checked" not in report.counts
    ca = aw.pki._ca  # the module's central bank, still open
    docs = [
        certify_issuer_epoch(ca, "issuer", e, s.public) for e, s in aw.world.issuer.secrets.items()
    ]
    report = aw.audit(issuer_secrets=None, issuer_public=None, issuer_epoch_certificates=docs)
    assert report.ok and report.counts["credentials_checked_public"] == 5
    # a key of another secret: every coin fails the public check
    other = IssuerSecret.generate()
    report = aw.audit(issuer_secrets=None, issuer_public={1: other.public})
    assert report.kinds() == {"coin.bad_credential"}


def test_public_only_audit_flags_coins_of_an_epoch_without_key(aw: AuditWorld) -> None:
    """Review finding 5: without issuer secrets, a deposited coin whose epoch has no certified
    key (a made-up epoch looks just like this) is flagged ``coin.unknown_epoch`` as in secret
    mode, not silently skipped; an epoch certified before issue 14 (no G2 keys) gets its own
    ``skipped`` entry."""
    secret = aw.world.issuer.secret_for_epoch(1)
    report = aw.audit(issuer_secrets=None, issuer_public={2: secret.public})
    assert report.kinds() == {"coin.unknown_epoch"}
    assert len(report.of_kind("coin.unknown_epoch")) == 5
    assert "credentials_checked_public" not in report.counts
    report = aw.audit(issuer_secrets=None, issuer_public={1: secret.public_g1})
    assert report.ok and [s["check"] for s in report.skipped] == ["coin.credential/epoch/1"]
    assert "credentials_checked_public" not in report.counts


def test_without_issuer_secrets_the_credential_check_is_skipped_and_said(aw: AuditWorld) -> None:
    report = aw.audit(issuer_secrets=None, issuer_public=None)
    assert report.ok
    assert [s["check"] for s in report.skipped] == ["coin.credential"]
    assert "credentials_checked" not in report.counts
    assert "skipped coin.credential" in report.summary()


def test_wrong_issuer_keys_are_reported(aw: AuditWorld) -> None:
    other = IssuerSecret.generate()
    report = aw.audit(issuer_secrets={1: other}, issuer_public=None)
    assert report.kinds() == {"coin.bad_credential"}
    assert len(report.of_kind("coin.bad_credential")) == 5
    report = aw.audit(issuer_secrets={2: other})
    assert report.kinds() == {"coin.unknown_epoch"}
    report = aw.audit(issuer_public={1: other.public})
    assert report.kinds() == {"issuer.secret_mismatch"}


def _audit_sources() -> list[Path]:
    """The audit package's modules and its report module."""
    supervision = PACKAGE / "supervision"
    return [*sorted((supervision / "audit").glob("*.py")), supervision / "audit_report.py"]


def test_the_audit_does_not_import_the_bank() -> None:
    for path in _audit_sources():
        name = path.name
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module:
                assert not node.module.startswith("ecash_tpm.bank"), (name, node.module)
            if isinstance(node, ast.Import):
                assert not any(a.name.startswith("ecash_tpm.bank") for a in node.names)
    code = (
        "import sys, ecash_tpm.supervision.audit;"
        "sys.exit(any(m.startswith('ecash_tpm.bank') for m in sys.modules))"
    )
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0


def test_missing_or_foreign_database_is_an_error(aw: AuditWorld, tmp_path: Path) -> None:
    with pytest.raises(BankDatabaseError):
        aw.audit(sqlite_url(tmp_path / "nothing-here.db"))
    assert not (tmp_path / "nothing-here.db").exists()
    con = sqlite3.connect(tmp_path / "other.db")
    con.execute("CREATE TABLE t (x INTEGER)")
    con.commit()
    con.close()
    with pytest.raises(BankDatabaseError):
        aw.audit(sqlite_url(tmp_path / "other.db"))


# --- tampering -----------------------------------------------------------------------------------

Tamper = Callable[[sqlite3.Connection, AuditWorld], dict[str, Any]]


def _first_transcript(
    con: sqlite3.Connection, where: str = ""
) -> tuple[int, bytes, dict[str, Any]]:
    row = con.execute(
        "SELECT transcript_id, sigma, body FROM spend_transcript "
        + where
        + " ORDER BY transcript_id LIMIT 1"
    ).fetchone()
    return int(row[0]), bytes(row[1]), json.loads(row[2])


def _flip(text: str, index: int) -> str:
    raw = bytearray(b64u_decode(text))
    raw[index] ^= 0x01
    return b64u_encode(bytes(raw))


def tamper_proof_byte(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    tid, sigma, body = _first_transcript(con)
    body["spend"]["proof"]["c_prime"] = _flip(body["spend"]["proof"]["c_prime"], 5)
    con.execute(
        "UPDATE spend_transcript SET body = ? WHERE transcript_id = ?", (json.dumps(body), tid)
    )
    return {"table": "spend_transcript", "row_id": tid, "serial": b64u_encode(sigma)}


def tamper_coin_signature(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    tid, sigma, body = _first_transcript(con, "WHERE transcript_id > 1")
    body["spend"]["coin"]["signature"] = _flip(body["spend"]["coin"]["signature"], -1)
    con.execute(
        "UPDATE spend_transcript SET body = ? WHERE transcript_id = ?", (json.dumps(body), tid)
    )
    return {"table": "spend_transcript", "row_id": tid, "serial": b64u_encode(sigma)}


def tamper_serial_twice(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    """A bank whose spent table (and transcript serial) lost its unique key books one coin a
    second time."""
    con.executescript(
        """
        DROP INDEX IF EXISTS spend_transcript_sigma_unique;
        CREATE TABLE spent_coin_loose (
            sigma BLOB NOT NULL, keyset_id BLOB NOT NULL, transcript_id BIGINT NOT NULL,
            deposit_id TEXT NOT NULL, spent_at BIGINT NOT NULL);
        INSERT INTO spent_coin_loose SELECT sigma, keyset_id, transcript_id, deposit_id, spent_at
            FROM spent_coin;
        DROP TABLE spent_coin;
        ALTER TABLE spent_coin_loose RENAME TO spent_coin;
        """
    )
    tid, sigma, _ = _first_transcript(con)
    cur = con.execute(
        "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id, preq, body,"
        " created_at) SELECT deposit_id, sigma, merchant_id, keyset_id, preq, body, created_at"
        " FROM spend_transcript WHERE transcript_id = ?",
        (tid,),
    )
    new_tid = cur.lastrowid
    con.execute(
        "INSERT INTO spent_coin SELECT sigma, keyset_id, ?, deposit_id, spent_at FROM spent_coin"
        " WHERE transcript_id = ?",
        (new_tid, tid),
    )
    return {"serial": b64u_encode(sigma), "row_id": new_tid}


def tamper_ledger_amount(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    entry_id, txn_id = con.execute(
        "SELECT e.entry_id, e.txn_id FROM ledger_entry e JOIN ledger_txn t"
        " ON t.txn_id = e.txn_id WHERE t.kind = 'deposit' ORDER BY e.entry_id LIMIT 1"
    ).fetchone()
    con.execute("UPDATE ledger_entry SET amount = amount + 1 WHERE entry_id = ?", (entry_id,))
    return {"table": "ledger_entry", "row_id": txn_id, "expected": 0, "found": 1}


def tamper_withdrawal_without_debit(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    """The bank mints a coin off the books: a real blind signature, no ledger transaction."""
    kid, key_file = con.execute(
        "SELECT keyset_id, key_file FROM keyset WHERE value = 10"
    ).fetchone()
    key = serialization.load_pem_private_key(
        (aw.data_dir / "keysets" / key_file).read_bytes(), password=None
    )
    n = key.public_key().public_numbers().n  # type: ignore[union-attr]
    size = (n.bit_length() + 7) // 8
    blinded = (int.from_bytes(secrets.token_bytes(size), "big") % n).to_bytes(size, "big")
    sig = blindrsa.blind_sign(key, blinded)  # type: ignore[arg-type]
    con.execute(
        "INSERT INTO withdrawal (request_id, account_id, items_digest, amount, txn_id, created_at)"
        " VALUES ('w-off-the-books', 'alice', x'00', 10, 999999, ?)",
        (aw.now,),
    )
    con.execute(
        "INSERT INTO withdrawal_item (request_id, idx, keyset_id, blinded_msg, blind_sig)"
        " VALUES ('w-off-the-books', 0, ?, ?, ?)",
        (kid, blinded, sig),
    )
    return {"table": "ledger_entry", "row_id": "coins-outstanding:" + bytes(kid).hex()}


def tamper_deleted_deposit(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    deposit_id = aw.deposit_ids["shop-b:10"]
    (keyset_id,) = con.execute(
        "SELECT keyset_id FROM spend_transcript WHERE deposit_id = ?", (deposit_id,)
    ).fetchone()
    for table in ("spent_coin", "spend_transcript", "deposit"):
        con.execute("DELETE FROM " + table + " WHERE deposit_id = ?", (deposit_id,))  # noqa: S608
    return {"table": "ledger_entry", "row_id": "coins-outstanding:" + bytes(keyset_id).hex()}


def tamper_blacklist_too_few(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    (failure_id,) = con.execute(
        "SELECT MIN(failure_id) FROM verification_failure WHERE subject = 'merchant:shop-b'"
    ).fetchone()
    cur = con.execute(
        "INSERT INTO blacklist (subject, listed_at, reason, failure_ids, threshold, window_s)"
        " VALUES ('merchant:shop-z', ?, 'made up', ?, 3, 600)",
        (aw.now, json.dumps([failure_id])),
    )
    return {"table": "blacklist", "row_id": cur.lastrowid}


def tamper_blacklist_outside_window(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    (entry_id, ids) = con.execute(
        "SELECT entry_id, failure_ids FROM blacklist WHERE lifted_at IS NULL"
    ).fetchone()
    for failure_id in json.loads(ids):
        con.execute(
            "UPDATE verification_failure SET at = at - 5000 WHERE failure_id = ?", (failure_id,)
        )
    return {"table": "blacklist", "row_id": entry_id}


def tamper_lift_without_reason(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    con.execute("UPDATE blacklist SET lift_reason = NULL WHERE entry_id = ?", (aw.lifted_entry,))
    return {"table": "blacklist", "row_id": aw.lifted_entry}


def tamper_keyset_value(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    (kid,) = con.execute("SELECT keyset_id FROM keyset WHERE value = 2").fetchone()
    con.execute("UPDATE keyset SET value = 3 WHERE keyset_id = ?", (kid,))
    return {"table": "keyset", "row_id": bytes(kid).hex(), "expected": 2, "found": 3}


def tamper_receipt_amount(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    deposit_id = aw.deposit_ids["shop-a:7"]
    (text,) = con.execute(
        "SELECT receipt FROM deposit WHERE deposit_id = ?", (deposit_id,)
    ).fetchone()
    receipt = json.loads(text)
    receipt["body"]["amount"] = 70
    con.execute(
        "UPDATE deposit SET receipt = ? WHERE deposit_id = ?", (json.dumps(receipt), deposit_id)
    )
    return {"table": "deposit", "row_id": deposit_id}


def tamper_false_double_spend(con: sqlite3.Connection, aw: AuditWorld) -> dict[str, Any]:
    """The bank claims a double spend with the first payment replayed (same request)."""
    report_id, first = con.execute(
        "SELECT report_id, first_transcript_id FROM double_spend_report"
    ).fetchone()
    body, preq = con.execute(
        "SELECT body, preq FROM spend_transcript WHERE transcript_id = ?", (first,)
    ).fetchone()
    con.execute(
        "UPDATE double_spend_report SET second_transcript = ?, second_preq = ? WHERE report_id = ?",
        (body, preq, report_id),
    )
    return {"table": "double_spend_report", "row_id": report_id}


@pytest.mark.parametrize(
    ("tamper", "kinds"),
    [
        (tamper_proof_byte, {"spend.bad_proof"}),
        (tamper_coin_signature, {"coin.bad_signature"}),
        (tamper_serial_twice, {"serial.duplicate"}),
        (tamper_ledger_amount, {"ledger.txn_unbalanced"}),
        (tamper_withdrawal_without_debit, {"supply.outstanding_mismatch"}),
        (tamper_deleted_deposit, {"supply.outstanding_mismatch"}),
        (tamper_blacklist_too_few, {"blacklist.unjustified"}),
        (tamper_blacklist_outside_window, {"blacklist.unjustified"}),
        (tamper_lift_without_reason, {"blacklist.lift_unexplained"}),
        (tamper_keyset_value, {"keyset.row_mismatch"}),
        (tamper_receipt_amount, {"receipt.bad_signature"}),
        (tamper_false_double_spend, {"double_spend_report.invalid"}),
    ],
    ids=lambda v: v.__name__.removeprefix("tamper_") if callable(v) else None,
)
def test_tampering_is_reported(
    aw: AuditWorld, tmp_path: Path, tamper: Tamper, kinds: set[str]
) -> None:
    copy = aw.copy(tmp_path)
    con = sqlite3.connect(copy)
    try:
        where = tamper(con, aw)
        con.commit()
    finally:
        con.close()
    report = aw.audit(sqlite_url(copy))
    assert not report.ok
    assert kinds <= report.kinds(), report.summary()
    assert report.kinds() <= set(VIOLATION_KINDS), report.kinds() - set(VIOLATION_KINDS)
    (kind,) = kinds
    hits = [
        v for v in report.of_kind(kind) if all(getattr(v, k) == value for k, value in where.items())
    ]
    assert hits, (where, [v.to_dict() for v in report.of_kind(kind)])
    json.loads(report.to_json())  # serialisable whatever was found


def test_a_coin_failing_every_step_is_reported_for_each(aw: AuditWorld, tmp_path: Path) -> None:
    """verify_spend stops at its first failing step; the audit reports every failing step."""
    copy = aw.copy(tmp_path)
    con = sqlite3.connect(copy)
    tid, sigma, body = _first_transcript(con, "WHERE transcript_id > 1")
    credential = body["spend"]["coin"]["credential"]
    credential["R"], credential["S"] = credential["S"], credential["R"]
    con.execute(
        "UPDATE spend_transcript SET body = ?, created_at = 1 WHERE transcript_id = ?",
        (json.dumps(body), tid),
    )
    con.commit()
    con.close()
    steps = {"coin.keyset_not_depositable", "coin.bad_signature", "spend.bad_proof"}
    public_only = {"issuer_secrets": None}  # docs/protocol.md 7.4: pairings, certified G2 keys
    nothing = {"issuer_secrets": None, "issuer_public": None}
    for given, expected in (
        ({}, steps | {"coin.bad_credential"}),
        (public_only, steps | {"coin.bad_credential"}),
        (nothing, steps),
    ):
        report = aw.audit(sqlite_url(copy), **given)
        coin_kinds = {
            v.kind
            for v in report.violations
            if (v.table, v.row_id, v.serial) == ("spend_transcript", tid, b64u_encode(sigma))
            and (v.kind.startswith("coin.") or v.kind.startswith("spend."))
        }
        assert coin_kinds == expected, report.summary()


def test_each_tampering_names_its_consequences(aw: AuditWorld, tmp_path: Path) -> None:
    """The secondary findings make the story readable: what else no longer adds up."""
    copy = aw.copy(tmp_path)
    con = sqlite3.connect(copy)
    tamper_withdrawal_without_debit(con, aw)
    tamper_deleted_deposit(con, aw)
    tamper_serial_twice(con, aw)
    con.commit()
    con.close()
    kinds = aw.audit(sqlite_url(copy)).kinds()
    assert {
        "withdrawal.ledger_mismatch",
        "supply.withdrawn_mismatch",
        "supply.deposited_mismatch",
        "ledger.orphan_txn",
        "ledger.merchant_balance_mismatch",
        "serial.duplicate",
    } <= kinds
    assert "withdrawal.bad_blind_signature" not in kinds  # the off-book coin is really signed


def test_violation_kinds_are_documented() -> None:
    source = "".join(p.read_text() for p in _audit_sources() if p.name != "audit_report.py")
    for kind in VIOLATION_KINDS:
        if not kind.startswith("supply_report."):
            assert f'"{kind}"' in source, kind


# --- PostgreSQL ----------------------------------------------------------------------------------


def test_audit_on_postgresql(pg_url: str, tmp_path: Path, pki: Pki, keys: KeyPool) -> None:
    w = build_audit_world(pg_url, tmp_path, pki, keys)
    try:
        report = run_audit(
            w.db,
            bank_cert=pki.bank.cert_pem,
            central_bank_root=pki.root_pem,
            opener_public=w.issuer.hop,
            issuer_secrets=w.issuer,
            now=w.clock(),
        )
        assert report.ok, report.summary()
        assert report.outstanding_total() == 13
        with w.db.transaction() as tx:
            tx.execute(
                "UPDATE ledger_entry SET amount = amount - 1 WHERE entry_id ="
                " (SELECT MIN(entry_id) FROM ledger_entry)"
            )
        report = run_audit(
            w.db,
            bank_cert=pki.bank.cert_pem,
            central_bank_root=pki.root_pem,
            opener_public=w.issuer.hop,
            now=w.clock(),
        )
        assert "ledger.txn_unbalanced" in report.kinds()
    finally:
        w.db.close()


# --- CLI -----------------------------------------------------------------------------------------


def _cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = cli_main(list(argv))
    return code, capsys.readouterr().out


def test_cli_audit(aw: AuditWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bank_data = tmp_path / "bank"
    bank_data.mkdir()
    (bank_data / "bank.crt").write_text(aw.pki.bank.cert_pem)
    (bank_data / "central-bank-root.pem").write_text(aw.pki.root_pem)
    issuer_keys = tmp_path / "issuer-keys"
    issuer_keys.mkdir(mode=0o700)
    write_file_atomic(
        issuer_keys / "epoch-00000001.key", aw.world.issuer.secrets[1].to_bytes(), mode=0o600
    )
    hop = b64u_encode(aw.world.issuer.hop.encode())
    common = [
        "--bank-data", str(bank_data), "--opener-public", hop,
        "--data", str(tmp_path / "supervision"),
    ]  # fmt: skip
    code, out = _cli(
        capsys, "supervision", "audit", "--bank-db", sqlite_url(aw.db_path),
        "--issuer-keys", str(issuer_keys), "--json", *common,
    )  # fmt: skip
    result = json.loads(out)
    assert code == 0 and result["ok"] is True and result["skipped"] == []
    assert result["outstanding_total"] == 13

    copy = aw.copy(tmp_path)
    con = sqlite3.connect(copy)
    tamper_lift_without_reason(con, aw)
    con.commit()
    con.close()
    code, out = _cli(capsys, "supervision", "audit", "--bank-db", sqlite_url(copy), *common)
    assert code == 2
    assert "[blacklist.lift_unexplained]" in out and "skipped coin.credential" in out

    code = cli_main(["supervision", "audit", "--bank-db", sqlite_url(tmp_path / "no.db"), *common])
    assert code == 1
