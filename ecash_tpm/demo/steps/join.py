"""Step 3, ``join``: device A joins the group: EK chain, AK, ActivateCredential, PCR quote,
DAA credential; the wallet library does the calls, this step narrates what crosses the wire."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from cryptography import x509

from ecash_tpm.demo.context import StoryContext, short


def join(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Join as the wallet CLI does, step by step so that each message can be shown."""
    from ecash_tpm.attest import verify_ek_certificate
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.wallet.join import (
        answer_challenge,
        finalize_membership,
        prepare_keys,
        release_keys,
        start_request,
    )

    device, dep = ctx.devices["A"], ctx.dep
    with IssuerClient(dep.url("bank")) as issuer:
        info = issuer.info()
        keys = prepare_keys(device, ctx.wallet_dir)
        try:
            start = start_request(device, keys, dep.customer.account_id)
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
            finish = answer_challenge(device, keys, challenge)
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
                "values (checked with the quote at join/finish)",
            )
            answer = issuer.join_finish(finish)
            membership = finalize_membership(
                ctx.wallet_dir,
                keys=keys,
                start=start,
                finish=finish,
                answer=answer,
                info=info,
                issuer_url=issuer.base_url,
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
    )


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
