"""Timings of the RFC 9474 blind RSA operations for 2048- and 3072-bit keys.

Run: ``.venv/bin/python benchmarks/bench_blindrsa.py [--iterations N]``. A script, not a test: it
shows what the constant-time CRT private operation costs next to a non-CRT ``powmod_sec`` (the
ratio is the point of using CRT) and next to variable-time ``powmod`` (the price of constant time).
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import gmpy2

from ecash_tpm.crypto import blindrsa


def _time(fn: Callable[[], Any], iterations: int) -> float:
    """Median wall time of one call, in milliseconds."""
    fn()  # warm up
    samples = []
    for _ in range(iterations):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) * 1000.0


def bench(bits: int, iterations: int) -> None:
    """Time every step of one issuance with a fresh key of ``bits`` bits."""
    sk = blindrsa.generate_key(bits)
    pk = sk.public_key()
    priv = sk.private_numbers()
    n, d = gmpy2.mpz(priv.public_numbers.n), gmpy2.mpz(priv.d)
    p, q = gmpy2.mpz(priv.p), gmpy2.mpz(priv.q)
    dp, dq, qinv = gmpy2.mpz(priv.dmp1), gmpy2.mpz(priv.dmq1), gmpy2.mpz(priv.iqmp)

    prepared = blindrsa.prepare(b"benchmark coin message")
    blinded, inv = blindrsa.blind(pk, prepared)
    blind_sig = blindrsa.blind_sign(sk, blinded)
    sig = blindrsa.finalize(pk, prepared, blind_sig, inv)
    m = gmpy2.mpz(int.from_bytes(blinded, "big"))

    def crt_sec() -> Any:
        sp, sq = blindrsa._crt_half(m, dp, p), blindrsa._crt_half(m, dq, q)
        return sq + q * ((qinv * (sp - sq)) % p)

    def crt_plain() -> Any:
        sp, sq = gmpy2.powmod(m % p, dp, p), gmpy2.powmod(m % q, dq, q)
        return sq + q * ((qinv * (sp - sq)) % p)

    rows = [
        ("blind", lambda: blindrsa.blind(pk, prepared)),
        ("blind_sign (CRT + powmod_sec + s^e check)", lambda: blindrsa.blind_sign(sk, blinded)),
        ("  raw CRT with powmod_sec", crt_sec),
        ("  raw non-CRT powmod_sec(m, d, n)", lambda: gmpy2.powmod_sec(m, d, n)),
        ("  raw CRT with variable-time powmod", crt_plain),
        ("finalize (unblind + verify)", lambda: blindrsa.finalize(pk, prepared, blind_sig, inv)),
        ("verify", lambda: blindrsa.verify(pk, prepared, sig)),
    ]
    results = {name: _time(fn, iterations) for name, fn in rows}
    print(f"\nRSA-{bits} ({iterations} iterations, median ms/op)")
    for name, ms in results.items():
        print(f"  {name:<45} {ms:9.3f}")
    crt = results["  raw CRT with powmod_sec"]
    full = results["  raw non-CRT powmod_sec(m, d, n)"]
    ct = results["  raw CRT with variable-time powmod"]
    print(f"  non-CRT / CRT (powmod_sec) ratio              {full / crt:9.2f}x")
    print(f"  powmod_sec / powmod (CRT) overhead            {crt / ct:9.2f}x")


def main() -> None:
    """Parse arguments and run both key sizes."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--iterations", type=int, default=50)
    args = parser.parse_args()
    for bits in (2048, 3072):
        bench(bits, args.iterations)


if __name__ == "__main__":
    main()
