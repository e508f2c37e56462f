"""Re-send lost deposits in the background while the merchant service runs.

A deposit whose bank answer was lost stays ``paying`` (docs/protocol.md §8): the customer's
retry re-sends it, but a customer who never comes back would leave the merchant unpaid. The
service therefore runs :class:`DepositRetrier`: one pass at start-up, then one every
``[merchant] deposit_retry_s``. A pass never raises: a bank outage is logged and the next pass
tries again; stopping waits for a pass in progress.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Sequence

from ecash_tpm.merchant.models import DepositRetry

__all__ = ["DepositRetrier"]


class DepositRetrier:
    """A daemon thread calling ``retry`` now and then every ``interval_s`` until stopped."""

    def __init__(
        self,
        retry: Callable[[], Sequence[DepositRetry]],
        interval_s: float,
        *,
        logger: logging.Logger | None = None,
    ) -> None:
        self._retry = retry
        self.interval_s = interval_s
        self._log = logger or logging.getLogger("ecash_tpm.merchant")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the loop (its first pass runs at once, off the start-up path)."""
        if self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(
            target=self._run, name="merchant-deposit-retry", daemon=True
        )
        self._thread.start()

    def stop(self, timeout: float | None = None) -> None:
        """Ask the loop to end and wait (at most ``timeout`` s) for a pass in progress."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.run_once()
            if self._stop.wait(self.interval_s):
                return

    def run_once(self) -> list[DepositRetry]:
        """One pass; every failure is logged, none escapes (the server must keep serving)."""
        try:
            results = list(self._retry())
        except Exception:  # the database or something unforeseen: log, try again next time
            self._log.exception("retrying pending deposits failed")
            return []
        for r in results:
            if r.settled:
                self._log.info("pending deposit %s settled", r.deposit_id)
            else:
                self._log.warning("pending deposit %s still open: %s", r.deposit_id, r.outcome)
        return results
