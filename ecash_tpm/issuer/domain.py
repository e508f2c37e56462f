"""The group manager's logic (DESIGN §4): attested join, credential issuance, revocation.

No HTTP here: :class:`IssuerService` takes and returns the bodies of
:mod:`ecash_tpm.protocol.api.issuer` so tests drive it directly and the routes are thin.

join/start checks the bank's join authorisation for the account (docs/protocol.md 3.2.1), the
EK certificate chain and its binding to the EK public, the AK and DAA key templates, every
further EK of the TPM, and the bars of :mod:`ecash_tpm.issuer.bars` (no EK of the TPM in an
active or unlifted revoked membership, one active membership per account, no unlifted
revocation on the account); it stores a single-use join state, spends the authorisation and
answers with MakeCredential(EK, Name(AK), secret) per EK, computed in pure Python.

join/finish checks, in order: the join state (known, unused, not expired); the quote (signed by
the AK, type and magic, qualifying data = Hash("ecash-tpm/v1/join-quote", nonce, secret), which
only the TPM that activated the credential could know; pcrSelect exactly the requested
selection; digest of the reported values); the platform -- the event log, if sent, replays to
the quoted PCRs, golden values, measured-boot rules (:meth:`PcrPolicy.check`); the certify of
the DAA key by the AK
(qualifying Hash("ecash-tpm/v1/join-certify", nonce, secret), Name equals Name(DAA public)); the
DAA join proof for Q with the nonce. Then ONE transaction consumes the join state, re-checks the
platform, account and T0 rules, stores the member, every EK of its TPM and its credential and
registers T0 with the supervision department; any failure rolls all of it back and the join
state is burned (single use).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
import time
from collections.abc import Callable, Mapping
from typing import Any

from cryptography import x509

from ecash_tpm.attest import (
    DAA_FORBIDDEN_ATTRIBUTES,
    DAA_REQUIRED_ATTRIBUTES,
    EccCurve,
    PcrValuesError,
    PublicArea,
    QuotePcrSelectionMismatchError,
    TpmAlg,
    check_ak_public,
    check_key_attributes,
    make_credential,
    parse_event_log,
    verify_certify,
    verify_quote,
)
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    JOIN_NONCE_LEN,
    CredentialError,
    JoinProof,
    issue_credential,
    verify_credential,
    verify_join_proof,
)
from ecash_tpm.crypto.groupsig.credential import Credential
from ecash_tpm.crypto.groupsig.keyproof import prove_credential_key
from ecash_tpm.crypto.signing import verify_object
from ecash_tpm.errors import EcashError
from ecash_tpm.issuer import bars, store
from ecash_tpm.issuer.boot_policy import BootFacts
from ecash_tpm.issuer.errors import (
    AccountAlreadyMemberError,
    EkAlreadyMemberError,
    InvalidAccountError,
    JoinExpiredError,
    JoinReplayedError,
    JoinUnknownError,
    MemberNotFoundError,
    MemberNotRevokedError,
    OpenerKeyConfigError,
    RevocationEvidenceError,
    T0RegisteredError,
)
from ecash_tpm.issuer.keys import IssuerKeyStore
from ecash_tpm.issuer.policy import PcrPolicy
from ecash_tpm.issuer.trust import EkTrustStore
from ecash_tpm.pki import CrlProvider, verify_party_certificate
from ecash_tpm.protocol.api.issuer import (
    CredentialChallenge,
    IssuerInfo,
    JoinFinishRequest,
    JoinFinishResponse,
    JoinStartRequest,
    JoinStartResponse,
    MeasuredBootVerdict,
    MemberRecord,
    PcrSelectionModel,
)
from ecash_tpm.protocol.evidence import (
    EVIDENCE_KIND,
    parse_transcript,
    transcript_bodies,
    verify_evidence_body,
)
from ecash_tpm.protocol.join import SECRET_LEN, join_qualifying_data, join_secret
from ecash_tpm.protocol.join_auth import RevocationLift, RevocationLiftInvalidError
from ecash_tpm.protocol.registry import MemberRegistry, RegistryEntry, member_id_for_t0
from ecash_tpm.storage import Database, UniqueViolationError

PURGE_AFTER_S = 86400

logger = logging.getLogger("ecash_tpm.issuer")


def check_daa_public(daa_public: bytes | PublicArea) -> tuple[PublicArea, Point]:
    """DAA key template of DESIGN §4; returns the parsed area and Q.

    BN_P256, ECDAA with SHA-256, sign, fixedTPM|fixedParent|sensitiveDataOrigin|userWithAuth,
    neither restricted nor decrypt.
    """
    area = check_key_attributes(
        daa_public,
        required=DAA_REQUIRED_ATTRIBUTES,
        forbidden=DAA_FORBIDDEN_ATTRIBUTES,
        key_type=TpmAlg.ECC,
        curve=EccCurve.BN_P256,
        scheme=TpmAlg.ECDAA,
        scheme_hash=TpmAlg.SHA256,
        name_alg=TpmAlg.SHA256,
    )
    pt = area.ecc_point()
    return area, Point.from_xy_bytes(pt.x, pt.y).require_finite("Q")


def _check_account(account_id: str) -> str:
    if not account_id or len(account_id) > 128 or not account_id.isprintable():
        raise InvalidAccountError("account_id must be 1..128 printable characters")
    if account_id != account_id.strip():
        raise InvalidAccountError("account_id must not start or end with spaces")
    return account_id


def _parse_pcr_values(raw: Mapping[str, bytes]) -> dict[int, bytes]:
    out: dict[int, bytes] = {}
    for key, value in raw.items():
        if not key.isdigit() or len(key) > 2 or (len(key) == 2 and key[0] == "0"):
            raise PcrValuesError(f"PCR index {key!r} is not a decimal index")
        out[int(key)] = value
    return out


def _member_record(row: Mapping[str, Any]) -> MemberRecord:
    return MemberRecord(
        member_id=row["member_id"],
        account_id=row["account_id"],
        status=row["status"],
        epoch=int(row["epoch"]),
        ek_fingerprint=row["ek_fingerprint"],
        ak_name=row["ak_name"],
        daa_public_point=row["daa_q"],
        pcr_values={str(k): v for k, v in row["pcr_values"].items()},
        joined_at=int(row["joined_at"]),
        updated_at=int(row["updated_at"]),
        revoked_at=None if row.get("revoked_at") is None else int(row["revoked_at"]),
        revocation_reason=row.get("revocation_reason"),
        revocation_lifted_at=(
            None if row.get("revocation_lifted_at") is None else int(row["revocation_lifted_at"])
        ),
    )


class IssuerService:
    """The issuer's domain object: one per process, built by the app's start-up hook.

    ``registry`` receives each new member's T0 (inside the join transaction, see
    :mod:`ecash_tpm.protocol.registry`). ``clock`` (Unix seconds) drives join expiry and EK
    certificate validity, so tests can move time. ``central_bank_root`` lets revocation check
    the supervision department's certificate and signature; the evidence content is always
    re-verified from scratch. ``authorisation_root`` (default ``central_bank_root``) checks the
    bank's join authorisations and the supervision department's revocation lifts; without any
    root every join is refused (``issuer.central_bank_root_missing``).
    """

    def __init__(
        self,
        db: Database,
        keys: IssuerKeyStore,
        trust: EkTrustStore,
        policy: PcrPolicy,
        *,
        opener_public: Point,
        registry: MemberRegistry,
        join_ttl_s: int = 300,
        clock: Callable[[], float] = time.time,
        central_bank_root: x509.Certificate | None = None,
        authorisation_root: x509.Certificate | None = None,
        required_ek_kinds: tuple[str, ...] = ("rsa2048",),
        crl: CrlProvider | None = None,
    ) -> None:
        self.db = db
        self.keys = keys
        self.trust = trust
        self.policy = policy
        self.opener_public = opener_public.require_finite("opener public key")
        self.registry = registry
        self.join_ttl_s = join_ttl_s
        self.clock = clock
        self.central_bank_root = central_bank_root
        # bank join authorisations and supervision lifts (docs/protocol.md "Join authorisation")
        self.authorisation_root = authorisation_root or central_bank_root
        self.required_ek_kinds = required_ek_kinds
        #: The central bank's current CRL for the bank and supervision certificates (13.2).
        self.crl = crl

    def _now(self) -> int:
        return int(self.clock())

    def _now_dt(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), dt.UTC)

    # -- info -----------------------------------------------------------------------------

    def info(self) -> IssuerInfo:
        pub = self.keys.public_info()
        return IssuerInfo.model_validate(
            {
                "epoch": pub.epoch,
                "issuer_public": pub.issuer_public.to_dict(),
                "pcr_selection": self.policy.selection(),
                "opener_public": self.opener_public.encode(),
                "epoch_certificate": self.keys.epoch_certificate(pub.epoch),
            }
        )

    # -- join/start -----------------------------------------------------------------------

    def start_join(self, req: JoinStartRequest) -> JoinStartResponse:
        """Check the platform's identity and keys; answer with the MakeCredential challenge."""
        account_id = _check_account(req.account_id)
        # docs/protocol.md "Join authorisation": the account owner asked the bank for this join
        auth = bars.check_authorisation(req, self.authorisation_root, self._now(), self.crl)
        ek, ek_area = self.trust.verify(req.ek_cert, req.ek_public, now=self._now_dt())
        ak_area = check_ak_public(req.ak_public)
        check_daa_public(req.daa_public)
        fingerprint = ek.fingerprint  # over the EK certificate's original DER
        # 3.2 step 4: every further EK of the TPM, each activated with its own MakeCredential
        primary = bars.PresentedEk(fingerprint, bars.ek_key_id(ek_area), ek_area)
        others = bars.verify_other_eks(self.trust, req.other_eks, primary, self._now_dt())
        bars.check_required_kinds([primary, *others], self.required_ek_kinds)
        with self.db.read() as tx:  # 3.2 steps 5 and 6
            bars.check_platform_free(tx, [(e.fingerprint, e.key_id) for e in (primary, *others)])
            bars.check_account_free(tx, account_id)
        secret = secrets.token_bytes(SECRET_LEN)
        nonce = secrets.token_bytes(JOIN_NONCE_LEN)
        id_object, encrypted_secret = make_credential(ek_area, ak_area.name, secret)
        other_secrets = [secrets.token_bytes(SECRET_LEN) for _ in others]
        other_challenges = [
            CredentialChallenge(credential_blob=blob, encrypted_secret=enc)
            for (blob, enc) in (
                make_credential(e.area, ak_area.name, s)
                for e, s in zip(others, other_secrets, strict=True)
            )
        ]
        now = self._now()
        join_id = "j-" + secrets.token_hex(16)
        expires_at = now + self.join_ttl_s
        row: dict[str, Any] = {
            "join_id": join_id,
            "account_id": account_id,
            "nonce": nonce,
            "secret": secret,
            "ek_fingerprint": fingerprint,
            "ek_cert": req.ek_cert,
            "ek_public": req.ek_public,
            "ak_public": req.ak_public,
            "daa_public": req.daa_public,
            "pcr_selection": self.policy.pcrs,
            "created_at": now,
            "expires_at": expires_at,
        }
        with self.db.transaction() as tx:
            store.purge_joins(tx, now - PURGE_AFTER_S)
            store.insert_join(tx, row)
            store.insert_join_eks(
                tx,
                join_id,
                [(e.fingerprint, e.key_id, s) for e, s in zip(others, other_secrets, strict=True)],
            )
            bars.spend_authorisation(tx, auth, now)
        logger.info("join started", extra={"join_id": join_id, "ek_fingerprint": fingerprint[:16]})
        return JoinStartResponse(
            join_id=join_id,
            nonce=nonce,
            credential_blob=id_object,
            encrypted_secret=encrypted_secret,
            pcr_selection=PcrSelectionModel(pcrs=list(self.policy.pcrs)),
            expires_at=expires_at,
            other_challenges=other_challenges,
        )

    # -- join/finish ----------------------------------------------------------------------

    def finish_join(self, req: JoinFinishRequest) -> JoinFinishResponse:
        """Verify the evidence and create the member, all or nothing (module docstring)."""
        with self.db.read() as tx:
            session = store.get_join(tx, req.join_id)
            if session is not None:
                session["other_eks"] = store.join_eks(tx, req.join_id)
        if session is None:
            raise JoinUnknownError("no such join", detail={"join_id": req.join_id[:64]})
        if session["consumed_at"] is not None:
            raise JoinReplayedError("this join was already used", detail={"join_id": req.join_id})
        try:
            if self._now() > int(session["expires_at"]):
                raise JoinExpiredError(
                    "the join expired; start again",
                    detail={"join_id": req.join_id, "expired_at": int(session["expires_at"])},
                )
            pcr_values, q, proof, facts = self._verify_evidence(session, req)
            answer = self._create_member(session, pcr_values, q, proof)
            if facts is None:
                return answer
            return answer.model_copy(update={"measured_boot": self._verdict(facts, pcr_values)})
        except JoinReplayedError:
            raise
        except EcashError as exc:
            self._burn(req.join_id, exc.code)
            raise
        except Exception:
            self._burn(req.join_id, "internal.error")
            raise

    def _burn(self, join_id: str, code: str) -> None:
        """Use up a join after a failed attempt, so its nonce can never be tried again."""
        try:
            with self.db.transaction() as tx:
                store.consume_join(tx, join_id, self._now(), code)
        except EcashError:
            logger.exception("could not burn join %s after %s", join_id, code)
        logger.warning("join refused", extra={"join_id": join_id, "code": code})

    def _verify_evidence(
        self, session: Mapping[str, Any], req: JoinFinishRequest
    ) -> tuple[dict[int, bytes], Point, JoinProof, BootFacts | None]:
        others = [s for _, _, s in session["other_eks"] if s is not None]
        nonce, secret = session["nonce"], join_secret(session["secret"], others)
        quote_qd, certify_qd = join_qualifying_data(nonce, secret)
        requested = sorted(int(i) for i in session["pcr_selection"])
        pcr_values = _parse_pcr_values(req.pcr_values)
        if sorted(pcr_values) != requested:
            raise QuotePcrSelectionMismatchError(
                "reported PCR values are not the requested selection",
                detail={"requested": {"sha256": requested}, "reported": sorted(pcr_values)},
            )
        verify_quote(
            session["ak_public"], req.quote_attest, req.quote_signature, quote_qd, pcr_values
        )
        event_log = None if req.event_log is None else parse_event_log(req.event_log)
        facts = self.policy.check(pcr_values, event_log)  # replay, golden values, measured boot
        verify_certify(
            session["ak_public"],
            req.certify_attest,
            req.certify_signature,
            certify_qd,
            session["daa_public"],
        )
        _, q = check_daa_public(session["daa_public"])
        proof = JoinProof.from_dict(req.join_proof)
        verify_join_proof(nonce, q, proof)
        return pcr_values, q, proof, facts

    def _verdict(self, facts: BootFacts, pcr_values: Mapping[int, bytes]) -> MeasuredBootVerdict:
        """What the event log said, for the joining device (and the demo) to see."""
        return MeasuredBootVerdict(
            bank=facts.bank,
            events=facts.events,
            replayed_pcrs=sorted(pcr_values),
            secure_boot=facts.secure_boot,
            db_entries=None if facts.db is None else len(facts.db),
            dbx_entries=None if facts.dbx is None else len(facts.dbx),
            boot_applications=[a.hex() for a in facts.applications],
            policy="pcr-values" if self.policy.boot is None else "measured-boot",
        )

    def _create_member(
        self,
        session: Mapping[str, Any],
        pcr_values: dict[int, bytes],
        q: Point,
        proof: JoinProof,
    ) -> JoinFinishResponse:
        epoch = self.keys.current_epoch
        credential, cred_proof = issue_credential(self.keys.secret_for_epoch(epoch), q)
        t0 = proof.t0
        member_id = member_id_for_t0(t0)
        now = self._now()
        join_id = session["join_id"]
        fingerprint = session["ek_fingerprint"]
        with self.db.transaction() as tx:
            if not store.consume_join(tx, join_id, now, "member"):
                raise JoinReplayedError("this join was already used", detail={"join_id": join_id})
            platform = [
                (fingerprint, bars.ek_key_id(session["ek_public"])),
                *((fp, key_id) for fp, key_id, _ in session["other_eks"]),
            ]
            bars.check_platform_free(tx, platform)
            bars.check_account_free(tx, session["account_id"])
            existing = store.member_for_t0(tx, t0.encode())
            if existing is not None:
                raise T0RegisteredError(
                    "this DAA key (T0) is already registered to a member",
                    detail={"member_id": existing},
                )
            try:
                store.insert_member(
                    tx,
                    {
                        "member_id": member_id,
                        "account_id": session["account_id"],
                        "ek_fingerprint": fingerprint,
                        "ek_cert": session["ek_cert"],
                        "ak_name": check_ak_public(session["ak_public"]).name,
                        "daa_q": q.encode(),
                        "t0": t0.encode(),
                        "pcr_values": pcr_values,
                        "epoch": epoch,
                        "join_id": join_id,
                        "now": now,
                    },
                )
            except UniqueViolationError as exc:
                raise self._duplicate(exc, member_id) from exc
            store.insert_member_eks(tx, member_id, platform)
            store.insert_credential(tx, member_id, epoch, credential.to_bytes(), now)
            # Last, so that every local check has passed; a failure here rolls it all back.
            self.registry.register(RegistryEntry(member_id, t0, session["account_id"], epoch))
        logger.info(
            "member joined",
            extra={"member_id": member_id, "epoch": epoch, "ek_fingerprint": fingerprint[:16]},
        )
        return JoinFinishResponse(
            member_id=member_id,
            epoch=epoch,
            credential=credential.to_dict(),
            credential_proof=cred_proof.to_dict(),
            **self._key_proof(epoch, credential),
        )

    def _key_proof(self, epoch: int, credential: Credential) -> dict[str, Any]:
        """docs/protocol.md 3.6: prove the credential is under the epoch's key and hand over
        the central bank's certificate of that key (the member refuses it otherwise)."""
        proof = prove_credential_key(self.keys.secret_for_epoch(epoch), credential)
        return {
            "credential_key_proof": proof.to_dict(),
            "epoch_certificate": self.keys.epoch_certificate(epoch),
        }

    @staticmethod
    def _duplicate(exc: UniqueViolationError, member_id: str) -> EcashError:
        """Turn a unique violation from a racing join into the precise membership error."""
        where = " ".join(
            str(v) for v in (exc.detail.get("constraint"), *exc.detail.get("columns", []))
        )
        if "account" in where:
            return AccountAlreadyMemberError("this account already has an active membership")
        if "ek" in where:
            return EkAlreadyMemberError("this EK already has an active membership")
        return T0RegisteredError(
            "this DAA key (T0) is already registered to a member", detail={"member_id": member_id}
        )

    # -- members --------------------------------------------------------------------------

    def get_member(self, member_id: str) -> MemberRecord:
        return get_member(self.db, member_id)

    def list_members(
        self, *, status: str | None = None, account_id: str | None = None
    ) -> list[MemberRecord]:
        return list_members(self.db, status=status, account_id=account_id)

    def account_may_withdraw(self, account_id: str) -> bool:
        """True when the account has an active membership and no revocation that the
        supervision department has not lifted (the bank refuses revoked members)."""
        with self.db.read() as tx:
            if bars.account_barred(tx, account_id):
                return False
        return any(m.status == "active" for m in self.list_members(account_id=account_id))

    def lift_revocation(self, member_id: str, lift: dict[str, Any], cert: str) -> MemberRecord:
        """docs/protocol.md "Lifting a revocation": the supervision department's signed order
        lets the revoked member's account and TPM join again (its credential stays revoked)."""
        now = self._now()
        order = RevocationLift.from_signed(
            lift, cert, bars.require_root(self.authorisation_root), now=now, crl=self.crl
        )
        if order.member_id != member_id:
            raise RevocationLiftInvalidError(
                "the lift names another member",
                detail={"lift_for": order.member_id[:64], "path": member_id[:64]},
            )
        with self.db.transaction() as tx:
            row = store.get_member(tx, member_id)
            if row is None:
                raise MemberNotFoundError("no such member", detail={"member_id": member_id[:64]})
            if row["status"] != "revoked":
                raise MemberNotRevokedError(
                    "only a revoked member's revocation can be lifted",
                    detail={"member_id": member_id},
                )
            if store.insert_lift(tx, member_id, now, order.reason, lift):
                logger.warning("revocation lifted", extra={"member_id": member_id})
        return get_member(self.db, member_id)

    # -- revocation -----------------------------------------------------------------------

    def revoke(
        self, member_id: str, *, reason: str, evidence: dict[str, Any] | None = None
    ) -> MemberRecord:
        """Revoke a member (idempotent): no credential for later epochs, withdrawals refused."""
        return revoke_member(self.db, member_id, reason=reason, evidence=evidence, now=self._now())

    def revoke_with_evidence(
        self, member_id: str, evidence: dict[str, Any], cert: str | None = None
    ) -> MemberRecord:
        """Revoke on the supervision department's double-spend evidence, after re-checking it.

        The bundle must name this member, and its transcripts and openings must verify from
        scratch (:func:`ecash_tpm.protocol.evidence.verify_evidence_body`) with the opener
        key this issuer publishes, and the opened T0 must be this member's. With a central
        bank root configured, the supervision certificate (role ``supervision``) and its
        signature on the bundle are checked too.
        """
        body = self._evidence_body(evidence, cert)
        verified = verify_evidence_body(body, self.opener_public)
        with self.db.read() as tx:
            row = store.get_member(tx, member_id)
        if row is None:
            raise MemberNotFoundError("no such member", detail={"member_id": member_id[:64]})
        if verified.member_id != member_id or verified.t0.encode() != row["t0"]:
            raise RevocationEvidenceError(
                "the evidence does not open to this member", detail={"member_id": member_id}
            )
        self._check_coin_credential(body)
        reason = "double spend of serial " + b64u_encode(verified.sigma)
        return self.revoke(member_id, reason=reason, evidence=evidence)

    def _check_coin_credential(self, body: dict[str, Any]) -> None:
        """docs/protocol.md 12.1/13: the double-spent coin carries a credential this issuer
        made (designated check with the secret of the coin's epoch): a "coin" the issuer never
        certified is no evidence against a member (issue 10)."""
        t = parse_transcript(transcript_bodies(body["transcripts"], bank_cert=None)[0])
        try:
            verify_credential(self.keys.secret_for_epoch(t.epoch), *t.coin)
        except (CredentialError, EcashError) as exc:
            raise RevocationEvidenceError(
                "the double-spent coin's credential is not this issuer's",
                detail={"check": "credential", "cause": exc.code},
            ) from exc

    def _evidence_body(self, evidence: dict[str, Any], cert: str | None) -> dict[str, Any]:
        if self.central_bank_root is not None:
            if cert is None:
                raise RevocationEvidenceError("evidence must come with the supervision certificate")
            key = verify_party_certificate(
                cert, self.central_bank_root, role="supervision", now=self._now_dt(), crl=self.crl
            )
            return verify_object(evidence, key, EVIDENCE_KIND)
        body = evidence.get("body") if isinstance(evidence, dict) else None
        if not isinstance(body, dict) or evidence.get("kind") != EVIDENCE_KIND:
            raise RevocationEvidenceError("evidence must be a double-spend-evidence object")
        return body


