"""Offline-TTP fair exchange vs an online TTP, 1..N concurrent customers (cf. the second
paper's Fig. 10).

Run: ``.venv/bin/python benchmarks/bench_fair_exchange.py [--customers 1 2 4 8] [--reps 6]
[--quick] [--out benchmarks/results]`` (``--max-customers N``: every level 1..N). Figures as JSON
(``bench_fair_exchange.json``) and a PNG (throughput and median latency per level, both flows).

It starts a hermetic swtpm and the whole system of ``tests/support/system.py`` with the TTP on
127.0.0.1 (real HTTP between every party), registers one product (price 1: one coin per
purchase) at ``shop-1``, and lets ``c`` customer threads (each with its own wallet directory,
coin store and purchase store) buy it ``--reps`` times each, for c = 1..N, in two flows:

* **offline TTP** (this design): wallet -> merchant ``/v1/pay`` -> bank deposit; the merchant
  returns the receipt with k sealed to the customer's key. The TTP is not involved (its counters
  are checked to stay at zero).
* **online TTP** (the baseline): wallet -> relay ``/v1/relay/pay`` -> merchant ``/v1/pay`` ->
  bank; the relay (:mod:`online_ttp`, an HTTP server of its own over the running TTP's escrow)
  checks the request as for a dispute, verifies the bank's receipt and releases the escrowed k.
  The wallet is the same; only its ``ShopApi`` differs (:class:`online_ttp.RelayShop`).

Both flows do the same customer-side work (descriptor and ciphertext check, fresh X25519 key,
payment request, spend proof, key unsealing, decryption), so the difference is the TTP hop.
Per level it prints throughput (purchases/s over the level's wall time), median and p95
latency of a whole purchase, and median of the payment round trip alone (wallet -> answer),
then the offline/online ratios.

**Signer.** Customers use ``SoftwareDaaSigner`` (an in-memory ECDAA key with a credential
issued under the system's issuer key), not one swtpm each: a swtpm serves one connection at a
time, eight emulators would each need their own EK CA trusted by the issuer and an attested
join, and the TPM's signing time is the same constant in both flows — it cannot change their
ratio, only dilute it. One real TPM wallet still joins first, because withdrawals need an
attested member on the account. Every party runs in this one Python process (uvicorn threads,
one GIL), so absolute throughput is a lower bound; the comparison is like for like.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from online_ttp import (  # noqa: E402
    MerchantPool,
    OnlineTtpRelay,
    RelayClient,
    RelayShop,
    create_relay_app,
)
from support.system import System, start_system  # noqa: E402

from ecash_tpm.clients.merchant import MerchantClient  # noqa: E402
from ecash_tpm.crypto.groupsig import issue_credential  # noqa: E402
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner  # noqa: E402
from ecash_tpm.device import TpmDevice  # noqa: E402
from ecash_tpm.service.server import running_server  # noqa: E402
from ecash_tpm.swtpm import SwtpmInstance  # noqa: E402
from ecash_tpm.wallet.context import WalletContext  # noqa: E402
from ecash_tpm.wallet.purchases import Buyer, PurchaseStore, ShopCatalogueClient  # noqa: E402
from ecash_tpm.wallet.store import WalletStore  # noqa: E402
from ecash_tpm.wallet.withdraw import withdraw  # noqa: E402

CONTENT = b"benchmark content: one chapter of a digital book. " * 40  # ~2 KB
FLOWS = ("offline", "online")


@dataclass
class Customer:
    """One customer thread's wallet and HTTP clients (nothing shared between threads)."""

    buyer: Buyer
    shop: MerchantClient
    catalogue: ShopCatalogueClient
    relay_shop: RelayShop
    closers: list[Callable[[], None]] = field(default_factory=list)

    def close(self) -> None:
        for close in reversed(self.closers):
            close()


