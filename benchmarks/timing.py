"""Wall-time accounting shared by the payment benchmarks (bench_payment, bench_payment_coins,
bench_peer): how much of a payment is the merchant's deposit at the bank."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any


class Timed:
    """Accumulates the wall time of calls to one function."""

    def __init__(self, fn: Callable[..., Any]) -> None:
        self.fn = fn
        self.seconds = 0.0

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        start = time.perf_counter()
        try:
            return self.fn(*args, **kwargs)
        finally:
            self.seconds += time.perf_counter() - start


class TimedGateway:
    """The merchant's bank link with its deposits timed."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.deposit = Timed(inner.deposit)

    def keysets(self, **kw: Any) -> Any:
        return self.inner.keysets(**kw)

    def reserve(self, signed: Any, cert_pem: str) -> Any:
        return self.inner.reserve(signed, cert_pem)
