"""The device side of the attested join (DESIGN §4).

:func:`join` runs the whole protocol: AK and DAA key (created or reloaded from the wallet's key
directory), EK choice (RSA-2048 preferred, P-384/P-256 otherwise or on request), join/start,
ActivateCredential, quote, certify, DAA join proof with the TPM, join/finish, the member's check
of the issuer's credential proof, and the atomic write of ``membership.json``.

The steps are also exposed one by one (:func:`prepare_keys`, :func:`start_request`,
:func:`answer_challenge`, :func:`finalize_membership`) so tests can play a misbehaving device.
"""

from __future__ import annotations

import contextlib
import getpass
import os
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.attest import parse_tpm2b_public
from ecash_tpm.attest.ek import parse_ek_certificate
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import (
    Credential,
    CredentialProof,
    DaaSigner,
    IssuerPublic,
    JoinProof,
    make_join_proof,
    verify_credential_proof,
)
from ecash_tpm.crypto.groupsig.errors import CredentialKeyProofError
from ecash_tpm.crypto.groupsig.keyproof import CredentialKeyProof, verify_credential_key
from ecash_tpm.device import EkKind
from ecash_tpm.errors import EcashError, InputError, ProtocolError
from ecash_tpm.progress import ProgressCallback, silent
from ecash_tpm.protocol.api.issuer import (
    EkPresentation,
    IssuerInfo,
    JoinFinishRequest,
    JoinFinishResponse,
    JoinStartRequest,
    JoinStartResponse,
)
from ecash_tpm.protocol.certified import IssuerEpochCertificate
from ecash_tpm.protocol.errors import IssuerEpochCertificateError
from ecash_tpm.protocol.join import join_qualifying_data, join_secret
from ecash_tpm.protocol.join_auth import join_binding
from ecash_tpm.wallet.context import RootCertificate
from ecash_tpm.wallet.ek_source import EK_PREFERENCE, EkCertificateSource, choose_ek_certificate
from ecash_tpm.wallet.membership import (
    Membership,
    WalletAlreadyJoinedError,
    has_membership,
    key_dir,
    save_membership,
)
from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

if TYPE_CHECKING:
    from ecash_tpm.clients.bank import BankClient
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.device import KeyRef, TpmDevice

Progress = ProgressCallback
"""``progress(message, done, total)`` (see :mod:`ecash_tpm.progress`)."""

JOIN_STEPS = 8
"""Steps :func:`join` reports: keys, join/start, ActivateCredential, quote, certify, DAA proof,
join/finish, credential check."""


EVENT_LOG_PATH = Path("/sys/kernel/security/tpm0/binary_bios_measurements")
"""Where Linux exposes the firmware's TCG event log (readable by root)."""


class EventLogReadError(InputError):
    """The event log file given for the join cannot be read."""

    code = "wallet.event_log_unreadable"


def read_event_log(path: str | os.PathLike[str] | None = None) -> bytes | None:
    """The boot's TCG event log for join/finish: ``path``, else the kernel's if readable.

    An explicit file must be readable (``wallet.event_log_unreadable``); the kernel's file is
    optional (absent without a TPM, root-only on most systems), so None when it cannot be read.
    """
    if path is not None:
        try:
            return Path(path).read_bytes()
        except OSError as exc:
            raise EventLogReadError(
                f"cannot read the event log {path}: {exc.strerror or exc}",
                detail={"path": str(path)},
            ) from exc
    try:
        return EVENT_LOG_PATH.read_bytes() or None
    except OSError:
        return None


class JoinAnswerError(ProtocolError):
    """The issuer's answer does not fit the request (other epoch key, malformed credential)."""

    code = "wallet.join_answer_invalid"


@dataclass(frozen=True)
class DeviceKeys:
    """The keys one join uses."""

    ak: KeyRef
    daa: KeyRef
    ek_kind: EkKind
    ek_cert: bytes | None = None
    """The certificate join/start sends (from NV, a file or a URL); None: read NV then."""
    other_ek_kinds: tuple[EkKind, ...] = ()
    """Every further EK type with a certificate in NV: presented and activated too, so the
    issuer knows all EKs of this TPM (docs/protocol.md 3.1)."""


