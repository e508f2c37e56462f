"""Latency per phase (join, withdraw, swap, pay, deposit, dispute) with 1, 2, 4 and 8
concurrent customers, each with its own swtpm (issue 13 item 7; the second paper's Fig. 9).

Run: ``.venv/bin/python benchmarks/bench_phases.py [--customers 1 2 4 8] [--reps 3] [--coins 4]
[--max-seconds 300] [--quick] [--out benchmarks/results] [--img docs/img]``.

One system of ``tests/support/system.py`` (every party a uvicorn server on 127.0.0.1, TLS 1.3
and mutual TLS between parties, SQLite, one denomination of 1 so n units are n coins), with the
fair-exchange TTP; ``shop-2`` sells one product (price 1) whose key delivery it "loses" (the
demo strategy ``lost_key``), so a dispute at the TTP is answered by the shop at once. For each
concurrency n, n fresh bank customers (own account, password and TOTP) and n fresh hermetic
swtpm emulators are made, the issuer is told to trust their EK CAs, and n customer *processes*
(spawned, so no customer shares a GIL with another or with the servers) run in lock step:

* ``join``     — the attested join end to end (AK and DAA key made in the TPM, join
  authorisation from the bank, issuer's checks, credential);
* ``withdraw`` — ``--coins`` coins, ``--reps`` times (login not timed: one per customer);
* ``swap``     — ``--coins`` coins in, as many new coins out (``POST /v1/swap``: TPM spend
  proofs, the bank's checks, blind signatures, unblinding), ``--reps`` times;
* ``pay``      — ``--coins`` coins at a merchant (customers alternate between the two shops),
  ``--reps`` times: TPM spend proofs, the merchant's checks and its deposit at the bank, the
  receipt (the payment request is fetched before the clock starts);
* ``deposit``  — the merchant's deposit at the bank inside each payment, timed in the merchant;
* ``dispute``  — after a purchase of the product whose key did not arrive (not timed), the
  customer's dispute at the TTP, ``--reps`` times: the TTP checks the request and the spend
  proof, asks the shop, which answers with the key, and the wallet decrypts the content.

Every phase starts for all customers at once (a barrier), so the n customers of a phase
contend for the 2 shared cores, the servers and the database together. Figures: median and max
per phase over customers and repetitions (a join is one sample per customer). One customer
joins, withdraws and pays first, unreported (a fresh system's first join and payment build
caches). Bounded: ``--max-seconds`` per concurrency level.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import multiprocessing as mp
import os
import platform
import secrets
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.system import MERCHANTS, start_system  # noqa: E402

from ecash_tpm.device import TpmDevice  # noqa: E402
from ecash_tpm.issuer.trust import EkTrustStore  # noqa: E402
from ecash_tpm.swtpm import SwtpmInstance  # noqa: E402

PHASES = ("join", "withdraw", "swap", "pay", "deposit", "dispute")
PRODUCT_SHOP = "shop-2"
CONTENT = b"benchmark content for the dispute phase. " * 40


class TimedGateway:
    """The merchant's bank link with every deposit's duration and coin count recorded
    (thread-safe), so the product purchases of the dispute phase can be told apart."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.durations: list[tuple[int, float]] = []
        self._lock = threading.Lock()

    def deposit(self, signed: Any, *args: Any, **kw: Any) -> Any:
        coins = len(signed.get("body", {}).get("spends", ()))
        start = time.perf_counter()
        try:
            return self.inner.deposit(signed, *args, **kw)
        finally:
            with self._lock:
                self.durations.append((coins, time.perf_counter() - start))

    def keysets(self, **kw: Any) -> Any:
        return self.inner.keysets(**kw)

    def reserve(self, signed: Any, cert_pem: str) -> Any:
        return self.inner.reserve(signed, cert_pem)


