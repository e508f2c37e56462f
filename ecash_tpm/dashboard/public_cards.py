"""Cards built from what a deployment shows anyone (:class:`~ecash_tpm.dashboard.collect.Snapshot`):
the parties and their certificates, the bank's keysets, the group's public parameters, the TTP;
and the list of what cannot be seen from outside."""

from __future__ import annotations

import datetime as dt

from ecash_tpm.dashboard.certs import check_crl, party_row, root_rows
from ecash_tpm.dashboard.collect import CERT_ROUTES, Snapshot
from ecash_tpm.dashboard.view import (
    Block,
    Card,
    Cell,
    bad,
    card,
    cell,
    kv,
    mono,
    muted,
    note,
    ok,
    table,
    warn,
)
from ecash_tpm.pki import load_certificate

PARTIES_TITLE = "Parties and their certificates"

#: What a read-only viewer of a deployment cannot see, and where it lives instead.
NOT_AVAILABLE: tuple[tuple[str, str], ...] = (
    (
        "Member registry",
        "GET /v1/members needs the issuer's members_token (it links members to accounts); "
        "one member by id is public",
    ),
    (
        "TPM evidence at join",
        "checked by the issuer at join/finish and kept in its database",
    ),
    ("Balances and the ledger", "the bank's database: `ecash-tpm bank ledger` (operator)"),
    (
        "Withdrawals, payments, deposits",
        "between wallets, merchants and the bank; no public feed",
    ),
    (
        "Double-spend cases and openings",
        "the bank's reports and the supervision department's database; opening needs its "
        "open_token",
    ),
    ("Audit verdict", "`ecash-tpm supervision audit` with access to the bank's database"),
    (
        "Issuer and supervision certificates",
        "not served over HTTP (they travel inside signed registrations and evidence)",
    ),
)


def parties_card(snap: Snapshot | None, *, waiting: str) -> Card:
    """Root, CRL and one row per party: health, validity, chain to the root, revocation."""
    if snap is None:
        return card("parties", PARTIES_TITLE, "pending", [note(waiting)])
    if snap.root_pem is None:
        why = snap.errors.get("centralbank", "the central bank did not answer")
        return card("parties", PARTIES_TITLE, "warn", [note(f"No root certificate: {why}", "warn")])
    root = load_certificate(snap.root_pem)
    now = snap.when
    revocations = check_crl(snap.crl, root, now)
    rows: list[list[Cell]] = []
    for party in snap.parties:
        if party.role == "centralbank":
            rows.append(
                [
                    cell("central bank"),
                    cell("root CA"),
                    cell(party.url, mono=True),
                    ok("up") if snap.up.get(party.name) else bad("down"),
                    cell(f"until {root.not_valid_after_utc:%Y-%m-%d}", "ok"),
                    ok("self-signed"),
                    muted("issues the CRL"),
                ]
            )
            continue
        why = "not served over HTTP"
        if party.role in CERT_ROUTES:
            why = f"not read ({CERT_ROUTES[party.role]})"
        rows.append(
            party_row(
                party.name,
                party.role,
                snap.pems.get(party.name),
                root,
                revocations,
                now,
                url=party.url,
                up=snap.up.get(party.name),
                why_missing=why,
            )
        )
    problems = sum(1 for r in rows for c in r if isinstance(c, dict) and c.get("status") == "bad")
    certified = sum(1 for p in snap.parties if p.name in snap.pems)
    blocks: list[Block] = [
        kv(root_rows(root, now)),
        note(
            "Revocation: " + revocations.status,
            "ok" if revocations.crl is not None else "warn",
        ),
        table(
            ["party", "role", "URL", "health", "validity", "chain", "revocation"],
            rows,
        ),
    ]
    for what, why in sorted(snap.errors.items()):
        blocks.append(note(f"{what}: {why}", "warn"))
    return card(
        "parties",
        PARTIES_TITLE,
        "alarm" if problems else "ok",
        blocks,
        badge=f"{certified} certified",
    )


