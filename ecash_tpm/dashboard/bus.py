"""The dashboard's in-process event bus: an append-only history that the page replays.

Publishers (the story's thread, a deployment watcher) call :meth:`EventBus.publish` with a JSON
object; each event gets a number (the SSE ``id``) and is kept, serialised once, so that every
viewer, whenever it connects or reconnects (``Last-Event-ID``), gets the same events in the
same order. Keys that would link a member to a person (``account_id``) are dropped here, at the
one door every event passes: the page shows member ids and status, never whose they are.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

#: Keys never sent to a viewer, at any depth: a member's account names the customer.
REDACTED_KEYS = frozenset({"account_id"})


@dataclass(frozen=True)
class Event:
    """One published event: its number and its JSON text (``{"id", "t", "kind", ...}``)."""

    id: int
    kind: str
    text: str


def redact(value: Any) -> Any:
    """``value`` without :data:`REDACTED_KEYS` in any nested object."""
    if isinstance(value, Mapping):
        return {str(k): redact(v) for k, v in value.items() if k not in REDACTED_KEYS}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


class EventBus:
    """Thread-safe history of events; :meth:`close` tells streams that no more will come."""

    def __init__(self) -> None:
        self._events: list[Event] = []
        self._lock = threading.Lock()
        self._closed = False

    def publish(self, kind: str, **data: Any) -> Event:
        """Append an event of ``kind``; values that are not JSON become strings."""
        with self._lock:
            number = len(self._events) + 1
            payload = {"id": number, "t": round(time.time() * 1000), "kind": kind, **redact(data)}
            event = Event(number, kind, json.dumps(payload, default=str, separators=(",", ":")))
            self._events.append(event)
        return event

    def since(self, last_id: int) -> list[Event]:
        """The events after number ``last_id`` (0: all of them)."""
        with self._lock:
            return self._events[max(0, last_id) :]

    def close(self) -> None:
        """No more events: streams end once they have sent everything."""
        self._closed = True

    @property
    def closed(self) -> bool:
        return self._closed

    def __len__(self) -> int:
        with self._lock:
            return len(self._events)
