"""Deposit CPU per coin at the bank: this tree vs the code issue 13 was measured on, ONE run.

Run: ``.venv/bin/python benchmarks/bench_deposit_baseline.py [--baseline 9e9a63c] [--rounds 5]
[--deposits 30] [--big-coins 16] [--big-deposits 6] [--out benchmarks/results]``.

Issue 13 asks for a deposit's CPU per coin "at least 2x lower than today" for 1-coin and
16-coin deposits. "Today" is a commit, not a number: ``9e9a63c`` is main as it was when the
issue was filed (every issue-13 branch forks there: GLV, batch verification, less per request,
the scaling work, the native engine). Absolute milliseconds move between sessions and hosts by
more than the effect, so all sides run here, in the same run, on the same machine:

- the baseline's ``ecash_tpm`` and ``tests/support`` are exported with ``git archive`` into a
  temporary directory (nothing in the checkout changes; a shallow clone without that commit is
  refused with a clear message);
- each side is a child process of this script (``--child TREE``) with ``TREE`` first on
  ``sys.path``, in the same virtualenv (the child prints which ``ecash_tpm`` it imported and the
  run stops if it is not the tree asked for); this tree runs with the curve engine it would use
  in production (native when built, see ``ecash-tpm --version``);
- the child builds the bank of ``tests/support/bankworld.py`` on SQLite (WAL,
  ``synchronous=FULL``; whatever each tree's storage layer sets), prepares ``--deposits``
  signed 1-coin deposits and ``--big-deposits`` signed ``--big-coins``-coin deposits (coins of
  value 10, spend proofs, merchant signatures), deposits one warm-up, then measures
  ``time.process_time`` around each ``BankDomain.deposit`` call;
- a third side runs this tree with ``ECASH_TPM_NATIVE=0`` (the pure-Python curve code), so the
  gain of the C engine and that of everything else can be told apart;
- per round every side runs, the order rotating, so load on the shared cores hits all of them;
  figures are medians over rounds of the per-round medians, the baseline's ratio to each side
  and the median of the per-round ratios.

The only API both trees need is ``make_world``, ``BankWorld.customer/withdraw/request/spends/
signed_deposit``, ``Pki.create``, ``KeyPool`` and ``BankDomain.deposit(signed, cert_pem)``.
"""

from __future__ import annotations

import argparse
import gc
import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
#: main when issue 13 ("Fast and scalable bank") was filed: its "today".
BASELINE = "9e9a63c"
COIN_VALUE = 10
#: what runs: the baseline tree; this tree forced onto the pure-Python curve code (so the
#: engine's share and the rest's can be told apart); this tree as installed
SIDES = ("baseline", "current_python", "current")


def _child(tree: Path, coins_sizes: list[tuple[int, int]], out: Path) -> None:
    """Runs in a child process: deposits on ``tree``'s code, CPU per deposit to ``out``."""
    sys.path[:0] = [str(tree), str(tree / "tests")]
    from support.bankworld import make_world
    from support.coinmint import KeyPool, Pki

    import ecash_tpm
    from ecash_tpm.storage import sqlite_url

    imported = Path(ecash_tpm.__file__).resolve().parent
    if imported != (tree / "ecash_tpm").resolve():
        raise SystemExit(f"imported {imported}, not {tree / 'ecash_tpm'}")
    engine = "python (gmpy2)"  # the baseline has no native engine
    try:
        from ecash_tpm.crypto import native

        engine = native.backend_name()
    except (ImportError, AttributeError):
        pass
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-baseline-child-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", merchants=("shop-a", "shop-b"))
        world = make_world(
            db_url=sqlite_url(root / "bank.db"), data_dir=root, pki=pki, keys=KeyPool(4)
        )
        try:
            jobs_by_size = []
            for coins, count in [(1, 1), *coins_sizes]:  # the first: one warm-up deposit
                member = world.customer(f"bench-{coins}-{count}", count * coins * COIN_VALUE + 1)
                jobs = []
                for i in range(count):
                    batch = [c for _ in range(coins) for c in world.withdraw(member, COIN_VALUE)]
                    shop = ("shop-a", "shop-b")[i % 2]
                    request = world.request(shop, COIN_VALUE * coins, deadline_in=500)
                    spends = world.spends(member, batch, request)
                    jobs.append((shop, world.signed_deposit(shop, request, spends)))
                jobs_by_size.append((coins, jobs))
            for coins, jobs in jobs_by_size:
                gc.collect()
                cpu = []
                for shop, signed in jobs:
                    cert = world.pki.merchants[shop].cert_pem
                    c0 = time.process_time()
                    world.bank.deposit(signed, cert)
                    cpu.append(time.process_time() - c0)
                rows.append({"coins": coins, "cpu_ms": [round(c * 1e3, 4) for c in cpu]})
        finally:
            world.db.close()
    doc = {"tree": str(tree), "engine": engine, "sizes": rows[1:]}
    out.write_text(json.dumps(doc))


