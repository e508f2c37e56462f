"""Issue 12 item 7: what people read: help texts without markup, one flag per concept, amounts
in the currency's units, ISO-8601 times, and no traceback when the reader closes the pipe."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ecash_tpm.cli import EXIT_BROKEN_PIPE, build_parser
from ecash_tpm.cli.output import money, when

#: Markup of docstrings that means nothing on a terminal, and pointers into design documents.
MARKUP = re.compile(r":(func|class|meth|mod|data|attr|exc):`|``|DESIGN §|\(DESIGN")


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    yield path, parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                yield from _commands(sub, (*path, name))


def test_every_help_text_is_written_for_people() -> None:
    bad = {}
    for path, parser in _commands(build_parser()):
        text = parser.format_help()
        found = sorted({m.group(0) for m in MARKUP.finditer(text)})
        if found:
            bad[" ".join(path) or "ecash-tpm"] = found
    assert bad == {}


def test_one_flag_name_per_concept() -> None:
    """``--data-dir`` is the canonical name of a data directory everywhere (``--data`` stays
    accepted, hidden); no command spells the concept a third way."""
    for path, parser in _commands(build_parser()):
        flags = {f for a in parser._actions for f in a.option_strings}
        if "--data" in flags:
            assert "--data-dir" in flags, path


def test_data_dir_and_data_are_one_option(tmp_path: Path) -> None:
    parser = build_parser()
    a = parser.parse_args(["wallet", "history", "--data-dir", str(tmp_path)])
    b = parser.parse_args(["wallet", "history", "--data", str(tmp_path)])
    assert a.data == b.data == tmp_path
    assert "--data " not in parser._subparsers._group_actions[0].choices["wallet"].format_help()


@pytest.mark.parametrize(
    ("amount", "currency", "shown"),
    [
        (10000, "EUR", "100.00 EUR"),
        (5, "EUR", "0.05 EUR"),
        (-250, "USD", "-2.50 USD"),
        (1500, "JPY", "1500 JPY"),
    ],
)
def test_amounts_are_shown_in_the_currency_units(amount: int, currency: str, shown: str) -> None:
    assert money(amount, currency) == shown


def test_currency_exponents_can_be_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ECASH_TPM_CURRENCY_EXPONENTS", "TEST=0, XBT=8,bad")
    assert money(710, "TEST") == "710 TEST"
    assert money(1, "XBT") == "0.00000001 XBT"
    assert money(710, "EUR") == "7.10 EUR"


def test_times_are_iso_8601_utc() -> None:
    assert when(0) == "1970-01-01T00:00:00Z"
    assert when(1796220300) == "2026-12-02T14:05:00Z"
    assert when(None) == "-"


def test_a_closed_pipe_ends_quietly(tmp_path: Path) -> None:
    """``ecash-tpm ... | head`` whose reader is gone: status 141 (argparse's own --help output
    ignores the error: status 0), and nothing on stderr."""
    wallet = tmp_path / "w"
    wallet.mkdir()
    cases = [
        (["wallet", "history", "--data-dir", str(wallet)], EXIT_BROKEN_PIPE),
        (["wallet", "--help"], 0),
    ]
    for argv, status in cases:
        read, write = os.pipe()
        os.close(read)  # the reader went away before the first byte
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "ecash_tpm", *argv],
                stdout=write,
                stderr=subprocess.PIPE,
                timeout=60,
                check=False,
            )
        finally:
            os.close(write)
        assert proc.returncode == status, proc.stderr
        assert proc.stderr == b"", proc.stderr


def test_a_request_digest_starting_with_a_dash_parses_when_written_with_equals() -> None:
    """One base64url digest in 64 starts with '-'; ``--preq=VALUE`` is how it is passed."""
    args = build_parser().parse_args(
        ["merchant", "refund", "--url", "https://127.0.0.1:1", "--preq=-AbC", "--amount", "5"]
    )
    assert args.preq == "-AbC"
