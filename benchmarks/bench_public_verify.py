"""Public credential check (protocol.md §7.4) per coin, native engine vs pure Python (issue 14).

Run: ``.venv/bin/python benchmarks/bench_public_verify.py [--coins 1 4 16 64] [--rounds 3]
[--repeat 5] [--max-seconds 20] [--json FILE] [--png FILE]``.

``verify_credentials_public`` over 1, 4, 16 and 64 coins of one epoch key (coins made by a real
``IssuerSecret`` + ``issue_credential`` + ``randomize``, as in
tests/unit/crypto/test_credential_public.py). The engine is chosen at import
(``ECASH_TPM_NATIVE``), so each side runs in a child process of this script; per round both
engines run one after the other, the order alternating, so a loaded machine hits both alike.
A child reports, per coin count, the median of ``--repeat`` calls (at most ``--max-seconds``
per count). Figures: median over rounds of ms per coin, and the Python / native ratio.
Issue 14's target: one coin <= 3 ms, 64 coins batched <= 1 ms per coin (native).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

RESULTS = Path(__file__).resolve().parent / "results"
ENGINES = {"native": "1", "python": "0"}


def _child(coins: list[int], repeat: int, max_seconds: float) -> dict[str, Any]:
    from ecash_tpm.crypto import native
    from ecash_tpm.crypto.groupsig import (
        IssuerSecret,
        issue_credential,
        verify_credentials_public,
    )
    from ecash_tpm.crypto.softdaa import SoftwareDaaSigner

    secret = IssuerSecret.generate()
    pub = secret.public
    cred, _ = issue_credential(secret, SoftwareDaaSigner().public_point)
    out: dict[str, float] = {}
    for n in coins:
        items = [(cred.randomize(), pub.X2, pub.Y2) for _ in range(n)]
        if not verify_credentials_public(items):  # warm-up; also proves the coins are good
            raise SystemExit("a good batch was refused")
        times: list[float] = []
        deadline = time.perf_counter() + max_seconds
        while len(times) < repeat and (not times or time.perf_counter() < deadline):
            start = time.perf_counter()
            verify_credentials_public(items)
            times.append(time.perf_counter() - start)
        out[str(n)] = statistics.median(times) * 1000 / n
    return {"engine": native.backend_name(), "ms_per_coin": out}


def _run_child(engine: str, args: argparse.Namespace) -> dict[str, Any]:
    env = {**os.environ, "ECASH_TPM_NATIVE": ENGINES[engine]}
    cmd = [sys.executable, __file__, "--child", "--repeat", str(args.repeat)]
    cmd += ["--max-seconds", str(args.max_seconds), "--coins", *map(str, args.coins)]
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True)
    result: dict[str, Any] = json.loads(done.stdout)
    return result


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--coins", type=int, nargs="+", default=[1, 4, 16, 64])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--max-seconds", type=float, default=20.0)
    ap.add_argument("--json", type=Path, default=RESULTS / "bench_public_verify.json")
    ap.add_argument("--png", type=Path, default=RESULTS / "bench_public_verify.png")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        print(json.dumps(_child(args.coins, args.repeat, args.max_seconds)))
        return 0
    runs: dict[str, dict[str, list[float]]] = {e: {str(n): [] for n in args.coins} for e in ENGINES}
    names: dict[str, str] = {}
    load: list[float] = []
    for r in range(args.rounds):
        order = list(ENGINES) if r % 2 == 0 else list(reversed(ENGINES))
        for engine in order:
            got = _run_child(engine, args)
            names[engine] = got["engine"]
            for n, v in got["ms_per_coin"].items():
                runs[engine][n].append(v)
            print(f"round {r + 1} {engine}: {got['ms_per_coin']}", flush=True)
        load.append(os.getloadavg()[0])
    med = {e: {n: statistics.median(v) for n, v in per.items()} for e, per in runs.items()}
    ratio = {n: med["python"][n] / med["native"][n] for n in med["native"]}
    print(f"{'coins':>6} {'native ms/coin':>15} {'python ms/coin':>15} {'python/native':>14}")
    for n in med["native"]:
        print(f"{n:>6} {med['native'][n]:>15.3f} {med['python'][n]:>15.3f} {ratio[n]:>14.1f}")
    doc: dict[str, Any] = {
        "what": "verify_credentials_public, ms per coin (median over rounds)",
        "engines": names,
        "machine": platform.platform(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "rounds": args.rounds,
        "repeat": args.repeat,
        "load_average_after_each_round": load,
        "median_ms_per_coin": med,
        "python_over_native": ratio,
        "all_rounds_ms_per_coin": runs,
        "targets": {"1 coin": "<= 3 ms", "64 coins": "<= 1 ms per coin"},
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(7, 4.2))
    xs = [int(n) for n in med["native"]]
    for engine, colour in (("native", "#4477aa"), ("python", "#cc6677")):
        ax.plot(xs, list(med[engine].values()), "o-", color=colour, label=names[engine])
    ax.axhline(3.0, color="grey", ls=":", lw=1)
    ax.axhline(1.0, color="grey", ls="--", lw=1)
    ax.text(xs[-1], 3.0, " target, 1 coin", va="bottom", ha="right", fontsize=8)
    ax.text(xs[-1], 1.0, " target, 64 coins", va="bottom", ha="right", fontsize=8)
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    ax.set_xticks(xs, [str(x) for x in xs])
    ax.set_xlabel("coins checked in one call")
    ax.set_ylabel("ms per coin (median over rounds)")
    ax.set_title("Public credential check (pairings), per coin")
    ax.legend()
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
