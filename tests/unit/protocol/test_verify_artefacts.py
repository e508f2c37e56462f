"""``ecash-tpm verify`` (docs/protocol.md §15.1): each artefact kind is accepted as the parties
make it, and every single-field tampering of it is refused with a ``verify.*`` code."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest
from support.artefact_world import ArtefactWorld, build_world, leaves, tampered

from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol import errors as E
from ecash_tpm.protocol.artefacts import parse_artefact
from ecash_tpm.protocol.verify_artefacts import (
    CREDENTIAL_NOT_CHECKED,
    verify_artefact,
    verify_evidence,
    verify_transcript,
)

KINDS = ("transcript", "receipt", "opening", "evidence")
#: every file of the world: the four kinds, and a redeem's transcript and evidence (§9.4)
FILES = (*KINDS, "redeem_transcript", "redeem_evidence")


def _format(name: str) -> str:
    return f"ecash-tpm/{name.removeprefix('redeem_')}/v1"


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ArtefactWorld:
    return build_world(tmp_path_factory.mktemp("artefacts"))


def _code(doc: dict[str, Any], root: str) -> str:
    with pytest.raises(EcashError) as info:
        verify_artefact(doc, root)
    return info.value.code


@pytest.mark.parametrize("kind", FILES)
def test_every_artefact_verifies(world: ArtefactWorld, kind: str) -> None:
    result = verify_artefact(world.files()[kind], world.root_pem)
    assert result.format == _format(kind)
    assert result.proven and all(isinstance(p, str) for p in result.proven)


def test_what_is_proven(world: ArtefactWorld) -> None:
    t = verify_artefact(world.transcript, world.root_pem)
    assert t.facts["merchant_id"] == "shop-a" and t.facts["accepted"] is True
    # the epoch certificate carries X2, Y2: the credential is checked with pairings (§7.4)
    assert CREDENTIAL_NOT_CHECKED not in t.not_checked
    r = verify_artefact(world.receipt, world.root_pem).facts
    assert (r["merchant_id"], r["amount"], r["currency"], len(r["serials"])) == (
        "shop-a",
        5,
        "EUR",
        1,
    )
    o = verify_artefact(world.opening, world.root_pem).facts
    e = verify_artefact(world.evidence, world.root_pem).facts
    assert o["member_id"] == e["member_id"] and o["transcript_id"] == "attempt-1"
    assert [t["merchant_id"] for t in e["transcripts"]] == ["shop-a", "shop-b"]


@pytest.mark.parametrize("kind", FILES)
def test_every_single_field_tampering_is_refused(world: ArtefactWorld, kind: str) -> None:
    doc = world.files()[kind]
    paths = list(leaves(doc))
    assert len(paths) > 20
    accepted, codes = [], set()
    for path in paths:
        try:
            verify_artefact(tampered(doc, path), world.root_pem)
        except EcashError as exc:
            assert exc.code.startswith("verify."), (path, exc.code, exc.message)
            codes.add(exc.code)
        else:
            accepted.append(path)
    assert accepted == []
    assert {"verify.format", "verify.bad_signature"} <= codes


def test_credential_check_is_pluggable(world: ArtefactWorld) -> None:
    seen: list[int] = []

    def check(items: Any) -> bool:
        seen.append(len(items))
        return True

    t = verify_transcript(world.transcript, world.root_pem, credential_check=check)
    assert CREDENTIAL_NOT_CHECKED not in t.not_checked
    verify_evidence(world.evidence, world.root_pem, credential_check=check)
    assert seen == [1, 2]

    def refuse(items: Any) -> bool:
        raise E.VerifyCoinError("bad credential")

    with pytest.raises(E.VerifyCoinError):
        verify_transcript(world.transcript, world.root_pem, credential_check=refuse)


def test_refusals_with_their_codes(world: ArtefactWorld, tmp_path: Path) -> None:
    from support.coinmint import Pki

    other = Pki.create(tmp_path / "other")
    try:
        assert _code(world.transcript, other.root_pem) == "verify.chain"
    finally:
        other.close()
    assert _code({**world.receipt, "extra": 1}, world.root_pem) == "verify.format"
    assert _code({"format": "ecash-tpm/nothing/v1"}, world.root_pem) == "verify.format"
    with pytest.raises(E.VerifyFormatError):
        parse_artefact(world.receipt, "ecash-tpm/transcript/v1")
    # a receipt re-signed by a key that is not the certified bank's
    forged = copy.deepcopy(world.receipt)
    from ecash_tpm.crypto.signing import sign_object

    r = forged["receipt"]
    forged["receipt"] = sign_object(PartyKey.generate(), r["kind"], r["body"], signer=r["signer"])
    assert _code(forged, world.root_pem) == "verify.bad_signature"
    # the receipt of another request (both merchant-signed and bank-signed, but unrelated)
    other_req = world.evidence["evidence"]["body"]["transcripts"][1]["body"]["request"]
    mixed = {
        **world.receipt,
        "request": other_req,
        "merchant_cert": world.evidence["merchant_certs"]["shop-b"],
    }
    assert _code(mixed, world.root_pem) == "verify.tampered"
    # evidence with the transcripts swapped: the signature no longer covers it
    swapped = copy.deepcopy(world.evidence)
    swapped["evidence"]["body"]["transcripts"].reverse()
    assert _code(swapped, world.root_pem) == "verify.bad_signature"


def _resign(key: PartyKey, doc: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """``doc`` with body fields changed and signed again by ``key`` (same signer hint)."""
    from ecash_tpm.crypto.signing import sign_object

    return sign_object(key, doc["kind"], {**doc["body"], **changes}, signer=doc["signer"])


def test_signed_but_wrong_is_refused_by_the_semantic_checks(world: ArtefactWorld) -> None:
    sup, bank = world.supervision_key, world.bank_key
    # a transcript the bank signed with a deposit after the keyset's window: verify.coin
    late = copy.deepcopy(world.transcript)
    body = late["transcript"]["body"]
    late["transcript"] = _resign(
        bank, late["transcript"], deposited_at=body["deposited_at"] + 10**6
    )
    assert _code(late, world.root_pem) == "verify.coin"
    # the first deposit booked after the second request's deadline (12.1): verify.evidence
    ev = copy.deepcopy(world.evidence)
    first = ev["evidence"]["body"]["transcripts"][0]
    deadline = ev["evidence"]["body"]["transcripts"][1]["body"]["request"]["body"]["deadline"]
    ev["evidence"]["body"]["transcripts"][0] = _resign(bank, first, deposited_at=deadline + 1)
    ev["evidence"] = _resign(sup, ev["evidence"])
    assert _code(ev, world.root_pem) == "verify.evidence"
    # an opening to another T0, signed by supervision: verify.opening
    op = copy.deepcopy(world.opening)
    other = world.opening["statement"]["body"]["openings"][0]
    statement = op["statement"]["body"]
    wrong = {**op["opening"], "t0": statement["opener_public"]}
    openings = [o if o != op["opening"] else wrong for o in statement["openings"]]
    op["statement"] = _resign(sup, op["statement"], openings=openings)
    op["opening"] = wrong
    assert other != wrong
    assert _code(op, world.root_pem) == "verify.opening"


def test_the_command_line(
    world: ArtefactWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ecash_tpm.cli import main

    root = tmp_path / "root.pem"
    root.write_text(world.root_pem)
    for kind, doc in world.all().items():
        path = tmp_path / f"{kind}.json"
        path.write_text(json.dumps(doc))
        assert main(["verify", kind, str(path), "--root", str(root), "--json"]) == 0
        out = json.loads(capsys.readouterr().out)
        assert out["ok"] is True and out["kind"] == kind and out["proven"]
    assert main(["verify", "receipt", str(tmp_path / "receipt.json"), "--root", str(root)]) == 0
    assert "proven:" in capsys.readouterr().out
    # another kind than asked for; a tampered copy; a time long after the certificates expired
    assert main(["verify", "opening", str(tmp_path / "receipt.json"), "--root", str(root)]) == 1
    assert "[verify.format]" in capsys.readouterr().err
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps(tampered(world.receipt, ("receipt", "body", "amount"))))
    assert main(["verify", "receipt", str(bad), "--root", str(root), "--json"]) == 1
    assert json.loads(capsys.readouterr().out)["error"]["code"] == "verify.bad_signature"
    late = ["--at", str(4102444800 * 2)]  # year 2230
    assert (
        main(["verify", "receipt", str(tmp_path / "receipt.json"), "--root", str(root), *late]) == 1
    )
    assert "[verify.chain]" in capsys.readouterr().err


def _subtrees(doc: Any, path: tuple[Any, ...] = ()) -> Any:
    yield path
    items = (
        doc.items() if isinstance(doc, dict) else enumerate(doc) if isinstance(doc, list) else []
    )
    for key, value in items:
        yield from _subtrees(value, (*path, key))


@pytest.mark.parametrize("kind", FILES)
def test_no_shape_crashes_the_verifier(world: ArtefactWorld, kind: str) -> None:
    """Every part replaced by a value of another type is refused with a typed error."""
    doc = world.files()[kind]
    for path in list(_subtrees(doc))[1:]:
        for value in ([], None, "x"):
            out = copy.deepcopy(doc)
            node = out
            for key in path[:-1]:
                node = node[key]
            if node[path[-1]] == value:
                continue
            node[path[-1]] = value
            with pytest.raises(EcashError):
                verify_artefact(out, world.root_pem)


# --- a redeem in the evidence (§9.4) ---------------------------------------------------------


def test_redeem_and_pay_evidence_verifies(world: ArtefactWorld) -> None:
    result = verify_evidence(world.redeem_evidence, world.root_pem)
    redeemed, paid = result.facts["transcripts"]
    assert (redeemed["request_kind"], redeemed["merchant_id"]) == ("redeem", "bank:redeem")
    assert (redeemed["account_id"], redeemed["accepted"]) == ("alice-account", True)
    assert (paid["request_kind"], paid["merchant_id"], paid["accepted"]) == (
        "payment",
        "shop-a",
        False,
    )
    assert any("redeemed into account alice-account" in p for p in result.proven)
    assert list(world.redeem_evidence["merchant_certs"]) == ["shop-a"]  # none for the redeem
    t = verify_transcript(world.redeem_transcript, world.root_pem)
    assert t.facts["redeem_request_id"] == "rdm-0123456789" and t.facts["accepted"] is True
    assert any("itself signed the redeem request" in p for p in t.proven)
    assert world.redeem_transcript["merchant_cert"] is None


def test_redeem_refusals(world: ArtefactWorld) -> None:
    bank = world.bank_key
    shop_a = world.evidence["merchant_certs"]["shop-a"]
    # a merchant certificate given for a redeem transcript, or one no transcript needs
    assert _code({**world.redeem_transcript, "merchant_cert": shop_a}, world.root_pem) == (
        "verify.format"
    )
    extra = copy.deepcopy(world.redeem_evidence)
    extra["merchant_certs"]["shop-b"] = world.evidence["merchant_certs"]["shop-b"]
    assert _code(extra, world.root_pem) == "verify.format"
    # a redeem request not signed by the bank (here by a stranger), inside a bank-signed
    # transcript: the §12.1 rule check_request_signatures applies
    rt = copy.deepcopy(world.redeem_transcript)
    req = rt["transcript"]["body"]["request"]
    forged = _resign(PartyKey.generate(), req)
    rt["transcript"] = _resign(bank, rt["transcript"], request=forged)
    assert _code(rt, world.root_pem) == "verify.bad_signature"
    # a bank-signed redeem request changed (another bank): no longer the one the spend answers
    other = _resign(bank, req, bank="other-bank")
    rt["transcript"] = _resign(bank, rt["transcript"], request=other)
    assert _code(rt, world.root_pem) == "verify.format"
    # a bank-signed redeem transcript that names a merchant
    rt["transcript"] = _resign(bank, world.redeem_transcript["transcript"], merchant_id="shop-a")
    assert _code(rt, world.root_pem) == "verify.tampered"


# --- the issuer of the coin's epoch key (finding 4) -------------------------------------------


def test_the_issuer_is_named_and_can_be_required(world: ArtefactWorld) -> None:
    for doc, verify in ((world.transcript, verify_transcript), (world.evidence, verify_evidence)):
        loose = verify(doc, world.root_pem)
        assert loose.facts["issuer"] == "issuer"
        assert any("certified issuer issuer's key" in p for p in loose.proven)
        assert any("pass --issuer" in n for n in loose.not_checked)
        strict = verify(doc, world.root_pem, issuer="issuer")
        assert not any("--issuer" in n for n in strict.not_checked)
        with pytest.raises(E.VerifyCoinError) as info:
            verify(doc, world.root_pem, issuer="another-issuer")
        assert info.value.detail["check"] == "issuer"
    with pytest.raises(E.VerifyFormatError):
        verify_artefact(world.receipt, world.root_pem, issuer="issuer")


def test_another_issuers_epoch_key_is_not_taken_for_the_coins(world: ArtefactWorld) -> None:
    """A root-signed key of the right epoch number from another issuer: named as the file's
    issuer it is refused, and named truthfully its key does not hold the coin's credential."""
    rogue = world.other_issuer_epoch
    for doc in (world.transcript, world.evidence):
        swapped = {**doc, "issuer_epoch": rogue}
        assert _code(swapped, world.root_pem) == "verify.tampered"
        renamed = {**swapped, "issuer": rogue["body"]["issuer"]}
        with pytest.raises(E.VerifyCoinError):
            verify_artefact(renamed, world.root_pem, issuer="issuer")
        assert _code(renamed, world.root_pem) == "verify.coin"  # the pairing check (§7.4)


