"""The bank's answer to the fair-exchange TTP: were these coins deposited, by whom, for what?

A TTP resolving a dispute (DESIGN §6) must not take the customer's word that it paid. It sends
a TTP-signed query (kind ``ttp-deposit-query``, body ``{ttp_id, merchant_id, preq, serials,
nonce, created}``) with its certificate (role ``ttp``, issued by the central bank); the bank
answers from its deposit transcripts, per serial: deposited or not and, if so, by which
merchant, for which request digest, in which deposit, its value, and the digest of the spend
it recorded; the answer is bank-signed (kind ``ttp-deposit-answer``) and names the query's
digest, so it cannot be replayed for another question.

Only certified TTPs may ask (the answer links serials to merchants and requests, which the
bank tells nobody else), and only about a handful of serials per query. Queries are read-only,
so a replayed query only repeats a true answer; ``created`` must still be within
:data:`MAX_SKEW_S` of the bank's clock so that old captured queries go stale.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ecash_tpm.bank.store import deposits as rows
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.signing import canonical_digest, sign_object, verify_object
from ecash_tpm.errors import InputError
from ecash_tpm.pki import certificate_fingerprint, common_name, verify_party_certificate
from ecash_tpm.protocol.exchange import KIND_DEPOSIT_ANSWER, KIND_DEPOSIT_QUERY, parse_deposit_query
from ecash_tpm.storage import Transaction

if TYPE_CHECKING:
    from ecash_tpm.bank.domain import BankDomain

__all__ = ["MAX_SKEW_S", "TtpQueryError", "answer_ttp_query"]

MAX_SKEW_S = 300


class TtpQueryError(InputError):
    """The TTP's deposit query is malformed, stale, or names another TTP than its certificate."""

    code = "bank.ttp_query_invalid"


def _coin(tx: Transaction, sigma: bytes) -> dict[str, Any]:
    row = rows.deposited_coin(tx, sigma)
    if row is None:
        return {"sigma": b64u_encode(sigma), "deposited": False}
    body = json.loads(row.body)
    return {
        "sigma": b64u_encode(sigma),
        "deposited": True,
        "merchant_id": row.merchant_id,
        "preq": b64u_encode(row.preq),
        "deposit_id": row.deposit_id,
        "value": int(body["value"]),
        "currency": body["currency"],
        "spend_digest": b64u_encode(canonical_digest(body["spend"])),
        "deposited_at": row.spent_at,
    }


def answer_ttp_query(bank: BankDomain, signed: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
    """Verify a TTP's query and answer it: ``{answer (bank-signed), cert (bank)}``."""
    now = bank.clock()
    key = verify_party_certificate(
        cert_pem,
        bank.central_bank_root,
        role="ttp",
        now=dt.datetime.fromtimestamp(now, dt.UTC),
        crl=bank.crl,
    )
    body = verify_object(signed, key, KIND_DEPOSIT_QUERY)
    ttp_id, merchant_id, preq, serials, created = parse_deposit_query(body, TtpQueryError)
    if ttp_id != common_name(cert_pem):
        raise TtpQueryError("the query names another TTP than its certificate")
    if abs(now - created) > MAX_SKEW_S:
        raise TtpQueryError(
            "the query is stale (or from the future)",
            code="bank.ttp_query_stale",
            detail={"created": created, "now": now},
        )
    with bank.db.read() as tx:
        coins = [_coin(tx, sigma) for sigma in serials]
    answer = sign_object(
        bank.bank_key,
        KIND_DEPOSIT_ANSWER,
        {
            "query": b64u_encode(canonical_digest(body)),
            "ttp_id": ttp_id,
            "merchant_id": merchant_id,
            "preq": b64u_encode(preq),
            "coins": coins,
            "answered_at": now,
        },
        signer=certificate_fingerprint(bank.bank_cert),
    )
    return {"answer": answer, "cert": bank.bank_cert_pem()}
