"""The demo's public artefacts (docs/protocol.md §15.1): the receipt of step ``deposit`` and the
transcripts, openings and evidence of step ``double_spender_identified``, written to
``<workdir>/artefacts/`` for ``ecash-tpm verify`` (kept with ``demo --keep``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ecash_tpm.crypto.encoding import b64u_decode
from ecash_tpm.demo.context import StoryContext
from ecash_tpm.deploy.bootstrap import MERCHANTS
from ecash_tpm.protocol.artefacts import (
    dumps_artefact,
    evidence_artefact,
    opening_artefact,
    receipt_artefact,
    transcript_artefact,
)

__all__ = ["write_case_artefacts", "write_receipt_artefact"]


def _write(ctx: StoryContext, name: str, doc: dict[str, Any]) -> str:
    folder = ctx.workdir / "artefacts"
    folder.mkdir(mode=0o700, exist_ok=True)
    path = folder / f"{name}.json"
    path.write_text(dumps_artefact(doc), encoding="utf-8")
    return str(path)


def _merchant_cert(ctx: StoryContext, name: str) -> str:
    from ecash_tpm.merchant.settings import MerchantSettings

    settings = ctx.dep.settings(name, MerchantSettings)
    return Path(settings.resolved_cert_file()).read_text("ascii")


def _certified(ctx: StoryContext) -> tuple[dict[str, Any], str, dict[str, Any]]:
    """The central bank's keyset list (as the bank serves it), the issuer's name (the one the
    bank is configured to trust) and its epoch key."""
    from ecash_tpm.bank.settings import BankSettings
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.demo.context import DemoCheckError

    listed = ctx.bank_session.keysets().keyset_list
    with IssuerClient(ctx.dep.url("bank"), **ctx.dep.client_kwargs("issuer")) as issuer:
        epoch = issuer.info().epoch_certificate
    if listed is None or epoch is None:
        raise DemoCheckError("the keyset list or the issuer epoch certificate is not served")
    issuer_name: str = ctx.dep.settings("bank", BankSettings).issuer_name
    return dict(listed), issuer_name, dict(epoch)


def write_receipt_artefact(ctx: StoryContext) -> str:
    """Step ``deposit``'s receipt with the request it answers; the file's path."""
    offer = ctx.paid.offer
    from ecash_tpm.pki import cert_pem

    doc = receipt_artefact(
        receipt=ctx.paid.result.receipt,
        bank_cert=cert_pem(ctx.bank_session.keysets().bank_cert),
        request=offer["request"],
        merchant_cert=offer["cert"],
    )
    return _write(ctx, "receipt", doc)


def write_case_artefacts(
    ctx: StoryContext, evidence: dict[str, Any], supervision_cert: str
) -> dict[str, str]:
    """Both transcripts of the double spend (``transcript``: merchant A's deposit,
    ``transcript_2``: the attempt the bank refused at merchant B), their openings (``opening``,
    ``opening_2``) and the whole evidence bundle (``evidence``: the supervision-signed object);
    name -> path."""
    body = evidence["body"]
    keyset_list, issuer, epoch = _certified(ctx)
    certs = {m: _merchant_cert(ctx, m) for m in sorted(MERCHANTS)}
    paths = {}
    for i, signed in enumerate(body["transcripts"]):
        suffix = "" if i == 0 else f"_{i + 1}"
        paths["transcript" + suffix] = _write(
            ctx,
            "transcript" + suffix,
            transcript_artefact(
                transcript=signed,
                bank_cert=body["bank_cert"],
                # none for a redeem: its request is the bank's own (§9.4)
                merchant_cert=certs.get(signed["body"]["merchant_id"]),
                keyset_list=keyset_list,
                issuer=issuer,
                issuer_epoch=epoch,
                opener_public=b64u_decode(body["opener_public"]),
            ),
        )
        paths["opening" + suffix] = _write(
            ctx,
            "opening" + suffix,
            opening_artefact(statement=evidence, supervision_cert=supervision_cert, index=i),
        )
    paths["evidence"] = _write(
        ctx,
        "evidence",
        evidence_artefact(
            evidence=evidence,
            supervision_cert=supervision_cert,
            merchant_certs=certs,  # only those of the transcripts' merchants are kept
            keyset_list=keyset_list,
            issuer=issuer,
            issuer_epoch=epoch,
        ),
    )
    return paths
