"""The one ``ecash-tpm`` command line for every role.

Each role lives in its own module ``ecash_tpm.cli.<role>_cmd`` (found automatically) exposing
``register(subparsers: argparse._SubParsersAction) -> None``; that function adds the role's
sub-commands and sets ``func(args) -> int`` on each. Results are printed with
:func:`ecash_tpm.cli.output.emit` (with ``--json``: one object ``{"ok": true, ...}`` on stdout,
progress only on stderr). Errors from the project's hierarchy, and files that cannot be opened,
are printed with their stable code (or as ``{"ok": false, "error": {...}}`` with ``--json``)
and turn into exit status 1. Output piped into a reader that went away (``| head``) ends the
command quietly with status 141 (128 + SIGPIPE, what a shell reports), without a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import pkgutil
import sys
from collections.abc import Sequence

from ecash_tpm import __version__
from ecash_tpm.cli.help import tidy
from ecash_tpm.cli.output import emit_error, file_error
from ecash_tpm.errors import EcashError


def role_modules() -> list[str]:
    """Names of the ``*_cmd`` modules in this package, sorted so ``--help`` is stable."""
    return sorted(m.name for m in pkgutil.iter_modules(__path__) if m.name.endswith("_cmd"))


class _VersionAction(argparse.Action):
    """``--version``: the package version and the curve engine (docs/native.md); the engine is
    looked up only when asked, so building the parser stays cheap."""

    def __call__(self, parser: argparse.ArgumentParser, *_args: object, **_kw: object) -> None:
        from ecash_tpm.crypto.native import backend_name

        print(f"ecash-tpm {__version__}\ncurve engine: {backend_name()}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="ecash-tpm", description="Anonymous e-cash bound to a TPM 2.0."
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0, help="show the version")
    subparsers = parser.add_subparsers(dest="role", metavar="ROLE", required=True)
    for name in role_modules():
        module = importlib.import_module(f"ecash_tpm.cli.{name}")
        module.register(subparsers)
    return tidy(parser)  # issue 12 item 7: canonical flag names, help without markup


#: Exit status after the reader of our output went away (128 + SIGPIPE, as a shell reports it).
EXIT_BROKEN_PIPE = 141


def _quiet_broken_pipe() -> int:
    """The reader closed the pipe: point stdout at /dev/null so the interpreter's final flush
    cannot print "Exception ignored ... BrokenPipeError", and report it by the exit status."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        os.close(devnull)
    return EXIT_BROKEN_PIPE


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit status (1 for a project error, 130 when interrupted, 141 when
    the output's reader closed the pipe)."""
    try:
        return _run(argv)
    except BrokenPipeError:
        return _quiet_broken_pipe()


def _run(argv: Sequence[str] | None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit:
        sys.stdout.flush()  # --help into a closed pipe fails here, not in the final flush
        raise
    try:
        return int(args.func(args) or 0)
    except BrokenPipeError:
        raise  # not a file the user named: handled quietly by main()
    except EcashError as exc:
        emit_error(args, exc)
        return 1
    except OSError as exc:
        if exc.filename is None:  # not a file the user named: a bug or the network
            raise
        emit_error(args, file_error(exc))
        return 1
    except KeyboardInterrupt:
        print("ecash-tpm: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
