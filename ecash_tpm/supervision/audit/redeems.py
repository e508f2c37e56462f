"""Redeems (docs/protocol.md §9.4, issue 12 #5): coins into an account holder's account.

Per redeem: its request row names the same account, ``preq``, amount and currency, and its
stored document is a ``redeem-request`` signed by the bank for exactly that; the inputs' values
add up to the amount; the ledger transaction books exactly ``-value`` on each input keyset,
``+amount`` less the inputs' deposit fees on the customer's account and those fees on
``bank:fees`` (4.2: a redeem is a deposit into the account; the fees count towards what the fee
account must hold); every input's recorded spend is re-verified with the protocol's one spend
check over the redeem's ``preq``, which must be the hash of the recorded request. Inputs count
as spent for the money supply; a serial also deposited or swapped is a duplicate. Every
``redeem_report`` names a redeemed serial.
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any

from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import parse_spends
from ecash_tpm.protocol.redeem import RedeemRequest
from ecash_tpm.supervision.audit.context import FEE_ACCOUNT, AuditContext, blob
from ecash_tpm.supervision.audit.inputs import spent_input
from ecash_tpm.supervision.audit.ledger import check_booking
from ecash_tpm.supervision.audit.store import BankTables, RedeemTables
from ecash_tpm.supervision.audit.transcripts import CoinAudit

__all__ = ["check_redeems"]

#: The customer ledger prefix (``ecash_tpm.bank.ledger.customer_account``; the audit keeps its
#: own copy of what it checks).
CUSTOMER = "customer:"


def check_redeems(ctx: AuditContext, tables: BankTables) -> None:
    """Every redeem with its request and inputs (after serials and swaps: duplicates)."""
    redeem_tables = RedeemTables(tables)
    if not redeem_tables.present:
        return
    inputs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in redeem_tables.inputs():
        inputs[str(row["request_id"])].append(row)
    requests = {str(r["request_id"]): r for r in redeem_tables.requests()}
    redeems = redeem_tables.redeems()
    ctx.counts["redeems"] = len(redeems)
    ctx.counts["redeem_inputs"] = sum(len(v) for v in inputs.values())
    taken = {sigma for _, sigma, _ in ctx.spent}  # deposited or swapped before
    for r in redeems:
        rid = str(r["request_id"])
        req = _check_request(ctx, r, requests.get(rid))
        expected: dict[str, int] = defaultdict(int)
        ins = inputs.get(rid, [])
        value = _check_inputs(ctx, r, req, ins, expected, taken)
        amount = int(r["amount"])
        if value != amount or not ins:
            ctx.flag(
                "redeem.amount_mismatch",
                "a redeem's amount differs from the value of its coins",
                table="redeem",
                row_id=rid,
                expected=value,
                found=amount,
            )
        # 4.2, 9.4: a redeem is a deposit into the account; its coins' deposit fees are the bank's
        fee = _deposit_fee(ctx, ins)
        expected[CUSTOMER + str(r["account_id"])] += amount - fee
        expected[FEE_ACCOUNT] += fee
        ctx.add_fee("deposit", fee, int(r["created_at"]))
        check_booking(
            ctx,
            kind="redeem",
            violation="redeem.ledger_mismatch",
            table="redeem",
            row_id=rid,
            txn_id=int(r["txn_id"]),
            expected=dict(expected),
        )
    redeemed = {blob(row["sigma"]) for rows in inputs.values() for row in rows}
    for report in redeem_tables.reports():
        if blob(report["sigma"]) not in redeemed:
            ctx.flag(
                "redeem_report.unknown_coin",
                "a redeem double-spend report names a serial no redeem spent",
                table="redeem_report",
                row_id=int(report["report_id"]),
                serial=blob(report["sigma"]),
            )


def _deposit_fee(ctx: AuditContext, rows: Sequence[Mapping[str, Any]]) -> int:
    """The inputs' deposit fees from the keysets' descriptors (4.2; unknown keysets: flagged
    by the input check, no fee)."""
    keysets = (ctx.keysets.get(blob(row["keyset_id"])) for row in rows)
    return sum(k.fees.deposit for k in keysets if k is not None)


def _check_request(
    ctx: AuditContext, r: Mapping[str, Any], row: Mapping[str, Any] | None
) -> RedeemRequest | None:
    """The redeem's request row and its bank-signed document agree with the redeem."""
    rid = str(r["request_id"])
    if row is None:
        ctx.flag(
            "redeem.unknown_request",
            "a redeem names a request the bank never issued",
            table="redeem",
            row_id=rid,
        )
        return None
    try:
        req = RedeemRequest.from_signed_by(json.loads(row["doc"]), ctx.bank_key)
    except (EcashError, ValueError, TypeError) as exc:
        ctx.flag(
            "redeem.request_invalid",
            f"a stored redeem request is not the bank's signed request: {exc}",
            table="redeem_request",
            row_id=rid,
        )
        return None
    pairs = [
        ("request_id", rid, req.request_id),
        ("account_id", str(r["account_id"]), req.account_id),
        ("account_id", str(row["account_id"]), req.account_id),
        ("preq", b64u_encode(blob(r["preq"])), b64u_encode(req.preq)),
        ("preq", b64u_encode(blob(row["preq"])), b64u_encode(req.preq)),
        ("amount", int(r["amount"]), req.amount),
        ("amount", int(row["amount"]), req.amount),
        ("currency", str(r["currency"]), req.currency),
        ("deadline", int(row["deadline"]), req.deadline),
        ("booked_by_deadline", True, int(r["created_at"]) <= req.deadline),
    ]
    for name, want, got in pairs:
        if want != got:
            _mismatch(ctx, "redeem_request", rid, None, name, want, got)
    return req


