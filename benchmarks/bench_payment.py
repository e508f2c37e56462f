"""Payment latency with a real (emulated) TPM over real HTTP, split by where the time goes.

Run: ``.venv/bin/python benchmarks/bench_payment.py [--max-coins 8] [--reps 3]``. It starts
its own hermetic swtpm and the whole system of ``tests/support/system.py`` on 127.0.0.1 (bank with a
single denomination of 1, so paying n units takes exactly n coins), joins a wallet, withdraws,
and pays 1..N coins. Columns (median over ``--reps`` payments, milliseconds):

* ``total``     — ``wallet.pay`` wall time (request check, coin choice, proofs, HTTP, receipt)
* ``proofs``    — spend proofs made on the device: TPM commands plus host arithmetic and the
  wallet's self-check; ``tpm`` is the part spent inside TPM2_Commit/TPM2_Sign
* ``m.verify``  — the merchant's local checks (RSA signatures, spend proofs, windows)
* ``deposit``   — the merchant's deposit at the bank (HTTP round trip; the bank verifies every
  coin including the credential check, then books it in one SQLite transaction)
* ``other``     — the rest: HTTP to the merchant, JSON, the wallet's database, the receipt
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from support.system import start_system  # noqa: E402
from timing import Timed, TimedGateway  # noqa: E402

from ecash_tpm.device import TpmDevice  # noqa: E402
from ecash_tpm.swtpm import SwtpmInstance  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--max-coins", type=int, default=8)
    parser.add_argument("--reps", type=int, default=3)
    args = parser.parse_args()
    n_max, reps = args.max_coins, args.reps
    need = reps * n_max * (n_max + 1) // 2 + 1  # + the warm-up payment

    with tempfile.TemporaryDirectory(prefix="bench-payment-") as tmp:
        tpm_state = SwtpmInstance(Path(tmp) / "swtpm")
        tpm_state.provision()
        tpm_state.start()
        try:
            with (
                TpmDevice(tpm_state.tcti) as device,
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
                verify = Timed(merchant.verify_payment)
                merchant.verify_payment = verify  # type: ignore[method-assign]
                wallet.pay(1, "shop-1")  # warm-up (keyset cache, connections)
                print(
                    f"{'coins':>5} {'total':>9} {'proofs':>9} {'tpm':>9} {'m.verify':>9} "
                    f"{'deposit':>9} {'other':>9}   (ms, median of {reps})"
                )
                for n in range(1, n_max + 1):
                    rows: list[tuple[float, ...]] = []
                    for _ in range(reps):
                        offer = wallet.request(n, "shop-1")
                        wallet.signer.stats.reset()
                        verify.seconds = gateway.deposit.seconds = 0.0
                        start = time.perf_counter()
                        result = wallet.pay(request=offer, merchant="shop-1")
                        total = time.perf_counter() - start
                        proofs = result.timings["proofs_s"]
                        tpm = wallet.signer.stats.tpm_seconds
                        other = total - proofs - verify.seconds - gateway.deposit.seconds
                        rows.append(
                            (total, proofs, tpm, verify.seconds, gateway.deposit.seconds, other)
                        )
                    med = [statistics.median(col) * 1e3 for col in zip(*rows, strict=True)]
                    print(f"{n:>5} " + " ".join(f"{v:9.1f}" for v in med))
                wallet.close()
        finally:
            tpm_state.cleanup()


if __name__ == "__main__":
    main()
