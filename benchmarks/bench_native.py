"""The native BN_P256 engine (docs/native.md) against the pure-Python path and OpenSSL P-256.

Run: ``.venv/bin/python benchmarks/bench_native.py [--rounds N] [--json FILE] [--png FILE]``.
Everything runs in ONE process, interleaved per round, so the noise of shared cores hits all
sides alike; the figure per operation is the median over rounds of ns/op. The target of issue
14: variable-base multiplication within 3x of OpenSSL's P-256 ECDH (pyca/cryptography
``exchange``, which also parses nothing and converts nothing: a fair lower bound).
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.crypto import bn256_glv, native
from ecash_tpm.crypto.bn256 import G, N, random_scalar, scalar_mult_reference

RESULTS = Path(__file__).resolve().parent / "results"


def _ns_per_op(fn: Callable[[], object], min_time: float = 0.2) -> float:
    n, start = 0, time.perf_counter()
    while True:
        fn()
        n += 1
        elapsed = time.perf_counter() - start
        if elapsed >= min_time and n >= 3:
            return elapsed / n * 1e9


def _cases() -> dict[str, Callable[[], object]]:
    nat = native.load()
    if nat is None:
        raise SystemExit("the C engine _bn256 is not built (or ECASH_TPM_NATIVE=0)")
    pt = scalar_mult_reference(random_scalar(), G)
    x, y, k = int(pt.x), int(pt.y), random_scalar()
    fb_nat = nat.FixedBase(1, 2)
    fb_py = bn256_glv.FixedBase(1, 2)
    fb_nat.mul(1)
    fb_py.rows()
    terms = [(random_scalar(), scalar_mult_reference(random_scalar(), G)) for _ in range(16)]
    t_nat = [(s, int(p.x), int(p.y)) for s, p in terms]
    t_py = [(s, p._x, p._y, None) for s, p in terms]
    priv = ec.generate_private_key(ec.SECP256R1())
    peer = ec.generate_private_key(ec.SECP256R1()).public_key()
    cases: dict[str, Callable[[], object]] = {
        "variable-base mult / native": lambda: nat.g1_mul(k, x, y),
        "variable-base mult / python": lambda: bn256_glv.mul_public(k, pt._x, pt._y),
        "fixed-base mult (G) / native": lambda: fb_nat.mul(k),
        "fixed-base mult (G) / python": lambda: bn256_glv.mul_public(k, 1, 2, fb_py),
        "secret mult / native": lambda: nat.g1_mul_secret(k, x, y),
        "secret mult / python": lambda: bn256_glv.mul_secret(k, pt._x, pt._y),
        "msm(16) / native": lambda: nat.g1_msm(t_nat),
        "msm(16) / python": lambda: bn256_glv.msm(t_py),
        "OpenSSL P-256 ECDH": lambda: priv.exchange(ec.ECDH(), peer),
    }
    q = getattr(nat, "G2_GENERATOR", None)
    if q is not None:
        a, b = random_scalar(), random_scalar()
        pa, qb = nat.g1_mul(a, 1, 2), nat.g2_mul(b, *q)
        neg = nat.g1_mul(N - a * b % N, 1, 2)
        c = nat.g1_mul(random_scalar(), 1, 2)
        cases["pairing / native"] = lambda: nat.pairing(*pa, *qb)
        cases["product of 2 pairings / native"] = lambda: nat.pairing_product_is_one(
            [(*pa, *qb), (*neg, *q)]
        )
        cases["product of 3 pairings / native"] = lambda: nat.pairing_product_is_one(
            [(*pa, *qb), (*neg, *q), (*c, *q)]
        )
        cases["product of 4 pairings / native"] = lambda: nat.pairing_product_is_one(
            [(*pa, *qb), (*neg, *q), (*c, *q), (*c, *qb)]
        )
    return cases


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--json", type=Path, default=RESULTS / "native.json")
    ap.add_argument("--png", type=Path, default=RESULTS / "native.png")
    args = ap.parse_args()
    cases = _cases()
    runs: dict[str, list[float]] = {name: [] for name in cases}
    for _ in range(args.rounds):
        for name, fn in cases.items():
            runs[name].append(_ns_per_op(fn))
    med = {name: statistics.median(v) for name, v in runs.items()}
    ossl = med["OpenSSL P-256 ECDH"]
    ratios = {
        "variable-base native / OpenSSL ECDH": med["variable-base mult / native"] / ossl,
        "python / native, variable base": med["variable-base mult / python"]
        / med["variable-base mult / native"],
        "python / native, fixed base": med["fixed-base mult (G) / python"]
        / med["fixed-base mult (G) / native"],
        "python / native, secret": med["secret mult / python"] / med["secret mult / native"],
        "python / native, msm(16)": med["msm(16) / python"] / med["msm(16) / native"],
    }
    for name in [n for n in med if "pairing" in n]:  # load-independent view of the pairings
        ratios[f"{name} / OpenSSL ECDH"] = med[name] / ossl
    for name, v in med.items():
        print(f"{name:<36} {v:>14,.0f} ns/op")
    for name, r in ratios.items():
        print(f"{name:<50} {r:>10.2f}")
    doc: dict[str, Any] = {
        "engine": native.backend_name(),
        "machine": platform.platform(),
        "python": platform.python_version(),
        "rounds": args.rounds,
        "median_ns_per_op": med,
        "all_rounds_ns_per_op": runs,
        "ratios": ratios,
    }
    args.json.parent.mkdir(parents=True, exist_ok=True)
    args.json.write_text(json.dumps(doc, indent=2) + "\n")
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return 0
    fig, ax = plt.subplots(figsize=(9, 0.45 * len(med) + 1.2))
    names = list(med)
    ax.barh(names, [med[n] / 1000 for n in names], color="#4477aa")
    ax.set_xscale("log")
    ax.set_xlabel("microseconds per operation (log scale, median of rounds)")
    ax.invert_yaxis()
    ax.set_title("BN_P256: native C engine vs pure Python vs OpenSSL P-256")
    fig.tight_layout()
    fig.savefig(args.png, dpi=110)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
