"""The money cards of the story: coins as they are withdrawn, paid and deposited (with each
coin's checks), balances and the ledger, the double spend and its opening, the attacks refused,
the audit and the fair exchange.

Every ✓ stands for a check that ran and passed in this run: a card shows it only once the step
that ran it has succeeded (:class:`~ecash_tpm.dashboard.state.StoryState`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from ecash_tpm.dashboard.state import StoryState, pending
from ecash_tpm.dashboard.view import (
    Block,
    Card,
    Cell,
    bad,
    card,
    cell,
    checks,
    columns,
    kv,
    mono,
    muted,
    note,
    ok,
    table,
    warn,
)

#: docs/protocol.md "Payment": the merchant's checks per coin (ecash_tpm.protocol.spend).
MERCHANT_CHECKS = (
    "(1) keyset open for deposit",
    "(2) currency of the request",
    "(3) the bank's RSABSSA signature on the serial",
    "(5) TPM spend proof for this payment request (T0 encrypted under Hop)",
)
#: docs/protocol.md "Deposit": the bank runs them all, (4) with the issuer secret, then books.
BANK_CHECKS = (
    "(1)–(3) and (5) again",
    "(4) designated-verifier credential check (issuer secret)",
    "serial never spent before: booked as spent",
)

# --- coins --------------------------------------------------------------------------------------

COINS_TITLE = "Coins: withdrawals, payments, deposits"


def coins_card(st: StoryState) -> Card:
    withdraw = st.detail("withdraw")
    if withdraw is None:
        return pending("coins", COINS_TITLE, "No coin withdrawn yet.")
    currency = withdraw.get("currency", "")
    blocks: list[Block] = [_withdrawal(withdraw, st.extras.get("coins_held", {}), currency)]
    pay, deposit = st.detail("pay"), st.detail("deposit")
    if pay is not None:
        blocks += _payment(pay, st.extras.get("coins_paid", {}), deposit, currency)
    badge = f"{pay['amount']} {currency} paid" if pay else f"{withdraw['amount']} {currency} out"
    return card("coins", COINS_TITLE, "ok", blocks, badge=badge)


def _withdrawal(detail: Mapping[str, Any], held: Mapping[str, Any], currency: str) -> Block:
    coins = held.get("coins", [])
    rows = [
        [
            cell(f"{c['value']} {currency}"),
            mono(c["serial"], 14),
            mono(c["keyset"], 10),
            ok("signature valid"),
        ]
        for c in coins
    ]
    out = table(["coin", "serial σ", "keyset", "unblinded, checked by the wallet"], rows)
    out["title"] = (
        f"Withdrawal: {detail['amount']} {currency} as {len(detail.get('coins', []))} "
        "blind-signed coins (the bank never saw a serial)"
    )
    out["caption"] = (
        "Each keyset descriptor is signed by the bank, whose certificate chains to the root; "
        "each unblinded signature verifies under its keyset's RSA key (RFC 9474)."
    )
    return out


def _payment(
    pay: Mapping[str, Any],
    paid: Mapping[str, Any],
    deposit: Mapping[str, Any] | None,
    currency: str,
) -> list[Block]:
    deposited = deposit is not None and deposit.get("coin_states") == ["spent"]
    rows = [
        [
            cell(f"{c['value']} {currency}"),
            mono(c["serial"], 14),
            ok("(1) (2) (3) (5)"),
            ok("(1)–(5), spent") if deposited else muted("waiting"),
        ]
        for c in paid.get("coins", [])
    ]
    out = table(["coin", "serial σ", f"{pay.get('merchant_id')} checked", "bank checked"], rows)
    out["title"] = (
        f"Payment {pay.get('payment_id', '')}: {pay.get('amount')} {currency} at "
        f"{pay.get('merchant_id')}, one TPM spend proof per coin"
    )
    blocks: list[Block] = [
        out,
        columns(
            ("The merchant, per coin", [checks((c, "ok") for c in MERCHANT_CHECKS)]),
            ("The bank, at deposit", [checks((c, "ok" if deposited else "") for c in BANK_CHECKS)]),
        ),
    ]
    if deposit is not None:
        receipt = deposit.get("receipt", {})
        blocks.append(
            kv(
                [
                    ("deposit", mono(receipt.get("deposit_id", ""), 24)),
                    (
                        "receipt",
                        ok(
                            f"{receipt.get('amount')} {currency}, "
                            f"{receipt.get('serials')} serials; bank signature verified"
                        ),
                    ),
                ]
            )
        )
    return blocks


# --- balances -----------------------------------------------------------------------------------

LEDGER_TITLE = "Balances and the ledger"
_AFTER = {
    "withdraw": "withdrawal",
    "pay": "payment",
    "deposit": "deposit",
    "refund": "refund",  # issue 12 (#3)
    "double_spend_rejected": "double spend",
    "audit": "audit",
    "fair_exchange": "fair exchange",
}


def ledger_card(st: StoryState) -> Card:
    if not st.ledgers:
        return pending("ledger", LEDGER_TITLE, "The bank's books are read after each payment step.")
    _, latest = st.ledgers[-1]
    currency = latest.get("currency", "")
    rows = []
    for step, data in st.ledgers:
        books, wallet = data.get("books", {}), data.get("wallet", {})
        rows.append(
            [
                cell(_AFTER.get(step, step)),
                cell(books.get("customer")),
                cell(wallet.get("unspent", 0)),
                cell(books.get("merchant-a")),
                cell(books.get("merchant-b")),
                cell(books.get("outstanding")),
            ]
        )
    blocks: list[Block] = [
        table(
            ["after", "customer", "wallet", "merchant A", "merchant B", "outstanding"],
            rows,
        ),
        checks(
            [
                ("every transaction has two or more entries that sum to 0", "ok"),
                ("per keyset: withdrawn − deposited = outstanding ≥ 0", "ok"),
                ("each merchant's balance equals its deposits", "ok"),
            ],
            title=f"Ledger invariants, checked at every snapshot (amounts in {currency}; "
            "customer = the account at the bank)",
        ),
    ]
    return card("ledger", LEDGER_TITLE, "ok", blocks, badge="balanced")


# --- the double spend ---------------------------------------------------------------------------

DOUBLE_SPEND_TITLE = "Double spend"


def double_spend_card(st: StoryState) -> Card:
    rejected = st.detail("double_spend_rejected")
    if rejected is None:
        return pending("double_spend", DOUBLE_SPEND_TITLE, "No coin has been spent twice.")
    blocks: list[Block] = [
        kv(
            [
                ("serial σ", mono(rejected.get("serial", ""), 32)),
                (
                    "second spend",
                    bad(
                        f"at {rejected.get('merchant')}: HTTP "
                        f"{rejected.get('http_status')} {rejected.get('code')}"
                    ),
                ),
                ("credited to merchant B", cell(rejected.get("merchant_b_balance"))),
            ]
        )
    ]
    named = st.detail("double_spender_identified")
    if named is None:
        blocks.append(note("The bank reports both transcripts to the supervision department…"))
        return card("double_spend", DOUBLE_SPEND_TITLE, "alarm", blocks, badge="DOUBLE SPEND")
    case = st.extras.get("double_spend_case", {})
    transcripts = {str(t.get("transcript_id")): t for t in case.get("transcripts", [])}
    cols = [
        (
            f"Transcript #{o.get('transcript_id')} — {o.get('merchant_id')}",
            _transcript(transcripts.get(str(o.get("transcript_id")), {}), o),
        )
        for o in named.get("openings", [])
    ]
    blocks.append(columns(*cols, status="bad"))
    verified = bool(named.get("proof_verified"))
    same = named.get("member_id") == named.get("joined_member_id")
    blocks.append(
        kv(
            [
                ("named member", cell(named.get("member_id"), "bad", mono=True)),
                ("opening proofs", ok("proof verified") if verified else bad("NOT VERIFIED")),
                ("the member that joined", ok("same member") if same else bad("DIFFERENT")),
                (
                    "case",
                    cell(
                        f"#{named.get('case_id')}, evidence signed by the supervision "
                        "department (certificate checked against the root)"
                    ),
                ),
                ("group manager", bad(f"member {named.get('member_status')}")),
            ]
        )
    )
    return card("double_spend", DOUBLE_SPEND_TITLE, "alarm", blocks, badge="DOUBLE SPEND")


def _transcript(body: Mapping[str, Any], opening: Mapping[str, Any]) -> list[Block]:
    spend = body.get("spend", {})
    proof, coin = spend.get("proof", {}), spend.get("coin", {})
    rows: list[tuple[str, Cell]] = [
        ("merchant", cell(body.get("merchant_id", opening.get("merchant_id")))),
        ("payment request", mono(body.get("preq", "?"), 20)),
        ("serial σ", mono(coin.get("sigma", "?"), 20)),
        ("c1, c2 (T0 under Hop)", mono(f"{proof.get('c1', '?')}, {proof.get('c2', '?')}", 20)),
    ]
    if isinstance(body.get("deposited_at"), int):
        when = dt.datetime.fromtimestamp(body["deposited_at"], dt.UTC)
        rows.append(("recorded", cell(when.strftime("%H:%M:%S UTC"))))
    rows += [
        ("opened: T0", mono(opening.get("t0", "?"), 20)),
        (
            "Chaum-Pedersen proof",
            ok("proof verified") if opening.get("proof_verified") else bad("NOT VERIFIED"),
        ),
    ]
    return [kv(rows)]


# --- refusals, audit, fair exchange -------------------------------------------------------------

REFUSALS_TITLE = "Attacks refused"


def refusals_card(st: StoryState) -> Card:
    stolen, expired = st.detail("stolen_coin_rejected"), st.detail("expired_coin_rejected")
    if stolen is None and expired is None:
        return pending(
            "refusals", REFUSALS_TITLE, "A stolen wallet and an expired coin come later."
        )
    rows: list[list[Cell]] = []
    for attempt in (stolen or {}).get("attempts", []):
        rows.append(
            [
                cell(f"stolen wallet on device B: {attempt.get('how')}"),
                cell(attempt.get("layer")),
                ok(f"refused: {attempt.get('code')}"),
            ]
        )
    if expired is not None:
        for who in ("merchant", "bank"):
            got = expired.get(who, {})
            rows.append(
                [
                    cell(f"a coin of an expired keyset, spent at the {who}"),
                    cell(who),
                    ok(f"refused: HTTP {got.get('http_status')} {got.get('code')}"),
                ]
            )
    blocks: list[Block] = [table(["attack", "refused by", "verdict"], rows)]
    if stolen is not None:
        states = ", ".join(stolen.get("coin_states_at_bank", []))
        blocks.append(note(f"The owner's coins stay {states} at the bank.", "ok"))
    return card("refusals", REFUSALS_TITLE, "ok", blocks, badge=f"{len(rows)} refused")


AUDIT_TITLE = "Audit"


def audit_card(st: StoryState) -> Card:
    audit = st.detail("audit")
    if audit is None:
        return pending("audit", AUDIT_TITLE, "The supervision department audits the bank last.")
    supply = audit.get("supply_report") or {}
    passed = bool(audit.get("ok"))
    rows: list[tuple[str, Cell]] = [
        ("verdict", ok("PASS: no violations") if passed else bad("FAIL")),
        (
            "supply report",
            cell(
                f"#{supply.get('report_id')} reported {supply.get('reported_total')},"
                f" audited {supply.get('audited_total')}",
                "ok" if not supply.get("discrepancies") else "bad",
            ),
        ),
        ("coins outstanding", cell(audit.get("outstanding_total"))),
    ]
    counts: Mapping[str, Any] = audit.get("counts", {})
    rows += [(k.replace("_", " "), cell(v)) for k, v in sorted(counts.items())]
    blocks: list[Block] = [kv(rows)]
    violations: Sequence[Mapping[str, Any]] = audit.get("violations", [])
    if violations:
        blocks.append(
            table(["violation", "detail"], [[bad(v.get("kind")), cell(v)] for v in violations])
        )
    skipped = audit.get("skipped") or []
    if skipped:
        blocks.append(note(f"skipped: {', '.join(map(str, skipped))}", "warn"))
    return card(
        "audit",
        AUDIT_TITLE,
        "ok" if passed else "alarm",
        blocks,
        badge="PASS" if passed else "FAIL",
    )


EXCHANGE_TITLE = "Fair exchange (digital goods, offline TTP)"


def exchange_card(st: StoryState) -> Card:
    story = st.detail("fair_exchange")
    if story is None:
        return pending("exchange", EXCHANGE_TITLE, "Two purchases of digital goods come last.")
    honest, cheating = story.get("honest", {}), story.get("cheating", {})
    blocks = [
        columns(
            (
                "Merchant A (honest)",
                [
                    kv(
                        [
                            ("delivered by", ok(honest.get("delivered_by"))),
                            ("content", cell(f"{honest.get('bytes')} bytes, decrypted")),
                            (
                                "TTP contacted",
                                ok("no") if not honest.get("ttp_contacted") else warn("yes"),
                            ),
                        ]
                    )
                ],
            ),
            (
                "Merchant B (withholds the key)",
                [
                    kv(
                        [
                            ("wallet saw", bad(cheating.get("failure"))),
                            ("dispute", mono(cheating.get("dispute_id", ""), 16)),
                            (
                                "resolved",
                                cell(
                                    f"{cheating.get('resolution')} after "
                                    f"{cheating.get('waited_s')} s"
                                ),
                            ),
                            ("delivered by", ok(cheating.get("delivered_by"))),
                            ("content", cell(f"{cheating.get('bytes')} bytes, decrypted")),
                            ("strike", warn(cheating.get("strike"))),
                        ]
                    )
                ],
            ),
        )
    ]
    return card("exchange", EXCHANGE_TITLE, "ok", blocks, badge="fair")
