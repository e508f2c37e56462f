"""The four artefacts of ``ecash-tpm verify`` built in process, with the real cryptography and the
parties' own signing code paths but no database or server: a coin spent at shop-a and again at
shop-b, both transcripts bank-signed, the double spend opened and signed by supervision; and
the same coin redeemed into an account (§9.4, a bank-signed redeem request) and then spent at
shop-a, as a second evidence bundle and the redeem's transcript.

Also :func:`leaves` and :func:`tampered`, which walk an artefact's JSON tree and change one leaf
(a byte of a base64url value, +1 on an integer, a character of a string).
"""

from __future__ import annotations

import copy
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ecash_tpm.centralbank.certify import certify_issuer_epoch, certify_keyset_list
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import open_proof
from ecash_tpm.crypto.signing import PartyKey, canonical_digest, sign_object
from ecash_tpm.errors import EcashError
from ecash_tpm.pki import certificate_fingerprint
from ecash_tpm.protocol.artefacts import (
    evidence_artefact,
    opening_artefact,
    receipt_artefact,
    transcript_artefact,
)
from ecash_tpm.protocol.coins import RECEIPT_KIND, TRANSCRIPT_KIND
from ecash_tpm.protocol.evidence import EVIDENCE_KIND, OpeningRecord, transcript_body
from ecash_tpm.protocol.keysets import KEYSET_DESCRIPTOR_KIND, Keyset, keyset_id_for, spki
from ecash_tpm.protocol.redeem import REDEEM_REQUEST_KIND, REDEEM_SPENDER, RedeemRequest
from ecash_tpm.protocol.registry import member_id_for_t0
from support.coinmint import Pki, TestIssuer, make_spend, payment_request, prepare_coin

VALUE = 5
ISSUER = "issuer"


@dataclass(frozen=True)
class ArtefactWorld:
    root_pem: str
    transcript: dict[str, Any]
    receipt: dict[str, Any]
    opening: dict[str, Any]
    evidence: dict[str, Any]
    #: the coin redeemed into account ``alice-account`` first, then paid at shop-a (§9.4)
    redeem_transcript: dict[str, Any]
    redeem_evidence: dict[str, Any]
    #: a root-signed epoch key of the same epoch number, but another issuer's ("rogue-issuer")
    other_issuer_epoch: dict[str, Any]
    #: the signers' keys, to make artefacts that are signed but wrong
    bank_key: PartyKey
    supervision_key: PartyKey

    def all(self) -> dict[str, dict[str, Any]]:
        return {
            "transcript": self.transcript,
            "receipt": self.receipt,
            "opening": self.opening,
            "evidence": self.evidence,
        }

    def files(self) -> dict[str, dict[str, Any]]:
        """:meth:`all` and the redeem's transcript and evidence."""
        return {
            **self.all(),
            "redeem_transcript": self.redeem_transcript,
            "redeem_evidence": self.redeem_evidence,
        }


def _keyset(rsa_key: Any, now: int) -> Keyset:
    body = {
        "value": VALUE,
        "currency": "EUR",
        "withdraw_from": now - 100,
        "withdraw_until": now + 3600,
        "deposit_until": now + 7200,
        "public_key": b64u_encode(spki(rsa_key.public_key())),
        "variant": blindrsa.DEFAULT_VARIANT.name,
    }
    return Keyset.from_descriptor({**body, "keyset_id": b64u_encode(keyset_id_for(body))})