def customer(job: dict[str, Any], barrier: Any, results: Any) -> None:
    """One customer process: join, withdraw, pay, each phase after the barrier."""
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.twofactor.totp import TOTP

    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.clients.merchant import MerchantClient
    from ecash_tpm.clients.revocation import crl_source
    from ecash_tpm.clients.ttp import TtpClient
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.service.tls import client_context
    from ecash_tpm.wallet.context import WalletContext
    from ecash_tpm.wallet.join import join
    from ecash_tpm.wallet.membership import load_membership, open_signer
    from ecash_tpm.wallet.pay import pay
    from ecash_tpm.wallet.purchases import Buyer, PurchaseStore, ShopCatalogueClient
    from ecash_tpm.wallet.purchases.errors import ContentKeyMissingError
    from ecash_tpm.wallet.store import WalletStore
    from ecash_tpm.wallet.swap import swap_coins
    from ecash_tpm.wallet.withdraw import withdraw

    out: dict[str, Any] = {
        "index": job["index"],
        "withdraw": [],
        "swap": [],
        "pay": [],
        "dispute": [],
    }
    try:
        root_path = Path(job["root_path"])
        root_pem = root_path.read_text()
        now = int(job["now"])  # the system's clock is settable and stands still here

        def clock() -> int:
            return now

        tls = client_context(root_path)
        bank = BankClient(job["bank_url"], tls=tls, expect=("bank", "bank"))
        issuer = IssuerClient(job["issuer_url"], tls=tls, expect=("issuer", "issuer"))
        shop = job["merchant"]
        merchant = MerchantClient(job["merchant_url"], tls=tls, expect=("merchant", shop))
        product_shop = MerchantClient(
            job["product_url"], tls=tls, expect=("merchant", PRODUCT_SHOP)
        )
        catalogue = ShopCatalogueClient(
            job["product_url"], tls=tls, expect=("merchant", PRODUCT_SHOP)
        )
        ttp = TtpClient(job["ttp_url"], tls=tls, expect=("ttp", "ttp"))
        totp = TOTP(bytes.fromhex(job["totp"]), 6, hashes.SHA1(), 30)  # noqa: S303 (RFC 6238)
        bank.login(job["account"], job["password"], totp.generate(now).decode("ascii"))
        wallet_dir = Path(job["wallet_dir"])
        crl = crl_source(root=root_path, crl_url=None, crl_file=Path(job["crl_path"]))
        with TpmDevice(job["tcti"]) as device:
            barrier.wait(timeout=120)
            t = time.perf_counter()
            join(device, issuer, wallet_dir, account_id=job["account"], root=root_pem, bank=bank)
            out["join"] = time.perf_counter() - t
            membership = load_membership(wallet_dir)
            store = WalletStore.open(wallet_dir, clock)
            signer = open_signer(device, wallet_dir, membership)
            ctx = WalletContext(store, root_pem, clock, "bank", crl=crl)
            spending = ctx.spending(signer, hop=membership.opener_public, expected_t0=membership.t0)
            for _ in range(job["reps"]):
                barrier.wait(timeout=120)
                t = time.perf_counter()
                withdraw(
                    ctx,
                    bank,
                    credential=membership.credential,
                    epoch=membership.epoch,
                    amount=job["coins"],
                    currency=job["currency"],
                )
                out["withdraw"].append(time.perf_counter() - t)
            for _ in range(job["reps"]):
                inputs = store.coins("unspent")[: job["coins"]]
                barrier.wait(timeout=120)
                t = time.perf_counter()
                swap_coins(
                    spending,
                    bank,
                    credential=membership.credential,
                    epoch=membership.epoch,
                    inputs=inputs,
                    values=[c.value for c in inputs],
                )
                out["swap"].append(time.perf_counter() - t)
            for _ in range(job["reps"]):
                offer = merchant.create_request(job["coins"])
                barrier.wait(timeout=120)
                t = time.perf_counter()
                pay(
                    spending,
                    offer["request"],
                    offer["cert"],
                    merchant=merchant,
                    merchant_url=merchant.base_url,
                )
                out["pay"].append(time.perf_counter() - t)
            # the coins the purchases take (one each), not timed
            withdraw(
                ctx,
                bank,
                credential=membership.credential,
                epoch=membership.epoch,
                amount=job["reps"],
                currency=job["currency"],
            )
            buyer = Buyer(spending, PurchaseStore.open(wallet_dir, clock))
            for _ in range(job["reps"]):
                try:
                    buyer.buy(
                        job["product_id"],
                        source=catalogue,
                        shop=product_shop,
                        merchant_url=job["product_url"],
                    )
                    raise RuntimeError("the shop delivered the key: no dispute to measure")
                except ContentKeyMissingError as exc:
                    purchase_id = exc.detail["purchase_id"]
                barrier.wait(timeout=120)
                t = time.perf_counter()
                result = buyer.dispute(purchase_id, ttp=ttp)
                out["dispute"].append(time.perf_counter() - t)
                if result.content != CONTENT:
                    raise RuntimeError("the dispute gave the wrong content")
            buyer.purchases.close()
            with contextlib.suppress(Exception):
                device.unload(signer.key)
            store.close()
        for client in (bank, issuer, merchant, product_shop, catalogue, ttp):
            client.close()
    except BaseException as exc:  # reported to the parent, which fails loudly
        out["error"] = f"{type(exc).__name__}: {exc}"
        with contextlib.suppress(Exception):
            barrier.abort()
    results.put(out)


