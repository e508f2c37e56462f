"""Every signed-object kind of the wire specification: who signs it, what its body is, and which
function of this package parses or verifies it (docs/protocol.md, "Signed objects").

A signed object is ``{kind, body, signature, signer}`` (``ecash_tpm.crypto.signing``): ECDSA P-256
over the canonical encoding of ``(kind, body)`` by a key the central bank certified for
``signer_role``. An independent implementation reads this table top to bottom.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from ecash_tpm.protocol import (
    coins,
    evidence,
    exchange,
    join_auth,
    keysets,
    payments,
    redeem,
    refunds,
    registry,
    supply,
)
from ecash_tpm.protocol import status as coin_status
from ecash_tpm.protocol.certified import (
    ISSUER_EPOCH_KIND,
    KEYSET_LIST_KIND,
    CertifiedKeysetList,
    IssuerEpochCertificate,
)

__all__ = ["KINDS", "Kind"]


@dataclass(frozen=True)
class Kind:
    """One signed-object kind. ``parse`` turns a signature-checked body into its type (None where
    the verifier reads the body itself); ``verify`` is the whole check (certificate, signature,
    body, freshness) a receiving party runs, or None where only the receiving party can run it
    (the bank's deposit checks need its database; the TTP's dispute checks need its escrow)."""

    name: str
    signer_role: str
    parse: Callable[..., object] | None
    verify: Callable[..., object] | None
    section: str


def _kinds(*items: Kind) -> Mapping[str, Kind]:
    return MappingProxyType({k.name: k for k in items})


KINDS: Mapping[str, Kind] = _kinds(
    Kind(
        keysets.KEYSET_DESCRIPTOR_KIND,
        "bank",
        keysets.Keyset.from_descriptor,
        keysets.Keyset.from_signed,
        "Keysets",
    ),
    Kind(
        coins.PAYMENT_REQUEST_KIND,
        "merchant",
        coins.parse_request_body,
        coins.PaymentRequest.from_signed,
        "Payment requests",
    ),
    Kind(coins.RESERVE_KIND, "merchant", None, None, "Deposit (lock period T)"),
    Kind(coins.DEPOSIT_KIND, "merchant", None, None, "Deposit"),
    Kind(
        coins.RECEIPT_KIND,
        "bank",
        None,
        payments.verify_receipt,
        "Deposit receipts",
    ),
    Kind(
        coins.TRANSCRIPT_KIND,
        "bank",
        evidence.parse_transcript,
        None,
        "Double-spend detection",
    ),
    Kind(
        evidence.EVIDENCE_KIND,
        "supervision",
        None,
        evidence.verify_evidence_body,
        "Opening and revocation",
    ),
    Kind(
        evidence.REGISTRATION_KIND,
        "issuer",
        registry.RegistryEntry.from_body,
        None,
        "Member registry",
    ),
    Kind(coins.LIFT_KIND, "supervision", None, None, "Blacklists"),
    Kind(
        supply.SUPPLY_REPORT_KIND,
        "bank",
        supply.SupplyReportBody.model_validate,
        None,
        "Money-supply reports",
    ),
    Kind(
        exchange.KIND_REGISTRATION,
        "merchant",
        exchange.parse_registration,
        None,
        "Fair exchange: registration",
    ),
    Kind(
        exchange.KIND_DESCRIPTOR,
        "ttp",
        exchange.parse_descriptor,
        exchange.verify_descriptor,
        "Fair exchange: product descriptors",
    ),
    Kind(
        exchange.KIND_KEY_REQUEST,
        "ttp",
        exchange.parse_key_request,
        None,
        "Fair exchange: disputes",
    ),
    Kind(
        exchange.KIND_KEY_ANSWER,
        "merchant",
        exchange.parse_key_answer,
        None,
        "Fair exchange: disputes",
    ),
    Kind(
        exchange.KIND_DEPOSIT_QUERY,
        "ttp",
        exchange.parse_deposit_query,
        None,
        "Fair exchange: disputes",
    ),
    Kind(
        exchange.KIND_DEPOSIT_ANSWER,
        "bank",
        exchange.parse_deposit_answer,
        None,
        "Fair exchange: disputes",
    ),
    # issue 10 (#6, #7): signed with the central bank's root key, checked against the root
    Kind(
        ISSUER_EPOCH_KIND,
        "centralbank",
        IssuerEpochCertificate.from_body,
        IssuerEpochCertificate.from_signed,
        "Certified issuer epoch key",
    ),
    Kind(
        KEYSET_LIST_KIND,
        "centralbank",
        CertifiedKeysetList.from_body,
        CertifiedKeysetList.from_signed,
        "Certified keyset list",
    ),
    Kind(
        coin_status.COIN_STATUS_KIND,
        "bank",
        None,
        coin_status.CoinStatusStatement.from_signed,
        "Bank-signed verdicts",
    ),
    Kind(
        coin_status.DEPOSIT_REFUSAL_KIND,
        "bank",
        None,
        coin_status.DepositRefusal.from_signed,
        "Bank-signed verdicts",
    ),
    Kind(
        join_auth.JOIN_AUTHORISATION_KIND,
        "bank",
        join_auth.JoinAuthorisation.from_body,
        join_auth.JoinAuthorisation.from_signed,
        "Join authorisation",
    ),
    Kind(
        join_auth.REVOCATION_LIFT_KIND,
        "supervision",
        join_auth.RevocationLift.from_body,
        join_auth.RevocationLift.from_signed,
        "Lifting a revocation",
    ),
    # issue 12 (#3): the merchant lets the customer claim a refund at the bank
    Kind(
        refunds.REFUND_PERMISSION_KIND,
        "merchant",
        refunds.RefundPermission.from_body,
        refunds.RefundPermission.from_signed,
        "Refunds",
    ),
    # issue 12 (#5): coins back into an ordinary bank account (docs/protocol.md 9.4)
    Kind(
        redeem.REDEEM_REQUEST_KIND,
        "bank",
        redeem.RedeemRequest.from_body,
        redeem.RedeemRequest.from_signed,
        "Redeem to an account",
    ),
    Kind(
        redeem.REDEEM_RECEIPT_KIND,
        "bank",
        None,
        redeem.verify_redeem_receipt,
        "Redeem to an account",
    ),
)
