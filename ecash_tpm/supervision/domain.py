"""The supervision department (DESIGN §5 "Opening"): member registry, opening, double spends.

It holds the opening key h (Hop = h*G). Every spend carries (c1, c2) = (t*G, T0 + t*Hop), so
``open`` computes T0 = c2 - h*c1, names the member registered with that T0, and returns a
Chaum-Pedersen proof that log_G(Hop) = log_c1(c2 - T0) which anyone can check.

Double spend (how the bank reports one): when a deposit hits a spent serial, the bank calls
:meth:`SupervisionDepartment.handle_double_spend` (HTTP: ``POST /v1/double-spend``) with the two
bank-signed ``deposit-transcript`` objects of that serial and its certificate. The department
checks they are two different valid spends of one serial, opens both, checks they name the same
T0, builds and signs the evidence bundle, records the case, and asks the issuer to revoke the
member (the issuer re-verifies everything). A repeated report of the same serial returns the
recorded case and retries a revocation that did not go through.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from cryptography import x509

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import OpenerSecret, OpeningProof, UnknownMemberError, open_proof
from ecash_tpm.crypto.signing import PartyKey, sign_object, verify_object
from ecash_tpm.errors import EcashError, InputError
from ecash_tpm.pki import CrlProvider, load_certificate, verify_party_certificate
from ecash_tpm.protocol.errors import OpeningsDisagreeError, RegistryConflictError
from ecash_tpm.protocol.evidence import (
    EVIDENCE_KIND,
    REGISTRATION_KIND,
    OpeningRecord,
    check_coin_signatures,
    check_double_spend,
    check_request_signatures,
    parse_transcript,
    transcript_bodies,
)
from ecash_tpm.protocol.join_auth import REVOCATION_LIFT_KIND, RevocationLift
from ecash_tpm.protocol.registry import RegistryEntry, member_id_for_t0
from ecash_tpm.storage import Database
from ecash_tpm.supervision import store
from ecash_tpm.supervision.errors import SupervisionConfigError

logger = logging.getLogger("ecash_tpm.supervision")

MAX_REASON = 500


class Revoker(Protocol):
    """Asks the group manager to revoke a member on evidence (IssuerClient-like)."""

    def revoke(self, member_id: str, evidence: dict[str, Any], cert: str | None) -> Any: ...


@dataclass(frozen=True)
class OpeningResult:
    """One opening: who, their T0, the proof, and the audit log id."""

    opening_id: int
    member_id: str
    account_id: str
    epoch: int
    record: OpeningRecord

    def to_dict(self) -> dict[str, Any]:
        return {
            "opening_id": self.opening_id,
            "member_id": self.member_id,
            "account_id": self.account_id,
            "epoch": self.epoch,
            "t0": b64u_encode(self.record.t0.encode()),
            "proof": self.record.proof.to_dict(),
        }


@dataclass(frozen=True)
class DoubleSpendCase:
    """A recorded double spend: the signed evidence and where its revocation stands."""

    case_id: int
    member_id: str
    sigma: bytes
    evidence: dict[str, Any]
    revocation_status: str
    revocation_detail: dict[str, Any] | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "case_id": self.case_id,
            "member_id": self.member_id,
            "sigma": b64u_encode(self.sigma),
            "evidence": self.evidence,
            "revocation": {"status": self.revocation_status, "detail": self.revocation_detail},
        }


class SupervisionDepartment:
    """Domain object of the supervision department (one per process).

    ``signer`` signs evidence bundles (its certificate PEM travels with them as ``cert_pem``).
    ``central_bank_root`` enables the checks of issuer registrations and bank transcripts; it is
    required for registrations arriving over HTTP. ``revoker`` is the issuer (IssuerClient, or
    an in-process adapter); without it cases stay ``pending``.
    """

    def __init__(
        self,
        db: Database,
        opener: OpenerSecret,
        *,
        signer: PartyKey,
        cert_pem: str | None = None,
        central_bank_root: x509.Certificate | None = None,
        revoker: Revoker | None = None,
        clock: Callable[[], float] = time.time,
        crl: CrlProvider | None = None,
    ) -> None:
        self.db = db
        #: The central bank's current CRL: every certificate presented here is checked.
        self.crl = crl
        self._opener = opener
        self.signer = signer
        self.cert_pem = cert_pem
        self.central_bank_root = central_bank_root
        self.revoker = revoker
        self.clock = clock

    @property
    def opener_public(self) -> Point:
        """Hop = h*G: configured at the issuer, published to wallets."""
        return self._opener.public

    def _now(self) -> int:
        return int(self.clock())

    def _now_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    # -- registry -------------------------------------------------------------------------

    def register_member(
        self, entry: RegistryEntry, registration: dict[str, Any] | None = None
    ) -> None:
        """Record T0 -> member (idempotent; a different member for a known T0 is a conflict)."""
        if entry.member_id != member_id_for_t0(entry.t0):
            raise InputError("member_id is not derived from t0")
        t0 = entry.t0.encode()
        row: dict[str, Any] = {
            "t0": t0,
            "member_id": entry.member_id,
            "account_id": entry.account_id,
            "epoch": entry.epoch,
            "registration": None if registration is None else _json(registration),
            "now": self._now(),
        }
        with self.db.transaction() as tx:
            if not store.insert_registration(tx, row):
                existing = store.registry_by_t0(tx, t0)
                if existing is None or existing["member_id"] != entry.member_id:
                    raise RegistryConflictError("T0 is registered to another member")
                store.update_registration(tx, row)
        logger.info("member registered", extra={"member_id": entry.member_id})

    def register_signed(self, registration: dict[str, Any], cert: str | None) -> RegistryEntry:
        """An issuer-signed registration (HTTP): issuer certificate and signature checked."""
        if self.central_bank_root is None:
            raise SupervisionConfigError(
                "central_bank_root is not configured: cannot authenticate the issuer"
            )
        if not cert:
            raise InputError("the registration must come with the issuer certificate")
        key = verify_party_certificate(
            cert, self.central_bank_root, role="issuer", now=self._now_dt(), crl=self.crl
        )
        body = verify_object(registration, key, REGISTRATION_KIND)
        entry = RegistryEntry.from_body(body)
        self.register_member(entry, registration)
        return entry

    def registry(self) -> list[dict[str, Any]]:
        with self.db.read() as tx:
            return store.list_registry(tx)

    # -- opening --------------------------------------------------------------------------

    def open(self, c1: Point, c2: Point, *, reason: str) -> OpeningResult:
        """Open (c1, c2): T0, the registered member, and the Chaum-Pedersen proof.

        Every opening is logged with its reason; an unregistered T0 is logged and then refused
        with ``open.unknown_member``.
        """
        reason = reason.strip()
        if not reason or len(reason) > MAX_REASON:
            raise InputError(f"an opening needs a reason of 1..{MAX_REASON} characters")
        t0, proof = open_proof(self._opener.h, c1, c2)
        record = OpeningRecord(c1, c2, t0, proof)
        with self.db.transaction() as tx:
            entry = store.registry_by_t0(tx, t0.encode())
            opening_id = store.insert_opening(
                tx,
                {
                    "c1": c1.encode(),
                    "c2": c2.encode(),
                    "t0": t0.encode(),
                    "member_id": None if entry is None else entry["member_id"],
                    "reason": reason,
                    "proof": proof.to_bytes(),
                    "now": self._now(),
                },
            )
        if entry is None:
            raise UnknownMemberError(
                "the opened T0 is not a registered member",
                detail={"t0": b64u_encode(t0.encode()), "opening_id": opening_id},
            )
        logger.warning(
            "spend opened", extra={"member_id": entry["member_id"], "opening_id": opening_id}
        )
        return OpeningResult(
            opening_id, entry["member_id"], entry["account_id"], int(entry["epoch"]), record
        )

    # -- double spending ------------------------------------------------------------------

    def handle_double_spend(
        self, transcripts: Sequence[dict[str, Any]], bank_cert: str | None = None
    ) -> DoubleSpendCase:
        """Evidence for two spends of one serial, and the revocation request (module doc)."""
        if len(transcripts) != 2:
            raise InputError("a double-spend report carries exactly two transcripts")
        cert_obj = None
        if self.central_bank_root is not None:
            if not bank_cert:
                raise InputError("the transcripts must come with the bank certificate")
            verify_party_certificate(
                bank_cert, self.central_bank_root, role="bank", now=self._now_dt(), crl=self.crl
            )
            cert_obj = load_certificate(bank_cert)
        bodies = transcript_bodies(transcripts, bank_cert=cert_obj)
        parsed = [parse_transcript(b) for b in bodies]
        sigma = check_double_spend(parsed[0], parsed[1], self.opener_public)
        if cert_obj is not None:  # 12.1: the coin's blind signature, where the bank sent its keyset
            check_coin_signatures(parsed, cert_obj)
            check_request_signatures(parsed, cert_obj)  # 9.4: a redeem request is bank-signed

        with self.db.read() as tx:
            existing = store.case_for_sigma(tx, sigma)
        if existing is not None:
            return self._retry_revocation(self._case(existing))

        openings: list[OpeningResult] = []
        for t in parsed:
            openings.append(
                self.open(
                    t.proof.c1,
                    t.proof.c2,
                    reason=f"double spend of serial {b64u_encode(sigma)}, "
                    f"transcript {t.transcript_id}",
                )
            )
        if openings[0].record.t0 != openings[1].record.t0:
            raise OpeningsDisagreeError("the two spends open to different members")
        member_id = openings[0].member_id
        body = {
            "member_id": member_id,
            "t0": b64u_encode(openings[0].record.t0.encode()),
            "sigma": b64u_encode(sigma),
            "opener_public": b64u_encode(self.opener_public.encode()),
            "openings": [
                OpeningRecord(
                    o.record.c1, o.record.c2, o.record.t0, o.record.proof, t.transcript_id
                ).to_dict()
                for o, t in zip(openings, parsed, strict=True)
            ],
            "transcripts": [dict(d) for d in transcripts],
            "bank_cert": bank_cert,
            "created_at": self._now(),
        }
        evidence = sign_object(self.signer, EVIDENCE_KIND, body)
        with self.db.transaction() as tx:
            case_id = store.insert_case(tx, sigma, member_id, evidence, self._now())
        logger.warning(
            "double spend: evidence against member",
            extra={"member_id": member_id, "case_id": case_id},
        )
        case = DoubleSpendCase(case_id, member_id, sigma, evidence, "pending")
        return self._retry_revocation(case)

    def _case(self, row: dict[str, Any]) -> DoubleSpendCase:
        detail = row.get("revocation_detail")
        return DoubleSpendCase(
            int(row["case_id"]),
            row["member_id"],
            row["sigma"],
            row["evidence"],
            row["revocation_status"],
            None if detail is None else _loads(detail),
        )

    def _retry_revocation(self, case: DoubleSpendCase) -> DoubleSpendCase:
        if self.revoker is None or case.revocation_status == "revoked":
            return case
        detail: dict[str, Any] | None = None
        try:
            self.revoker.revoke(case.member_id, case.evidence, self.cert_pem)
        except Exception as exc:  # another party: record any failure, retried on the next report
            err = exc if isinstance(exc, EcashError) else EcashError(f"{type(exc).__name__}: {exc}")
            status, detail = "failed", err.to_dict()
            logger.error(
                "revocation request failed",
                extra={"member_id": case.member_id, "code": err.code},
            )
        else:
            status = "revoked"
        with self.db.transaction() as tx:
            store.set_case_status(tx, case.case_id, status, detail, self._now())
        return DoubleSpendCase(
            case.case_id, case.member_id, case.sigma, case.evidence, status, detail
        )

    def case(self, sigma: bytes) -> DoubleSpendCase | None:
        with self.db.read() as tx:
            row = store.case_for_sigma(tx, sigma)
        return None if row is None else self._case(row)

    # -- lifting a revocation (docs/protocol.md "Lifting a revocation") -------------------

    def revocation_lift(self, member_id: str, reason: str) -> dict[str, Any]:
        """The signed ``revocation-lift`` order for the issuer (``POST /v1/members/{id}/lift``):
        the member's account and TPM may join again; its revoked credential stays revoked."""
        lift = RevocationLift(member_id=member_id, reason=reason, issued_at=self._now())
        doc = sign_object(
            self.signer, REVOCATION_LIFT_KIND, RevocationLift.from_body(lift.to_body()).to_body()
        )
        logger.warning("revocation lift signed", extra={"member_id": member_id})
        return doc


def verify_opening_result(hop: Point, c1: Point, c2: Point, t0: Point, proof: OpeningProof) -> None:
    """Anyone's check of an opening (re-exported for callers of the HTTP answer)."""
    OpeningRecord(c1, c2, t0, proof).verify(hop)


def _json(value: dict[str, Any]) -> str:
    return json.dumps(value, sort_keys=True)


def _loads(text: str) -> Any:
    return json.loads(text)
