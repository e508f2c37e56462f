"""Bank throughput on SQLite: deposit latency and deposits/s (1 and 2 threads), withdrawal
time per coin.

Run: ``.venv/bin/python benchmarks/bench_bank.py [--deposits N] [--http]``. Coins, spend proofs
and merchant signatures are made before the clock starts, so the figures are the bank's own
work: envelope and certificate checks, RSA verify, credential check, spend-proof verify and the
SQLite transaction (WAL, synchronous=FULL: one fsync per deposit). With ``--http`` each deposit
also goes through uvicorn on 127.0.0.1 and the httpx client. GNU Taler's published figure for
comparison: ~22 ms /deposit latency (PostgreSQL). ``--compare`` prints the before/after ratios
of the curve arithmetic, batch verification and per-request savings (issue 13) measured in one
process, see ``bench_curve.py``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.bankworld import BankWorld, make_world  # noqa: E402
from support.coinmint import KeyPool, Pki, prepare_coin  # noqa: E402

from ecash_tpm.bank.routes import create_bank_app
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.clients.bank import BankClient
from ecash_tpm.service.server import running_server
from ecash_tpm.storage import sqlite_url  # noqa: E402


def _prepared_deposits(world: BankWorld, count: int, tag: str) -> list[tuple[str, dict[str, Any]]]:
    """``count`` signed one-coin deposits, alternating between two merchants."""
    member = world.customer(f"bench-{tag}", count * 10)
    coins: list[Any] = []
    keyset = world.keyset(10)
    for start in range(0, count, 64):
        n = min(64, count - start)
        pending = [prepare_coin(member, keyset) for _ in range(n)]
        sigs = world.bank.withdraw(
            member.account_id, f"bench-{tag}-{start:06d}", [p.item for p in pending]
        ).blind_signatures
        coins += [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]
    jobs = []
    for i, coin in enumerate(coins):
        merchant = ("shop-a", "shop-b")[i % 2]
        request = world.request(merchant, 10, deadline_in=500)  # within the bank's bound
        spends = world.spends(member, [coin], request)
        jobs.append((merchant, world.signed_deposit(merchant, request, spends, f"{tag}-{i}")))
    return jobs


def _run(
    world: BankWorld, jobs: list[tuple[str, dict[str, Any]]], threads: int, base_url: str | None
) -> tuple[list[float], float]:
    latencies: list[float] = []
    lock = threading.Lock()
    shards = [jobs[i::threads] for i in range(threads)]

    def worker(shard: list[tuple[str, dict[str, Any]]]) -> None:
        client = BankClient(base_url) if base_url else None
        mine = []
        for merchant, signed in shard:
            cert = world.pki.merchants[merchant].cert_pem
            t = time.perf_counter()
            if client is not None:
                client.deposit(signed, cert)
            else:
                world.bank.deposit(signed, cert)
            mine.append((time.perf_counter() - t) * 1e3)
        if client is not None:
            client.close()
        with lock:
            latencies.extend(mine)

    workers = [threading.Thread(target=worker, args=(s,)) for s in shards]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return latencies, time.perf_counter() - start


def _report(name: str, latencies: list[float], elapsed: float) -> None:
    latencies = sorted(latencies)
    p95 = latencies[int(0.95 * (len(latencies) - 1))]
    print(
        f"{name:<34} median {statistics.median(latencies):7.2f} ms   p95 {p95:7.2f} ms"
        f"   {len(latencies) / elapsed:7.1f} deposits/s   ({len(latencies)} deposits)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deposits", type=int, default=200, help="deposits per run")
    parser.add_argument("--withdraw-coins", type=int, default=64, help="coins per withdrawal")
    parser.add_argument("--http", action="store_true", help="also measure over HTTP")
    parser.add_argument(
        "--compare",
        action="store_true",
        help="before/after ratios of issue 13 in one process (runs bench_curve.py)",
    )
    args = parser.parse_args()
    if args.compare:
        from bench_curve import main as compare

        compare([])
        return

    with tempfile.TemporaryDirectory(prefix="bench-bank-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", merchants=("shop-a", "shop-b"))
        world = make_world(
            db_url=sqlite_url(root / "bank.db"), data_dir=root, pki=pki, keys=KeyPool(4)
        )
        print(f"bank on {world.db.url} (WAL, synchronous=FULL), 2048-bit keysets")

        member = world.customer("bench-withdraw", 10**9)
        keyset = world.keyset(1)
        for rnd in range(3):
            pending = [prepare_coin(member, keyset) for _ in range(args.withdraw_coins)]
            t = time.perf_counter()
            world.bank.withdraw(member.account_id, f"bench-w-{rnd:04d}", [p.item for p in pending])
            per_coin = (time.perf_counter() - t) * 1e3 / args.withdraw_coins
            print(
                f"withdrawal of {args.withdraw_coins} coins, round {rnd}:"
                f"{per_coin:17.2f} ms per coin (bank side)"
            )

        modes: list[tuple[str, str | None]] = [("domain", None)]
        server = None
        if args.http:
            settings = BankSettings(data_dir=root / "settings")
            server = running_server(create_bank_app(world.bank, settings))
            modes.append(("http", server.__enter__()))
        try:
            for mode, url in modes:
                for threads in (1, 2):
                    jobs = _prepared_deposits(world, args.deposits, f"{mode}{threads}")
                    latencies, elapsed = _run(world, jobs, threads, url)
                    _report(
                        f"deposit ({mode}, {threads} thread{'s' * (threads > 1)})",
                        latencies,
                        elapsed,
                    )
        finally:
            if server is not None:
                server.__exit__(None, None, None)
        report = world.bank.ledger_check()
        print(
            f"ledger_check OK: {report['transactions']} transactions, {report['entries']} entries"
        )
        world.db.close()
        pki.close()


if __name__ == "__main__":
    main()