def make_customer(system: System, directory: Path, coins: int, relay_url: str) -> Customer:
    """A software-DAA member with ``coins`` coins of value 1 in its own wallet directory."""
    signer = SoftwareDaaSigner()
    epoch = system.issuer.keys.current_epoch
    credential, _ = issue_credential(
        system.issuer.keys.secret_for_epoch(epoch), signer.public_point
    )
    store = WalletStore.open(directory, system.clock)
    purchases = PurchaseStore.open(directory, system.clock)
    ctx = WalletContext(store, system.root_pem, system.clock, "bank")
    bank = system.login()
    left = coins
    while left:
        chunk = min(left, 64)
        withdraw(
            ctx,
            bank,
            credential=credential,
            epoch=epoch,
            amount=chunk,
            currency=system.currency,
        )
        left -= chunk
    buyer = Buyer(ctx.spending(signer, hop=system.opener.public), purchases)
    shop = MerchantClient(system.merchant_urls["shop-1"])
    catalogue = ShopCatalogueClient(system.merchant_urls["shop-1"])
    relay = RelayClient(relay_url)
    c = Customer(buyer, shop, catalogue, RelayShop(shop, relay))
    c.closers += [store.close, purchases.close, shop.close, catalogue.close, relay.close]
    return c


def run_level(
    customers: list[Customer], product_id: str, flow: str, reps: int, shop_url: str
) -> tuple[float, list[float], list[float]]:
    """``c`` threads, ``reps`` purchases each; returns (wall s, purchase s, pay round trip s)."""
    totals: list[float] = []
    pays: list[float] = []
    lock = threading.Lock()
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(customers) + 1)

    def work(c: Customer) -> None:
        barrier.wait()
        for _ in range(reps):
            start = time.perf_counter()
            try:
                result = c.buyer.buy(
                    product_id,
                    source=c.catalogue,
                    shop=c.relay_shop if flow == "online" else c.shop,
                    merchant_url=shop_url,
                )
            except BaseException as exc:
                errors.append(exc)
                return
            elapsed = time.perf_counter() - start
            if result.content != CONTENT:
                errors.append(RuntimeError("wrong content"))
                return
            with lock:
                totals.append(elapsed)
                pays.append(result.timings.get("merchant_s", 0.0))

    threads = [threading.Thread(target=work, args=(c,)) for c in customers]
    for t in threads:
        t.start()
    barrier.wait()
    start = time.perf_counter()
    for t in threads:
        t.join()
    wall = time.perf_counter() - start
    if errors:
        raise errors[0]
    return wall, totals, pays


