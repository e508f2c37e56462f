"""The member state a wallet keeps after joining, in its data directory.

Layout of a wallet data directory (shared with the wallet's coin code)::

    membership.json    this module: credential, epoch, member id, issuer URL, Q, T0 ... (0600)
    tpm/               AK and DAA key blobs (ak.pub/ak.priv, daa.pub/daa.priv) written by the
                       device layer; the private blobs are wrapped by the TPM and useless elsewhere

``membership.json`` is written atomically (temporary file, fsync, rename) and only after the
issuer's credential proof verified, so a crash never leaves a half-joined wallet. Nothing in
it is secret in the cryptographic sense (sk never leaves the TPM), but (A, B, C, D) and T0 link
the member's coins, so it is private (mode 0600).

Coin code uses::

    m = load_membership(data_dir)
    with TpmDevice(tcti) as dev:
        signer = open_signer(dev, data_dir, m)      # TpmDaaSigner; checks Q matches
        coin = m.credential.randomize()             # (R, S, T, W) for one coin
        proof = make_spend_proof(signer, hop=m.opener_public, ..., expected_t0=m.t0)
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import Credential, CredentialProof, IssuerPublic
from ecash_tpm.crypto.signing import write_file_atomic
from ecash_tpm.errors import ConflictError, EcashError, NotFoundError, StorageError

if TYPE_CHECKING:
    from ecash_tpm.device import TpmDevice
    from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

MEMBERSHIP_FILE = "membership.json"
KEY_DIR = "tpm"
FORMAT_VERSION = 1


class WalletNotJoinedError(NotFoundError):
    """The wallet data directory holds no membership: run ``ecash-tpm wallet join``."""

    code = "wallet.not_joined"


class WalletAlreadyJoinedError(ConflictError):
    """The wallet already has a membership; a second join would orphan it."""

    code = "wallet.already_joined"


class MembershipFileError(StorageError):
    """membership.json is unreadable or malformed."""

    code = "wallet.membership_invalid"


class WalletKeyMismatchError(StorageError):
    """The DAA key in the wallet's key directory is not the one the credential was issued to."""

    code = "wallet.key_mismatch"


@dataclass(frozen=True)
class Membership:
    """Everything the wallet needs to make coins as a member."""

    member_id: str
    account_id: str
    issuer_url: str
    epoch: int
    credential: Credential
    credential_proof: CredentialProof
    q: Point
    t0: Point
    opener_public: Point
    issuer_public: IssuerPublic
    ek_kind: str
    ek_fingerprint: str
    ak_name: bytes
    joined_at: int
    key_dir: str = KEY_DIR
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": FORMAT_VERSION,
            "member_id": self.member_id,
            "account_id": self.account_id,
            "issuer_url": self.issuer_url,
            "epoch": self.epoch,
            "credential": self.credential.to_dict(),
            "credential_proof": self.credential_proof.to_dict(),
            "q": b64u_encode(self.q.encode()),
            "t0": b64u_encode(self.t0.encode()),
            "opener_public": b64u_encode(self.opener_public.encode()),
            "issuer_public": self.issuer_public.to_dict(),
            "ek_kind": self.ek_kind,
            "ek_fingerprint": self.ek_fingerprint,
            "ak_name": b64u_encode(self.ak_name),
            "joined_at": self.joined_at,
            "key_dir": self.key_dir,
            "extra": dict(self.extra),
        }

    @classmethod
    def from_dict(cls, data: Any) -> Membership:
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise MembershipFileError(f"membership must be an object with version {FORMAT_VERSION}")
        try:
            return cls(
                member_id=str(data["member_id"]),
                account_id=str(data["account_id"]),
                issuer_url=str(data["issuer_url"]),
                epoch=int(data["epoch"]),
                credential=Credential.from_dict(data["credential"]),
                credential_proof=CredentialProof.from_dict(data["credential_proof"]),
                q=Point.decode(b64u_decode(data["q"])),
                t0=Point.decode(b64u_decode(data["t0"])),
                opener_public=Point.decode(b64u_decode(data["opener_public"])),
                issuer_public=IssuerPublic.from_dict(data["issuer_public"]),
                ek_kind=str(data["ek_kind"]),
                ek_fingerprint=str(data["ek_fingerprint"]),
                ak_name=b64u_decode(data["ak_name"]),
                joined_at=int(data["joined_at"]),
                key_dir=str(data.get("key_dir", KEY_DIR)),
                extra=dict(data.get("extra") or {}),
            )
        except (KeyError, TypeError, ValueError) as exc:
            raise MembershipFileError(f"membership file lacks or mangles a field: {exc}") from None
        except EcashError as exc:
            raise MembershipFileError(f"membership file is malformed: {exc.message}") from None

    def summary(self) -> dict[str, Any]:
        """What ``wallet join --json`` prints (nothing that links coins)."""
        return {
            "member_id": self.member_id,
            "account_id": self.account_id,
            "issuer_url": self.issuer_url,
            "epoch": self.epoch,
            "ek_kind": self.ek_kind,
            "ek_fingerprint": self.ek_fingerprint,
            "joined_at": self.joined_at,
        }


def membership_path(data_dir: str | os.PathLike[str]) -> Path:
    return Path(data_dir) / MEMBERSHIP_FILE


def key_dir(data_dir: str | os.PathLike[str], membership: Membership | None = None) -> Path:
    """Where the AK/DAA key blobs of this wallet live."""
    return Path(data_dir) / (membership.key_dir if membership else KEY_DIR)


def has_membership(data_dir: str | os.PathLike[str]) -> bool:
    return membership_path(data_dir).exists()


def load_membership(data_dir: str | os.PathLike[str]) -> Membership:
    """Read membership.json; ``wallet.not_joined`` if absent."""
    path = membership_path(data_dir)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise WalletNotJoinedError(
            f"no membership in {os.fspath(data_dir)!r}; run `ecash-tpm wallet join`",
            detail={"data_dir": os.fspath(data_dir)},
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MembershipFileError(f"cannot read {path}: {exc}") from exc
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise MembershipFileError(f"{path} is not JSON") from exc
    return Membership.from_dict(data)


def save_membership(data_dir: str | os.PathLike[str], membership: Membership) -> Path:
    """Write membership.json atomically with mode 0600 (directory created 0700)."""
    directory = Path(data_dir)
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    path = membership_path(directory)
    data = (json.dumps(membership.to_dict(), indent=2, sort_keys=True) + "\n").encode()
    try:
        write_file_atomic(path, data, mode=0o600)
    except OSError as exc:
        raise MembershipFileError(f"cannot write {path}: {exc}") from exc
    return path


def open_signer(
    device: TpmDevice, data_dir: str | os.PathLike[str], membership: Membership | None = None
) -> TpmDaaSigner:
    """The member's :class:`TpmDaaSigner`, after checking its Q is the credential's key."""
    from ecash_tpm.wallet.tpm_signer import TpmDaaSigner

    m = membership or load_membership(data_dir)
    keys = key_dir(data_dir, m)
    if not (keys / "daa.pub").exists():
        raise WalletKeyMismatchError(
            f"the member's DAA key blobs are missing from {keys}",
            detail={"member_id": m.member_id, "key_dir": str(keys)},
        )
    daa = device.load_or_create_daa_key(keys)
    signer = TpmDaaSigner(device, daa)
    if signer.public_point != m.q:
        raise WalletKeyMismatchError(
            "the DAA key in the wallet's key directory is not the member's key",
            detail={"member_id": m.member_id},
        )
    return signer
