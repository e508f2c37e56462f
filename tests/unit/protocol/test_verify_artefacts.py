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


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> ArtefactWorld:
    return build_world(tmp_path_factory.mktemp("artefacts"))


def _code(doc: dict[str, Any], root: str) -> str:
    with pytest.raises(EcashError) as info:
        verify_artefact(doc, root)
    return info.value.code


@pytest.mark.parametrize("kind", KINDS)
def test_every_artefact_verifies(world: ArtefactWorld, kind: str) -> None:
    result = verify_artefact(world.all()[kind], world.root_pem)
    assert result.format == f"ecash-tpm/{kind}/v1"
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


@pytest.mark.parametrize("kind", KINDS)
def test_every_single_field_tampering_is_refused(world: ArtefactWorld, kind: str) -> None:
    doc = world.all()[kind]
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


@pytest.mark.parametrize("kind", KINDS)
def test_no_shape_crashes_the_verifier(world: ArtefactWorld, kind: str) -> None:
    """Every part replaced by a value of another type is refused with a typed error."""
    doc = world.all()[kind]
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