def choose_ek(device: TpmDevice, preferred: EkKind | str | None = None) -> EkKind:
    """The EK to attest with: ``preferred`` if given, else the first EK type of
    :data:`.ek_source.EK_PREFERENCE` with a certificate in NV (see :mod:`.ek_source`)."""
    return choose_ek_certificate(device, preferred).kind


def prepare_keys(
    device: TpmDevice,
    data_dir: str | os.PathLike[str],
    ek_kind: EkKind | str | None = None,
    ek_source: EkCertificateSource | None = None,
) -> DeviceKeys:
    """Pick the EK and its certificate (NV, or ``ek_source``), then create or reload the AK and
    DAA key in ``data_dir/tpm``."""
    ek = choose_ek_certificate(device, ek_kind, ek_source)
    keys = key_dir(data_dir)
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    ak = device.load_or_create_ak(keys)
    daa = device.load_or_create_daa_key(keys)
    present = device.ek_kinds_present()
    others = tuple(k for k in EK_PREFERENCE if k != ek.kind and k in present)
    return DeviceKeys(ak, daa, ek.kind, ek.certificate, others)


def release_keys(device: TpmDevice, keys: DeviceKeys) -> None:
    """Flush the join's AK and DAA key (the TPM has few object slots; they reload from blobs)."""
    for ref in (keys.ak, keys.daa):
        with contextlib.suppress(EcashError):
            device.unload(ref)


def start_request(
    device: TpmDevice,
    keys: DeviceKeys,
    account_id: str,
    authorisation: Mapping[str, Any] | None = None,
) -> JoinStartRequest:
    """join/start body: EK certificate (as found) and public, AK public, DAA public, every
    further EK, and the bank's ``{authorisation, cert}`` (see :func:`authorise`)."""
    return JoinStartRequest(
        account_id=account_id,
        ek_cert=keys.ek_cert if keys.ek_cert is not None else device.ek_certificate(keys.ek_kind),
        ek_public=device.ek_public(keys.ek_kind),
        ak_public=keys.ak.public,
        daa_public=keys.daa.public,
        authorisation=None if authorisation is None else authorisation["authorisation"],
        authorisation_cert=None if authorisation is None else authorisation["cert"],
        other_eks=[
            EkPresentation(ek_cert=device.ek_certificate(k), ek_public=device.ek_public(k))
            for k in keys.other_ek_kinds
        ],
    )


def authorise(bank: BankClient, keys: DeviceKeys) -> dict[str, Any]:
    """The bank's join authorisation for the logged-in account, bound to this join's AK."""
    return bank.join_authorisation(join_binding(keys.ak.public))


