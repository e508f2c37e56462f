"""The display model the page draws: cards made of a few kinds of blocks.

What is verified, and how it is shown, is decided here in Python (typed and unit-tested); the
page's script only draws these dictionaries with ``textContent``. A card::

    {"id": "parties", "title": "...", "state": "ok", "badge": "7 certified", "blocks": [...]}

``state`` colours the card: ``pending`` (not yet), ``ok``, ``alarm`` (red: a double spend, a
failed check), ``warn``, ``info``, ``unavailable`` (not visible from where the dashboard
stands; a ``note`` says why). Blocks: ``kv`` (label/value rows), ``table``, ``checks`` (a list
of verified or failed checks), ``note``, ``columns`` (blocks side by side, e.g. the two
transcripts of a double spend). A cell is text, or ``{"text", "status", "mono", "title"}`` with
``status`` one of ``ok``, ``bad``, ``warn``, ``muted``.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

Status = Literal["ok", "bad", "warn", "muted", ""]
CardState = Literal["pending", "ok", "alarm", "warn", "info", "unavailable"]
Cell = str | dict[str, Any]
Block = dict[str, Any]
Card = dict[str, Any]


def short(text: object, n: int = 16) -> str:
    """``text`` cut to ``n`` characters (an ellipsis says it was cut)."""
    s = str(text)
    return s if len(s) <= n else s[:n] + "…"


def cell(text: object, status: Status = "", *, mono: bool = False, full: str | None = None) -> Cell:
    """A value; ``full`` is shown on hover when ``text`` is a shortened form."""
    out: dict[str, Any] = {"text": str(text)}
    if status:
        out["status"] = status
    if mono:
        out["mono"] = True
    if full is not None:
        out["title"] = full
    return out


def ok(text: object) -> Cell:
    return cell(text, "ok")


def bad(text: object) -> Cell:
    return cell(text, "bad")


def warn(text: object) -> Cell:
    return cell(text, "warn")


def muted(text: object) -> Cell:
    return cell(text, "muted")


def mono(text: object, n: int | None = None) -> Cell:
    """Hex, base64 and ids in a monospace font; cut to ``n`` with the whole on hover."""
    s = str(text)
    return cell(short(s, n) if n else s, mono=True, full=s if n and len(s) > n else None)


def kv(rows: Iterable[tuple[str, Cell]]) -> Block:
    return {"type": "kv", "rows": [[label, value] for label, value in rows]}


def table(columns: Sequence[str], rows: Iterable[Sequence[Cell]]) -> Block:
    return {"type": "table", "columns": list(columns), "rows": [list(r) for r in rows]}


def checks(items: Iterable[tuple[str, Status]], title: str | None = None) -> Block:
    out: Block = {"type": "checks", "items": [{"text": t, "status": s} for t, s in items]}
    if title:
        out["title"] = title
    return out


def note(text: str, status: Status = "") -> Block:
    return {"type": "note", "text": text, "status": status}


def columns(*cols: tuple[str, Sequence[Block]], status: Status = "") -> Block:
    """Blocks side by side, each column with a title (e.g. transcript #3 | transcript #4)."""
    return {
        "type": "columns",
        "status": status,
        "columns": [{"title": title, "blocks": list(blocks)} for title, blocks in cols],
    }


def card(
    card_id: str,
    title: str,
    state: CardState,
    blocks: Sequence[Block] = (),
    *,
    badge: str = "",
) -> Card:
    return {"id": card_id, "title": title, "state": state, "badge": badge, "blocks": list(blocks)}


def verdict(passed: bool, yes: str = "verified", no: str = "FAILED") -> Cell:
    return ok(yes) if passed else bad(no)
