"""Deposit cost vs spent-table size, and with expired reservations (issue 13 item 7).

Run: ``.venv/bin/python benchmarks/bench_spent_table.py [--sizes 1000 10000 100000 1000000]
[--expired 100000] [--rounds 7] [--deposits-per-round 5] [--coins 4] [--quick]
[--out benchmarks/results]``.

One bank (the domain object of ``tests/support/bankworld.py``, no HTTP) on SQLite (WAL,
synchronous=FULL) withdraws the coins, makes one real deposit (so a merchant, a deposit and a
ledger transaction exist) and is copied (SQLite backup API) into one database per variant:

* ``spent_N``: ``N`` synthetic spent serials: N rows in ``spend_transcript`` (random serials of
  the real length, a body of the real length) and N in ``spent_coin``, bulk inserted with
  ``INSERT ... SELECT`` from a recursive CTE through the storage layer's transactions, 100k
  rows per transaction (not through the deposit path);
* ``expired``: the smallest size plus ``--expired`` expired coin reservations (``coin_lock``
  rows whose ``locked_until`` lies an hour in the past).

Every prepared deposit (``--coins`` coins, merchant-signed, made before any clock starts) is
then booked into *every* variant, so each variant does the same work; variants are visited in
a rotating order per round so drift hits all alike. Measured: CPU time of the process
(``time.process_time``, user + system, so waiting for the fsync is not in it) and wall time per
deposit, divided by the coins. Reported: the median per variant and the ratios 1M/1k (largest /
smallest size) and expired/none, each the median over rounds of the per-round ratio.
Bounded: ``--sizes`` at most 2M rows, ``--max-seconds`` for the measuring phase.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import sqlite3
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.bankworld import BankWorld, make_world, test_policy  # noqa: E402
from support.coinmint import KeyPool, Pki, RecordingReporter, prepare_coin  # noqa: E402

from ecash_tpm.bank.domain import BankDomain  # noqa: E402
from ecash_tpm.pki import load_certificate  # noqa: E402
from ecash_tpm.storage import Database, sqlite_url  # noqa: E402

CHUNK = 100_000
MAX_ROWS = 2_000_000
COIN_VALUE = 10

_FILL_TRANSCRIPTS = (
    "INSERT INTO spend_transcript (deposit_id, sigma, merchant_id, keyset_id, preq, body,"
    " created_at)"
    " WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n)"
    " SELECT :d, randomblob(:slen), :m, :k, randomblob(32),"
    " substr(hex(zeroblob(:half)), 1, :blen), :now FROM seq"
)
_FILL_SPENT = (
    "INSERT INTO spent_coin (sigma, keyset_id, transcript_id, deposit_id, spent_at)"
    " SELECT sigma, keyset_id, transcript_id, deposit_id, created_at FROM spend_transcript"
    " WHERE transcript_id > :last"
)
_FILL_LOCKS = (
    "INSERT INTO coin_lock (sigma, merchant_id, preq, locked_at, locked_until)"
    " WITH RECURSIVE seq(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM seq WHERE i < :n)"
    " SELECT randomblob(:slen), :m, randomblob(32), :at, :until FROM seq"
)

Job = tuple[str, dict[str, Any]]


def _jobs(world: BankWorld, count: int, coins: int) -> list[Job]:
    """``count`` signed deposits of ``coins`` coins each, alternating between two merchants."""
    member = world.customer("bench-spent", count * coins * COIN_VALUE + 10 * COIN_VALUE)
    keyset = world.keyset(COIN_VALUE)
    jobs: list[Job] = []
    for i in range(count):
        pending = [prepare_coin(member, keyset) for _ in range(coins)]
        sigs = world.bank.withdraw(
            member.account_id, f"bench-spent-{i:05d}", [p.item for p in pending]
        ).blind_signatures
        batch = [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]
        shop = ("shop-a", "shop-b")[i % 2]
        request = world.request(shop, COIN_VALUE * coins, deadline_in=500)
        jobs.append(
            (shop, world.signed_deposit(shop, request, world.spends(member, batch, request)))
        )
    return jobs


def _copy(src: Path, dst: Path) -> None:
    """A consistent copy of a SQLite database (WAL included) with the backup API."""
    dst.parent.mkdir(parents=True, exist_ok=True)
    with sqlite3.connect(src) as a, sqlite3.connect(dst) as b:
        a.backup(b)
    a.close()
    b.close()


def _prefill(db: Database, sample: dict[str, Any], spent: int, expired: int, now: int) -> float:
    """Bulk insert ``spent`` synthetic spent serials and ``expired`` expired reservations."""
    start = time.perf_counter()
    done = 0
    while done < spent:
        n = min(CHUNK, spent - done)
        with db.transaction() as tx:
            last = int(tx.fetchval("SELECT COALESCE(MAX(transcript_id), 0) FROM spend_transcript"))
            tx.execute(
                _FILL_TRANSCRIPTS,
                {
                    "n": n,
                    "d": sample["deposit_id"],
                    "slen": sample["slen"],
                    "m": sample["merchant_id"],
                    "k": sample["keyset_id"],
                    "half": (sample["blen"] + 1) // 2,
                    "blen": sample["blen"],
                    "now": now - 60,
                },
            )
            tx.execute(_FILL_SPENT, {"last": last})
        done += n
    done = 0
    while done < expired:
        n = min(CHUNK, expired - done)
        with db.transaction() as tx:
            tx.execute(
                _FILL_LOCKS,
                {
                    "n": n,
                    "slen": sample["slen"],
                    "m": "shop-a",
                    "at": now - 7200,
                    "until": now - 3600,
                },
            )
        done += n
    return time.perf_counter() - start


def _bank(world: BankWorld, db: Database, keys_dir: Path) -> BankDomain:
    return BankDomain(
        db,
        bank_key=world.pki.bank.key,
        bank_cert=load_certificate(world.pki.bank.cert_pem),
        central_bank_root=load_certificate(world.pki.root_pem),
        keys_dir=keys_dir,
        issuer_secrets=world.issuer,
        membership=world.issuer,
        reporter=RecordingReporter(),
        opener_public=world.issuer.hop,
        policy=test_policy(),
        clock=world.clock,
    )


def _label(n: int) -> str:
    return f"{n // 1_000_000}M" if n >= 1_000_000 and n % 1_000_000 == 0 else f"{n // 1000}k"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[1000, 10_000, 100_000, 1_000_000])
    parser.add_argument("--expired", type=int, default=100_000, help="expired reservations")
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--deposits-per-round", type=int, default=5)
    parser.add_argument("--coins", type=int, default=4, help="coins per deposit")
    parser.add_argument("--max-seconds", type=float, default=600.0, help="bound of the measuring")
    parser.add_argument("--quick", action="store_true", help="1k and 10k rows, 10k expired")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.sizes, args.expired, args.rounds, args.deposits_per_round, args.coins = (
            [1000, 10_000],
            10_000,
            2,
            2,
            2,
        )
    sizes = sorted(set(args.sizes))
    if not all(0 <= n <= MAX_ROWS for n in [*sizes, args.expired]):
        raise SystemExit(f"--sizes and --expired must be in 0..{MAX_ROWS}")
    if not 1 <= args.rounds <= 50 or not 1 <= args.deposits_per_round <= 50:
        raise SystemExit("--rounds and --deposits-per-round must be in 1..50")
    if not 1 <= args.coins <= 64:
        raise SystemExit("--coins must be in 1..64")
    load_before = os.getloadavg()
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-spent-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", merchants=("shop-a", "shop-b"))
        base = root / "base" / "bank.db"
        world = make_world(
            db_url=sqlite_url(base), data_dir=root / "base", pki=pki, keys=KeyPool(4)
        )
        try:
            jobs = _jobs(world, args.rounds * args.deposits_per_round + 2, args.coins)
            copy_warm = jobs.pop()  # booked unmeasured into every copy (its caches)
            warm_shop, warm = jobs.pop()
            world.bank.deposit(warm, world.pki.merchants[warm_shop].cert_pem)
            with world.db.read() as tx:
                row = tx.fetchone(
                    "SELECT deposit_id, merchant_id, keyset_id, length(sigma) AS slen,"
                    " length(body) AS blen FROM spend_transcript LIMIT 1"
                )
            if row is None:
                raise SystemExit("the warm-up deposit left no transcript")
            sample = {k: row[k] for k in ("deposit_id", "merchant_id", "keyset_id", "slen", "blen")}
        finally:
            world.db.close()
        now = world.clock()
        variants: dict[str, dict[str, Any]] = {}
        for name, spent, expired in [
            *((f"spent_{_label(n)}", n, 0) for n in sizes),
            (f"spent_{_label(sizes[0])}+expired_{_label(args.expired)}", sizes[0], args.expired),
        ]:
            path = root / name / "bank.db"
            _copy(base, path)
            db = Database.open(sqlite_url(path))
            seconds = _prefill(db, sample, spent, expired, now)
            print(f"{name}: {spent} spent, {expired} expired in {seconds:.1f} s", flush=True)
            variants[name] = {
                "spent_rows": spent,
                "expired_reservations": expired,
                "prefill_s": round(seconds, 1),
                "db": db,
                "bank": _bank(world, db, root / "base" / "keysets"),
                "cpu": [],
                "wall": [],
                "round_cpu": [],
            }
        names = list(variants)
        deadline = time.monotonic() + args.max_seconds
        for name in names:  # each copy's first deposit loads keysets and caches: unmeasured
            variants[name]["bank"].deposit(copy_warm[1], world.pki.merchants[copy_warm[0]].cert_pem)
        k = args.deposits_per_round
        for r in range(args.rounds):
            if time.monotonic() > deadline:
                print(f"stopped after {r} rounds (--max-seconds)", flush=True)
                break
            order = names[r % len(names) :] + names[: r % len(names)]
            batch = jobs[r * k : (r + 1) * k]
            for name in order:
                v = variants[name]
                gc.collect()
                per_round = []
                for shop, signed in batch:
                    cert = world.pki.merchants[shop].cert_pem
                    c0, w0 = time.process_time(), time.perf_counter()
                    v["bank"].deposit(signed, cert)
                    cpu = (time.process_time() - c0) / args.coins
                    v["cpu"].append(cpu)
                    v["wall"].append((time.perf_counter() - w0) / args.coins)
                    per_round.append(cpu)
                v["round_cpu"].append(statistics.median(per_round))
        rows = []
        for name in names:
            v = variants[name]
            rows.append(
                {
                    "variant": name,
                    "spent_rows": v["spent_rows"],
                    "expired_reservations": v["expired_reservations"],
                    "prefill_s": v["prefill_s"],
                    "db_mb": round(sum(p.stat().st_size for p in (root / name).iterdir()) / 1e6, 1),
                    "deposits": len(v["cpu"]),
                    "cpu_ms_per_coin_median": round(statistics.median(v["cpu"]) * 1e3, 3),
                    "cpu_ms_per_coin_min": round(min(v["cpu"]) * 1e3, 3),
                    "cpu_ms_per_coin_max": round(max(v["cpu"]) * 1e3, 3),
                    "wall_ms_per_coin_median": round(statistics.median(v["wall"]) * 1e3, 3),
                }
            )
            v["db"].close()
        pki.close()

    def ratio(a: str, b: str) -> float:
        pairs = zip(variants[a]["round_cpu"], variants[b]["round_cpu"], strict=True)
        return round(statistics.median(x / y for x, y in pairs), 3)

    smallest, largest = names[0], names[len(sizes) - 1]
    ratios = {
        f"cpu_{_label(sizes[-1])}_over_{_label(sizes[0])}": ratio(largest, smallest),
        "cpu_expired_over_none": ratio(names[-1], smallest),
    }
    result = {
        "what": "bank deposit CPU per coin vs spent-table size and expired reservations (SQLite)",
        "baseline": "pure-Python curve arithmetic (before the native C curve)",
        "coins_per_deposit": args.coins,
        "rounds": args.rounds,
        "deposits_per_round": k,
        "transcript_body_bytes": sample["blen"],
        "serial_bytes": sample["slen"],
        "targets": {"spent_1M_over_1k": 1.2, "expired_over_none": 1.1},
        "ratios": ratios,
        "variants": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "sqlite": sqlite3.sqlite_version,
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_spent_table.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, ratios, len(sizes), args.out / "bench_spent_table.png")
    print(json.dumps({"ratios": ratios, "variants": rows}, indent=2))


def _plot(rows: list[dict[str, Any]], ratios: dict[str, float], n_sizes: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    labels = [r["variant"].replace("spent_", "").replace("+expired_", "\n+ expired ") for r in rows]
    med = [r["cpu_ms_per_coin_median"] for r in rows]
    lo = [m - r["cpu_ms_per_coin_min"] for m, r in zip(med, rows, strict=True)]
    hi = [r["cpu_ms_per_coin_max"] - m for m, r in zip(med, rows, strict=True)]
    colors = ["tab:blue"] * n_sizes + ["tab:orange"] * (len(rows) - n_sizes)
    ax.bar(range(len(rows)), med, yerr=[lo, hi], color=colors, capsize=4)
    ax.set_xticks(range(len(rows)))
    ax.set_xticklabels(labels, fontsize=8)
    ax.set_xlabel("spent serials in the table (and expired reservations)")
    ax.set_ylabel("deposit CPU per coin, ms (median, min-max)")
    text = ", ".join(f"{k} = {v:.2f}" for k, v in ratios.items())
    ax.set_title(f"deposit CPU vs spent-table size, SQLite; {text}", fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