def _export(rev: str, dest: Path) -> str:
    """``ecash_tpm/`` and ``tests/support/`` of ``rev`` into ``dest``; the full commit id."""
    try:
        full = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "--verify", f"{rev}^{{commit}}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as exc:
        raise SystemExit(
            f"bench.baseline_missing: commit {rev} is not in {REPO} (a shallow clone? "
            f"run `git fetch --unshallow`): {exc}"
        ) from exc
    archive = subprocess.run(
        ["git", "-C", str(REPO), "archive", "--format=tar", full, "ecash_tpm", "tests/support"],
        check=True,
        capture_output=True,
    ).stdout
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        tar.extractall(dest, filter="data")
    return full


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--baseline", default=BASELINE, help="the commit that is 'today'")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--deposits", type=int, default=30, help="1-coin deposits per round")
    ap.add_argument("--big-coins", type=int, default=16)
    ap.add_argument("--big-deposits", type=int, default=6)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    ap.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--child-out", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    sizes = [(1, args.deposits), (args.big_coins, args.big_deposits)]
    if args.child is not None:
        _child(args.child, sizes, args.child_out)
        return 0
    if not 1 <= args.rounds <= 20 or not 1 <= args.deposits <= 500:
        raise SystemExit("--rounds must be in 1..20 and --deposits in 1..500")
    if not 1 <= args.big_deposits <= 100 or not 2 <= args.big_coins <= 64:
        raise SystemExit("--big-deposits must be in 1..100 and --big-coins in 2..64")
    started = time.perf_counter()
    per_round: dict[str, dict[str, list[float]]] = {s: {} for s in SIDES}
    engines: dict[str, str] = {}
    load: list[float] = []
    with tempfile.TemporaryDirectory(prefix="bench-baseline-") as tmp:
        base_tree = Path(tmp) / "baseline"
        base_tree.mkdir()
        full = _export(args.baseline, base_tree)
        trees = {"baseline": base_tree, "current_python": REPO, "current": REPO}
        for r in range(args.rounds):
            for side in SIDES[r % 3 :] + SIDES[: r % 3]:  # each side first, middle, last
                out = Path(tmp) / f"{side}-{r}.json"
                cmd = [sys.executable, str(Path(__file__).resolve()), "--child", str(trees[side])]
                cmd += ["--child-out", str(out), "--deposits", str(args.deposits)]
                cmd += ["--big-coins", str(args.big_coins)]
                cmd += ["--big-deposits", str(args.big_deposits)]
                env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
                if side == "current_python":
                    env["ECASH_TPM_NATIVE"] = "0"
                subprocess.run(cmd, env=env, check=True, cwd=tmp)
                doc = json.loads(out.read_text())
                engines[side] = doc["engine"]
                line = []
                for row in doc["sizes"]:
                    ms = statistics.median(row["cpu_ms"]) / row["coins"]
                    per_round[side].setdefault(str(row["coins"]), []).append(ms)
                    line.append(f"{row['coins']} coin(s) {ms:.2f} ms/coin")
                print(f"round {r + 1} {side} ({doc['engine']}): " + ", ".join(line), flush=True)
            load.append(os.getloadavg()[0])
    med = {s: {k: statistics.median(v) for k, v in d.items()} for s, d in per_round.items()}
    sizes_k = list(med["current"])
    ratio = {s: {k: med["baseline"][k] / med[s][k] for k in sizes_k} for s in SIDES[1:]}
    # all sides ran next to each other in every round: the per-round ratio cancels the drift
    # of the machine's load between rounds
    ratio_rounds = {
        s: {
            k: statistics.median(
                b / c for b, c in zip(per_round["baseline"][k], per_round[s][k], strict=True)
            )
            for k in sizes_k
        }
        for s in SIDES[1:]
    }
    for k in sizes_k:
        print(
            f"{k:>2}-coin deposit: CPU/coin baseline {med['baseline'][k]:.2f} ms; current "
            f"{med['current'][k]:.2f} ms, x{ratio['current'][k]:.2f} lower (per round "
            f"x{ratio_rounds['current'][k]:.2f}); current on pure Python "
            f"{med['current_python'][k]:.2f} ms, x{ratio['current_python'][k]:.2f} lower"
        )
    args.out.mkdir(parents=True, exist_ok=True)
    doc_out: dict[str, Any] = {
        "what": "bank deposit CPU per coin (SQLite, BankDomain.deposit), this tree vs the "
        "baseline commit, same run, alternating order",
        "baseline_commit": full,
        "engines": engines,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "rounds": args.rounds,
        "deposits": {"1": args.deposits, str(args.big_coins): args.big_deposits},
        "load_average_after_each_round": load,
        "median_ms_per_coin": med,
        "baseline_over_current": ratio,
        "baseline_over_current_median_of_rounds": ratio_rounds,
        "all_rounds_ms_per_coin": per_round,
        "wall_s": round(time.perf_counter() - started, 1),
    }
    (args.out / "bench_deposit_baseline.json").write_text(json.dumps(doc_out, indent=2) + "\n")
    _plot(med, ratio["current"], engines, full[:7], args.out / "bench_deposit_baseline.png")
    return 0


def _plot(
    med: dict[str, Any], ratio: dict[str, float], engines: dict[str, str], base: str, path: Path
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(med["current"])
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    colours = {"baseline": "#cc6677", "current_python": "#ddcc77", "current": "#4477aa"}
    for k, side in enumerate(SIDES):
        xs = [i + (k - 1) * 0.27 for i in range(len(sizes))]
        ax.bar(xs, [med[side][s] for s in sizes], 0.27, color=colours[side],
               label=f"{side} ({engines.get(side, '?')})")  # fmt: skip
    ax.set_xticks(range(len(sizes)))
    ax.set_xticklabels([f"{s}-coin deposit\nx{ratio[s]:.2f} lower" for s in sizes])
    ax.set_ylabel("bank CPU per coin, ms (median)")
    ax.set_title(f"deposit CPU per coin, {base} ('today' of issue 13) vs this tree", fontsize=10)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
