"""Deposit throughput with 1, 2 and 4 bank worker processes on one SQLite / PostgreSQL database
(issue 13): the ratio, the storage layer's retry counter and the 503s, as JSON and a PNG.

Run: ``.venv/bin/python benchmarks/bench_workers.py [--deposits N] [--coins C] [--workers 1 2 4]
[--rounds 3] [--max-seconds S] [--quick] [--skip-postgres] [--name STEM]
[--out benchmarks/results]``. ``--coins 16`` makes every deposit carry 16 coins (issue 14's
throughput target is in coins/s with 16-coin deposits); the figures give deposits/s and coins/s.
The engine is the one of this process (``ECASH_TPM_NATIVE=0`` forces pure Python).
Per round every worker count runs once (order rotated per round); figures are the median
deposits/s over rounds and the median of the per-round ratios to one worker. Coins, spend proofs
and merchant signatures are made first; then each worker is a forked process with its own
database pool and bank domain (what ``bank serve --workers N`` runs, without HTTP/TLS in the
way) that books its share of the deposits. The clock runs from the moment all workers are
released until the last one is done. PostgreSQL: a throwaway cluster (initdb as the
``postgres`` user, fsync on, like SQLite's synchronous=FULL), or ``ECASH_TPM_BENCH_PG_URL``
names a server (an empty database on it is created and dropped).

Bounded: ``--deposits`` per configuration and ``--max-seconds`` per run (a worker stops taking
deposits after it). On shared, busy cores the ratio says more than the absolute figures.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.bankworld import BankWorld, make_world, test_policy  # noqa: E402
from support.coinmint import KeyPool, Pki, RecordingReporter, prepare_coin  # noqa: E402

from ecash_tpm.bank.domain import BankDomain  # noqa: E402
from ecash_tpm.crypto import native  # noqa: E402
from ecash_tpm.pki import load_certificate  # noqa: E402
from ecash_tpm.storage import Database, StorageBusyError, sqlite_url  # noqa: E402

Job = tuple[str, dict[str, Any]]


def _jobs(world: BankWorld, count: int, tag: str, per: int = 1) -> list[Job]:
    """``count`` signed deposits of ``per`` coins each, alternating between two merchants."""
    total = count * per
    member = world.customer(f"bench-{tag}", total * 10)
    keyset = world.keyset(10)
    coins: list[Any] = []
    for start in range(0, total, 64):
        pending = [prepare_coin(member, keyset) for _ in range(min(64, total - start))]
        sigs = world.bank.withdraw(
            member.account_id, f"{tag}-{start:06d}", [p.item for p in pending]
        ).blind_signatures
        coins += [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]
    jobs = []
    for i in range(count):
        shop = ("shop-a", "shop-b")[i % 2]
        batch = coins[i * per : (i + 1) * per]
        request = world.request(shop, 10 * per, deadline_in=500)
        jobs.append(
            (shop, world.signed_deposit(shop, request, world.spends(member, batch, request)))
        )
    return jobs


def _worker(
    world: BankWorld,
    url: str,
    keys_dir: Path,
    shard: list[Job],
    barrier: Any,
    results: Any,
    max_seconds: float,
) -> None:
    """One bank process: its own pool and domain on the shared database."""
    db = Database.open(url)
    bank = BankDomain(
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
    done = busy = failed = 0
    first_error = None
    barrier.wait(120)
    deadline = time.monotonic() + max_seconds
    cpu0 = time.process_time()
    for shop, signed in shard:
        if time.monotonic() > deadline:
            break
        try:
            bank.deposit(signed, world.pki.merchants[shop].cert_pem)
            done += 1
        except StorageBusyError:
            busy += 1
        except Exception as exc:  # counted and reported; the benchmark goes on
            failed += 1
            first_error = first_error or repr(exc)
    results.put(
        {
            "done": done,
            "busy": busy,
            "failed": failed,
            "retries": db.retries,
            "first_error": first_error,
            "cpu_s": time.process_time() - cpu0,
        }
    )
    db.close()


def _measure(
    world: BankWorld,
    url: str,
    keys_dir: Path,
    jobs: list[Job],
    workers: int,
    max_s: float,
    per: int = 1,
) -> dict[str, Any]:
    ctx = mp.get_context("fork")
    barrier = ctx.Barrier(workers + 1)
    results = ctx.Queue()
    procs = [
        ctx.Process(
            target=_worker,
            args=(world, url, keys_dir, jobs[i::workers], barrier, results, max_s),
        )
        for i in range(workers)
    ]
    for p in procs:
        p.start()
    barrier.wait(120)
    start = time.perf_counter()
    got = [results.get(timeout=max_s + 120) for _ in procs]
    elapsed = time.perf_counter() - start
    for p in procs:
        p.join(30)
        if p.is_alive() and p.pid is not None:
            os.kill(p.pid, signal.SIGKILL)
            p.join(5)
    done = sum(r["done"] for r in got)
    cpu = sum(r["cpu_s"] for r in got)
    return {
        "workers": workers,
        "deposits": done,
        "seconds": round(elapsed, 3),
        "deposits_per_s": round(done / elapsed, 2),
        "coins_per_s": round(done * per / elapsed, 2),
        # the workers' own CPU (user + system) per coin, and how busy they kept their cores:
        # a utilisation well below the worker count means waiting (the write lock, fsync, or a
        # core taken by other work on the machine)
        "worker_cpu_ms_per_coin": round(cpu * 1e3 / max(1, done * per), 3),
        "worker_cpu_utilisation": round(cpu / elapsed, 2),
        "retries": sum(r["retries"] for r in got),
        "busy_503": sum(r["busy"] for r in got),
        "failed": sum(r["failed"] for r in got),
        "first_error": next((r["first_error"] for r in got if r["first_error"]), None),
    }


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _postgres() -> Iterator[str]:
    """A throwaway PostgreSQL cluster (stopped by its pid, directory removed), or the server
    named by ECASH_TPM_BENCH_PG_URL."""
    existing = os.environ.get("ECASH_TPM_BENCH_PG_URL")
    if existing:
        yield existing
        return
    bindirs = sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True)
    if not bindirs:
        raise SystemExit("no PostgreSQL binaries under /usr/lib/postgresql")
    bindir = bindirs[0]
    user = "postgres" if os.geteuid() == 0 else None
    tmp = Path(tempfile.mkdtemp(prefix="bench-pg-"))
    pid = None
    try:
        if user:
            shutil.chown(tmp, user=user)
        data = tmp / "data"
        run = {"user": user, "check": True, "capture_output": True, "timeout": 120}
        subprocess.run(
            [
                str(bindir / "initdb"),
                "-D",
                str(data),
                "-A",
                "trust",
                "-U",
                "postgres",
                "-E",
                "UTF8",
                "--locale=C",
            ],
            **run,
        )  # type: ignore[call-overload]
        port = _free_port()
        opts = f"-p {port} -k {tmp} -c listen_addresses=127.0.0.1 -c max_connections=100"
        subprocess.run(
            [
                str(bindir / "pg_ctl"),
                "-D",
                str(data),
                "-l",
                str(tmp / "log"),
                "-w",
                "-t",
                "60",
                "-o",
                opts,
                "start",
            ],
            **run,
        )  # type: ignore[call-overload]
        pid = int((data / "postmaster.pid").read_text().splitlines()[0])
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGINT)
            end = time.monotonic() + 30
            while time.monotonic() < end and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)
        shutil.rmtree(tmp, ignore_errors=True)


@contextlib.contextmanager
def _pg_database(server: str) -> Iterator[str]:
    import psycopg
    from psycopg import sql

    name = "bench_" + uuid.uuid4().hex[:12]
    with psycopg.connect(server, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield server.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )


def _backend(name: str, url: str, root: Path, pki: Pki, args: argparse.Namespace) -> list[Any]:
    """``--rounds`` rounds; in each, every worker count books ``--deposits`` fresh deposits, in
    an order rotated per round so a busy neighbour's burst does not always hit the same one."""
    world = make_world(db_url=url, data_dir=root, pki=pki, keys=KeyPool(4))
    try:
        # one deposit in the parent builds the fixed-base tables and caches every forked
        # worker inherits, as in a server that has been running for a while
        (shop, signed), *_ = _jobs(world, 1, f"{name}-warm")
        world.bank.deposit(signed, world.pki.merchants[shop].cert_pem)
        runs: dict[int, list[dict[str, Any]]] = {w: [] for w in args.workers}
        for r in range(args.rounds):
            k = r % len(args.workers)
            for workers in args.workers[k:] + args.workers[:k]:
                jobs = _jobs(world, args.deposits, f"{name}-{workers}-{r}", args.coins)
                # the parent's pool is inherited but never used by the forked workers
                row = _measure(
                    world, url, root / "keysets", jobs, workers, args.max_seconds, args.coins
                )
                runs[workers].append(row)
                print(json.dumps({"backend": name, "round": r, **row}), flush=True)
        rows = []
        for workers, mine in runs.items():
            rates = [m["deposits_per_s"] for m in mine]
            coin_rates = [m["coins_per_s"] for m in mine]
            firsts = [m["deposits_per_s"] for m in runs[args.workers[0]]]
            rows.append(
                {
                    "backend": name,
                    "workers": workers,
                    "deposits": sum(m["deposits"] for m in mine),
                    "deposits_per_s": round(statistics.median(rates), 2),
                    "per_round": rates,
                    "coins_per_s": round(statistics.median(coin_rates), 2),
                    "coins_per_s_per_round": coin_rates,
                    "worker_cpu_ms_per_coin": round(
                        statistics.median(m["worker_cpu_ms_per_coin"] for m in mine), 3
                    ),
                    "worker_cpu_utilisation": round(
                        statistics.median(m["worker_cpu_utilisation"] for m in mine), 2
                    ),
                    "ratio_over_1": round(
                        statistics.median(x / y for x, y in zip(rates, firsts, strict=True)), 2
                    ),
                    "retries": sum(m["retries"] for m in mine),
                    "busy_503": sum(m["busy_503"] for m in mine),
                    "failed": sum(m["failed"] for m in mine),
                    "first_error": next((m["first_error"] for m in mine if m["first_error"]), None),
                }
            )
        return rows
    finally:
        world.db.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deposits", type=int, default=120, help="deposits per configuration")
    parser.add_argument("--max-seconds", type=float, default=120.0, help="bound of one run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4])
    parser.add_argument("--rounds", type=int, default=3, help="alternations of the worker counts")
    parser.add_argument("--quick", action="store_true", help="20 deposits, 1 and 2 workers")
    parser.add_argument("--coins", type=int, default=1, help="coins per deposit (1..64)")
    parser.add_argument("--name", default="bench_workers", help="stem of the JSON and PNG files")
    args = parser.parse_args()
    # a SIGTERM still stops the PostgreSQL cluster and removes the temporary directory
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if args.quick:
        args.deposits, args.workers, args.rounds = 20, [1, 2], 1
    if not 1 <= args.rounds <= 20:
        raise SystemExit("--rounds must be in 1..20")
    args.workers = sorted(set(args.workers))
    if not 1 <= args.coins <= 64:
        raise SystemExit("--coins must be in 1..64")
    if not 1 <= args.deposits <= 5000:
        raise SystemExit("--deposits must be in 1..5000")
    if not all(1 <= w <= 8 for w in args.workers) or args.workers[0] != 1:
        raise SystemExit("--workers must be in 1..8 and include 1")
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", merchants=("shop-a", "shop-b"))
        try:
            rows += _backend("sqlite", sqlite_url(root / "s" / "bank.db"), root / "s", pki, args)
            if not args.skip_postgres:
                with _postgres() as server, _pg_database(server) as url:
                    rows += _backend("postgresql", url, root / "p", pki, args)
        finally:
            pki.close()
    ratios: dict[str, float] = {}
    over_one: dict[str, dict[str, float]] = {}
    for backend in ("sqlite", "postgresql"):
        by = {r["workers"]: r for r in rows if r["backend"] == backend}
        if by:
            over_one[backend] = {str(w): by[w]["ratio_over_1"] for w in by}
            if 2 in by:
                ratios[backend] = over_one[backend]["2"]
    result = {
        "cpus": os.cpu_count(),
        "deposits": args.deposits,
        "rounds": args.rounds,
        "workers": args.workers,
        "coins_per_deposit": args.coins,
        "engine": native.backend_name(),
        "machine": platform.platform(),
        "loadavg_after": [round(x, 2) for x in os.getloadavg()],
        "runs": rows,
        "ratio_2_1": ratios,
        "ratio_over_1": over_one,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / f"{args.name}.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, over_one, args.workers, args.out / f"{args.name}.png", args.coins)
    print(json.dumps({"ratio_over_1": over_one}))


def _plot(
    rows: list[dict[str, Any]],
    over_one: dict[str, dict[str, float]],
    workers_list: list[int],
    path: Path,
    per: int = 1,
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    backends = [b for b in ("sqlite", "postgresql") if any(r["backend"] == b for r in rows)]
    width = 0.8 / len(workers_list)
    for k, workers in enumerate(workers_list):
        offset = -0.4 + width * (k + 0.5)
        values = [
            next(
                (r["coins_per_s"] for r in rows if r["backend"] == b and r["workers"] == workers),
                0,
            )
            for b in backends
        ]
        ax.bar(
            [i + offset for i in range(len(backends))], values, width, label=f"{workers} worker(s)"
        )
    ax.set_xticks(range(len(backends)))
    ax.set_xticklabels(
        [f"{b}\n" + " / ".join(f"x{v:.2f}" for v in over_one.get(b, {}).values()) for b in backends]
    )
    ax.set_ylabel("coins / s")
    ax.set_title(
        f"bank deposit throughput by workers, {per}-coin deposits "
        f"({os.cpu_count()} CPUs, shared; {native.backend_name()})",
        fontsize=9,
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
