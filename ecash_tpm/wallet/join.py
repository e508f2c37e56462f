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
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ecash_tpm.attest import parse_tpm2b_public
from ecash_tpm.attest.ek import load_ek_certificate
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
from ecash_tpm.device import EkCertificateMissingError, EkKind
from ecash_tpm.errors import EcashError, ProtocolError
from ecash_tpm.pki import certificate_fingerprint
from ecash_tpm.progress import ProgressCallback, silent
from ecash_tpm.protocol.api.issuer import (
    IssuerInfo,
    JoinFinishRequest,
    JoinFinishResponse,
    JoinStartRequest,
    JoinStartResponse,
)
from ecash_tpm.protocol.join import join_qualifying_data
from ecash_tpm.wallet.membership import (
    Membership,
    WalletAlreadyJoinedError,
    has_membership,
    key_dir,
    save_membership,
)
from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

if TYPE_CHECKING:
    from ecash_tpm.clients.issuer import IssuerClient
    from ecash_tpm.device import KeyRef, TpmDevice

EK_PREFERENCE = (EkKind.RSA_2048, EkKind.ECC_P384, EkKind.ECC_P256)

Progress = ProgressCallback
"""``progress(message, done, total)`` (see :mod:`ecash_tpm.progress`)."""

JOIN_STEPS = 8
"""Steps :func:`join` reports: keys, join/start, ActivateCredential, quote, certify, DAA proof,
join/finish, credential check."""


class JoinAnswerError(ProtocolError):
    """The issuer's answer does not fit the request (other epoch key, malformed credential)."""

    code = "wallet.join_answer_invalid"


@dataclass(frozen=True)
class DeviceKeys:
    """The keys one join uses."""

    ak: KeyRef
    daa: KeyRef
    ek_kind: EkKind


def choose_ek(device: TpmDevice, preferred: EkKind | str | None = None) -> EkKind:
    """The EK to attest with: ``preferred`` if given, else RSA-2048, then P-384, then P-256.

    Only EKs with a certificate in NV qualify (the issuer needs the certificate).
    """
    present = device.ek_kinds_present()
    if preferred is not None:
        kind = EkKind(preferred)
        if kind not in present:
            raise EkCertificateMissingError(
                f"this TPM has no {kind.value} EK certificate",
                detail={"ek": kind.value, "present": [k.value for k in present]},
            )
        return kind
    for kind in EK_PREFERENCE:
        if kind in present:
            return kind
    raise EkCertificateMissingError("this TPM has no EK certificate in NV; it cannot join")


def prepare_keys(
    device: TpmDevice, data_dir: str | os.PathLike[str], ek_kind: EkKind | str | None = None
) -> DeviceKeys:
    """Create or reload the AK and DAA key in ``data_dir/tpm`` and pick the EK."""
    keys = key_dir(data_dir)
    keys.mkdir(mode=0o700, parents=True, exist_ok=True)
    ak = device.load_or_create_ak(keys)
    daa = device.load_or_create_daa_key(keys)
    return DeviceKeys(ak, daa, choose_ek(device, ek_kind))


def release_keys(device: TpmDevice, keys: DeviceKeys) -> None:
    """Flush the join's AK and DAA key (the TPM has few object slots; they reload from blobs)."""
    for ref in (keys.ak, keys.daa):
        with contextlib.suppress(EcashError):
            device.unload(ref)


def start_request(device: TpmDevice, keys: DeviceKeys, account_id: str) -> JoinStartRequest:
    """join/start body: EK certificate (as stored in NV) and public, AK public, DAA public."""
    return JoinStartRequest(
        account_id=account_id,
        ek_cert=device.ek_certificate(keys.ek_kind),
        ek_public=device.ek_public(keys.ek_kind),
        ak_public=keys.ak.public,
        daa_public=keys.daa.public,
    )


def answer_challenge(
    device: TpmDevice,
    keys: DeviceKeys,
    challenge: JoinStartResponse,
    *,
    signer: DaaSigner | None = None,
    progress: ProgressCallback | None = None,
) -> JoinFinishRequest:
    """ActivateCredential, quote, certify and DAA proof -> join/finish body.

    ``signer`` defaults to the TPM's DAA key (tests pass another to play an attacker);
    ``progress`` hears of the four TPM steps (``done`` 1..4 of 4) before each starts.
    """
    say = progress or silent
    say("ActivateCredential", 1, 4)
    secret = device.activate_credential(
        keys.ak, keys.ek_kind, challenge.credential_blob, challenge.encrypted_secret
    )
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
) -> Membership:
    """Check the issuer's credential proof against Q and store the membership atomically."""
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
        issuer_public=IssuerPublic.from_dict(info.issuer_public.model_dump()),
        ek_kind=keys.ek_kind.value,
        ek_fingerprint=certificate_fingerprint(load_ek_certificate(start.ek_cert)),
        ak_name=keys.ak.name,
        joined_at=int(time.time()),
    )
    save_membership(data_dir, membership)
    return membership


def join(
    device: TpmDevice,
    issuer: IssuerClient,
    data_dir: str | os.PathLike[str],
    *,
    account_id: str | None = None,
    ek_kind: EkKind | str | None = None,
    progress: Progress | None = None,
) -> Membership:
    """Run the whole join against ``issuer`` and store the membership in ``data_dir``.

    Refuses (``wallet.already_joined``) when ``data_dir`` already holds a membership. A failure
    anywhere leaves no membership file (the keys stay and are reused on the next attempt).
    ``progress`` hears of each of the :data:`JOIN_STEPS` steps before it starts.
    """
    say = progress or silent
    directory = Path(data_dir)
    if has_membership(directory):
        raise WalletAlreadyJoinedError(
            f"{directory} already holds a membership", detail={"data_dir": str(directory)}
        )
    say("loading AK and DAA key", 1, JOIN_STEPS)
    keys = prepare_keys(device, directory, ek_kind)
    try:
        info = issuer.info()
        say(f"join/start with the {keys.ek_kind.value} EK", 2, JOIN_STEPS)
        start = start_request(device, keys, account_id or getpass.getuser())
        challenge = issuer.join_start(start)

        def tpm_step(message: str, done: int, _total: int) -> None:
            say(message, 2 + done, JOIN_STEPS)

        finish = answer_challenge(device, keys, challenge, progress=tpm_step)
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
        )
    finally:
        release_keys(device, keys)
