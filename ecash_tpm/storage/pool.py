"""A tiny blocking connection pool, the same for both backends.

Each transaction checks a connection out for its whole duration, so a connection is only ever
used by one thread at a time (that is what lets SQLite connections be opened with
``check_same_thread=False``). The pool belongs to its :class:`~ecash_tpm.storage.Database`;
there is no process-wide pool.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Generic, TypeVar

from ecash_tpm.errors import StorageError
from ecash_tpm.storage.errors import StorageBusyError

C = TypeVar("C")


class ConnectionPool(Generic[C]):
    """At most ``max_size`` connections made by ``factory``; idle ones are reused LIFO."""

    def __init__(
        self,
        factory: Callable[[], C],
        closer: Callable[[C], None],
        *,
        max_size: int,
        acquire_timeout_s: float = 30.0,
    ) -> None:
        if max_size < 1:
            raise StorageError("pool size must be at least 1", detail={"max_size": max_size})
        self._factory = factory
        self._closer = closer
        self._max_size = max_size
        self._acquire_timeout_s = acquire_timeout_s
        self._idle: list[C] = []
        self._in_use = 0
        self._closed = False
        self._cond = threading.Condition()

    def _acquire(self) -> C:
        deadline = time.monotonic() + self._acquire_timeout_s
        with self._cond:
            while True:
                if self._closed:
                    raise StorageError("the database has been closed")
                if self._idle:
                    self._in_use += 1
                    return self._idle.pop()
                if self._in_use < self._max_size:
                    self._in_use += 1  # reserve the slot, connect outside the lock
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise StorageBusyError(
                        "no database connection became free in time",
                        code="storage.pool_exhausted",
                        detail={"pool_size": self._max_size, "retry_after": 1},
                    )
                self._cond.wait(remaining)
        try:
            return self._factory()
        except BaseException:
            with self._cond:
                self._in_use -= 1
                self._cond.notify()
            raise

    def _release(self, conn: C, *, discard: bool) -> None:
        close_now = discard
        with self._cond:
            self._in_use -= 1
            if self._closed:
                close_now = True
            elif not discard:
                self._idle.append(conn)
            self._cond.notify()
        if close_now:
            self._closer(conn)

    @contextmanager
    def connection(self) -> Iterator[PooledConnection[C]]:
        """Check a connection out; set ``.discard = True`` on the handle if it is broken."""
        handle = PooledConnection(self._acquire())
        try:
            yield handle
        finally:
            self._release(handle.conn, discard=handle.discard)

    def close(self) -> None:
        """Close idle connections now and busy ones when they are returned."""
        with self._cond:
            self._closed = True
            idle, self._idle = self._idle, []
            self._cond.notify_all()
        for conn in idle:
            self._closer(conn)


class PooledConnection(Generic[C]):
    """A checked-out connection plus the flag that keeps a broken one out of the pool."""

    __slots__ = ("conn", "discard")

    def __init__(self, conn: C) -> None:
        self.conn = conn
        self.discard = False