def answer_challenge(
    device: TpmDevice,
    keys: DeviceKeys,
    challenge: JoinStartResponse,
    *,
    signer: DaaSigner | None = None,
    progress: ProgressCallback | None = None,
    event_log: bytes | None = None,
) -> JoinFinishRequest:
    """ActivateCredential, quote, certify and DAA proof -> join/finish body.

    ``signer`` defaults to the TPM's DAA key (tests pass another to play an attacker);
    ``progress`` hears of the four TPM steps (``done`` 1..4 of 4) before each starts;
    ``event_log`` (see :func:`read_event_log`) lets the issuer replay the boot against the quote.
    """
    say = progress or silent
    say("ActivateCredential", 1, 4)
    secret = device.activate_credential(
        keys.ak, keys.ek_kind, challenge.credential_blob, challenge.encrypted_secret
    )
    if len(challenge.other_challenges) != len(keys.other_ek_kinds):
        raise JoinAnswerError(
            "the issuer did not answer one challenge per further EK",
            detail={"eks": len(keys.other_ek_kinds), "got": len(challenge.other_challenges)},
        )
    others = [
        device.activate_credential(keys.ak, kind, ch.credential_blob, ch.encrypted_secret)
        for kind, ch in zip(keys.other_ek_kinds, challenge.other_challenges, strict=True)
    ]
    secret = join_secret(secret, others)  # 3.1: the quote binds every EK's secret
    quote_qd, certify_qd = join_qualifying_data(challenge.nonce, secret)
    pcrs = list(challenge.pcr_selection.pcrs)
    say("quote of the PCRs", 2, 4)
    values = device.pcr_read(pcrs)
    quote_attest, quote_sig = device.quote(keys.ak, pcrs, quote_qd)
    say("certify the DAA key", 3, 4)
    certify_attest, certify_sig = device.certify(keys.daa, keys.ak, certify_qd)
    say("DAA join proof", 4, 4)
    proof = make_join_proof(signer or TpmDaaSigner(device, keys.daa), challenge.nonce)
    return JoinFinishRequest(
        join_id=challenge.join_id,
        quote_attest=quote_attest,
        quote_signature=quote_sig,
        pcr_values={str(i): v for i, v in sorted(values.items())},
        certify_attest=certify_attest,
        certify_signature=certify_sig,
        join_proof=proof.to_dict(),
        event_log=event_log,
    )


def finalize_membership(
    data_dir: str | os.PathLike[str],
    *,
    keys: DeviceKeys,
    start: JoinStartRequest,
    finish: JoinFinishRequest,
    answer: JoinFinishResponse,
    info: IssuerInfo,
    issuer_url: str,
    root: RootCertificate | None = None,
    issuer_name: str | None = None,
) -> Membership:
    """Check the issuer's credential proofs (against Q, and against the epoch's certified key
    when ``root`` is given) and store the membership atomically."""
    area = parse_tpm2b_public(keys.daa.public)
    pt = area.ecc_point()
    q = Point.from_xy_bytes(pt.x, pt.y)
    credential = Credential.from_dict(answer.credential)
    cred_proof = CredentialProof.from_dict(answer.credential_proof)
    verify_credential_proof(q, credential, cred_proof)
    if answer.epoch != info.epoch:
        raise JoinAnswerError(
            "the credential is for another epoch than the issuer info fetched",
            detail={"credential_epoch": answer.epoch, "info_epoch": info.epoch},
        )
    issuer_public = check_credential_key(answer, info, credential, root, issuer_name)
    t0 = JoinProof.from_dict(finish.join_proof).t0
    membership = Membership(
        member_id=answer.member_id,
        account_id=start.account_id,
        issuer_url=issuer_url,
        epoch=answer.epoch,
        credential=credential,
        credential_proof=cred_proof,
        q=q,
        t0=t0,
        opener_public=Point.decode(info.opener_public),
        issuer_public=issuer_public,
        ek_kind=keys.ek_kind.value,
        ek_fingerprint=parse_ek_certificate(start.ek_cert).fingerprint,  # the issuer's id of it
        ak_name=keys.ak.name,
        joined_at=int(time.time()),
    )
    save_membership(data_dir, membership)
    return membership


def _tls_name(issuer: object) -> str | None:
    """The issuer's name as its TLS link pinned it (``expect=(role, name)``), if any."""
    expect = getattr(issuer, "expect", None)
    return str(expect[1]) if isinstance(expect, tuple) and len(expect) == 2 else None