def test_the_command_line_issuer_option(
    world: ArtefactWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from ecash_tpm.cli import main

    root = tmp_path / "root.pem"
    root.write_text(world.root_pem)
    path = tmp_path / "evidence.json"
    path.write_text(json.dumps(world.redeem_evidence))
    args = ["verify", "evidence", str(path), "--root", str(root)]
    assert main([*args, "--issuer", "issuer", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["facts"]["issuer"] == "issuer"
    assert main([*args, "--issuer", "another-issuer"]) == 1
    assert "[verify.coin]" in capsys.readouterr().err
    assert main(args) == 0
    text = capsys.readouterr().out
    assert "issuer issuer's key" in text and "pass --issuer" in text


def test_deeply_nested_parts_are_refused_with_a_code(world: ArtefactWorld) -> None:
    """Finding 6 for library callers: a part nested past the recursion limit (the CLI refuses
    such a file before, ``input.invalid``) is still a typed refusal, never a RecursionError."""
    deep: list[Any] = []
    for _ in range(100_000):
        deep = [deep]
    for doc in (world.transcript, world.redeem_evidence):
        for key in sorted(set(doc) - {"format"}):
            assert _code({**doc, key: deep}, world.root_pem).startswith("verify.")
        signed = copy.deepcopy(doc)
        part = "transcript" if "transcript" in signed else "evidence"
        signed[part]["body"]["extra"] = deep
        assert _code(signed, world.root_pem) == "verify.bad_signature"
