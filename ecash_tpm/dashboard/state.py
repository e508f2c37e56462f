"""What the dashboard's observer has heard of the story so far (the cards are built from it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ecash_tpm.dashboard.collect import Snapshot
from ecash_tpm.dashboard.view import Card, card, note


@dataclass
class StoryState:
    """What the observer has heard so far."""

    details: dict[str, dict[str, Any]] = field(default_factory=dict)
    extras: dict[str, dict[str, Any]] = field(default_factory=dict)
    ledgers: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    snapshot: Snapshot | None = None

    def detail(self, step: str) -> dict[str, Any] | None:
        return self.details.get(step)


def pending(card_id: str, title: str, text: str) -> Card:
    """A card whose step has not run yet."""
    return card(card_id, title, "pending", [note(text)])