def _check_inputs(
    ctx: AuditContext,
    r: Mapping[str, Any],
    req: RedeemRequest | None,
    rows: Sequence[Mapping[str, Any]],
    expected: dict[str, int],
    taken: set[bytes],
) -> int:
    rid, preq = str(r["request_id"]), blob(r["preq"])
    total = 0
    for row in rows:
        inp = spent_input(
            ctx,
            row,
            rid=rid,
            table="redeem_input",
            taken=taken,
            expected=expected,
            duplicate="one serial is both redeemed and deposited or swapped",
            unknown_kind="redeem.unknown_keyset",
            unknown="a redeemed coin names a keyset the bank does not have",
            mismatch=partial(_mismatch, ctx),
        )
        sigma, kid, at, where = inp.sigma, inp.keyset_id, inp.spent_at, inp.where
        keyset = inp.keyset
        total += inp.value
        try:
            body = json.loads(row["body"])
            spend = parse_spends([body["spend"]], max_spends=1)[0]
            recorded = RedeemRequest.from_body(body["request"]["body"])
        except (EcashError, ValueError, TypeError, KeyError) as exc:
            ctx.flag(
                "redeem.malformed",
                f"a redeemed coin's transcript cannot be parsed: {exc}",
                table="redeem_input",
                row_id=where,
                serial=sigma,
            )
            continue
        pairs = [
            ("preq", b64u_encode(preq), b64u_encode(recorded.preq)),
            ("preq", b64u_encode(preq), body.get("preq")),
            ("request", None if req is None else req.to_body(), recorded.to_body()),
            ("sigma", b64u_encode(sigma), b64u_encode(spend.coin.sigma)),
            ("keyset_id", kid.hex(), spend.coin.keyset_id.hex()),
            ("spent_at", int(r["created_at"]), at),
        ]
        for name, want, got in pairs:
            if want != got and not (name == "request" and want is None):
                _mismatch(ctx, "redeem_input", where, sigma, name, want, got)
        CoinAudit(ctx, tid=where, sigma=sigma, created=at, keyset=keyset, table="redeem_input").run(
            spend, preq=preq
        )
    return total


def _mismatch(
    ctx: AuditContext,
    table: str,
    where: str,
    sigma: bytes | None,
    name: str,
    expected: Any,
    found: Any,
) -> None:
    ctx.flag(
        "redeem.row_mismatch",
        f"a redeem row's {name} disagrees with its request, transcript or keyset",
        table=table,
        row_id=where,
        serial=sigma,
        expected=expected,
        found=found,
        field=name,
    )