def _stats(values: list[float]) -> dict[str, float]:
    ms = sorted(v * 1e3 for v in values)
    return {
        "median_ms": round(statistics.median(ms), 1),
        "max_ms": round(ms[-1], 1),
        "n": len(ms),
    }


def run_level(
    system: Any, gateways: dict[str, TimedGateway], n: int, args: Any, work: Path, tag: str = ""
) -> dict[str, Any]:
    """n concurrent customers, each with its own fresh swtpm and bank account."""
    tag = tag or str(n)
    tpms = []
    jobs = []
    try:
        for i in range(n):
            inst = SwtpmInstance(work / f"swtpm-{tag}-{i}")
            inst.provision()
            inst.start()
            tpms.append(inst)
        roots, inters = [], []
        for inst in tpms:
            r, m = inst.ca_certificates()
            roots += r
            inters += m
        # the system's clock stands still: move it past the new EK certificates' notBefore
        system.clock.advance(max(0, int(time.time()) + 2 - system.clock()))
        # the issuer trusts every customer's TPM maker (here: each emulator's own EK CA)
        system.issuer.trust = EkTrustStore(tuple(roots), tuple(inters))
        for i, inst in enumerate(tpms):
            account = f"bench-{tag}-{i}"
            password = secrets.token_urlsafe(12)
            totp = secrets.token_bytes(20)
            system.bank.create_customer(
                account, password, totp, initial_balance=args.reps * (args.coins + 1) + 1
            )
            shop = MERCHANTS[i % len(MERCHANTS)]
            jobs.append(
                {
                    "index": i,
                    "account": account,
                    "password": password,
                    "totp": totp.hex(),
                    "tcti": inst.tcti,
                    "wallet_dir": str(work / f"wallet-{tag}-{i}"),
                    "root_path": str(system.root_path),
                    "crl_path": str(system.crl_path),
                    "bank_url": system.bank_url,
                    "issuer_url": system.issuer_url,
                    "merchant": shop,
                    "merchant_url": system.merchant_urls[shop],
                    "product_url": system.merchant_urls[PRODUCT_SHOP],
                    "product_id": args.product_id,
                    "ttp_url": system.ttp_url,
                    "currency": system.currency,
                    "now": system.clock(),
                    "reps": args.reps,
                    "coins": args.coins,
                }
            )
        for g in gateways.values():
            g.durations.clear()
        ctx = mp.get_context("spawn")
        barrier = ctx.Barrier(n)
        results = ctx.Queue()
        procs = [ctx.Process(target=customer, args=(j, barrier, results)) for j in jobs]
        for p in procs:
            p.start()
        got = []
        deadline = time.monotonic() + args.max_seconds
        try:
            for _ in procs:
                got.append(results.get(timeout=max(1.0, deadline - time.monotonic())))
        finally:
            for p in procs:
                p.join(timeout=10)
                if p.is_alive():
                    p.terminate()  # this process's own child, by its handle
                    p.join(timeout=10)
        errors = [g["error"] for g in got if "error" in g]
        if errors:
            raise SystemExit(f"{n} customers: {errors[0]}")
    finally:
        for inst in tpms:
            inst.cleanup()
    per_phase = {
        "join": _stats([g["join"] for g in got]),
        "withdraw": _stats([x for g in got for x in g["withdraw"]]),
        "swap": _stats([x for g in got for x in g["swap"]]),
        "pay": _stats([x for g in got for x in g["pay"]]),
        # the payments' deposits (--coins coins), not the purchases' (one coin each)
        "deposit": _stats(
            [d for g in gateways.values() for n, d in g.durations if n == args.coins]
        ),
        "dispute": _stats([x for g in got for x in g["dispute"]]),
    }
    return {"customers": n, **per_phase}


