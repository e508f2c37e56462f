"""Child-process helpers: children that cannot outlive the process that started them.

A demo or test harness may be killed with SIGKILL, which runs no cleanup code. Linux's
``PR_SET_PDEATHSIG`` makes the kernel send the child a signal when its parent dies, so emulators
and party servers never linger as strays.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import signal
import sys

PR_SET_PDEATHSIG = 1


def die_with_parent(sig: int = signal.SIGTERM) -> None:
    """``preexec_fn`` for ``subprocess.Popen``: deliver ``sig`` to the child when we die.

    A no-op off Linux. Runs in the forked child before exec, so it must not raise.
    """
    if not sys.platform.startswith("linux"):
        return
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0)
    except OSError:
        return
