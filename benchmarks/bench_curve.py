"""Issue 13 items 1-3, before/after in ONE process: curve operations and bank deposits.

Run: ``.venv/bin/python benchmarks/bench_curve.py [--rounds N] [--deposits-per-round N]
[--json FILE] [--png FILE]`` (also reached as ``bench_bank.py --compare`` and
``bench_groupsig.py --compare``). "before" is main's code path, reachable through
:func:`reference.reference_arithmetic` (first curve implementation, per-coin credential
checks, full certificate check per deposit, reference canonical encoder); "after" is the
production code. Each round runs before and after back to back and the ratios are taken per
round, so the noise of shared cores hits both sides alike. Deposit figures are CPU time of the
process (``time.process_time``) per coin, on SQLite (WAL, synchronous=FULL).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from reference import new_arithmetic, reference_arithmetic  # noqa: E402
from support.bankworld import BankWorld, make_world  # noqa: E402
from support.coinmint import KeyPool, Pki  # noqa: E402

from ecash_tpm.crypto.bn256 import G, double_mult, multi_mult, random_scalar, tracing_base
from ecash_tpm.crypto.groupsig import (
    IssuerSecret,
    OpenerSecret,
    combine_terms,
    credentials_batch_ok,
    issue_credential,
    make_spend_proof,
    spend_equation_terms,
    verify_credential,
    verify_spend_proof,
)
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.storage import sqlite_url

REPO = Path(__file__).resolve().parents[1]
MODES: tuple[tuple[str, Callable[[], Any]], ...] = (
    ("before", reference_arithmetic),
    ("after", new_arithmetic),
)


def _ms(fn: Callable[[], object], repeat: int) -> float:
    t = time.process_time()
    for _ in range(repeat):
        fn()
    return (time.process_time() - t) * 1e3 / repeat


def micro(rounds: int, repeat: int) -> dict[str, dict[str, float]]:
    """Per-operation CPU ms before and after, and the median of the per-round ratios."""
    q = random_scalar() * G
    _, j0 = tracing_base()
    issuer, opener = IssuerSecret.generate(), OpenerSecret.generate()
    hop = opener.public.fixed_base()
    signer = SoftwareDaaSigner()
    cred, _ = issue_credential(issuer, signer.public_point)
    ctx: dict[str, Any] = {
        "hop": hop,
        "preq": secrets.token_bytes(32),
        "keyset_id": secrets.token_bytes(16),
        "epoch": 1,
        "sigma": secrets.token_bytes(32),
        "coin": cred.randomize(),
    }
    proof = make_spend_proof(signer, **ctx)
    coins16 = [cred.randomize() for _ in range(16)]
    k = [random_scalar() for _ in range(3)]

    def creds16_after() -> None:
        if not credentials_batch_ok(issuer, coins16):
            raise RuntimeError("batch failed")

    def creds16_before() -> None:
        for coin in coins16:
            verify_credential(issuer, *coin)

    ops: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {}
    for name, fn in {
        "k*Q (variable base)": lambda: k[0] * q,
        "k*G (fixed base)": lambda: k[0] * G,
        "k*Hop (fixed base)": lambda: k[0] * hop,
        "a*P + b*Q": lambda: double_mult(k[0], q, k[1], j0),
        "s*J0 + st*Hop - c*c2 (R2)": lambda: multi_mult(
            ((k[0], j0), (k[1], hop), (k[2], proof.c2))
        ),
        "credential check, 1 coin (secret x, y)": lambda: verify_credential(issuer, *ctx["coin"]),
    }.items():
        ops[name] = (fn, fn)
    old_proof = dataclasses.replace(proof, commitments=None)
    ops["spend proof verification (with E, R1, R2 after)"] = (
        lambda: verify_spend_proof(old_proof, **ctx),
        lambda: verify_spend_proof(proof, **ctx),
    )
    ops["credential check, 16 coins (batch after)"] = (creds16_before, creds16_after)
    ctxs = [{**ctx, "coin": cred.randomize(), "sigma": secrets.token_bytes(32)} for _ in range(16)]
    proofs16 = [make_spend_proof(signer, **c) for c in ctxs]

    def proofs16_before() -> None:
        for p, c in zip(proofs16, ctxs, strict=True):
            verify_spend_proof(dataclasses.replace(p, commitments=None), **c)

    def proofs16_after() -> None:
        terms = [
            t
            for p, c in zip(proofs16, ctxs, strict=True)
            for t in spend_equation_terms(p, c["coin"], hop)
        ]
        if not multi_mult(combine_terms(terms)).is_infinity:
            raise RuntimeError("batch failed")

    ops["spend proofs, 16 coins (batch after, equations only)"] = (proofs16_before, proofs16_after)
    for before, after in ops.values():  # warm the tables
        before()
        after()
    out: dict[str, dict[str, float]] = {}
    for name, (before, after) in ops.items():
        samples: dict[str, list[float]] = {"before": [], "after": []}
        ratios = []
        for _ in range(rounds):
            with reference_arithmetic():
                b = _ms(before, repeat)
            a = _ms(after, repeat)
            samples["before"].append(b)
            samples["after"].append(a)
            ratios.append(b / a)
        out[name] = {
            "before_ms": statistics.median(samples["before"]),
            "after_ms": statistics.median(samples["after"]),
            "ratio": statistics.median(ratios),
        }
        r = out[name]
        print(
            f"{name:<44} before {r['before_ms']:7.3f} ms   after {r['after_ms']:7.3f} ms"
            f"   x{r['ratio']:5.2f}"
        )
    return out


def _deposit_jobs(world: BankWorld, member: Any, size: int, count: int, tag: str) -> list[Any]:
    jobs = []
    for i in range(count):
        coins = [world.withdraw(member, 1)[0] for _ in range(size)]
        request = world.request("shop-a", size, deadline_in=300)
        spends = world.spends(member, coins, request)
        jobs.append(world.signed_deposit("shop-a", request, spends, f"{tag}-{i}"))
    return jobs


def deposits(rounds: int, per_round: int, sizes: tuple[int, ...]) -> dict[str, dict[str, float]]:
    """CPU ms per coin of bank deposits of ``size`` coins, before and after, interleaved."""
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory(prefix="bench-curve-") as tmp:
        root = Path(tmp)
        pki = Pki.create(root / "pki", merchants=("shop-a",))
        world = make_world(
            db_url=sqlite_url(root / "bank.db"), data_dir=root, pki=pki, keys=KeyPool(4)
        )
        member = world.customer("bench", 10**9)
        cert = world.pki.merchants["shop-a"].cert_pem
        warm = _deposit_jobs(world, member, 1, 2, "warm")
        for job, (_, mode) in zip(warm, MODES, strict=True):  # build tables, fill caches
            with mode():
                world.bank.deposit(job, cert)
        for size in sizes:
            per = max(1, per_round if size == 1 else per_round // 4)
            samples: dict[str, list[float]] = {"before": [], "after": []}
            ratios = []
            for rnd in range(rounds):
                got = {}
                for name, mode in MODES:
                    jobs = _deposit_jobs(world, member, size, per, f"{name}-{size}-{rnd}")
                    with mode():
                        t = time.process_time()
                        for job in jobs:
                            world.bank.deposit(job, cert)
                        got[name] = (time.process_time() - t) * 1e3 / (per * size)
                    samples[name].append(got[name])
                ratios.append(got["before"] / got["after"])
            out[f"deposit of {size} coin{'s' * (size > 1)}"] = {
                "before_ms_per_coin": statistics.median(samples["before"]),
                "after_ms_per_coin": statistics.median(samples["after"]),
                "ratio": statistics.median(ratios),
            }
            r = out[f"deposit of {size} coin{'s' * (size > 1)}"]
            print(
                f"deposit of {size:2d} coin(s), CPU per coin: before "
                f"{r['before_ms_per_coin']:6.2f} ms   after {r['after_ms_per_coin']:6.2f} ms"
                f"   x{r['ratio']:5.2f}   ({rounds} rounds x {per} deposits)"
            )
        world.bank.ledger_check()
        world.db.close()
        pki.close()
    return out


def plot(figures: dict[str, Any], path: Path) -> None:
    """Bar chart of the before/after ratios (matplotlib, dev extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = {**figures["micro"], **figures["deposits"]}
    names = list(rows)
    ratios = [rows[n]["ratio"] for n in names]
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(names) + 1.2))
    ax.barh(names, ratios, color="#4477aa")
    ax.axvline(2.0, color="#cc6677", linestyle="--", label="2x target (deposits)")
    ax.set_xlabel("speed-up (before / after, CPU time, same process)")
    ax.invert_yaxis()
    ax.legend(loc="lower right")
    ax.set_title("BN_P256 arithmetic and bank deposits: issue 13 items 1-3")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=20, help="calls per micro measurement")
    parser.add_argument("--deposits-per-round", type=int, default=8)
    parser.add_argument("--no-deposits", action="store_true")
    parser.add_argument("--json", type=Path, default=REPO / "benchmarks/results/bench_curve.json")
    parser.add_argument("--png", type=Path, default=REPO / "docs/img/bench_curve.png")
    args = parser.parse_args(argv)
    cpu = platform.processor() or "cpu"
    machine = (
        f"{platform.machine()}, {cpu}, {os.cpu_count()} cores, Python {sys.version.split()[0]}"
    )
    print(f"machine: {machine}")
    figures: dict[str, Any] = {
        "machine": machine,
        "command": " ".join(
            ["benchmarks/bench_curve.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "micro": micro(args.rounds, args.repeat),
        "deposits": {}
        if args.no_deposits
        else deposits(args.rounds, args.deposits_per_round, (1, 16)),
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(figures, indent=2) + "\n")
    print(f"figures: {args.json}")
    try:
        plot(figures, args.png)
        print(f"plot: {args.png}")
    except ImportError:
        print("matplotlib not installed: no plot")


if __name__ == "__main__":
    main()