def _plot(rows: list[dict[str, Any]], coins: int, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7.5, 4))
    width = 0.8 / len(rows)
    for k, row in enumerate(rows):
        xs = [i - 0.4 + width * (k + 0.5) for i in range(len(PHASES))]
        ax.bar(xs, [row[p]["median_ms"] for p in PHASES], width, label=f"{row['customers']}")
    ax.set_xticks(range(len(PHASES)))
    ax.set_xticklabels(
        [
            "join",
            f"withdraw\n{coins} coins",
            f"swap\n{coins} coins",
            f"pay\n{coins} coins",
            f"deposit\n{coins} coins",
            "dispute\n(1 coin)",
        ]
    )
    ax.set_yscale("log")
    ax.set_ylabel("median latency, ms (log scale)")
    ax.set_title(
        f"latency per phase by concurrent customers (own swtpm each; {os.cpu_count()} shared"
        " vCPUs)",
        fontsize=9,
    )
    ax.legend(title="customers")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--customers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--reps", type=int, default=3, help="withdrawals and payments each")
    parser.add_argument("--coins", type=int, default=4, help="coins per withdrawal / payment")
    parser.add_argument("--max-seconds", type=float, default=300.0, help="bound per level")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results"))
    parser.add_argument("--img", type=Path, default=Path("docs/img"))
    parser.add_argument("--quick", action="store_true", help="1 and 2 customers, 1 rep, 2 coins")
    args = parser.parse_args()
    if args.quick:
        args.customers, args.reps, args.coins = [1, 2], 1, 2
    if not all(1 <= n <= 8 for n in args.customers) or not 1 <= args.reps <= 20:
        raise SystemExit("--customers must be in 1..8 and --reps in 1..20")
    if not 1 <= args.coins <= 64:
        raise SystemExit("--coins must be in 1..64")
    load_before = os.getloadavg()
    started = time.perf_counter()
    rows = []
    with tempfile.TemporaryDirectory(prefix="bench-phases-") as tmp:
        work = Path(tmp)
        anchor = SwtpmInstance(work / "swtpm-anchor")  # the EK CA the system starts with
        anchor.provision()
        anchor.start()
        try:
            with contextlib.ExitStack() as stack:
                # the issuer's PCR allow-list: the anchor's values (every emulator measures the
                # same synthetic boot), read once; its device is closed before customers run
                with TpmDevice(anchor.tcti) as device:
                    system = stack.enter_context(
                        start_system(
                            work / "sys",
                            swtpm=anchor,
                            tpm=device,
                            denominations=(1,),
                            initial_balance=1,
                            ttp=True,
                        )
                    )
                from ecash_tpm.demo.cheating import strategy

                product = system.register_product(
                    PRODUCT_SHOP, title="Chapter", price=1, content=CONTENT
                )
                args.product_id = product.product_id
                catalogue = system.merchants[PRODUCT_SHOP].catalogue
                catalogue.key_release = strategy("lost_key")
                gateways = {}
                for name, merchant in system.merchants.items():
                    gateways[name] = TimedGateway(merchant.bank)
                    merchant.bank = gateways[name]
                # warm-up, not reported: the first join and payment of a fresh system build
                # caches (fixed-base tables, certificate checks) that later ones reuse
                run_level(
                    system,
                    gateways,
                    1,
                    argparse.Namespace(**{**vars(args), "reps": 1}),
                    work,
                    "warm",
                )
                for n in args.customers:
                    row = run_level(system, gateways, n, args, work)
                    rows.append(row)
                    print(
                        f"{n} customer(s): "
                        + "  ".join(
                            f"{p} {row[p]['median_ms']:.0f} ms (max {row[p]['max_ms']:.0f})"
                            for p in PHASES
                        ),
                        flush=True,
                    )
        finally:
            anchor.cleanup()
    result = {
        "what": "latency per phase, median and max over customers and repetitions",
        "baseline": "pure-Python curve arithmetic (before the native C curve)",
        "coins": args.coins,
        "reps": args.reps,
        "transport": "TLS 1.3, mutual TLS between parties",
        "machine": {
            "cpus": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
            "loadavg_before": [round(x, 2) for x in load_before],
            "loadavg_after": [round(x, 2) for x in os.getloadavg()],
            "seconds": round(time.perf_counter() - started, 1),
        },
        "levels": rows,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "bench_phases.json").write_text(json.dumps(result, indent=2) + "\n")
    _plot(rows, args.coins, args.img / "bench_phases.png")
    print(json.dumps(rows, indent=2))


if __name__ == "__main__":
    main()
