"""The attestation cards of the story: the device's TPM evidence at join, the member registry.

Every ✓ stands for a check a party actually ran and passed in this run: a card shows it only once
the step that ran the check has succeeded (:class:`~ecash_tpm.dashboard.state.StoryState`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
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
    kv,
    mono,
    muted,
    note,
    ok,
    table,
)

# --- attestation --------------------------------------------------------------------------------

EVIDENCE_TITLE = "TPM evidence at join (device A)"


def evidence_card(st: StoryState) -> Card:
    """EK chain and manufacturer, credential activation, the PCR quote against the issuer's
    policy, the certified DAA key."""
    join = st.detail("join")
    if join is None:
        return pending("evidence", EVIDENCE_TITLE, "Waiting for device A to join the group.")
    device = (st.detail("provision_tpm") or {}).get("device_a", {})
    record = st.extras.get("member_record", {})
    ek = join.get("ek", {})
    blocks: list[Block] = [
        kv(
            [
                (
                    "manufacturer",
                    cell(
                        f"{device.get('manufacturer', '?')} (firmware "
                        f"{device.get('firmware', '?')})"
                    ),
                ),
                ("endorsement key", cell(ek.get("type", "?"))),
                ("EK fingerprint", mono(ek.get("fingerprint", ""), 32)),
            ]
        ),
        checks(
            [(f"{hop['subject']}  ←  {hop['issuer']}", "ok") for hop in ek.get("chain", [])]
            + [("root in the issuer's EK trust store (the manufacturer's CA)", "ok")],
            title="EK certificate chain",
        ),
        checks(
            [
                (
                    f"MakeCredential: a secret for the EK, bound to Name(AK) "
                    f"{str(join.get('ak_name', ''))[:20]}…",
                    "ok",
                ),
                ("ActivateCredential: only this TPM (EK and AK together) recovered it", "ok"),
                ("join/finish: quote and certify carry qualifying data from the secret", "ok"),
            ],
            title="Credential activation",
        ),
        _pcr_table(join, st.extras.get("pcr_policy")),
    ]
    boot = join.get("event_log")
    if isinstance(boot, Mapping):
        blocks.append(
            kv(
                [
                    ("event log", ok(f"{boot.get('events')} events, {boot.get('replay')}")),
                    ("Secure Boot", _secure_boot(boot.get("secure_boot"))),
                    ("decided by", cell(boot.get("policy", "?"))),
                ]
            )
        )
    blocks.append(
        checks(
            [
                ("TPM2_Certify by the AK: the DAA key lives in the same TPM", "ok"),
                ("DAA join proof: knowledge of the key's secret, for the issuer's nonce", "ok"),
                (
                    f"credential issued for epoch {join.get('epoch')}; the wallet checked its "
                    "proof",
                    "ok",
                ),
            ],
            title="Certified DAA key "
            + (
                f"{str(record['daa_public_point'])[:18]}…" if record.get("daa_public_point") else ""
            ),
        )
    )
    return card("evidence", EVIDENCE_TITLE, "ok", blocks, badge="attested")


def _secure_boot(value: object) -> Cell:
    if value is True:
        return ok("on")
    return bad("OFF") if value is False else muted("not measured")


def _pcr_table(join: Mapping[str, Any], policy: Mapping[str, Any] | None) -> Block:
    """Each quoted PCR against the issuer's allow-list."""
    allowed: Mapping[str, list[str]] = (policy or {}).get("allowed", {})
    rows = []
    for index, value in sorted(join.get("pcr_values", {}).items(), key=lambda kv: int(kv[0])):
        golden = allowed.get(str(index), [])
        if golden:
            verdict = ok("= golden") if value in golden else bad("NOT ALLOWED")
            expected = mono(golden[0] if len(golden) == 1 else f"any of {len(golden)}", 16)
        else:
            verdict, expected = muted("rules on the event log"), muted("no allow-list")
        rows.append([cell(f"PCR {index}"), mono(value, 24), expected, verdict])
    bank = join.get("pcr_policy", {}).get("bank", "sha256")
    out = table(["PCR", f"quoted ({bank}, signed by the AK)", "issuer's policy", "verdict"], rows)
    out["title"] = "PCR quote against the issuer's policy"
    return out


def registry_card(st: StoryState) -> Card:
    """Member ids and status only: who a member is stays with the issuer."""
    title = "Member registry"
    join = st.detail("join")
    if join is None:
        return pending("registry", title, "No member yet.")
    status = join.get("status", "?")
    reason = ""
    named = st.detail("double_spender_identified")
    if named is not None and named.get("member_id") == join.get("member_id"):
        status = named.get("member_status", status)
        reason = "named by the opening of a double spend (supervision's evidence)"
    record = st.extras.get("member_record", {})
    joined = record.get("joined_at")
    row = [
        mono(join.get("member_id", "?")),
        cell(join.get("epoch")),
        _when(joined) if isinstance(joined, int) else muted("—"),
        ok("active") if status == "active" else bad(status),
    ]
    blocks = [table(["member", "epoch", "joined", "status"], [row])]
    if reason:
        blocks.append(note(f"{status}: {reason}", "bad"))
    blocks.append(
        note(
            "Member ids and status only: which account a member belongs to is the issuer's "
            "to know, and no payment on this page carries a member id (only an opening does).",
        )
    )
    return card("registry", title, "info", blocks, badge="1 member")


def _when(ts: int) -> Cell:
    return cell(dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%H:%M:%S UTC"))
