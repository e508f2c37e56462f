"""Step 3, ``join``: device A joins the group: EK chain, AK, ActivateCredential, PCR quote with
the boot's event log, DAA credential; the wallet library does the calls, this step narrates
what crosses the wire."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from cryptography import x509

from ecash_tpm.demo.context import DemoCheckError, StoryContext, short

if TYPE_CHECKING:
    from ecash_tpm.protocol.api.issuer import MeasuredBootVerdict


def join(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Join as the wallet CLI does, step by step so that each message can be shown."""
    from ecash_tpm.attest import verify_ek_certificate
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.wallet.join import (
        answer_challenge,
        authorise,
        finalize_membership,
        prepare_keys,
        read_event_log,
        release_keys,
        start_request,
    )

    device, dep = ctx.devices["A"], ctx.dep
    session = BankClient(dep.url("bank"), **dep.client_kwargs("bank"))
    ctx.on_close(session.close)
    session.login(dep.customer.account_id, dep.customer.password, dep.customer.totp())
    ctx.bank = session  # the withdraw step goes on with this session
    with IssuerClient(dep.url("bank"), **dep.client_kwargs("issuer")) as issuer:
        info = issuer.info()
        keys = prepare_keys(device, ctx.wallet_dir)
        try:
            grant = authorise(session, keys)  # the account owner's login authorises this join
            ctx.fact(
                "join authorisation",
                f"bank-signed for account {dep.customer.account_id}, bound to the AK, "
                f"valid until {grant['authorisation']['body']['expires_at']}",
            )
            start = start_request(device, keys, dep.customer.account_id, grant)
            roots, inters = ctx.tpms["A"].ca_certificates()
            ek = verify_ek_certificate(start.ek_cert, roots, inters)
            chain = _chain(ek, roots + inters)
            ctx.fact("EK", f"{keys.ek_kind.value}, certificate chain (the issuer verifies it):")
            for hop in chain:
                ctx.say(f"        {hop['subject']}  <-  issued by {hop['issuer']}")
            ctx.fact("AK", f"restricted signing key, name {short(keys.ak.name.hex(), 20)}")
            challenge = issuer.join_start(start)
            ctx.fact(
                "join/start",
                f"join {short(challenge.join_id, 12)}: MakeCredential "
                f"to the EK, nonce {short(challenge.nonce.hex(), 16)}",
            )
            event_log = read_event_log(ctx.tpms["A"].event_log_path)
            finish = answer_challenge(device, keys, challenge, event_log=event_log)
            pcrs = {int(i): v.hex() for i, v in finish.pcr_values.items()}
            bank = challenge.pcr_selection.bank
            ctx.fact(
                "PCR quote",
                f"{bank} PCRs {sorted(pcrs)} signed by the AK, qualifying "
                "data from the activated credential",
            )
            for i, value in sorted(pcrs.items()):
                ctx.say(f"        PCR {i:>2} = {value}")
            ctx.fact(
                "PCR policy",
                f"PCRs {list(info.pcr_selection.pcrs)} must equal the issuer's golden "
                "values, and the boot's event log must replay to them and show Secure Boot "
                "on (checked with the quote at join/finish)",
            )
            ctx.fact(
                "event log",
                f"{len(event_log or b'')} bytes, TCG crypto-agile (the swtpm's synthetic boot: "
                "swtpm has no firmware); the issuer replays it against the quote",
            )
            answer = issuer.join_finish(finish)
            boot = _boot_verdict(ctx, answer.measured_boot)
            membership = finalize_membership(
                ctx.wallet_dir,
                keys=keys,
                start=start,
                finish=finish,
                answer=answer,
                info=info,
                issuer_url=issuer.base_url,
                root=dep.root_pem(),  # 3.6: the credential is under the certified epoch key
            )
        finally:
            release_keys(device, keys)
        record = issuer.member(membership.member_id)
    ctx.membership = membership
    ctx.fact(
        "member",
        f"{membership.member_id} (epoch {membership.epoch}, "
        f"{record.status}); credential proof checked by the wallet",
    )
    detail.update(
        member_id=membership.member_id,
        epoch=membership.epoch,
        status=record.status,
        account_id=membership.account_id,
        ek={"type": keys.ek_kind.value, "chain": chain, "fingerprint": record.ek_fingerprint},
        ak_name=keys.ak.name.hex(),
        pcr_values=pcrs,
        pcr_policy={"bank": bank, "pcrs": list(info.pcr_selection.pcrs), "mode": "allow-list"},
        event_log=boot,
    )


def _boot_verdict(ctx: StoryContext, verdict: MeasuredBootVerdict | None) -> dict[str, Any]:
    """Narrate the issuer's verdict on the event log; the demo expects it to be a pass."""
    if verdict is None:
        raise DemoCheckError("the issuer returned no verdict on the event log")
    secure = {True: "on", False: "OFF", None: "not measured"}[verdict.secure_boot]
    rules = "measured-boot rules passed" if verdict.policy == "measured-boot" else "read only"
    ctx.fact(
        "event-log verdict",
        f"{verdict.events} events replay to the quoted {verdict.bank} PCRs "
        f"{verdict.replayed_pcrs}; Secure Boot {secure}, db {verdict.db_entries} / dbx "
        f"{verdict.dbx_entries} entries; {rules}",
    )
    for digest in verdict.boot_applications:
        ctx.say(f"        boot application  sha256 {digest}")
    return {
        "replay": "matches the quote",
        **verdict.model_dump(),
    }


def _chain(leaf: x509.Certificate, pool: Sequence[x509.Certificate]) -> list[dict[str, str]]:
    """EK -> intermediate -> root as subject/issuer pairs (the verifier checked the hops)."""
    chain: list[dict[str, str]] = []
    cert = leaf
    for _ in range(len(pool) + 1):
        chain.append(
            {
                "subject": cert.subject.rfc4514_string() or "(empty subject)",
                "issuer": cert.issuer.rfc4514_string(),
            }
        )
        if cert.subject == cert.issuer:
            break
        parent = next((c for c in pool if c.subject == cert.issuer), None)
        if parent is None:
            break
        cert = parent
    return chain