def build_world(directory: Path) -> ArtefactWorld:
    """Every artefact kind, as the parties make them (see the module docstring)."""
    now = int(time.time())
    moment = dt.datetime.fromtimestamp(now, dt.UTC)
    pki = Pki.create(directory, merchants=("shop-a", "shop-b"))
    ca, bank = pki._ca, pki.bank
    hint = certificate_fingerprint(bank.cert_pem)
    issuer = TestIssuer()
    member = issuer.enroll("alice")
    rsa_key = blindrsa.generate_key(2048)
    keyset = _keyset(rsa_key, now)
    descriptor = sign_object(bank.key, KEYSET_DESCRIPTOR_KIND, keyset.descriptor(), signer=hint)
    keyset_list = certify_keyset_list(ca, bank.cert_pem, [descriptor], now=moment)
    epoch = certify_issuer_epoch(ca, ISSUER, 1, issuer.secrets[1].public, now=moment)
    rogue = TestIssuer().secrets[1].public
    other_epoch = certify_issuer_epoch(ca, "rogue-issuer", 1, rogue, now=moment)
    pending = prepare_coin(member, keyset)
    coin = pending.finalize(blindrsa.blind_sign(rsa_key, pending.blinded))

    docs: list[tuple[dict[str, Any], bytes, dict[str, Any]]] = []
    for i, shop in enumerate(("shop-a", "shop-b")):
        req = payment_request(pki.merchants[shop], amount=VALUE, deadline=now + 600)
        preq = canonical_digest(req["body"])
        spend = make_spend(member, coin, preq, issuer.hop)
        body = transcript_body(
            transcript_id=1 if i == 0 else "attempt-1",
            merchant_id=shop,
            preq=preq,
            spend=spend.to_dict(),
            deposited_at=now + i,
            deposit_id="d-0001" if i == 0 else None,
            sigma=b64u_encode(coin.sigma),
            keyset_id=b64u_encode(coin.keyset_id),
            epoch=coin.epoch,
            value=VALUE,
            currency="EUR",
            request=req,
            keyset=descriptor,
        )
        docs.append((req, preq, sign_object(bank.key, TRANSCRIPT_KIND, body, signer=hint)))

    (req_a, preq_a, first), (_, _, second) = docs
    receipt = sign_object(
        bank.key,
        RECEIPT_KIND,
        {
            "deposit_id": "d-0001",
            "merchant_id": "shop-a",
            "preq": b64u_encode(preq_a),
            "amount": VALUE,
            "currency": "EUR",
            "serials": [b64u_encode(coin.sigma)],
            "transcript_ids": [1],
            "deposited_at": now,
        },
        signer=hint,
    )

    def bundle(pair: tuple[dict[str, Any], dict[str, Any]]) -> dict[str, Any]:
        """The supervision-signed evidence of two transcripts of the coin (§12.1)."""
        openings = []
        for doc in pair:
            proof = doc["body"]["spend"]["proof"]
            c1, c2 = (Point.decode(b64u_decode(proof[k])) for k in ("c1", "c2"))
            t0, op = open_proof(issuer.opener.h, c1, c2)
            openings.append(OpeningRecord(c1, c2, t0, op, doc["body"]["transcript_id"]).to_dict())
        return sign_object(
            pki.supervision.key,
            EVIDENCE_KIND,
            {
                "member_id": member_id_for_t0(member.t0),
                "t0": b64u_encode(member.t0.encode()),
                "sigma": b64u_encode(coin.sigma),
                "opener_public": b64u_encode(issuer.hop.encode()),
                "openings": openings,
                "transcripts": list(pair),
                "bank_cert": bank.cert_pem,
                "created_at": now + 2,
            },
        )

    evidence = bundle((first, second))
    # §9.4: the coin redeemed into an account first (booked: transcript redeem:<request id>,
    # the body as bank/redeem.py stores it), then paid at shop-a (refused: attempt-2)
    redeem_req = RedeemRequest(
        bank=bank.name,
        account_id="alice-account",
        request_id="rdm-0123456789",
        amount=VALUE,
        currency="EUR",
        nonce=b"\x07" * 16,
        issued_at=now - 5,
        deadline=now + 300,
    )
    redeem_doc = sign_object(bank.key, REDEEM_REQUEST_KIND, redeem_req.to_body(), signer=hint)
    redeemed = transcript_body(
        transcript_id=f"redeem:{redeem_req.request_id}",
        kind="redeem",
        merchant_id=REDEEM_SPENDER,
        account_id=redeem_req.account_id,
        preq=redeem_req.preq,
        spend=make_spend(member, coin, redeem_req.preq, issuer.hop).to_dict(),
        deposited_at=now - 1,
        deposit_id=redeem_req.request_id,
        sigma=b64u_encode(coin.sigma),
        keyset_id=b64u_encode(coin.keyset_id),
        epoch=coin.epoch,
        value=VALUE,
        currency="EUR",
        request=redeem_doc,
        keyset=descriptor,
    )
    redeem_first = sign_object(bank.key, TRANSCRIPT_KIND, redeemed, signer=hint)
    paid_after = sign_object(
        bank.key,
        TRANSCRIPT_KIND,
        {**first["body"], "transcript_id": "attempt-2", "deposit_id": None},
        signer=hint,
    )
    redeem_evidence = bundle((redeem_first, paid_after))
    shops = {m: pki.merchants[m].cert_pem for m in ("shop-a", "shop-b")}
    sup = pki.supervision.cert_pem
    world = ArtefactWorld(
        root_pem=pki.root_pem,
        transcript=transcript_artefact(
            transcript=first,
            bank_cert=bank.cert_pem,
            merchant_cert=shops["shop-a"],
            keyset_list=keyset_list,
            issuer=ISSUER,
            issuer_epoch=epoch,
            opener_public=issuer.hop.encode(),
        ),
        receipt=receipt_artefact(
            receipt=receipt, bank_cert=bank.cert_pem, request=req_a, merchant_cert=shops["shop-a"]
        ),
        opening=opening_artefact(statement=evidence, supervision_cert=sup, index=1),
        evidence=evidence_artefact(
            evidence=evidence,
            supervision_cert=sup,
            merchant_certs=shops,
            keyset_list=keyset_list,
            issuer=ISSUER,
            issuer_epoch=epoch,
        ),
        redeem_transcript=transcript_artefact(
            transcript=redeem_first,
            bank_cert=bank.cert_pem,
            merchant_cert=None,
            keyset_list=keyset_list,
            issuer=ISSUER,
            issuer_epoch=epoch,
            opener_public=issuer.hop.encode(),
        ),
        redeem_evidence=evidence_artefact(
            evidence=redeem_evidence,
            supervision_cert=sup,
            merchant_certs=shops,  # the builder keeps shop-a's only
            keyset_list=keyset_list,
            issuer=ISSUER,
            issuer_epoch=epoch,
        ),
        other_issuer_epoch=other_epoch,
        bank_key=bank.key,
        supervision_key=pki.supervision.key,
    )
    pki.close()
    return world


