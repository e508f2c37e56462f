"""Payment time vs coins per payment, on a swtpm and with a hardware TPM's latency injected at
the device layer (issue 13 item 7).

Run: ``.venv/bin/python benchmarks/bench_payment_coins.py [--coins 1 4 16] [--reps 3]
[--latency NAME=COMMIT_MS,SIGN_MS ...] [--quick] [--out benchmarks/results]``.

One hermetic swtpm and the system of ``tests/support/system.py`` (every party a uvicorn server
on 127.0.0.1, TLS 1.3 and mutual TLS, SQLite, one denomination of 1 so n units are n coins).
One joined wallet withdraws every coin first; then, per latency profile and coin count, it
pays ``--reps`` times at ``shop-1`` (payment request fetched before the clock starts). A
profile sets the TpmDevice's ``injected_latency`` (``ecash_tpm/device/latency.py``): a sleep
before each TPM2_Commit and each TPM2_Sign(ECDAA), the swtpm still computing the real result.

Profiles (milliseconds per command; see docs/performance.md for the sources):

* ``swtpm``: nothing injected;
* ``infineon_daa``: commit 79, sign 65, from Yang et al., "Direct Anonymous Attestation with
  Optimal TPM Signing Efficiency" (IACR ePrint, 2021): on an Infineon TPM 2.0 chip a DAA signature
  of one TPM2_Commit and one TPM2_Sign took about 144 ms in total, about 65 ms of it online
  (the sign, with the commit done beforehand), so 144 - 65 = 79 ms for the commit (our split);
* ``field_p50``: commit 200, sign 200, from Chrome's field measurement of TPM ECDSA P-256
  signatures (200 ms median, 600 ms at the 95th percentile), as reported in the post "TPM
  performance" on stiankri.substack.com, assuming a commit costs what a sign does (one point
  multiplication each on the TPM).

Reported per (profile, coins): median payment wall time, the part inside the TPM commands
(including the injected sleep), the merchant's deposit at the bank, and per coin.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.system import start_system  # noqa: E402
from timing import TimedGateway  # noqa: E402

from ecash_tpm.device import TpmDevice  # noqa: E402
from ecash_tpm.device.latency import InjectedLatency  # noqa: E402
from ecash_tpm.swtpm import SwtpmInstance  # noqa: E402

PROFILES: dict[str, tuple[float, float]] = {
    "swtpm": (0.0, 0.0),
    "infineon_daa": (79.0, 65.0),
    "field_p50": (200.0, 200.0),
}
SOURCES = {
    "swtpm": "nothing injected: the emulator's own speed",
    "infineon_daa": "Yang, Chen, Zhang, Newton, Yang, Xi: Direct Anonymous Attestation with "
    "Optimal TPM Signing Efficiency, IACR ePrint 2021: Infineon TPM 2.0, DAA "
    "signature (TPM2_Commit + TPM2_Sign) ~144 ms total, ~65 ms online; split 79 + 65 is ours",
    "field_p50": "Chrome field study of TPM ECDSA P-256 signing, 200 ms p50 / 600 ms p95, as "
    "reported in the post 'TPM performance' (stiankri.substack.com); commit assumed "
    "as costly as a sign",
}


def _profiles(extra: list[str]) -> dict[str, tuple[float, float]]:
    out = dict(PROFILES)
    for item in extra:
        name, _, rest = item.partition("=")
        commit, _, sign = rest.partition(",")
        try:
            out[name] = (float(commit), float(sign))
        except ValueError:
            raise SystemExit(f"--latency {item!r}: expected NAME=COMMIT_MS,SIGN_MS") from None
    return out


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--coins", type=int, nargs="+", default=[1, 4, 16])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--latency", action="append", default=[], metavar="NAME=C,S")
    parser.add_argument("--quick", action="store_true", help="1 and 2 coins, one payment each")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args(argv)
    if args.quick:
        args.coins, args.reps = [1, 2], 1
    profiles = _profiles(args.latency)
    if not all(1 <= n <= 64 for n in args.coins) or not 1 <= args.reps <= 20:
        raise SystemExit("--coins must be in 1..64 and --reps in 1..20")
    need = args.reps * sum(args.coins) * len(profiles) + 1
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench-paycoins-") as tmp:
        tpm_state = SwtpmInstance(Path(tmp) / "swtpm")
        tpm_state.provision()
        tpm_state.start()
        try:
            with (
                TpmDevice(tpm_state.tcti, inject_latency=InjectedLatency()) as device,
                start_system(
                    Path(tmp) / "sys",
                    swtpm=tpm_state,
                    tpm=device,
                    denominations=(1,),
                    initial_balance=need,
                ) as system,
            ):
                wallet = system.open_wallet(device, Path(tmp) / "wallet")
                left = need
                while left:
                    chunk = min(left, 64)
                    wallet.withdraw(chunk)
                    left -= chunk
                merchant = system.merchants["shop-1"]
                gateway = TimedGateway(merchant.bank)
                merchant.bank = gateway
                wallet.pay(1, "shop-1")  # warm-up (keyset cache, connections)
                for name, (commit_ms, sign_ms) in profiles.items():
                    device.injected_latency = InjectedLatency(commit_ms / 1e3, sign_ms / 1e3)
                    for n in args.coins:
                        totals, tpms, deposits = [], [], []
                        for _ in range(args.reps):
                            offer = wallet.request(n, "shop-1")
                            wallet.signer.stats.reset()
                            gateway.deposit.seconds = 0.0
                            t = time.perf_counter()
                            wallet.pay(request=offer, merchant="shop-1")
                            totals.append(time.perf_counter() - t)
                            tpms.append(wallet.signer.stats.tpm_seconds)
                            deposits.append(gateway.deposit.seconds)
                        total = statistics.median(totals) * 1e3
                        row = {
                            "profile": name,
                            "commit_ms": commit_ms,
                            "sign_ms": sign_ms,
                            "coins": n,
                            "payments": args.reps,
                            "total_ms": round(total, 1),
                            "tpm_ms": round(statistics.median(tpms) * 1e3, 1),
                            "deposit_ms": round(statistics.median(deposits) * 1e3, 1),
                            "per_coin_ms": round(total / n, 1),
                        }
                        rows.append(row)
                        print(json.dumps(row), flush=True)
                wallet.close()
        finally:
            tpm_state.cleanup()
    result = {
        "what": "payment wall time vs coins per payment, swtpm and injected TPM latency",
        "baseline": "pure-Python curve arithmetic (before the native C curve)",
        "transport": "TLS 1.3, mutual TLS between parties",
        "profiles": {
            n: {"commit_ms": c, "sign_ms": s, "source": SOURCES.get(n, "given on the command line")}
            for n, (c, s) in profiles.items()
        },
        "rows": rows,
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
    (args.out / "bench_payment_coins.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, list(profiles), args.out / "bench_payment_coins.png")


def _plot(rows: list[dict[str, Any]], names: list[str], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name in names:
        mine = [r for r in rows if r["profile"] == name]
        label = f"{name} (commit {mine[0]['commit_ms']:.0f} + sign {mine[0]['sign_ms']:.0f} ms)"
        ax.plot([r["coins"] for r in mine], [r["total_ms"] for r in mine], "o-", label=label)
        for r in mine:
            ax.annotate(
                f"{r['total_ms']:.0f}",
                (r["coins"], r["total_ms"]),
                fontsize=7,
                textcoords="offset points",
                xytext=(4, -10),
            )
    ax.set_xscale("log", base=2)
    ax.set_yscale("log")
    coins = sorted({r["coins"] for r in rows})
    ax.set_xticks(coins)
    ax.set_xticklabels([str(c) for c in coins])
    ax.set_xlabel("coins per payment")
    ax.set_ylabel("payment wall time, ms (median)")
    ax.set_title("payment time vs coins: swtpm and injected hardware-TPM latency", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
