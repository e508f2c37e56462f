"""Swaps (docs/protocol.md §9.3, issue 12): coins in, new coins out, no account.

Per swap: the inputs' values add up to ``amount_in``, the outputs' to ``amount_out`` and
``amount_in - fee = amount_out``; the ledger transaction books exactly ``-value`` on each input
keyset, ``+value`` on each output keyset (and the fee); every output's blind signature verifies
and was made inside its keyset's withdraw window; every input's recorded spend is re-verified
with the protocol's one spend check over the swap's ``preq``, which must be the hash of the
recorded swap request naming that serial. Inputs count as spent and outputs as issued for the
money supply; a serial both deposited and swapped is a duplicate. Every ``swap_report`` (a
double spend whose first spend was a swap, §9.3) names a swapped serial, and its refused attempt
is a valid spend of that serial for another request than the swap's.
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
from ecash_tpm.protocol.evidence import parse_transcript
from ecash_tpm.protocol.swap import SwapRequest
from ecash_tpm.supervision.audit.context import FEE_ACCOUNT, AuditContext, blob
from ecash_tpm.supervision.audit.inputs import spent_input
from ecash_tpm.supervision.audit.ledger import check_booking
from ecash_tpm.supervision.audit.store import BankTables, SwapReportTables, SwapTables
from ecash_tpm.supervision.audit.transcripts import CoinAudit
from ecash_tpm.supervision.audit.withdrawals import check_issued_coin

__all__ = ["FEE_ACCOUNT", "check_swaps"]


def check_swaps(ctx: AuditContext, tables: BankTables) -> None:
    """Every swap with its inputs and outputs (after the serials area: duplicates)."""
    swap_tables = SwapTables(tables)
    if not swap_tables.present:
        return
    inputs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    outputs: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for row in swap_tables.swap_inputs():
        inputs[str(row["request_id"])].append(row)
    for row in swap_tables.swap_outputs():
        outputs[str(row["request_id"])].append(row)
    swaps = swap_tables.swaps()
    ctx.counts["swaps"] = len(swaps)
    ctx.counts["swap_inputs"] = sum(len(v) for v in inputs.values())
    ctx.counts["swap_outputs"] = sum(len(v) for v in outputs.values())
    deposited = {sigma for _, sigma, _ in ctx.spent}
    for s in swaps:
        rid = str(s["request_id"])
        expected: dict[str, int] = defaultdict(int)
        value_in = _check_inputs(ctx, s, inputs.get(rid, []), expected, deposited)
        value_out = _check_outputs(ctx, s, outputs.get(rid, []), expected)
        amount_in, amount_out, fee = int(s["amount_in"]), int(s["amount_out"]), int(s["fee"])
        if (value_in, value_out) != (amount_in, amount_out) or amount_in - fee != amount_out:
            ctx.flag(
                "swap.amount_mismatch",
                "a swap's amounts differ from its coins (or outputs != inputs - fee)",
                table="swap",
                row_id=rid,
                expected={"amount_in": value_in, "amount_out": value_out},
                found={"amount_in": amount_in, "amount_out": amount_out, "fee": fee},
            )
        refresh = sum(  # 4.2: the inputs' refresh fees, from their signed descriptors
            k.fees.refresh
            for k in (ctx.keysets.get(blob(i["keyset_id"])) for i in inputs.get(rid, []))
            if k is not None
        )
        if fee != refresh:
            ctx.flag(
                "fees.refresh_mismatch",
                "a swap's fee differs from its inputs' refresh fees",
                table="swap",
                row_id=rid,
                expected=refresh,
                found=fee,
            )
        expected[FEE_ACCOUNT] += fee
        ctx.add_fee("refresh", refresh, int(s["created_at"]))
        check_booking(
            ctx,
            kind="swap",
            violation="swap.ledger_mismatch",
            table="swap",
            row_id=rid,
            txn_id=int(s["txn_id"]),
            expected=dict(expected),
        )
    swapped = {
        blob(row["sigma"]): blob(s["preq"])
        for s in swaps
        for row in inputs.get(str(s["request_id"]), [])
    }
    _check_reports(ctx, SwapReportTables(tables), swapped)


def _check_reports(
    ctx: AuditContext, tables: SwapReportTables, swapped: dict[bytes, bytes]
) -> None:
    """§9.3: each ``swap_report`` names a swapped serial (as ``redeem_report`` a redeemed one),
    and its refused attempt spends that serial, validly, for another request than the swap."""
    rows = tables.reports()
    ctx.counts["swap_reports"] = len(rows)
    for r in rows:
        sigma, rid = blob(r["sigma"]), int(r["report_id"])
        first_preq = swapped.get(sigma)
        if first_preq is None:
            ctx.flag(
                "swap_report.unknown_coin",
                "a swap double-spend report names a serial no swap spent",
                table="swap_report",
                row_id=rid,
                serial=sigma,
            )
            continue
        problem = _report_problem(ctx, r, sigma, first_preq)
        if problem is not None:
            ctx.flag(
                "swap_report.invalid",
                f"a swap double-spend report is not a double spend: {problem}",
                table="swap_report",
                row_id=rid,
                serial=sigma,
            )


def _report_problem(
    ctx: AuditContext, r: Mapping[str, Any], sigma: bytes, first_preq: bytes
) -> str | None:
    try:
        second = parse_transcript(
            {
                **json.loads(r["second_transcript"]),
                "transcript_id": f"attempt-swap-{r['report_id']}",
            }
        )
    except (EcashError, ValueError, TypeError) as exc:
        return f"the refused attempt cannot be parsed ({exc})"
    if second.sigma != sigma:
        return "the refused attempt is of another serial"
    if second.preq != blob(r["second_preq"]):
        return "the attempt's preq differs from the recorded one"
    if second.preq == first_preq:
        return "both spends are for the same swap request (a retry)"
    try:
        second.verify_spend(ctx.hop)
    except EcashError:
        return "the attempt's spend proof does not verify"
    return None


def _check_inputs(
    ctx: AuditContext,
    s: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    expected: dict[str, int],
    deposited: set[bytes],
) -> int:
    rid, preq = str(s["request_id"]), blob(s["preq"])
    total = 0
    for row in rows:
        inp = spent_input(
            ctx,
            row,
            rid=rid,
            table="swap_input",
            taken=deposited,
            expected=expected,
            duplicate="one serial is both deposited and swapped",
            unknown_kind="swap.unknown_keyset",
            unknown="a swapped coin names a keyset the bank does not have",
            mismatch=partial(_mismatch, ctx),
        )
        sigma, kid, at, where = inp.sigma, inp.keyset_id, inp.spent_at, inp.where
        keyset = inp.keyset
        total += inp.value
        try:
            body = json.loads(row["body"])
            spend = parse_spends([body["spend"]], max_spends=1)[0]
            request = SwapRequest.from_body(body["request"])
        except (EcashError, ValueError, TypeError, KeyError) as exc:
            ctx.flag(
                "swap.malformed",
                f"a swapped coin's transcript cannot be parsed: {exc}",
                table="swap_input",
                row_id=where,
                serial=sigma,
            )
            continue
        pairs = [
            ("preq", b64u_encode(preq), b64u_encode(request.preq)),
            ("preq", b64u_encode(preq), body.get("preq")),
            ("request_id", rid, request.request_id),
            ("sigma", b64u_encode(sigma), b64u_encode(spend.coin.sigma)),
            ("keyset_id", kid.hex(), spend.coin.keyset_id.hex()),
            ("in_request", True, sigma in request.inputs),
        ]
        for name, want, got in pairs:
            if want != got:
                _mismatch(ctx, "swap_input", where, sigma, name, want, got)
        CoinAudit(ctx, tid=where, sigma=sigma, created=at, keyset=keyset, table="swap_input").run(
            spend, preq=preq
        )
    return total


def _check_outputs(
    ctx: AuditContext,
    s: Mapping[str, Any],
    rows: Sequence[Mapping[str, Any]],
    expected: dict[str, int],
) -> int:
    rid, created = str(s["request_id"]), int(s["created_at"])
    total = 0
    for row in rows:
        kid = blob(row["keyset_id"])
        where = f"{rid}/{int(row['idx'])}"
        ctx.issued.append((kid, created))
        value = int(row["value"])
        total += value
        keyset = ctx.keysets.get(kid)
        if keyset is None:
            ctx.flag(
                "swap.unknown_keyset",
                "a swap output names a keyset the bank does not have",
                table="swap_output",
                row_id=where,
                found=kid.hex(),
            )
            continue
        expected[keyset.account] += keyset.value
        if value != keyset.value:
            _mismatch(ctx, "swap_output", where, None, "value", keyset.value, value)
        check_issued_coin(
            ctx,
            ("swap.keyset_not_withdrawable", "swap.bad_blind_signature"),
            "swap_output",
            where,
            keyset,
            created,
            row,
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
        "swap.row_mismatch",
        f"a swap row's {name} disagrees with its transcript or keyset",
        table=table,
        row_id=where,
        serial=sigma,
        expected=expected,
        found=found,
        field=name,
    )
