"""Timings of the BN_P256 arithmetic and the group-signature protocol (host side).

Run: ``.venv/bin/python benchmarks/bench_groupsig.py [--rounds N]``. The DAA signer is the
software one, so "spend proof" here is host work plus a simulated TPM (two scalar mults for
the commit, one hash for the sign); a real TPM adds its own commit/sign latency.
``--compare`` prints the before/after ratios of the curve arithmetic (issue 13) measured in
one process, see ``bench_curve.py``.
"""

from __future__ import annotations

import argparse
import secrets
import statistics
import time
from collections.abc import Callable
from typing import Any

from ecash_tpm.crypto.bn256 import G, Point, double_mult, random_scalar, tracing_base
from ecash_tpm.crypto.groupsig import (
    IssuerSecret,
    OpenerSecret,
    issue_credential,
    make_join_proof,
    make_spend_proof,
    open_proof,
    verify_credential,
    verify_credential_proof,
    verify_join_proof,
    verify_opening,
    verify_spend_proof,
)
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner


def _bench(name: str, fn: Callable[[], object], rounds: int) -> None:
    fn()  # warm caches (comb tables, tracing base)
    samples = []
    for _ in range(rounds):
        t = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t) * 1e3)
    print(
        f"{name:<44} median {statistics.median(samples):7.3f} ms"
        f"   min {min(samples):7.3f} ms   ({rounds} rounds)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument(
        "--compare",
        action="store_true",
        help="before/after ratios of the curve arithmetic in one process (bench_curve.py)",
    )
    args = parser.parse_args()
    if args.compare:
        from bench_curve import main as compare

        compare(["--no-deposits"])
        return
    rounds = args.rounds

    q = random_scalar() * G
    _, j0 = tracing_base()
    _bench("scalar mult k*Q (variable base, GLV + wNAF)", lambda: random_scalar() * q, rounds)
    _bench("scalar mult k*G (fixed-base comb)", lambda: random_scalar() * G, rounds)
    _bench(
        "Shamir a*P + b*Q",
        lambda: double_mult(random_scalar(), q, random_scalar(), j0),
        rounds,
    )
    enc = q.encode()
    _bench("point decode (with on-curve check)", lambda: Point.decode(enc), rounds)

    issuer, opener = IssuerSecret.generate(), OpenerSecret.generate()
    signer = SoftwareDaaSigner()
    nonce = secrets.token_bytes(32)
    jp = make_join_proof(signer, nonce, self_check=False)
    _bench(
        "join proof (device, no self-check)",
        lambda: make_join_proof(signer, nonce, self_check=False),
        rounds,
    )
    _bench(
        "join proof verification (issuer)",
        lambda: verify_join_proof(nonce, signer.public_point, jp),
        rounds,
    )
    cred, cp = issue_credential(issuer, signer.public_point)
    _bench(
        "credential issuance (issuer)",
        lambda: issue_credential(issuer, signer.public_point),
        rounds,
    )
    _bench(
        "credential proof check (member)",
        lambda: verify_credential_proof(signer.public_point, cred, cp),
        rounds,
    )
    _bench("coin randomization (4 mults)", cred.randomize, rounds)

    coin = cred.randomize()
    ctx: dict[str, Any] = {
        "hop": opener.public,
        "preq": secrets.token_bytes(32),
        "keyset_id": secrets.token_bytes(16),
        "epoch": 1,
        "sigma": secrets.token_bytes(32),
        "coin": coin,
    }
    proof = make_spend_proof(signer, **ctx)
    _bench(
        "spend proof (host + soft TPM, no self-check)",
        lambda: make_spend_proof(signer, **ctx, self_check=False),
        rounds,
    )
    _bench(
        "spend proof verification (public part)", lambda: verify_spend_proof(proof, **ctx), rounds
    )
    _bench(
        "credential check (designated, issuer secret)",
        lambda: verify_credential(issuer, *coin),
        rounds,
    )
    t0, op = open_proof(opener.h, proof.c1, proof.c2)
    _bench(
        "opening + proof (supervision)", lambda: open_proof(opener.h, proof.c1, proof.c2), rounds
    )
    _bench(
        "opening verification (anyone)",
        lambda: verify_opening(opener.public, proof.c1, proof.c2, t0, op),
        rounds,
    )


if __name__ == "__main__":
    main()
