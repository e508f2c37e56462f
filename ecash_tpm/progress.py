"""The progress callback that long library operations accept.

``progress(message, done, total)``: for work on many items (coins, keys) ``done`` counts the
items finished, from 0 (starting) to ``total``; for a sequence of named steps (the join) it is
the number of the step ``message`` names, reported as the step starts. Library code never
prints; the command line shows progress on stderr (:class:`ecash_tpm.cli.output.Progress`).
Every such parameter defaults to ``None``: silent.
"""

from __future__ import annotations

from collections.abc import Callable

ProgressCallback = Callable[[str, int, int], None]
"""``(message, done, total)``."""


def silent(message: str, done: int, total: int) -> None:
    """The callback used when none is given."""