# --- single-field tampering ----------------------------------------------------------------------

Path_ = tuple[str | int, ...]


def leaves(doc: Any, path: Path_ = ()) -> Iterator[Path_]:
    """Every leaf of a JSON tree, as the path of keys and indices to it."""
    if isinstance(doc, dict):
        for key in sorted(doc):
            yield from leaves(doc[key], (*path, key))
    elif isinstance(doc, list):
        for i, item in enumerate(doc):
            yield from leaves(item, (*path, i))
    else:
        yield path


def _changed(value: Any) -> Any:
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return 0
    if not isinstance(value, str):
        raise TypeError(value)
    if value.startswith("-----BEGIN"):  # PEM: a character in the middle of the base64 body
        i = len(value) // 2
        while value[i] in "\n-=":
            i += 1
        return value[:i] + ("A" if value[i] != "A" else "B") + value[i + 1 :]
    try:
        raw = b64u_decode(value)
    except EcashError:
        raw = b""
    if raw and b64u_encode(raw) == value and len(value) >= 8:
        flipped = bytearray(raw)
        flipped[len(flipped) // 2] ^= 0x01
        return b64u_encode(bytes(flipped))
    return value + "x" if value else "x"


def tampered(doc: dict[str, Any], path: Path_) -> dict[str, Any]:
    """A deep copy of ``doc`` with the leaf at ``path`` changed."""
    out = copy.deepcopy(doc)
    node: Any = out
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = _changed(node[path[-1]])
    return out
