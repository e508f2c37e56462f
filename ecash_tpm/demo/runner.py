"""Step bookkeeping for the demo: progress a person can follow, or one JSON object for machines.

Each step is timed and records a small ``detail`` dict; the first failing step ends the story
(later steps depend on it) and makes the whole run fail. The JSON form is
``{"ok": bool, "version": 1, "steps": [{"step", "ok", "ms", "detail"}]}``.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TextIO

from ecash_tpm.errors import EcashError


@dataclass
class StepResult:
    step: str
    ok: bool
    ms: float
    detail: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {"step": self.step, "ok": self.ok, "ms": round(self.ms, 1), "detail": self.detail}


class StepFailed(Exception):
    """Raised out of :meth:`StepRunner.step` after a failure has been recorded."""


class StepRunner:
    """Runs named steps, prints progress (unless ``json_mode``) and collects results."""

    def __init__(self, *, json_mode: bool = False, out: TextIO | None = None) -> None:
        self.json_mode = json_mode
        self.out = out if out is not None else sys.stderr
        self.results: list[StepResult] = []

    @property
    def ok(self) -> bool:
        return bool(self.results) and all(r.ok for r in self.results)

    def say(self, text: str = "") -> None:
        """A line of narration (suppressed in JSON mode, which prints only the final object)."""
        if not self.json_mode:
            print(text, file=self.out, flush=True)

    def fact(self, label: str, value: object) -> None:
        self.say(f"      {label:<24} {value}")

    @contextmanager
    def step(self, name: str, title: str) -> Iterator[dict[str, Any]]:
        """Time a step; the body fills the yielded ``detail``. A failure is recorded, then raised
        as :class:`StepFailed` (the story cannot go on without the step's outcome)."""
        number = len(self.results) + 1
        self.say(f"\n[{number:>2}] {title}")
        detail: dict[str, Any] = {}
        started = time.perf_counter()
        try:
            yield detail
        except BaseException as exc:
            ms = (time.perf_counter() - started) * 1000
            if isinstance(exc, EcashError):
                detail["error"] = exc.to_dict()
            elif isinstance(exc, KeyboardInterrupt):
                detail["error"] = {"code": "demo.interrupted", "message": "interrupted"}
            else:
                message = f"{type(exc).__name__}: {exc}"
                detail["error"] = {"code": "demo.step_failed", "message": message}
            self.results.append(StepResult(name, False, ms, detail))
            self.say(f"      FAILED after {ms:.0f} ms: {detail['error']['message']}")
            raise StepFailed(name) from exc
        ms = (time.perf_counter() - started) * 1000
        self.results.append(StepResult(name, True, ms, detail))
        self.say(f"      ok ({ms:.0f} ms)")

    def report(self) -> dict[str, Any]:
        # "version": the --json shape version, as every command's (cli.output.JSON_VERSION)
        return {"ok": self.ok, "version": 1, "steps": [r.to_dict() for r in self.results]}

    def emit_json(self, stream: TextIO | None = None) -> None:
        text = json.dumps(self.report(), default=str)  # a stray non-JSON value must not lose it
        print(text, file=stream if stream is not None else sys.stdout, flush=True)
