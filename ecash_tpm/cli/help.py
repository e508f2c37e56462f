"""Help written for people (issue 12 item 7): one flag name per concept, docstrings shown
without reStructuredText markup.

Commands are registered by many modules, some of them from before the flag names were agreed.
:func:`tidy` walks the finished parser once and

- gives every data directory the canonical name ``--data-dir`` (``--data`` stays accepted
  but is no longer shown), and a swtpm state directory ``--state-dir`` (``--state`` hidden);
- strips docstring markup from descriptions (double back-quotes, Sphinx roles), which a
  terminal shows literally.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Iterator

__all__ = ["CANONICAL_FLAGS", "PeopleHelpFormatter", "plain", "tidy"]

#: Old spelling -> canonical spelling, for options that name the same concept.
CANONICAL_FLAGS = {"--data": "--data-dir"}
#: Aliases that are accepted but not shown in ``--help``.
HIDDEN_ALIASES = frozenset({"--data", "--state"})

_ROLE = re.compile(r":(?:func|class|meth|mod|data|attr|exc|obj):`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]*)``")


def plain(text: str | None) -> str | None:
    """``:func:`x.y``` -> ``y``, ````code```` -> ``code``: what a terminal can show."""
    if not text:
        return text
    text = _ROLE.sub(lambda m: m.group(1).rsplit(".", 1)[-1], text)
    return _LITERAL.sub(r"\1", text)


class PeopleHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Keeps the descriptions' line breaks and leaves hidden aliases out of the option list."""

    def _format_action_invocation(self, action: argparse.Action) -> str:
        shown = [o for o in action.option_strings if o not in HIDDEN_ALIASES]
        if not action.option_strings or len(shown) == len(action.option_strings) or not shown:
            return super()._format_action_invocation(action)
        saved = action.option_strings
        action.option_strings = shown
        try:
            return super()._format_action_invocation(action)
        finally:
            action.option_strings = saved


def _parsers(parser: argparse.ArgumentParser) -> Iterator[argparse.ArgumentParser]:
    yield parser
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in dict.fromkeys(action.choices.values()):
                yield from _parsers(sub)
            for choice in action._choices_actions:
                choice.help = plain(choice.help)


def _canonical(parser: argparse.ArgumentParser) -> None:
    for action in parser._actions:
        strings = list(action.option_strings)
        for old, new in CANONICAL_FLAGS.items():
            if old in strings and new not in parser._option_string_actions:
                strings.insert(strings.index(old), new)
                parser._option_string_actions[new] = action
        if "--state" in strings and action.metavar == "DIR" and "--state-dir" not in strings:
            strings.insert(strings.index("--state"), "--state-dir")
            parser._option_string_actions["--state-dir"] = action
        # the canonical name first: usage lines show the first spelling
        strings.sort(key=lambda s: s in HIDDEN_ALIASES)
        action.option_strings = strings
        if action.dest == "data" and action.metavar is None and action.option_strings:
            action.metavar = "DIR"


def tidy(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Canonical flag names and plain-text help on ``parser`` and every sub-command."""
    for p in _parsers(parser):
        p.formatter_class = PeopleHelpFormatter
        p.description = plain(p.description)
        p.epilog = plain(p.epilog)
        _canonical(p)
        for action in p._actions:
            if action.help not in (None, argparse.SUPPRESS):
                action.help = plain(action.help)
    return parser
