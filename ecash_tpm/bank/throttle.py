"""Per-source login throttle: refuse before the expensive scrypt (issue 10, attack 9).

Every login attempt from a source (the client's IP address as the TLS connection reports it)
takes one slot of ``limit`` per ``window_s``; a successful login gives its slot back, so only
failures (wrong password, unknown account, bad code) use up a source's budget. The check runs
before any password hash, for known and unknown accounts alike, so one source cannot make the
bank compute more than ``limit`` scrypt hashes per window.

In memory on purpose: it is a cheap first gate in front of the SQL lock-out per account
(:mod:`ecash_tpm.bank.store.guards`), which is the one that must hold across processes.
The table is bounded (``max_sources``); when full, windows that ended are dropped first and
then the oldest window.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from ecash_tpm.errors import InputError

__all__ = ["SourceThrottle"]


class SourceThrottle:
    """``limit`` counted attempts per source and window; thread-safe."""

    def __init__(
        self,
        *,
        limit: int,
        window_s: int,
        clock: Callable[[], int],
        max_sources: int = 65536,
    ) -> None:
        if limit < 1 or window_s < 1 or max_sources < 1:
            raise InputError("throttle limit, window and size must be positive")
        self.limit = limit
        self.window_s = window_s
        self._clock = clock
        self._max = max_sources
        self._lock = threading.Lock()
        self._windows: dict[str, tuple[int, int]] = {}  # source -> (window start, count)

    def acquire(self, source: str) -> int | None:
        """Take a slot for ``source``; None if taken, else the seconds until one frees up."""
        now = self._clock()
        with self._lock:
            start, count = self._windows.get(source, (now, 0))
            if start + self.window_s <= now:
                start, count = now, 0
            if count >= self.limit:
                return max(1, start + self.window_s - now)
            if source not in self._windows and len(self._windows) >= self._max:
                self._evict(now)
            self._windows[source] = (start, count + 1)
            return None

    def release(self, source: str) -> None:
        """Give a slot back (the attempt succeeded)."""
        with self._lock:
            found = self._windows.get(source)
            if found is not None and found[1] > 0:
                self._windows[source] = (found[0], found[1] - 1)

    def _evict(self, now: int) -> None:
        ended = [s for s, (start, _) in self._windows.items() if start + self.window_s <= now]
        for source in ended:
            del self._windows[source]
        if len(self._windows) >= self._max:
            oldest = min(self._windows, key=lambda s: self._windows[s][0])
            del self._windows[oldest]
