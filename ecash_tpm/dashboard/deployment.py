"""``ecash-tpm dashboard --config FILE``: watch a running deployment from outside, read-only.

The parties' URLs come from the deployment's TOML file (each section's ``host`` and ``port``,
the documented default port where one is missing; a wildcard listen address is reached on
127.0.0.1) and from ``--party NAME=URL`` for what the file cannot say (a second merchant, a
party behind a proxy). :class:`DeploymentWatch` reads their public routes every few seconds
(:func:`~ecash_tpm.dashboard.collect.collect`) and publishes the cards that changed.

Parties serve HTTPS unless their section says ``insecure_http = true``; the dashboard checks
their certificates against the central bank's root the file names (a section's
``central_bank_root``, else ``root-cert.pem`` in the ``[centralbank]`` data directory), never
against the system's CAs.
"""

from __future__ import annotations

import json
import ssl
import threading
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ecash_tpm.dashboard.bus import EventBus
from ecash_tpm.dashboard.collect import Party, collect
from ecash_tpm.dashboard.errors import DashboardConfigError
from ecash_tpm.dashboard.public_cards import (
    group_card,
    keysets_card,
    parties_card,
    ttp_card,
    unavailable_card,
)

#: Section -> (role, default port), as in docs/operations.md "Keys every service has".
SECTIONS: dict[str, tuple[str, int]] = {
    "centralbank": ("centralbank", 8080),
    "issuer": ("issuer", 8081),
    "bank": ("bank", 8082),
    "ttp": ("ttp", 8083),
    "supervision": ("supervision", 8084),
    "merchant": ("merchant", 8085),
}
ROLES = frozenset(role for role, _ in SECTIONS.values())
_WILDCARDS = frozenset({"", "0.0.0.0", "::", "[::]"})  # noqa: S104 (addresses to reach, not bind)


def parties_from_config(path: Path, extra: Sequence[str] = ()) -> list[Party]:
    """The parties a deployment file describes, plus ``NAME=URL`` or ``NAME:ROLE=URL`` items."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise DashboardConfigError(
            f"cannot read {path}: {exc}", detail={"path": str(path)}
        ) from exc
    except tomllib.TOMLDecodeError as exc:
        raise DashboardConfigError(
            f"{path} is not TOML: {exc}", detail={"path": str(path)}
        ) from exc
    parties: dict[str, Party] = {}
    tls = _client_context(data, Path(path).parent)
    for section, (role, port) in SECTIONS.items():
        values = data.get(section)
        if not isinstance(values, Mapping):
            continue
        name = str(values.get("name", section)) if role == "merchant" else section
        parties[name] = Party(name, role, _url(values, port, section), tls)
    for item in extra:
        party = parse_party(item, tls=tls)
        parties[party.name] = party
    if not parties:
        raise DashboardConfigError(
            f"{path} names no party: expected sections {sorted(SECTIONS)} or --party NAME=URL",
            detail={"path": str(path)},
        )
    order = ["centralbank", "supervision", "issuer", "bank", "merchant", "ttp"]
    return sorted(parties.values(), key=lambda p: (order.index(p.role), p.name))


def _url(values: Mapping[str, Any], default_port: int, section: str) -> str:
    host = str(values.get("host", "127.0.0.1"))
    port = values.get("port", default_port)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 < port < 65536:
        raise DashboardConfigError(f"[{section}] port must be 1..65535", detail={"port": port})
    host = "127.0.0.1" if host in _WILDCARDS else host
    scheme = "http" if values.get("insecure_http") is True else "https"
    return f"{scheme}://[{host}]:{port}" if ":" in host else f"{scheme}://{host}:{port}"


def _root_file(data: Mapping[str, Any], base: Path) -> Path | None:
    """The central bank's root the deployment file names (relative paths: to the file)."""
    candidates: list[Path] = []
    for section in SECTIONS:
        values = data.get(section)
        if isinstance(values, Mapping) and values.get("central_bank_root"):
            candidates.append(Path(str(values["central_bank_root"])))
    central = data.get("centralbank")
    if isinstance(central, Mapping) and central.get("data_dir"):
        candidates.append(Path(str(central["data_dir"])) / "root-cert.pem")
    for candidate in candidates:
        path = candidate if candidate.is_absolute() else base / candidate
        if path.is_file():
            return path
    return None


def _client_context(data: Mapping[str, Any], base: Path) -> ssl.SSLContext | None:
    """A client context on the deployment's root, or ``None`` when the file names none (the
    https parties then show ``tls.client_unconfigured`` instead of being trusted blindly)."""
    root = _root_file(data, base)
    if root is None:
        return None
    from ecash_tpm.service.tls import client_context

    return client_context(root)


def parse_party(item: str, *, tls: ssl.SSLContext | None = None) -> Party:
    """``merchant-b=http://...`` (role guessed from the name) or ``shop:merchant=http://...``."""
    name, sep, url = item.partition("=")
    name, _, role = name.partition(":")
    role = role or next((r for r in sorted(ROLES) if name.startswith(r)), "")
    if not sep or not name or not url.startswith(("http://", "https://")) or role not in ROLES:
        raise DashboardConfigError(
            f"--party {item!r}: expected NAME=URL or NAME:ROLE=URL with ROLE one of "
            f"{sorted(ROLES)} (a NAME that starts with a role needs no ROLE)",
            detail={"party": item},
        )
    return Party(name, role, url.rstrip("/"), tls)


class DeploymentWatch:
    """Polls the parties in a thread and publishes the cards that changed."""

    def __init__(self, bus: EventBus, parties: Sequence[Party], *, interval_s: float = 5.0) -> None:
        self.bus = bus
        self.parties = list(parties)
        self.interval_s = interval_s
        self._stop = threading.Event()
        self._shown: dict[str, str] = {}
        self._thread: threading.Thread | None = None
        bus.publish(
            "story",
            mode="deployment",
            title="ecash-tpm deployment",
            steps=[],
            parties=[{"name": p.name, "role": p.role, "url": p.url} for p in self.parties],
        )
        self._publish([parties_card(None, waiting="Reading the parties…"), unavailable_card()])

    def poll_once(self) -> None:
        """Read every party once and publish what changed."""
        snap = collect(self.parties)
        waiting = "No central bank in the configuration."
        cards = [
            parties_card(snap, waiting=waiting),
            keysets_card(snap),
            group_card(snap),
            ttp_card(snap),
            unavailable_card(),
        ]
        self._publish(cards)

    def _publish(self, cards: Sequence[dict[str, Any]]) -> None:
        for card in cards:
            text = json.dumps(card, sort_keys=True, default=str)
            if self._shown.get(card["id"]) != text:
                self._shown[card["id"]] = text
                self.bus.publish("card", card=card)

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="dashboard-watch", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.poll_once()
            except Exception as exc:  # a bug here must not stop the page; it says so instead
                self.bus.publish("notice", text=f"reading the deployment failed: {exc!r}")
            self._stop.wait(self.interval_s)

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10.0)
