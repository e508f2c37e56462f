"""Deposit CPU per coin at the bank, native engine vs pure Python, in ONE run (issue 13).

Run: ``.venv/bin/python benchmarks/bench_deposit_engines.py [--rounds 2] [--deposits 20]
[--big-coins 16] [--big-deposits 4] [--out benchmarks/results]``.

The engine is chosen at import (``ECASH_TPM_NATIVE``), so each side is a child run of
``bench_deposit_profile.py`` (domain CPU = ``time.process_time`` around ``BankDomain.deposit``
on SQLite, WAL, synchronous=FULL; the same over HTTP; a cProfile by module group) with
``ECASH_TPM_NATIVE=1`` or ``0``. Per round both engines run, the order alternating, so load on
the shared cores hits both. Figures: median over rounds of the domain CPU per coin for 1-coin
and ``--big-coins``-coin deposits, the Python / native ratio of the medians and the median of
the per-round ratios ("today" = pure Python; the issue's target is a ratio >= 2). The last
native round's profile is kept as ``bench_deposit_profile.json``/``.png`` (what bounds a
deposit with the native engine).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENGINES = {"native": "1", "python": "0"}
KEY = "domain_cpu_ms_per_coin"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--deposits", type=int, default=20)
    ap.add_argument("--big-coins", type=int, default=16)
    ap.add_argument("--big-deposits", type=int, default=4)
    ap.add_argument("--out", type=Path, default=HERE / "results")
    args = ap.parse_args()
    if not 1 <= args.rounds <= 10:
        raise SystemExit("--rounds must be in 1..10")
    keys = ("domain_cpu_ms_per_coin", "http_cpu_ms_per_coin")
    runs: dict[str, dict[str, dict[str, list[float]]]] = {e: {} for e in ENGINES}
    groups: dict[str, dict[str, dict[str, list[float]]]] = {e: {} for e in ENGINES}
    load: list[float] = []
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="bench-engines-") as tmp:
        for r in range(args.rounds):
            order = list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES))
            for engine in order:
                out = Path(tmp) / f"{engine}-{r}"
                cmd = [sys.executable, str(HERE / "bench_deposit_profile.py"), "--out", str(out)]
                cmd += ["--deposits", str(args.deposits), "--big-coins", str(args.big_coins)]
                cmd += ["--big-deposits", str(args.big_deposits)]
                env = {**os.environ, "ECASH_TPM_NATIVE": ENGINES[engine]}
                subprocess.run(cmd, env=env, check=True, stdout=subprocess.DEVNULL)
                doc = json.loads((out / "bench_deposit_profile.json").read_text())
                for row in doc["sizes"]:
                    size = str(row["coins"])
                    per = runs[engine].setdefault(size, {k: [] for k in keys})
                    for k in keys:
                        per[k].append(row[k])
                    g = groups[engine].setdefault(size, {})
                    for name, v in row["groups_ms_per_coin"].items():
                        g.setdefault(name, []).append(v)
                print(
                    f"round {r + 1} {engine} ({doc['engine']}): "
                    + ", ".join(
                        f"{x['coins']} coin(s) {x['domain_cpu_ms_per_coin']:.2f} ms/coin"
                        for x in doc["sizes"]
                    ),
                    flush=True,
                )
                if engine == "native":
                    for ext in ("json", "png"):
                        shutil.copy(
                            out / f"bench_deposit_profile.{ext}",
                            args.out / f"bench_deposit_profile.{ext}",
                        )
            load.append(os.getloadavg()[0])
    med = {
        e: {s: {k: statistics.median(v) for k, v in per.items()} for s, per in sizes.items()}
        for e, sizes in runs.items()
    }
    med_groups = {
        e: {s: {k: round(statistics.median(v), 3) for k, v in g.items()} for s, g in sizes.items()}
        for e, sizes in groups.items()
    }
    ratio = {s: {k: med["python"][s][k] / med["native"][s][k] for k in keys} for s in med["native"]}
    # both engines ran next to each other in every round: the per-round ratio cancels the drift
    # of the machine's load between rounds
    per_round = {
        s: {
            k: statistics.median(
                p / n for p, n in zip(runs["python"][s][k], runs["native"][s][k], strict=True)
            )
            for k in keys
        }
        for s in med["native"]
    }
    for s in med["native"]:
        n, p = med["native"][s], med["python"][s]
        print(
            f"{s:>2}-coin deposit: domain CPU/coin native {n[keys[0]]:.2f} ms, python "
            f"{p[keys[0]]:.2f} ms (x{ratio[s][keys[0]]:.2f}, per round x"
            f"{per_round[s][keys[0]]:.2f}); over HTTP native {n[keys[1]]:.2f}, python "
            f"{p[keys[1]]:.2f} (x{ratio[s][keys[1]]:.2f}, per round x{per_round[s][keys[1]]:.2f})"
        )
    doc_out: dict[str, Any] = {
        "what": "bank deposit CPU per coin (SQLite), native engine vs pure Python, same run",
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "rounds": args.rounds,
        "deposits": {"1": args.deposits, str(args.big_coins): args.big_deposits},
        "load_average_after_each_round": load,
        "median_ms_per_coin": med,
        "python_over_native": ratio,
        "python_over_native_median_of_rounds": per_round,
        "median_groups_ms_per_coin": med_groups,
        "all_rounds": runs,
    }
    (args.out / "bench_deposit_engines.json").write_text(json.dumps(doc_out, indent=2) + "\n")
    _plot(med, ratio, args.out / "bench_deposit_engines.png")
    return 0


def _plot(med: dict[str, Any], ratio: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    sizes = list(med["native"])
    fig, ax = plt.subplots(figsize=(6.5, 3.8))
    for k, (engine, colour) in enumerate((("python", "#cc6677"), ("native", "#4477aa"))):
        xs = [i + (k - 0.5) * 0.35 for i in range(len(sizes))]
        ys = [med[engine][s]["domain_cpu_ms_per_coin"] for s in sizes]
        ax.bar(xs, ys, 0.35, color=colour, label=engine)
    ax.set_xticks(range(len(sizes)))
    labels = [f"{s}-coin deposit\npython/native x{ratio[s][KEY]:.2f}" for s in sizes]
    ax.set_xticklabels(labels)
    ax.set_ylabel("bank CPU per coin, ms (median)")
    ax.set_title("deposit CPU per coin at the bank (SQLite), same run", fontsize=10)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    raise SystemExit(main())
