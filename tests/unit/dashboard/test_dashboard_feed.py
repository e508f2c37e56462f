"""The dashboard without a browser: the event bus, the demo's observer and its cards, the
deployment file, and the app's routes (over an in-process ASGI transport).

The story is played from small ``detail`` dicts shaped like the demo's (tests/e2e checks the
real ones in a browser); what matters here is what the page is told, and when.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from ecash_tpm.dashboard.app import create_app
from ecash_tpm.dashboard.bus import EventBus, redact
from ecash_tpm.dashboard.collect import Snapshot
from ecash_tpm.dashboard.deployment import parse_party, parties_from_config
from ecash_tpm.dashboard.errors import DashboardConfigError
from ecash_tpm.dashboard.feed import StoryFeed
from ecash_tpm.demo.story import STORY

MEMBER = "m-0123456789abcdef0123456789abcdef"


def _events(bus: EventBus) -> list[dict[str, Any]]:
    return [json.loads(e.text) for e in bus.since(0)]


def _cards(bus: EventBus) -> dict[str, dict[str, Any]]:
    """The latest version of each card."""
    return {e["card"]["id"]: e["card"] for e in _events(bus) if e["kind"] == "card"}


def _step(feed: StoryFeed, name: str, detail: dict[str, Any], *extras: tuple[str, Any]) -> None:
    feed(name, "start", {"number": 1, "title": name})
    feed(name, "fact", {"label": "what", "value": "happens"})
    feed(name, "ok", {"ms": 1.5, "detail": detail})
    for kind, data in extras:
        feed(name, kind, data)


def _feed() -> tuple[EventBus, StoryFeed]:
    bus = EventBus()
    return bus, StoryFeed(bus, [(s.name, s.title) for s in STORY], collector=_no_collect)


def _no_collect(*_args: Any, **_kw: Any) -> Snapshot:
    raise AssertionError("not called in these tests")


JOIN = {
    "member_id": MEMBER,
    "epoch": 1,
    "status": "active",
    "account_id": "alice",
    "ek": {
        "type": "rsa2048",
        "chain": [{"subject": "CN=ek", "issuer": "CN=ca"}, {"subject": "CN=ca", "issuer": "CN=ca"}],
        "fingerprint": "ab" * 32,
    },
    "ak_name": "000b" + "cd" * 32,
    "pcr_values": {"0": "11" * 32, "7": "22" * 32},
    "pcr_policy": {"bank": "sha256", "pcrs": [0, 7], "mode": "allow-list"},
}
POLICY = {
    "version": 1,
    "bank": "sha256",
    "pcrs": [0, 7],
    "allowed": {"0": ["11" * 32], "7": ["33" * 32]},
}


def test_bus_numbers_events_and_never_carries_an_account_id() -> None:
    bus = EventBus()
    first = bus.publish(
        "x", detail={"account_id": "alice", "nested": [{"account_id": "bob", "k": 1}]}
    )
    bus.publish("y", value=object())  # not JSON: becomes a string, the event is not lost
    assert [e.id for e in bus.since(0)] == [1, 2] and [e.id for e in bus.since(1)] == [2]
    assert "alice" not in first.text and "bob" not in first.text
    assert json.loads(first.text)["detail"] == {"nested": [{"k": 1}]}
    assert redact({"a": ({"account_id": 1},)}) == {"a": [{}]}


def test_the_story_opens_the_page_with_every_step_and_pending_cards() -> None:
    bus, _ = _feed()
    story = _events(bus)[0]
    assert story["kind"] == "story" and story["mode"] == "demo"
    assert [s["name"] for s in story["steps"]] == [s.name for s in STORY]
    cards = _cards(bus)
    assert list(cards) == [
        "parties", "evidence", "registry", "ledger", "coins",
        "double_spend", "refusals", "audit", "exchange",
    ]  # fmt: skip
    assert {c["state"] for c in cards.values()} == {"pending"}


def test_steps_and_facts_reach_the_timeline_in_order() -> None:
    bus, feed = _feed()
    _step(feed, "provision_tpm", {"device_a": {"manufacturer": "IBM", "firmware": "1.2"}})
    feed("certify_parties", "start", {"number": 2, "title": "t"})
    feed("certify_parties", "say", {"text": "   "})  # blank narration is not sent
    feed("certify_parties", "failed", {"ms": 3.0, "detail": {"error": {"code": "x.y"}}})
    timeline = [(e["kind"], e.get("step"), e.get("status")) for e in _events(bus)
                if e["kind"] in ("step", "fact", "say")]  # fmt: skip
    assert timeline == [
        ("step", "provision_tpm", "running"),
        ("fact", "provision_tpm", None),
        ("step", "provision_tpm", "ok"),
        ("step", "certify_parties", "running"),
        ("step", "certify_parties", "failed"),
    ]
    assert _events(bus)[-1]["error"] == {"code": "x.y"}


def test_join_shows_the_evidence_against_the_issuers_policy() -> None:
    bus, feed = _feed()
    _step(feed, "provision_tpm", {"device_a": {"manufacturer": "IBM", "firmware": "1.2"}})
    _step(
        feed, "join", JOIN, ("pcr_policy", POLICY), ("member_record", {"daa_public_point": "Zm9v"})
    )
    cards = _cards(bus)
    evidence = json.dumps(cards["evidence"])
    assert cards["evidence"]["state"] == "ok" and "IBM" in evidence and "CN=ek" in evidence
    pcrs = next(b for b in cards["evidence"]["blocks"] if b.get("title", "").startswith("PCR"))
    verdicts = [row[-1]["text"] for row in pcrs["rows"]]
    assert verdicts == ["= golden", "NOT ALLOWED"]  # PCR 7 is not what the issuer allows
    assert MEMBER in json.dumps(cards["registry"])
    assert all("alice" not in e.text for e in bus.since(0))


def test_a_double_spend_turns_the_case_red_and_names_the_member() -> None:
    bus, feed = _feed()
    _step(feed, "join", JOIN)
    assert _cards(bus)["double_spend"]["state"] == "pending"
    _step(
        feed,
        "double_spend_rejected",
        {"http_status": 409, "code": "bank.double_spend", "serial": "c2VyaWFs",
         "merchant": "merchant-b", "merchant_b_balance": 0},
    )  # fmt: skip
    assert _cards(bus)["double_spend"]["state"] == "alarm"
    openings = [
        {"transcript_id": 3, "merchant_id": "merchant-a", "t0": "VDA", "proof_verified": True},
        {"transcript_id": "attempt-1", "merchant_id": "merchant-b", "t0": "VDA",
         "proof_verified": True},
    ]  # fmt: skip
    _step(
        feed,
        "double_spender_identified",
        {"member_id": MEMBER, "joined_member_id": MEMBER, "proof_verified": True, "case_id": 1,
         "openings": openings, "revocation": "revoked", "member_status": "revoked"},
        ("double_spend_case", {"case_id": 1, "transcripts": [
            {"transcript_id": 3, "merchant_id": "merchant-a", "preq": "cHJlcQ",
             "spend": {"coin": {"sigma": "c2VyaWFs"}, "proof": {"c1": "YzE", "c2": "YzI"}}},
        ]}),
    )  # fmt: skip
    cards = _cards(bus)
    case = json.dumps(cards["double_spend"])
    assert cards["double_spend"]["state"] == "alarm" and cards["double_spend"]["badge"]
    assert MEMBER in case and "proof verified" in case and "merchant-b" in case
    columns = next(b for b in cards["double_spend"]["blocks"] if b["type"] == "columns")
    assert [c["title"] for c in columns["columns"]] == [
        "Transcript #3 — merchant-a",
        "Transcript #attempt-1 — merchant-b",
    ]
    assert "revoked" in json.dumps(cards["registry"])


def test_finish_ends_the_stream() -> None:
    bus, feed = _feed()
    feed.finish(ok=True, message="demo every step ok")
    assert bus.closed and _events(bus)[-1] == {**_events(bus)[-1], "kind": "end", "ok": True}


def test_observer_trouble_is_a_notice_not_a_card() -> None:
    bus, feed = _feed()
    feed("join", "observer_error", {"message": "boom"})
    assert _events(bus)[-1]["kind"] == "notice" and _events(bus)[-1]["text"] == "boom"


# --- the app ------------------------------------------------------------------------------------


async def _get(bus: EventBus, path: str, **headers: str) -> httpx.Response:
    transport = httpx.ASGITransport(app=create_app(bus))
    async with httpx.AsyncClient(transport=transport, base_url="http://dashboard") as client:
        return await client.get(path, headers=headers)


@pytest.mark.parametrize("path", ["/", "/assets/dashboard.js", "/assets/dashboard.css",
                                  "/assets/favicon.svg", "/favicon.ico"])  # fmt: skip
def test_the_page_and_its_assets_come_from_the_package(path: str) -> None:
    import asyncio

    answer = asyncio.run(_get(EventBus(), path))
    assert answer.status_code == 200
    assert "default-src 'self'" in answer.headers["content-security-policy"]
    assert "http" not in answer.text.replace("http://127.0.0.1", "").replace('xmlns="http', "")


def test_unknown_assets_are_404() -> None:
    import asyncio

    assert asyncio.run(_get(EventBus(), "/assets/..%2Fapp.py")).status_code == 404
    assert asyncio.run(_get(EventBus(), "/assets/index.html")).status_code == 404


def test_the_stream_replays_after_last_event_id_and_ends_when_closed() -> None:
    import asyncio

    bus = EventBus()
    for i in range(3):
        bus.publish("fact", n=i)
    bus.close()
    answer = asyncio.run(_get(bus, "/events", **{"Last-Event-ID": "1"}))
    assert answer.headers["content-type"].startswith("text/event-stream")
    frames = [f for f in answer.text.split("\n\n") if f.startswith("id:")]
    assert [f.splitlines()[0] for f in frames] == ["id: 2", "id: 3"]
    assert json.loads(frames[0].splitlines()[1].removeprefix("data: "))["n"] == 1
    history = asyncio.run(_get(bus, "/api/events")).json()
    assert [e["n"] for e in history] == [0, 1, 2]


# --- the deployment file ------------------------------------------------------------------------


def test_parties_come_from_the_deployment_file(tmp_path: Path) -> None:
    config = tmp_path / "ecash-tpm.toml"
    config.write_text(
        '[centralbank]\nhost = "0.0.0.0"\nport = 9080\n'
        '[bank]\nport = 9082\n[issuer]\n[merchant]\nname = "shop-1"\nhost = "shop.example"\n'
        "[unrelated]\nport = 1\n"
    )
    parties = parties_from_config(config, ["merchant-b=http://127.0.0.1:9999/", "x:ttp=http://t"])
    assert [(p.name, p.role, p.url) for p in parties] == [
        ("centralbank", "centralbank", "https://127.0.0.1:9080"),  # TLS unless insecure_http
        ("issuer", "issuer", "https://127.0.0.1:8081"),
        ("bank", "bank", "https://127.0.0.1:9082"),
        ("merchant-b", "merchant", "http://127.0.0.1:9999"),
        ("shop-1", "merchant", "https://shop.example:8085"),
        ("x", "ttp", "http://t"),
    ]


@pytest.mark.parametrize("item", ["nourl", "shop=http://x", "bank=ftp://x", "=http://x"])
def test_a_party_needs_a_name_a_role_and_an_http_url(item: str) -> None:
    with pytest.raises(DashboardConfigError) as err:
        parse_party(item)
    assert err.value.code == "dashboard.config_invalid"


def test_a_file_without_parties_or_unreadable_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "empty.toml").write_text("[other]\n")
    (tmp_path / "bad.toml").write_text("[bank\n")
    for name in ("empty.toml", "bad.toml", "missing.toml"):
        with pytest.raises(DashboardConfigError):
            parties_from_config(tmp_path / name)
