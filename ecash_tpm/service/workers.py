"""N server processes on one listening socket (``serve --workers N``, issue 13 item 4).

The parent binds the socket, then forks ``N`` children that each run the whole server: their own
event loop, database pool, TLS context and start-up (migrations and keysets are serialized by
database locks, so concurrent start-ups are safe). The kernel spreads accepted connections over
the processes sharing the socket. The parent only supervises:

- SIGTERM / SIGINT to the parent is forwarded (as SIGTERM) to every child, by pid, and the
  parent waits for them at most ``grace_s`` before it SIGKILLs what is left;
- a child that exits on its own (crashed start-up, fatal error) stops all the others, and the
  parent reports :class:`~ecash_tpm.service.errors.ServerStartError`;
- each child runs in its own process group (a terminal's Ctrl-C reaches only the parent, which
  then stops the children once) and stops itself if the parent disappears.

Forking (not spawning) keeps the already-bound socket and the app factory without pickling;
the parent must not have started threads or an event loop before :func:`run_workers`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType

from ecash_tpm.service.errors import ServerStartError

MAX_WORKERS = 64
_POLL_S = 0.2


def _watch_parent(parent: int) -> None:
    """In a child: SIGTERM ourselves once the supervising parent is gone (a daemon thread,
    ends with the process)."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(1.0)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _child(index: int, parent: int, run: Callable[[int], None]) -> None:
    """Body of a forked worker; never returns."""
    code = 0
    try:
        os.setpgid(0, 0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        signal.signal(signal.SIGTERM, signal.SIG_DFL)
        _watch_parent(parent)
        run(index)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException as exc:  # the parent reports the failure; show this one's cause
        print(f"worker {index}: {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
        code = 1
    finally:
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(code)


def _reap(children: dict[int, int]) -> list[tuple[int, int]]:
    """``(index, status)`` of children that ended since the last call (non-blocking)."""
    ended = []
    for pid, index in list(children.items()):
        try:
            done, status = os.waitpid(pid, os.WNOHANG)
        except ChildProcessError:
            done, status = pid, 0
        if done == pid:
            del children[pid]
            ended.append((index, os.waitstatus_to_exitcode(status)))
    return ended


def _stop_all(children: dict[int, int], grace_s: float) -> None:
    """SIGTERM every child by pid, wait at most ``grace_s``, then SIGKILL the rest."""
    for pid in children:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + grace_s
    while children and time.monotonic() < deadline:
        _reap(children)
        time.sleep(0.05)
    for pid in list(children):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)
        del children[pid]


def run_workers(count: int, run: Callable[[int], None], *, grace_s: float = 15.0) -> None:
    """Fork ``count`` workers running ``run(index)`` and supervise them until SIGTERM/SIGINT
    (a clean stop) or until one exits by itself (:class:`ServerStartError`)."""
    if not 1 <= count <= MAX_WORKERS:
        raise ServerStartError(
            f"workers must be between 1 and {MAX_WORKERS}", detail={"workers": count}
        )
    parent = os.getpid()
    children: dict[int, int] = {}
    stopping = threading.Event()

    def on_signal(_signum: int, _frame: FrameType | None) -> None:
        stopping.set()

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for index in range(count):
            pid = os.fork()
            if pid == 0:
                _child(index, parent, run)
            children[pid] = index
        failed: list[tuple[int, int]] = []
        while not stopping.is_set():
            failed = _reap(children)
            if failed:
                break
            stopping.wait(_POLL_S)
        _stop_all(children, grace_s)
        if failed:
            index, status = failed[0]
            raise ServerStartError(
                f"worker {index} exited (status {status}); all workers were stopped",
                detail={"worker": index, "status": status},
            )
    finally:
        if children:
            _stop_all(children, grace_s)
        for signum, handler in previous.items():
            signal.signal(signum, handler)