def get_member(db: Database, member_id: str) -> MemberRecord:
    """One member record; ``issuer.member_not_found`` if unknown."""
    with db.read() as tx:
        row = store.get_member(tx, member_id)
    if row is None:
        raise MemberNotFoundError("no such member", detail={"member_id": member_id[:64]})
    return _member_record(row)


def list_members(
    db: Database, *, status: str | None = None, account_id: str | None = None
) -> list[MemberRecord]:
    """Member records, optionally filtered (works on the database alone, e.g. from the CLI)."""
    with db.read() as tx:
        rows = store.list_members(tx, status=status, account_id=account_id)
    return [_member_record(r) for r in rows]


def revoke_member(
    db: Database,
    member_id: str,
    *,
    reason: str,
    evidence: dict[str, Any] | None = None,
    now: int | None = None,
) -> MemberRecord:
    """Set a member revoked with reason and evidence (idempotent; first reason is kept)."""
    when = int(time.time()) if now is None else now
    with db.transaction() as tx:
        if store.get_member(tx, member_id) is None:
            raise MemberNotFoundError("no such member", detail={"member_id": member_id[:64]})
        changed = store.revoke_member(tx, member_id, when, reason[:200], evidence)
    if changed:
        logger.warning("member revoked", extra={"member_id": member_id, "reason": reason})
    return get_member(db, member_id)


def parse_opener_public(text: str) -> Point:
    """Hop from base64url text (65-byte point); raises ``issuer.opener_key_invalid``."""
    try:
        return Point.decode(b64u_decode(text.strip()))
    except EcashError as exc:
        raise OpenerKeyConfigError(f"opener public key is not a BN_P256 point: {exc}") from exc