def check_credential_key(
    answer: JoinFinishResponse,
    info: IssuerInfo,
    credential: Credential,
    root: RootCertificate | None,
    issuer_name: str | None = None,
) -> IssuerPublic:
    """docs/protocol.md 3.6: refuse a credential not made with the epoch's one key.

    With ``root`` (the wallet CLI, the demo) the key is the (X, Y) the central bank certified for
    the credential's epoch -- the same for every member, so the issuer cannot tag members with
    keys of their own; without it, the (X, Y) the issuer publishes in its info. Returns the key
    checked against. Codes: ``daa.credential_key_proof_missing``, ``issuer_epoch.missing``,
    ``issuer_epoch.invalid``, ``issuer_epoch.mismatch``, ``daa.credential_key_proof_invalid``.
    """
    if answer.credential_key_proof is None:
        raise CredentialKeyProofError(
            "the issuer sent no proof that the credential is under the epoch's key",
            code="daa.credential_key_proof_missing",
        )
    proof = CredentialKeyProof.from_dict(answer.credential_key_proof)
    if root is None:
        public = IssuerPublic.from_dict(info.issuer_public.model_dump())
    else:
        if answer.epoch_certificate is None:
            raise IssuerEpochCertificateError(
                "the issuer sent no central-bank certificate of the epoch's key",
                code="issuer_epoch.missing",
                detail={"epoch": answer.epoch},
            )
        certified = IssuerEpochCertificate.from_signed(answer.epoch_certificate, root)
        if certified.epoch != answer.epoch:
            raise IssuerEpochCertificateError(
                "the certified key is for another epoch than the credential",
                code="issuer_epoch.mismatch",
                detail={"credential_epoch": answer.epoch, "certified_epoch": certified.epoch},
            )
        if issuer_name is not None and certified.issuer != issuer_name:
            raise IssuerEpochCertificateError(  # another issuer's certified key: not ours
                "the certified key is another issuer's",
                code="issuer_epoch.mismatch",
                detail={"issuer": issuer_name, "certified_issuer": certified.issuer[:64]},
            )
        public = certified.public
    verify_credential_key(public, credential, proof)
    return public


def join(
    device: TpmDevice,
    issuer: IssuerClient,
    data_dir: str | os.PathLike[str],
    *,
    account_id: str | None = None,
    ek_kind: EkKind | str | None = None,
    ek_source: EkCertificateSource | None = None,
    progress: Progress | None = None,
    event_log: bytes | None = None,
    root: RootCertificate | None = None,
    bank: BankClient | None = None,
) -> Membership:
    """Run the whole join against ``issuer`` and store the membership in ``data_dir``.

    ``root``: the central-bank root; the credential must then be under the epoch key the
    central bank certified (docs/protocol.md 3.6).

    ``bank``: logged in as the account owner; it signs the join authorisation the issuer
    requires (without it the issuer refuses, ``join.authorisation_missing``).

    Refuses (``wallet.already_joined``) when ``data_dir`` already holds a membership. A failure
    anywhere leaves no membership file (the keys stay and are reused on the next attempt).
    ``progress`` hears of each of the :data:`JOIN_STEPS` steps before it starts; ``event_log``
    (the boot's TCG log, :func:`read_event_log`) goes to join/finish.
    """
    say = progress or silent
    directory = Path(data_dir)
    if has_membership(directory):
        raise WalletAlreadyJoinedError(
            f"{directory} already holds a membership", detail={"data_dir": str(directory)}
        )
    say("loading AK and DAA key", 1, JOIN_STEPS)
    keys = prepare_keys(device, directory, ek_kind, ek_source)
    try:
        info = issuer.info()
        say(f"join/start with the {keys.ek_kind.value} EK", 2, JOIN_STEPS)
        grant = None if bank is None else authorise(bank, keys)
        start = start_request(device, keys, account_id or getpass.getuser(), grant)
        challenge = issuer.join_start(start)

        def tpm_step(message: str, done: int, _total: int) -> None:
            say(message, 2 + done, JOIN_STEPS)

        finish = answer_challenge(device, keys, challenge, progress=tpm_step, event_log=event_log)
        say("join/finish", 7, JOIN_STEPS)
        answer = issuer.join_finish(finish)
        say("checking the credential proof", JOIN_STEPS, JOIN_STEPS)
        if answer.epoch != info.epoch:
            info = issuer.info()
        return finalize_membership(
            directory,
            keys=keys,
            start=start,
            finish=finish,
            answer=answer,
            info=info,
            issuer_url=issuer.base_url,
            root=root,
            issuer_name=_tls_name(issuer),
        )
    finally:
        release_keys(device, keys)