def p95(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(0.95 * (len(ordered) - 1))))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--max-customers", type=int, default=None, help="levels 1..N")
    parser.add_argument("--reps", type=int, default=6, help="purchases per customer per level")
    parser.add_argument("--quick", action="store_true", help="1 and 2 customers, 2 purchases")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    args = parser.parse_args()
    if args.quick:
        args.customers, args.reps = [1, 2], 2
    levels = sorted(set(args.customers))
    if args.max_customers is not None:
        levels = list(range(1, args.max_customers + 1))
    if not all(1 <= c <= 16 for c in levels) or not 1 <= args.reps <= 50:
        raise SystemExit("customers must be in 1..16 and --reps in 1..50")
    n_max, reps = max(levels), args.reps
    load_before = os.getloadavg()
    started = time.perf_counter()
    per_customer = len(FLOWS) * reps * len(levels) + 2  # customer 0 takes part in every level

    with tempfile.TemporaryDirectory(prefix="bench-fx-") as tmp:
        base = Path(tmp)
        tpm_state = SwtpmInstance(base / "swtpm")
        tpm_state.provision()
        tpm_state.start()
        try:
            with (
                contextlib.ExitStack() as stack,
                TpmDevice(tpm_state.tcti) as device,
                start_system(
                    base / "sys",
                    swtpm=tpm_state,
                    tpm=device,
                    denominations=(1,),
                    initial_balance=per_customer * n_max + 100,
                    ttp=True,
                    bank_policy={"max_withdraw_items": 64},
                    tls=False,  # plain HTTP like the relay: both flows over the same transport
                ) as system,
            ):
                system.open_wallet(device, base / "tpm-wallet")  # attested member on the account
                product = system.register_product("shop-1", title="Book", price=1, content=CONTENT)
                links = MerchantPool()
                stack.callback(links.close)
                relay = OnlineTtpRelay(system.ttp, links)
                relay_url = stack.enter_context(
                    running_server(create_relay_app(relay, base / "relay"))
                )
                print(f"setting up {n_max} customers ...", file=sys.stderr)
                customers = [
                    make_customer(system, base / f"c{i}", per_customer, relay_url)
                    for i in range(n_max)
                ]
                shop_url = system.merchant_urls["shop-1"]
                try:
                    for flow in FLOWS:  # warm-up: connections, keyset caches
                        run_level(customers[:1], product.product_id, flow, 1, shop_url)
                    relays0 = relay.relays
                    results: dict[tuple[str, int], tuple[float, float, float, float]] = {}
                    print(
                        f"{'flow':<8} {'cust':>4} {'purch/s':>8} {'lat.med':>8} {'lat.p95':>8} "
                        f"{'pay.med':>8}   (ms; {reps} purchases per customer)"
                    )
                    for c in levels:
                        for flow in FLOWS:
                            before = {**system.ttp.stats().counters, "relays": relay.relays}
                            wall, totals, pays = run_level(
                                customers[:c], product.product_id, flow, reps, shop_url
                            )
                            after = {**system.ttp.stats().counters, "relays": relay.relays}
                            if flow == "offline":
                                moved = {
                                    k
                                    for k in ("disputes_opened", "bank_queries", "relays")
                                    if after.get(k, 0) != before.get(k, 0)
                                }
                                if moved:
                                    raise RuntimeError(f"offline flow reached the TTP: {moved}")
                            row = (
                                len(totals) / wall,
                                statistics.median(totals) * 1e3,
                                p95(totals) * 1e3,
                                statistics.median(pays) * 1e3,
                            )
                            results[(flow, c)] = row
                            print(
                                f"{flow:<8} {c:>4} {row[0]:8.1f} {row[1]:8.1f} {row[2]:8.1f} "
                                f"{row[3]:8.1f}"
                            )
                    relays = relay.relays - relays0
                    print(
                        f"\nrelayed payments in the online flow: {relays}; in the offline flow: 0"
                    )
                    print(f"\n{'cust':>4} {'thr off/on':>10} {'lat on/off':>10} {'pay on/off':>10}")
                    for c in levels:
                        off, on = results[("offline", c)], results[("online", c)]
                        print(
                            f"{c:>4} {off[0] / on[0]:10.2f} {on[1] / off[1]:10.2f} "
                            f"{on[3] / off[3]:10.2f}"
                        )
                finally:
                    for cust in customers:
                        cust.close()
        finally:
            tpm_state.cleanup()
    rows = [
        {
            "flow": flow,
            "customers": c,
            "purchases_per_s": round(row[0], 2),
            "latency_median_ms": round(row[1], 1),
            "latency_p95_ms": round(row[2], 1),
            "pay_median_ms": round(row[3], 1),
        }
        for (flow, c), row in results.items()
    ]
    ratios = [
        {
            "customers": c,
            "throughput_offline_over_online": round(
                results[("offline", c)][0] / results[("online", c)][0], 3
            ),
            "latency_online_over_offline": round(
                results[("online", c)][1] / results[("offline", c)][1], 3
            ),
        }
        for c in levels
    ]
    out = {
        "what": "fair exchange with the offline TTP (this design) vs an online TTP relay",
        "baseline": "pure-Python curve arithmetic (before the native C curve)",
        "purchases_per_customer": reps,
        "relayed_payments_online": relays,
        "rows": rows,
        "ratios": ratios,
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
    (args.out / "bench_fair_exchange.json").write_text(json.dumps(out, indent=2) + "\n")
    _plot(rows, levels, args.out / "bench_fair_exchange.png")


def _plot(rows: list[dict[str, Any]], levels: list[int], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.8))
    for flow, style in (("offline", "o-"), ("online", "s--")):
        mine = sorted((r for r in rows if r["flow"] == flow), key=lambda r: r["customers"])
        xs = [r["customers"] for r in mine]
        label = f"{flow} TTP" + (" (this design)" if flow == "offline" else " (relay)")
        left.plot(xs, [r["purchases_per_s"] for r in mine], style, label=label)
        right.plot(xs, [r["latency_median_ms"] for r in mine], style, label=label)
    for ax, what in ((left, "purchases / s"), (right, "purchase latency, ms (median)")):
        ax.set_xticks(levels)
        ax.set_xlabel("concurrent customers")
        ax.set_ylabel(what)
        ax.legend(fontsize=8)
    fig.suptitle("fair exchange: offline vs online TTP (cf. Fig. 10)", fontsize=10)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


if __name__ == "__main__":
    main()
