"""The demo's observer: turns what the story tells (``StoryContext.events``) into the page's
events: the timeline (steps, facts, narration) and the cards, republished whenever they change.

Event kinds on the bus: ``story`` (mode, steps and titles), ``step`` (``running``, ``ok`` or
``failed`` with ``ms`` and the error), ``fact``, ``say``, ``card`` (a card of
:mod:`ecash_tpm.dashboard.view`), ``notice`` (the observer's own trouble) and ``end``.
"""

from __future__ import annotations

import json
import ssl
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ecash_tpm.dashboard.attest_cards import evidence_card, registry_card
from ecash_tpm.dashboard.bus import EventBus
from ecash_tpm.dashboard.collect import Party, Snapshot, collect
from ecash_tpm.dashboard.money_cards import (
    audit_card,
    coins_card,
    double_spend_card,
    exchange_card,
    ledger_card,
    refusals_card,
)
from ecash_tpm.dashboard.public_cards import parties_card
from ecash_tpm.dashboard.state import StoryState
from ecash_tpm.dashboard.view import Card

Collector = Callable[..., Snapshot]


def story_cards(st: StoryState) -> list[Card]:
    """Every card of the story, in page order."""
    return [
        parties_card(st.snapshot, waiting="Waiting for the central bank to certify the parties."),
        evidence_card(st),
        registry_card(st),
        ledger_card(st),
        coins_card(st),
        double_spend_card(st),
        refusals_card(st),
        audit_card(st),
        exchange_card(st),
    ]


class StoryFeed:
    """Callable as ``StoryContext.events``; :meth:`finish` ends the page's stream."""

    def __init__(
        self,
        bus: EventBus,
        steps: Sequence[tuple[str, str]],
        *,
        title: str = "ecash-tpm demo",
        collector: Collector = collect,
    ) -> None:
        self.bus = bus
        self.state = StoryState()
        self._collect = collector
        self._shown: dict[str, str] = {}
        self._lock = threading.Lock()
        bus.publish(
            "story",
            mode="demo",
            title=title,
            steps=[{"name": name, "title": step_title} for name, step_title in steps],
        )
        self._refresh()

    def __call__(self, step: str, status: str, data: dict[str, Any]) -> None:
        with self._lock:
            self._hear(step, status, data)

    def _hear(self, step: str, status: str, data: dict[str, Any]) -> None:
        if status == "start":
            self.bus.publish("step", step=step, status="running", number=data.get("number"))
        elif status in ("ok", "failed"):
            detail = data.get("detail", {})
            if status == "ok":
                self.state.details[step] = detail
            error = detail.get("error") if status == "failed" else None
            self.bus.publish("step", step=step, status=status, ms=data.get("ms"), error=error)
            self._refresh()
        elif status == "fact":
            self.bus.publish("fact", step=step, label=data.get("label"), value=data.get("value"))
        elif status == "say":
            text = str(data.get("text", "")).strip()
            if text:
                self.bus.publish("say", step=step, text=text)
        elif status == "certificates":
            self.state.snapshot = self._parties(data)
            self._refresh()
        elif status == "ledger":
            self.state.ledgers.append((step, data))
            self._refresh()
        elif status == "observer_error":
            self.bus.publish("notice", step=step, text=str(data.get("message")))
        else:
            self.state.extras[status] = data
            self._refresh()

    def _parties(self, data: dict[str, Any]) -> Snapshot:
        """Read the running parties (health, CRL) with the certificates the demo holds."""
        root = str(data["root"])
        tls = _context(root) if str(data["central_bank"]).startswith("https://") else None
        parties = [Party("centralbank", "centralbank", str(data["central_bank"]), tls)]
        pems: dict[str, str] = {}
        for name, party in data.get("parties", {}).items():
            parties.append(Party(name, str(party["role"]), str(party.get("url") or ""), tls))
            pems[name] = str(party["pem"])
        return self._collect(parties, known_pems=pems, root_pem=str(data["root"]))

    def _refresh(self) -> None:
        """Publish the cards that changed since they were last shown."""
        for card in story_cards(self.state):
            text = json.dumps(card, sort_keys=True, default=str)
            if self._shown.get(card["id"]) != text:
                self._shown[card["id"]] = text
                self.bus.publish("card", card=card)

    def finish(self, *, ok: bool, message: str) -> None:
        """The story is over: say so and let the streams end."""
        with self._lock:
            self.bus.publish("end", ok=ok, message=message)
            self.bus.close()


def _context(root_pem: str) -> ssl.SSLContext:
    """The dashboard's client context: the deployment's root, no client certificate."""
    from ecash_tpm.service.tls import client_context

    return client_context(root_pem)
