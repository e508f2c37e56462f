"""What TLS costs: a 1-coin payment end to end, and the bank's deposit throughput.

Run: ``.venv/bin/python benchmarks/bench_tls.py [--payments N] [--deposits N] [--rounds R]
[--json FILE] [--png FILE]``. Both halves run each variant in the same process, alternating
TLS and plain HTTP (``insecure_http``) ``--rounds`` times so drift of a loaded machine hits both
alike, and report medians and the ratio TLS / plain:

* **payment** -- a whole system (``tests/support/system.py``, every party a uvicorn server on
  127.0.0.1, a swtpm for the wallet): ``wallet.pay(1)`` with the TPM's spend proof, the
  merchant's checks and its deposit at the bank (merchant -> bank over mutual TLS). Clients are
  pooled as in the wallet and the merchant, so the handshakes happen once (warm-up);
  ``deposit`` is the merchant's bank call inside the payment.
* **deposit** -- the bank alone (``tests/support/bankworld.py``, SQLite WAL,
  synchronous=FULL) behind uvicorn: prepared one-coin deposits posted by one merchant client
  (``reuse``: one connection for all, the way the merchant's pooled client works) and, for
  the handshake's own cost, a new connection per deposit (``fresh``: ``Connection: close``,
  so TCP + TLS 1.3 handshake with client certificate each time).

Writes the figures as JSON (default ``benchmarks/results/bench_tls.json``) and a bar chart
(default ``docs/img/bench_tls.png``, matplotlib from the ``dev`` extra).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_bank import _prepared_deposits  # noqa: E402
from bench_payment import TimedGateway  # noqa: E402
from support.bankworld import BankWorld, make_world  # noqa: E402
from support.coinmint import KeyPool, Pki  # noqa: E402
from support.system import start_system  # noqa: E402

from ecash_tpm.bank.routes import create_bank_app  # noqa: E402
from ecash_tpm.bank.settings import BankSettings  # noqa: E402
from ecash_tpm.clients.bank import BankClient  # noqa: E402
from ecash_tpm.service.server import running_server  # noqa: E402
from ecash_tpm.storage import sqlite_url  # noqa: E402

VARIANTS = ("tls", "plain")


def _median_ms(values: list[float]) -> float:
    return round(statistics.median(values) * 1e3, 3)


def _p95_ms(values: list[float]) -> float:
    ordered = sorted(values)
    return round(ordered[int(0.95 * (len(ordered) - 1))] * 1e3, 3)


# --- a 1-coin payment --------------------------------------------------------------------------


@contextmanager
def _payment_systems(tmp: Path, coins: int) -> Iterator[dict[str, Any]]:
    """Both systems (TLS and plain), each with a funded, joined wallet on a swtpm of its own
    (a swtpm has three object slots: two wallets' keys do not fit in one)."""
    from contextlib import ExitStack

    from ecash_tpm.device import TpmDevice
    from ecash_tpm.swtpm import SwtpmInstance

    with ExitStack() as stack:
        setups: dict[str, Any] = {}
        for variant in VARIANTS:
            tpm_state = SwtpmInstance(tmp / f"swtpm-{variant}")
            tpm_state.provision()
            tpm_state.start()
            stack.callback(tpm_state.cleanup)
            device = stack.enter_context(TpmDevice(tpm_state.tcti))
            system = stack.enter_context(
                start_system(
                    tmp / f"sys-{variant}",
                    swtpm=tpm_state,
                    tpm=device,
                    denominations=(1,),
                    initial_balance=coins + 1,
                    tls=variant == "tls",
                )
            )
            wallet = system.open_wallet(device, tmp / f"wallet-{variant}")
            left = coins + 1
            while left:
                chunk = min(left, 64)
                wallet.withdraw(chunk)
                left -= chunk
            merchant = system.merchants["shop-1"]
            gateway = TimedGateway(merchant.bank)
            merchant.bank = gateway
            wallet.pay(1, "shop-1")  # warm-up: keyset caches, TLS sessions, pools
            setups[variant] = (wallet, gateway)
        yield setups


def bench_payments(tmp: Path, payments: int, rounds: int) -> dict[str, Any]:
    per_round = max(1, payments // rounds)
    totals: dict[str, list[float]] = {v: [] for v in VARIANTS}
    deposits: dict[str, list[float]] = {v: [] for v in VARIANTS}
    with _payment_systems(tmp, per_round * rounds) as setups:
        for _ in range(rounds):
            for variant in VARIANTS:
                wallet, gateway = setups[variant]
                for _ in range(per_round):
                    offer = wallet.request(1, "shop-1")
                    gateway.deposit.seconds = 0.0
                    start = time.perf_counter()
                    wallet.pay(request=offer, merchant="shop-1")
                    totals[variant].append(time.perf_counter() - start)
                    deposits[variant].append(gateway.deposit.seconds)
        for wallet, _gateway in setups.values():
            wallet.close()
    out: dict[str, Any] = {"payments_per_variant": per_round * rounds}
    for variant in VARIANTS:
        out[variant] = {
            "total_median_ms": _median_ms(totals[variant]),
            "total_p95_ms": _p95_ms(totals[variant]),
            "deposit_median_ms": _median_ms(deposits[variant]),
        }
    out["ratio_total"] = round(out["tls"]["total_median_ms"] / out["plain"]["total_median_ms"], 3)
    out["ratio_deposit"] = round(
        out["tls"]["deposit_median_ms"] / out["plain"]["deposit_median_ms"], 3
    )
    return out


# --- the bank's deposit throughput -------------------------------------------------------------


def _deposit_run(
    world: BankWorld,
    jobs: list[tuple[str, dict[str, Any]]],
    client_for: Callable[[str, bool], BankClient],
    *,
    reuse: bool,
) -> tuple[list[float], float]:
    """Post ``jobs`` one after the other over one client per merchant (made before the clock
    starts: a client's construction is not the connection's cost). ``reuse``: keep-alive, one
    connection for all; else ``Connection: close``, a new TCP (+ TLS) connection each."""
    clients = {merchant: client_for(merchant, reuse) for merchant, _ in jobs}
    latencies: list[float] = []
    start = time.perf_counter()
    for merchant, signed in jobs:
        cert = world.pki.merchants[merchant].cert_pem
        t = time.perf_counter()
        clients[merchant].deposit(signed, cert)
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - start
    for client in clients.values():
        client.close()
    return latencies, elapsed


def bench_deposits(tmp: Path, deposits: int, rounds: int) -> dict[str, Any]:
    from ecash_tpm.service.tls import client_context

    pki = Pki.create(tmp / "pki", merchants=("shop-a", "shop-b"))
    world = make_world(db_url=sqlite_url(tmp / "bank.db"), data_dir=tmp, pki=pki, keys=KeyPool(2))
    bank_tls = pki.tls_files("bank", "bank", tmp / "bank-tls")
    shop_tls = {m: pki.tls_files("merchant", m, tmp / f"{m}-tls") for m in pki.merchants}
    contexts = {
        m: client_context(bank_tls.root, client=(f.cert, f.key)) for m, f in shop_tls.items()
    }
    results: dict[str, dict[str, list[float]]] = {
        v: {"reuse": [], "fresh": [], "rate": []} for v in VARIANTS
    }
    per_round = max(2, deposits // rounds)
    with (
        running_server(
            create_bank_app(world.bank, BankSettings(data_dir=tmp / "s-tls")), tls=bank_tls
        ) as tls_url,
        running_server(
            create_bank_app(world.bank, BankSettings(data_dir=tmp / "s-plain", insecure_http=True))
        ) as plain_url,
    ):

        def close_unless(reuse: bool) -> dict[str, str]:
            return {} if reuse else {"Connection": "close"}

        factories: dict[str, Callable[[str, bool], BankClient]] = {
            "tls": lambda m, reuse: BankClient(
                tls_url, tls=contexts[m], expect=("bank", "bank"), headers=close_unless(reuse)
            ),
            "plain": lambda m, reuse: BankClient(plain_url, headers=close_unless(reuse)),
        }
        for rnd in range(rounds):
            for variant in VARIANTS:
                jobs = _prepared_deposits(world, per_round, f"{variant}-r{rnd}")
                latencies, elapsed = _deposit_run(world, jobs, factories[variant], reuse=True)
                results[variant]["reuse"] += latencies
                results[variant]["rate"].append(len(jobs) / elapsed)
                jobs = _prepared_deposits(world, max(2, per_round // 4), f"{variant}-f{rnd}")
                latencies, _ = _deposit_run(world, jobs, factories[variant], reuse=False)
                results[variant]["fresh"] += latencies
    world.db.close()
    pki.close()
    out: dict[str, Any] = {"deposits_per_variant": per_round * rounds}
    for variant in VARIANTS:
        r = results[variant]
        out[variant] = {
            "reuse_median_ms": _median_ms(r["reuse"]),
            "reuse_p95_ms": _p95_ms(r["reuse"]),
            "deposits_per_s": round(statistics.median(r["rate"]), 1),
            "fresh_connection_median_ms": _median_ms(r["fresh"]),
        }
    out["ratio_throughput"] = round(
        out["tls"]["deposits_per_s"] / out["plain"]["deposits_per_s"], 3
    )
    out["ratio_latency_reuse"] = round(
        out["tls"]["reuse_median_ms"] / out["plain"]["reuse_median_ms"], 3
    )
    out["ratio_latency_fresh"] = round(
        out["tls"]["fresh_connection_median_ms"] / out["plain"]["fresh_connection_median_ms"], 3
    )
    return out


# --- output ------------------------------------------------------------------------------------


def machine() -> dict[str, Any]:
    import os
    import ssl

    model = ""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": model or platform.processor(),
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "openssl": ssl.OPENSSL_VERSION,
        "system": platform.platform(),
    }


def plot(figures: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    pay, dep = figures["payment"], figures["deposit"]
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.6))
    panels = [
        ("1-coin payment (ms, median)", "total_median_ms", pay, "ratio_total"),
        ("deposits/s, one connection", "deposits_per_s", dep, "ratio_throughput"),
        ("deposit, new connection (ms)", "fresh_connection_median_ms", dep, "ratio_latency_fresh"),
    ]
    for ax, (title, key, data, ratio) in zip(axes, panels, strict=True):
        values = [data["plain"][key], data["tls"][key]]
        bars = ax.bar(["plain HTTP", "TLS 1.3"], values, color=["#9aa5b1", "#2f6fab"])
        ax.bar_label(bars, fmt="%.1f")
        ax.set_title(f"{title}\nTLS/plain = {data[ratio]:.2f}", fontsize=10)
        ax.set_ylim(0, max(values) * 1.25)
    fig.suptitle("ecash-tpm: cost of TLS (benchmarks/bench_tls.py)", fontsize=11)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--payments", type=int, default=30, help="1-coin payments per variant")
    parser.add_argument("--deposits", type=int, default=300, help="deposits per variant")
    parser.add_argument("--rounds", type=int, default=3, help="alternations TLS/plain")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/bench_tls.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs/img/bench_tls.png")
    parser.add_argument("--skip-payment", action="store_true", help="no swtpm: deposits only")
    args = parser.parse_args()

    figures: dict[str, Any] = {"machine": machine(), "command": " ".join(sys.argv)}
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp:
        root = Path(tmp)
        figures["deposit"] = bench_deposits(root / "dep", args.deposits, args.rounds)
        dep = figures["deposit"]
        print(
            f"deposit, one connection: TLS {dep['tls']['deposits_per_s']}/s "
            f"({dep['tls']['reuse_median_ms']} ms), plain {dep['plain']['deposits_per_s']}/s "
            f"({dep['plain']['reuse_median_ms']} ms): throughput ratio {dep['ratio_throughput']}"
        )
        print(
            f"deposit, new connection each: TLS {dep['tls']['fresh_connection_median_ms']} ms, "
            f"plain {dep['plain']['fresh_connection_median_ms']} ms: "
            f"ratio {dep['ratio_latency_fresh']}"
        )
        if not args.skip_payment:
            figures["payment"] = bench_payments(root / "pay", args.payments, args.rounds)
            pay = figures["payment"]
            print(
                f"1-coin payment: TLS {pay['tls']['total_median_ms']} ms, plain "
                f"{pay['plain']['total_median_ms']} ms: ratio {pay['ratio_total']} "
                f"(merchant->bank deposit inside it: ratio {pay['ratio_deposit']})"
            )
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {args.json}")
    if "payment" in figures:
        plot(figures, args.png)
        print(f"plot: {args.png}")


if __name__ == "__main__":
    main()
