"""What the ``ecash-tpm`` commands print, in one place.

- :func:`emit`: a command's result on stdout: with ``--json`` exactly one object
  ``{"ok": true, ...payload}`` (payload keys at the top level), else human-readable text.
- :func:`emit_error`: an :class:`~ecash_tpm.errors.EcashError` as
  ``{"ok": false, "error": {code, message, detail}}`` on stdout with ``--json``, else as
  ``ecash-tpm: error [code]: message`` (and the detail) on stderr.
- :class:`Progress`: progress of long work on stderr (``\\r[3/9] signing coins`` on a terminal,
  plain lines otherwise), never on stdout; silent with ``--json`` unless stderr is a terminal.
  Library functions take it as an optional ``progress(message, done, total)`` callback.
- :func:`read_json`, :func:`loads_json`, :func:`prompt`, :func:`file_error`: user-supplied
  input turned into typed errors instead of tracebacks.
- :func:`money`, :func:`when`: amounts in the currency's units (``100.00 EUR``) and ISO-8601
  UTC times for the human output; ``--json`` keeps raw integers (minor units, Unix seconds)
  and carries ``"version": JSON_VERSION``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import errno
import json
import os
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, TextIO

from ecash_tpm.errors import ConfigError, EcashError, InputError

__all__ = [
    "EXPONENTS_ENV",
    "JSON_VERSION",
    "FileAccessError",
    "Progress",
    "emit",
    "emit_error",
    "file_error",
    "keyset_label",
    "loads_json",
    "money",
    "prompt",
    "read_json",
    "wants_json",
    "when",
]

#: Version of the ``--json`` output shape (a top-level ``"version"`` key); raised only when a
#: key changes meaning or shape, never for added keys.
JSON_VERSION = 1
#: ``TEST=0,XBT=8``: decimals of currencies the built-in table does not know (human output).
EXPONENTS_ENV = "ECASH_TPM_CURRENCY_EXPONENTS"


def _exponents() -> dict[str, int]:
    """``$ECASH_TPM_CURRENCY_EXPONENTS`` as a table; malformed entries are ignored."""
    table: dict[str, int] = {}
    for item in os.environ.get(EXPONENTS_ENV, "").split(","):
        code, _, digits = item.strip().partition("=")
        if code and digits.isdigit() and int(digits) <= 18:
            table[code.strip().upper()] = int(digits)
    return table


def money(amount: int, currency: str) -> str:
    """``100.00 EUR`` for 10000 minor units of EUR: the currency's exponent (see
    :func:`ecash_tpm.protocol.money.format_amount`), overridable with
    $ECASH_TPM_CURRENCY_EXPONENTS."""
    from ecash_tpm.protocol.money import format_amount

    return format_amount(int(amount), str(currency), exponents=_exponents())


def keyset_label(keyset_id: str | bytes) -> str:
    """One spelling of a keyset id for people: hex (the wire's base64url is converted)."""
    if isinstance(keyset_id, bytes):
        return keyset_id.hex()
    if len(keyset_id) == 32 and all(c in "0123456789abcdef" for c in keyset_id):
        return keyset_id
    from ecash_tpm.crypto.encoding import b64u_decode
    from ecash_tpm.errors import EcashError

    try:
        return b64u_decode(keyset_id).hex()
    except EcashError:
        return keyset_id


def when(ts: int | None) -> str:
    """Unix seconds as ISO-8601 UTC (``2026-12-02T14:05:00Z``); ``-`` for none."""
    if ts is None:
        return "-"
    return dt.datetime.fromtimestamp(int(ts), dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


class FileAccessError(ConfigError):
    """A file named on the command line or in the configuration cannot be read or written."""

    code = "cli.file_error"


def wants_json(args: argparse.Namespace) -> bool:
    """Whether the command was asked for machine-readable output (``--json``)."""
    return bool(getattr(args, "json", False))


def emit(
    args: argparse.Namespace,
    payload: Mapping[str, Any],
    human: str | Callable[[], str],
    *,
    ok: bool = True,
) -> None:
    """Print a command's result: ``{"ok": ok, **payload}`` with ``--json``, else ``human``.

    ``ok`` stays ``True`` except for reports whose own outcome is the answer (an audit that
    found violations); failures are exceptions, printed by :func:`emit_error`.
    """
    if wants_json(args):
        if "ok" in payload or "error" in payload:
            raise ValueError("a JSON payload may not use the keys 'ok' and 'error'")
        versioned = {"version": JSON_VERSION, **payload}  # a payload's own version wins
        print(json.dumps({"ok": ok, **versioned}, default=str), flush=True)
        return
    text = human() if callable(human) else human
    if text:
        print(text, flush=True)


def emit_error(args: argparse.Namespace, exc: EcashError) -> None:
    """Print a project error with its stable code (JSON on stdout with ``--json``)."""
    if wants_json(args):
        doc = {"ok": False, "version": JSON_VERSION, "error": exc.to_dict()}
        print(json.dumps(doc, default=str), flush=True)
        return
    print(f"ecash-tpm: error [{exc.code}]: {exc.message}", file=sys.stderr)
    for key, value in exc.detail.items():
        print(f"  {key}: {value}", file=sys.stderr)


def file_error(exc: OSError) -> FileAccessError:
    """The typed error for a file that cannot be opened, read or written."""
    path = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
    reason = exc.strerror or str(exc)
    detail: dict[str, Any] = {"path": str(path), "reason": reason}
    if exc.errno is not None:
        detail["errno"] = errno.errorcode.get(exc.errno, str(exc.errno))
    return FileAccessError(f"cannot access {path}: {reason}", detail=detail)


def read_json(path: str | Path, what: str) -> Any:
    """The JSON document in ``path`` (a file the user named); typed errors if unreadable."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise file_error(exc) from exc
    except UnicodeDecodeError as exc:
        raise InputError(f"{what} {path} is not UTF-8 text", detail={"path": str(path)}) from exc
    return loads_json(text, f"{what} {path}", detail={"path": str(path)})


#: Deeper JSON is refused: no file the CLI reads nests more than a few levels, and a deeply
#: nested document would otherwise exhaust the stack of the (recursive) code that walks it.
MAX_JSON_DEPTH = 100


def _depth(doc: Any) -> int:
    """The nesting depth of a parsed JSON value (iterative: no recursion to exhaust)."""
    deepest, stack = 0, [(doc, 1)]
    while stack:
        node, level = stack.pop()
        if isinstance(node, dict | list):
            deepest = max(deepest, level)
            stack.extend(
                (v, level + 1) for v in (node.values() if isinstance(node, dict) else node)
            )
    return deepest


def loads_json(
    text: str,
    what: str,
    *,
    detail: Mapping[str, Any] | None = None,
    error: type[EcashError] = InputError,
    code: str | None = None,
) -> Any:
    """``json.loads`` for user-supplied text with typed errors only (``input.invalid`` unless
    ``error``/``code`` say otherwise): malformed JSON is a ``ValueError``, but JSON nested
    deeper than the interpreter's recursion limit raises ``RecursionError`` (``'[' * 200000``),
    and a document deeper than :data:`MAX_JSON_DEPTH` is refused before anything walks it."""
    info = dict(detail or {})
    try:
        doc = json.loads(text)
        too_deep = _depth(doc) > MAX_JSON_DEPTH
    except ValueError as exc:
        raise error(f"{what} is not valid JSON: {exc}", code=code, detail=info) from exc
    except RecursionError:
        too_deep = True
    if too_deep:
        info["max_depth"] = MAX_JSON_DEPTH
        raise error(
            f"{what} nests JSON deeper than {MAX_JSON_DEPTH} levels", code=code, detail=info
        )
    return doc


def prompt(question: str, *, secret: bool = False) -> str:
    """Ask on the terminal (the question goes to stderr, never stdout); EOF is an InputError."""
    try:
        if secret:
            import getpass

            return getpass.getpass(question, stream=sys.stderr)
        print(question, end="", file=sys.stderr, flush=True)
        line = sys.stdin.readline()
    except EOFError:
        line = ""
    if not line:
        raise InputError(
            f"no answer to {question.strip().rstrip(':')!r} (stdin is closed); "
            "pass it as an option or in a file"
        )
    return line.rstrip("\n")


class Progress:
    """Progress of long work on stderr; callable as ``progress(message, done, total)``.

    On a terminal one line is rewritten in place (``\\r[3/9] signing coins``) and ended when
    ``done == total``; otherwise every call prints a plain line. With ``--json`` it is silent
    unless stderr is a terminal, so stdout stays one JSON object and logs stay quiet.
    Use it as a context manager so that an unfinished line is ended on errors too.
    """

    def __init__(
        self, args: argparse.Namespace | None = None, *, stream: TextIO | None = None
    ) -> None:
        self.stream: TextIO = stream if stream is not None else sys.stderr
        isatty = getattr(self.stream, "isatty", None)
        self.tty = bool(isatty()) if callable(isatty) else False
        json_mode = wants_json(args) if args is not None else False
        self.enabled = self.tty or not json_mode
        self._width = 0  # length of the line being rewritten (0: none open)

    def __call__(self, message: str, done: int, total: int) -> None:
        """Report ``done`` of ``total`` steps of ``message``."""
        if not self.enabled:
            return
        line = f"[{done}/{total}] {message}"
        if self.tty:
            pad = " " * max(0, self._width - len(line))
            self.stream.write(f"\r{line}{pad}")
            self._width = len(line)
            if done >= total:
                self._end_line()
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def note(self, message: str) -> None:
        """A step without a count (``... logging in at the bank``)."""
        if not self.enabled:
            return
        self._end_line()
        self.stream.write(f"... {message}\n")
        self.stream.flush()

    def close(self) -> None:
        """End a line still being rewritten."""
        if self.enabled:
            self._end_line()
            self.stream.flush()

    def _end_line(self) -> None:
        if self._width:
            self.stream.write("\n")
            self._width = 0

    def __enter__(self) -> Progress:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()
