"""Step 8, ``double_spender_identified``: the bank reported the double spend to the supervision
department, which opened both transcripts; its signed evidence is checked here, each opening's
proof verified, and the named member compared with the one that joined."""

from __future__ import annotations

from typing import Any

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.demo.context import DemoCheckError, StoryContext
from ecash_tpm.deploy.bootstrap import admin_bank


def double_spender_identified(ctx: StoryContext, detail: dict[str, Any]) -> None:
    """Verify the case the supervision department made of step 7's report."""
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.clients.supervision import SupervisionClient
    from ecash_tpm.crypto.groupsig import OpeningProof, verify_opening
    from ecash_tpm.crypto.signing import verify_object
    from ecash_tpm.pki import load_certificate, verify_party_certificate
    from ecash_tpm.supervision.settings import SupervisionSettings

    dep, member = ctx.dep, ctx.member
    sigma = b64u_encode(ctx.respent.sigma)
    with admin_bank(dep.bank_settings()) as bank:
        reports = [r for r in bank.double_spend_reports() if r.sigma == sigma]
    if not reports or reports[0].status != "sent" or not reports[0].result:
        raise DemoCheckError(
            "the bank did not report the double spend",
            detail={"r": [r.to_dict() for r in reports]},
        )
    case = reports[0].result
    ctx.fact(
        "bank report",
        f"#{reports[0].report_id}: both transcripts of serial "
        f"{sigma[:16]}... sent to the supervision department",
    )
    with SupervisionClient(dep.url("supervision"), **dep.client_kwargs("supervision")) as sup:
        hop = sup.opener_public()
    sup_settings = dep.settings("supervision", SupervisionSettings)
    sup_pem = sup_settings.resolved_certificate_file().read_bytes()
    sup_cert = load_certificate(sup_pem)
    key = verify_party_certificate(sup_cert, dep.root_pem(), role="supervision")
    evidence = verify_object(case["evidence"], key, "double-spend-evidence")
    transcripts = [t["body"] for t in evidence["transcripts"]]
    openings = []
    for opening, transcript in zip(evidence["openings"], transcripts, strict=True):
        c1, c2, t0 = (Point.decode(b64u_decode(opening[k])) for k in ("c1", "c2", "t0"))
        proof = transcript["spend"]["proof"]
        if (b64u_encode(c1.encode()), b64u_encode(c2.encode())) != (proof["c1"], proof["c2"]):
            raise DemoCheckError("an opening is not of its transcript's ciphertext")
        verify_opening(hop, c1, c2, t0, OpeningProof.from_dict(opening["proof"]))
        openings.append(
            {
                "transcript_id": opening.get("transcript_id"),
                "merchant_id": transcript["merchant_id"],
                "t0": b64u_encode(t0.encode()),
                "proof_verified": True,
            }
        )
    same_t0 = {o["t0"] for o in openings} == {b64u_encode(member.t0.encode())}
    with IssuerClient(dep.url("bank"), **dep.client_kwargs("issuer")) as issuer:
        record = issuer.member(case["member_id"])
    ctx.fact(
        "case",
        f"#{case['case_id']}: evidence signed by the supervision department "
        "(certificate checked against the root)",
    )
    for o in openings:
        ctx.fact(
            f"opening of #{o['transcript_id']}",
            f"{o['merchant_id']}: T0 = {o['t0'][:16]}..., Chaum-Pedersen proof verified here",
        )
    ctx.fact(
        "named member",
        f"{case['member_id']} (joined as {member.member_id}: "
        f"{'same' if case['member_id'] == member.member_id else 'DIFFERENT'})",
    )
    ctx.fact(
        "group manager",
        f"member {record.status}"
        + (f" ({record.revocation_reason})" if record.revocation_reason else ""),
    )
    if not same_t0:
        raise DemoCheckError("the openings do not name the joined device's T0")
    ctx.publish("double_spend_case", {"case_id": case["case_id"], "transcripts": transcripts})
    detail.update(
        member_id=case["member_id"],
        joined_member_id=member.member_id,
        proof_verified=True,
        case_id=case["case_id"],
        openings=openings,
        revocation=case["revocation"]["status"],
        member_status=record.status,
    )
    # issue 14 item 5: transcript, opening and evidence as files for `ecash-tpm verify`
    from ecash_tpm.demo.artefacts import write_case_artefacts

    detail["artefacts"] = write_case_artefacts(ctx, case["evidence"], sup_pem.decode("ascii"))
