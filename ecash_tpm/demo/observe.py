"""Structured facts for an observer of the story (the dashboard of ``ecash-tpm demo --web``).

After a step, :func:`publish_extras` hands the observer what the step's ``detail`` does not
carry and a viewer wants to see: the parties' certificates (PEM) and the central-bank root, the
issuer's PCR policy and its record of the member that joined, the coins held and paid, and a
snapshot of the bank's books. Only public records and operator views the demo has anyway; only
when someone listens (``ctx.events``), so the story, its progress lines and ``--json`` stay the
same. Kinds published (status, data):

- ``certificates``: ``{"central_bank": url, "root": pem, "parties": {name: {role, url, pem}}}``
- ``pcr_policy``: the issuer's policy file (``PcrPolicy.to_dict()``)
- ``member_record``: the issuer's public record of the member (``GET /v1/members/{id}``) without
  the account id: what joined, never who
- ``coins_held`` / ``coins_paid``: ``{"coins": [{value, serial, keyset, ...}]}``
- ``ledger``: the bank's books (``customer``, merchants, ``outstanding``, checked invariants)
  and the wallet's balance
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.demo.context import StoryContext

Extra = tuple[str, dict[str, Any]]


def publish_extras(ctx: StoryContext, step: str) -> None:
    """Publish the structured facts of ``step``. A failure here is the observer's problem,
    never the story's: it is published as ``observer_error`` and the story goes on."""
    try:
        for kind, data in _EXTRAS.get(step, _nothing)(ctx):
            ctx.publish(kind, data)
    except Exception as exc:  # the dashboard must not be able to fail the demo
        ctx.publish("observer_error", {"message": f"{type(exc).__name__}: {exc}"})


def _nothing(_ctx: StoryContext) -> Iterable[Extra]:
    return ()


def _certificates(ctx: StoryContext) -> Iterable[Extra]:
    dep = ctx.dep
    parties: dict[str, Any] = {}
    for name, init in dep.inits.items():
        process = "bank" if name == "issuer" else name  # the group manager runs in the bank
        parties[name] = {
            "role": init.certificate["role"],
            "url": dep.url(process) if process in dep.ports else None,
            "pem": Path(init.certificate["cert_file"]).read_text("ascii"),
        }
    root = dep.root_pem().decode("ascii")
    yield "certificates", {"central_bank": dep.url("centralbank"), "root": root, "parties": parties}


def _joined(ctx: StoryContext) -> Iterable[Extra]:
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.issuer.policy import PcrPolicy
    from ecash_tpm.issuer.settings import IssuerSettings

    issuer = ctx.dep.settings("bank", IssuerSettings)
    yield "pcr_policy", PcrPolicy.load(issuer.resolved_policy_file()).to_dict()
    with IssuerClient(ctx.dep.url("bank"), **ctx.dep.client_kwargs("issuer")) as client:
        record = client.member(ctx.member.member_id).model_dump(mode="json")
    record.pop("account_id", None)
    yield "member_record", record


def _held(ctx: StoryContext) -> Iterable[Extra]:
    coins = [
        {
            "value": hc.value,
            "serial": b64u_encode(hc.sigma),
            "keyset": hc.coin.keyset_id.hex(),
            "deposit_until": hc.deposit_until,
        }
        for hc in ctx.wallet.coins("unspent")
    ]
    yield "coins_held", {"coins": coins}
    yield from _ledger(ctx)


def _paid(ctx: StoryContext) -> Iterable[Extra]:
    paid = set(ctx.paid.serials)
    coins = [
        {"value": hc.value, "serial": b64u_encode(hc.sigma), "keyset": hc.coin.keyset_id.hex()}
        for hc in ctx.wallet.coins()
        if hc.sigma in paid
    ]
    yield "coins_paid", {"coins": coins, "payment_id": ctx.paid.result.payment_id}
    yield from _ledger(ctx)


def _ledger(ctx: StoryContext) -> Iterable[Extra]:
    books = ctx.books()  # ledger_check inside: raises if an invariant fails
    yield (
        "ledger",
        {
            "currency": ctx.dep.currency,
            "books": books,
            "invariants": "checked",
            "wallet": ctx.wallet_balance(),
        },
    )


_EXTRAS: dict[str, Callable[[StoryContext], Iterable[Extra]]] = {
    "certify_parties": _certificates,
    "join": _joined,
    "withdraw": _held,
    "pay": _paid,
    "deposit": _ledger,
    "refund": _ledger,  # issue 12 (#3)
    "double_spend_rejected": _ledger,
    "audit": _ledger,
    "fair_exchange": _ledger,
}