def keysets_card(snap: Snapshot) -> Card:
    """The bank's signed keysets (descriptor signatures checked under its certificate)."""
    title = "The bank's public keysets"
    if snap.keysets is None:
        why = snap.errors.get("bank", "no bank configured or reachable")
        return card("keysets", title, "unavailable", [note(why, "warn")])
    now = int(snap.when.timestamp())
    rows = [
        [
            cell(f"{ks['value']} {ks['currency']}"),
            mono(ks["id"], 16),
            _window(ks["withdraw_until"], now),
            _window(ks["deposit_until"], now),
        ]
        for ks in sorted(snap.keysets, key=lambda k: (k["currency"], k["value"]))
    ]
    how = (
        "descriptors signed by the bank, its certificate checked against the root"
        if snap.keysets_verified
        else "descriptors signed by the bank (root unknown: certificate not checked)"
    )
    blocks = [note(how, "ok" if snap.keysets_verified else "warn")]
    blocks.append(table(["denomination", "keyset", "withdraw until", "deposit until"], rows))
    return card("keysets", title, "ok", blocks, badge=f"{len(rows)} keysets")


def _window(until: int, now: int) -> Cell:
    when = dt.datetime.fromtimestamp(until, dt.UTC).strftime("%Y-%m-%d %H:%M")
    return cell(when, "ok") if until > now else cell(f"closed {when}", "muted")


def group_card(snap: Snapshot) -> Card:
    """The group's public parameters and whether issuer and supervision agree on Hop."""
    title = "Group manager and supervision"
    rows: list[tuple[str, Cell]] = []
    if snap.issuer is not None:
        rows += [
            ("epoch", cell(snap.issuer["epoch"])),
            ("PCR selection", cell(f"{snap.issuer['pcr_bank']} {snap.issuer['pcrs']}")),
            ("Hop (issuer)", mono(snap.issuer["opener_public"], 24)),
        ]
    if snap.opener_public is not None:
        rows.append(("Hop (supervision)", mono(snap.opener_public, 24)))
    if snap.issuer is not None and snap.opener_public is not None:
        same = snap.issuer["opener_public"] == snap.opener_public
        rows.append(("opener key", ok("the same on both") if same else bad("DIFFERENT")))
    if not rows:
        return card("group", title, "unavailable", [note("issuer and supervision not reachable")])
    return card("group", title, "ok", [kv(rows)])


def ttp_card(snap: Snapshot) -> Card:
    """The TTP's dispute window, strikes against merchants and counters."""
    title = "Trusted third party"
    if snap.ttp is None:
        why = snap.errors.get("ttp", "no TTP configured or reachable")
        return card("ttp", title, "unavailable", [note(why)])
    rows: list[tuple[str, Cell]] = [
        ("TTP", cell(snap.ttp.get("ttp_id"))),
        ("dispute window", cell(f"{snap.ttp.get('dispute_window_s')} s")),
    ]
    counters = (snap.ttp_stats or {}).get("counters", {})
    rows += [(name.replace("_", " "), cell(value)) for name, value in sorted(counters.items())]
    blocks: list[Block] = [kv(rows)]
    strikes = snap.strikes or []
    if strikes:
        blocks.append(
            table(
                ["merchant", "strike", "dispute"],
                [
                    [
                        cell(s.get("merchant_id")),
                        warn(s.get("reason", s.get("kind", "strike"))),
                        mono(s.get("dispute_id", ""), 14),
                    ]
                    for s in strikes
                ],
            )
        )
    else:
        blocks.append(note("no strikes against any merchant", "ok"))
    return card("ttp", title, "warn" if strikes else "ok", blocks, badge=f"{len(strikes)} strikes")


def unavailable_card() -> Card:
    """What the page cannot show from outside, and where it is."""
    rows = [(what, muted(why)) for what, why in NOT_AVAILABLE]
    return card(
        "unavailable",
        "Not visible from here",
        "unavailable",
        [note("This page reads only public routes, without secrets."), kv(rows)],
    )
