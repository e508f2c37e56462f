"""Where a deposit's CPU goes at the bank: a cProfile grouped by module (issue 13 item 7).

Run: ``.venv/bin/python benchmarks/bench_deposit_profile.py [--deposits 30] [--big-coins 16]
[--big-deposits 6] [--quick] [--out benchmarks/results]``.

The bank of ``tests/support/bankworld.py`` on SQLite (WAL, synchronous=FULL). Signed deposits
(coins, spend proofs, merchant signatures) are made first. Three measurements per deposit
size (1 coin, and ``--big-coins`` coins), on fresh deposits each:

1. **domain CPU**: ``BankDomain.deposit`` called directly, ``time.process_time`` around it;
2. **HTTP CPU**: the same through the bank's FastAPI app under uvicorn on 127.0.0.1 and the
   project's ``BankClient`` (plain HTTP, connection reused: with TLS on a reused connection the
   difference is noise, see docs/performance.md), client and server in this one process, so
   the process CPU holds both sides; HTTP = (2) - (1): uvicorn, Starlette/FastAPI, httpx, the
   request and response bodies' (de)serialisation around the domain call;
3. **profile**: (1) again under ``cProfile``; every function's own time (tottime) goes to one
   group by its module: curve arithmetic (``crypto/bn256*``, ``crypto/groupsig``, gmpy2), RSA
   (blind-RSA verify, OpenSSL RSA), ECDSA and certificates (envelope signatures, X.509, CRL,
   ``pki/``), hashing, JSON/encoding/parsing (json, canonical encoding, base64, ``protocol/``),
   database (``storage/``, ``bank/store``, sqlite3), bank logic (the rest of ``bank/``) and
   other. The profile's shares are scaled to the unprofiled domain CPU of (1), so the profiler's
   own overhead does not inflate the figures.

The figure is a stacked bar per deposit size: ms of CPU per coin by group, HTTP on top.
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import json
import os
import platform
import pstats
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.bankworld import BankWorld, make_world  # noqa: E402
from support.coinmint import KeyPool, Pki, prepare_coin  # noqa: E402

from ecash_tpm.bank.routes import create_bank_app  # noqa: E402
from ecash_tpm.bank.settings import BankSettings  # noqa: E402
from ecash_tpm.clients.bank import BankClient  # noqa: E402
from ecash_tpm.crypto import native  # noqa: E402
from ecash_tpm.service.server import running_server  # noqa: E402
from ecash_tpm.storage import sqlite_url  # noqa: E402

COIN_VALUE = 10

#: (group, pattern on "file:function" of a profiled function); the first match wins.
GROUPS: list[tuple[str, re.Pattern[str]]] = [
    ("curve arithmetic", re.compile(r"crypto/(bn256|groupsig|pairing)|_bn256|gmpy2|mpz")),
    ("RSA", re.compile(r"blindrsa|[Rr]sa|RSA")),
    (
        "ECDSA, certificates",
        re.compile(r"ecash_tpm/pki|x509|certificate|openssl\.ec\.|EC(Private|Public)Key|crl", re.I),
    ),
    ("hashing", re.compile(r"hashlib|_hashlib|sha256|sha512|hmac", re.I)),
    (
        "JSON, encoding, parsing",
        re.compile(
            r"json|crypto/encoding|crypto/signing|base64|binascii|protocol/|pydantic|encode|decode"
        ),
    ),
    ("database", re.compile(r"ecash_tpm/storage|bank/store|sqlite3|sqlite")),
    ("bank logic", re.compile(r"ecash_tpm/bank")),
]
ORDER = [g for g, _ in GROUPS] + ["other", "HTTP (client + server)"]

Job = tuple[str, dict[str, Any]]


def _jobs(world: BankWorld, count: int, coins: int, tag: str) -> list[Job]:
    """``count`` signed deposits of ``coins`` coins each."""
    member = world.customer(f"bench-{tag}", count * coins * COIN_VALUE + COIN_VALUE)
    keyset = world.keyset(COIN_VALUE)
    jobs: list[Job] = []
    for i in range(count):
        pending = [prepare_coin(member, keyset) for _ in range(coins)]
        sigs = world.bank.withdraw(
            member.account_id, f"{tag}-{i:05d}", [p.item for p in pending]
        ).blind_signatures
        batch = [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]
        shop = ("shop-a", "shop-b")[i % 2]
        request = world.request(shop, COIN_VALUE * coins, deadline_in=500)
        jobs.append(
            (shop, world.signed_deposit(shop, request, world.spends(member, batch, request)))
        )
    return jobs


def _cpu_per_deposit(world: BankWorld, jobs: list[Job], client: BankClient | None) -> list[float]:
    out = []
    gc.collect()
    for shop, signed in jobs:
        cert = world.pki.merchants[shop].cert_pem
        c0 = time.process_time()
        if client is None:
            world.bank.deposit(signed, cert)
        else:
            client.deposit(signed, cert)
        out.append(time.process_time() - c0)
    return out


def _group(key: tuple[str, int, str]) -> str:
    text = f"{key[0]}:{key[2]}"
    for name, pattern in GROUPS:
        if pattern.search(text):
            return name
    return "other"


def _profile(world: BankWorld, jobs: list[Job]) -> tuple[dict[str, float], list[dict[str, Any]]]:
    """Shares of the profiled own time by group, and the top functions."""
    prof = cProfile.Profile()
    gc.collect()
    for shop, signed in jobs:
        cert = world.pki.merchants[shop].cert_pem
        prof.enable()
        world.bank.deposit(signed, cert)
        prof.disable()
    stats = pstats.Stats(prof).stats  # type: ignore[attr-defined]
    by_group: dict[str, float] = {}
    top = []
    for key, (_cc, _nc, tottime, _ct, _callers) in stats.items():
        g = _group(key)
        by_group[g] = by_group.get(g, 0.0) + tottime
        top.append((tottime, g, f"{Path(key[0]).name}:{key[1]}:{key[2]}"))
    total = sum(by_group.values()) or 1.0
    shares = {g: v / total for g, v in by_group.items()}
    top.sort(reverse=True)
    return shares, [
        {"function": f, "group": g, "share": round(t / total, 4)} for t, g, f in top[:25]
    ]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--deposits", type=int, default=30, help="1-coin deposits per phase")
    parser.add_argument("--big-coins", type=int, default=16, help="coins of the big deposit")
    parser.add_argument("--big-deposits", type=int, default=6, help="big deposits per phase")
    parser.add_argument("--quick", action="store_true", help="a few deposits: a smoke run")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.deposits, args.big_coins, args.big_deposits = 3, 4, 2
    if not 1 <= args.deposits <= 500 or not 1 <= args.big_deposits <= 100:
        raise SystemExit("--deposits must be in 1..500 and --big-deposits in 1..100")
    if not 2 <= args.big_coins <= 64:
        raise SystemExit("--big-coins must be in 2..64")
    load_before = os.getloadavg()
    started = time.perf_counter()
    sizes = [(1, args.deposits), (args.big_coins, args.big_deposits)]
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-profile-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", merchants=("shop-a", "shop-b"))
        world = make_world(
            db_url=sqlite_url(root / "bank.db"), data_dir=root, pki=pki, keys=KeyPool(4)
        )
        settings = BankSettings(data_dir=root / "settings", insecure_http=True)
        try:
            with running_server(create_bank_app(world.bank, settings)) as url:
                client = BankClient(url)
                try:
                    warm = _jobs(world, 2, 1, "warm")  # tables, caches, the connection
                    _cpu_per_deposit(world, warm[:1], None)
                    _cpu_per_deposit(world, warm[1:], client)
                    for coins, count in sizes:
                        tag = f"c{coins}"
                        domain_jobs = _jobs(world, count, coins, f"{tag}-domain")
                        http_jobs = _jobs(world, count, coins, f"{tag}-http")
                        prof_jobs = _jobs(world, count, coins, f"{tag}-prof")
                        domain = _cpu_per_deposit(world, domain_jobs, None)
                        http = _cpu_per_deposit(world, http_jobs, client)
                        shares, top = _profile(world, prof_jobs)
                        domain_ms = statistics.median(domain) * 1e3 / coins
                        http_ms = statistics.median(http) * 1e3 / coins
                        groups = {g: round(shares.get(g, 0.0) * domain_ms, 3) for g in ORDER[:-1]}
                        groups[ORDER[-1]] = round(max(0.0, http_ms - domain_ms), 3)
                        row = {
                            "coins": coins,
                            "deposits": count,
                            "domain_cpu_ms_per_coin": round(domain_ms, 3),
                            "http_cpu_ms_per_coin": round(http_ms, 3),
                            "groups_ms_per_coin": groups,
                            "top_functions": top,
                        }
                        rows.append(row)
                        print(
                            f"{coins:>2} coin(s): domain {domain_ms:.2f} ms/coin, over HTTP "
                            f"{http_ms:.2f}; "
                            + ", ".join(f"{g} {v:.2f}" for g, v in groups.items() if v),
                            flush=True,
                        )
                finally:
                    client.close()
        finally:
            world.db.close()
            pki.close()
    result = {
        "what": "CPU per coin of a bank deposit by group (cProfile own time, scaled to the "
        "unprofiled CPU) plus HTTP measured as the difference over HTTP",
        "engine": native.backend_name(),
        # kept for readers of the earlier files: which engine these figures are for
        "baseline": "pure-Python curve arithmetic"
        if native.backend_name().startswith("python")
        else "native C engine (pure-Python baseline: results/pure-python-baseline/)",
        "database": "SQLite, WAL, synchronous=FULL",
        "groups": ORDER,
        "sizes": rows,
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_deposit_profile.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, args.out / "bench_deposit_profile.png", native.backend_name())
    print(json.dumps([{k: r[k] for k in r if k != "top_functions"} for r in rows], indent=2))


def _plot(rows: list[dict[str, Any]], path: Path, engine: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    xs = list(range(len(rows)))
    bottom = [0.0] * len(rows)
    for group in ORDER:
        values = [r["groups_ms_per_coin"].get(group, 0.0) for r in rows]
        ax.bar(xs, values, 0.5, bottom=bottom, label=group)
        bottom = [b + v for b, v in zip(bottom, values, strict=True)]
    ax.set_xticks(xs)
    ax.set_xticklabels([f"{r['coins']}-coin deposit" for r in rows])
    ax.set_ylabel("CPU per coin, ms")
    ax.set_title(f"where a deposit's CPU goes (bank, SQLite; curve: {engine})", fontsize=9)
    handles, labels = ax.get_legend_handles_labels()
    ax.legend(handles[::-1], labels[::-1], fontsize=7, loc="upper right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
