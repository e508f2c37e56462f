"""Test helper: a whole small e-cash world without a TPM (reusable by other parties' tests).

Builds what the bank, merchants and wallets exchange, with the real cryptography:
``SoftwareDaaSigner`` stands in for the TPM's ECDAA key, credentials come from
``groupsig.issue_credential``, coins are blind-signed by a bank through RFC 9474, spends carry
real spend proofs. Nothing here is a fake of the protocol — only the TPM is simulated.

    world = Pki.create(tmp_path)                      # central bank + bank/merchant certs
    issuer = TestIssuer()                             # epoch secrets + membership
    alice = issuer.enroll("alice")                    # DAA key + credential
    pending = [prepare_coin(alice, keyset) for keyset in split]
    sigs = bank.withdraw("alice", "req-0001", [p.item for p in pending]).blind_signatures
    coins = [p.finalize(s) for p, s in zip(pending, sigs)]
    spend = make_spend(alice, coins[0], preq, hop)
"""

from __future__ import annotations

import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import Encoding

from ecash_tpm.centralbank.ca import CentralBankCA
from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import (
    Credential,
    IssuerSecret,
    OpenerSecret,
    RandomizedCredential,
    issue_credential,
    make_spend_proof,
    open_proof,
    verify_credential_proof,
)
from ecash_tpm.crypto.signing import PartyKey
from ecash_tpm.crypto.softdaa import SoftwareDaaSigner
from ecash_tpm.errors import NotFoundError
from ecash_tpm.protocol.coins import Coin, Spend, sign_payment_request
from ecash_tpm.protocol.keysets import Keyset

# --- time, keys, reports -----------------------------------------------------------------------


class TestClock:
    """A settable clock (Unix seconds) to inject wherever the code takes ``clock``."""

    __test__ = False  # not a pytest test class

    def __init__(self, now: int | None = None) -> None:
        self.now = int(time.time()) if now is None else now
        self._lock = threading.Lock()

    def __call__(self) -> int:
        with self._lock:
            return self.now

    def advance(self, seconds: int) -> int:
        with self._lock:
            self.now += seconds
            return self.now


class KeyPool:
    """RSA keys generated once per test module (key generation dominates test time).

    ``pool.keygen_for_bank()`` gives one bank a ``keygen`` that hands out the pooled keys in
    order, so keys are unique *within* a bank while several test banks share the pool; when a
    bank has used them all, fresh keys are generated rather than reused.
    """

    def __init__(self, count: int, bits: int = 2048) -> None:
        self.bits = bits
        self.keys = [blindrsa.generate_key(bits) for _ in range(count)]

    def keygen_for_bank(self) -> Callable[[int], rsa.RSAPrivateKey]:
        remaining = list(self.keys)
        lock = threading.Lock()

        def keygen(bits: int) -> rsa.RSAPrivateKey:
            with lock:
                if bits == self.bits and remaining:
                    return remaining.pop(0)
            return blindrsa.generate_key(bits)

        return keygen


class RecordingReporter:
    """A DoubleSpendReporter that keeps every report (thread-safe)."""

    def __init__(self, fail: bool = False) -> None:
        self.reports: list[tuple[dict[str, Any], dict[str, Any]]] = []
        self.fail = fail
        self._lock = threading.Lock()

    def report(self, transcript_a: Mapping[str, Any], transcript_b: Mapping[str, Any]) -> Any:
        if self.fail:
            raise RuntimeError("supervision department unreachable (test)")
        with self._lock:
            self.reports.append((dict(transcript_a), dict(transcript_b)))
        return {"received": len(self.reports)}


# --- PKI ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Party:
    """A certified party: its name, key and certificate (PEM)."""

    name: str
    key: PartyKey
    cert_pem: str

    @property
    def cert(self) -> Any:
        from ecash_tpm.pki import load_certificate

        return load_certificate(self.cert_pem)


@dataclass
class Pki:
    """A central bank CA with certified parties, made once per test module."""

    root_pem: str
    bank: Party
    supervision: Party
    merchants: dict[str, Party] = field(default_factory=dict)
    _ca: Any = None

    @classmethod
    def create(
        cls, directory: Path, *, bank: str = "bank", merchants: Iterable[str] = ("shop-a",)
    ) -> Pki:
        ca = CentralBankCA.create(directory / "central-bank")
        root_pem = ca.root_certificate.public_bytes(Encoding.PEM).decode("ascii")

        def certify(role: str, name: str) -> Party:
            key = PartyKey.generate()
            cert = ca.certify(role, name, key.public_key)
            return Party(name, key, cert.public_bytes(Encoding.PEM).decode("ascii"))

        pki = cls(
            root_pem=root_pem,
            bank=certify("bank", bank),
            supervision=certify("supervision", "supervision"),
            _ca=ca,
        )
        for name in merchants:
            pki.merchants[name] = certify("merchant", name)
        pki._certify = certify  # type: ignore[attr-defined]
        return pki

    def certify(self, role: str, name: str, *, register: bool = True) -> Party:
        """One more certified party (e.g. a second merchant); ``register=False`` keeps it out
        of :attr:`merchants` (a rogue key for an existing name)."""
        party: Party = self._certify(role, name)  # type: ignore[attr-defined]
        if role == "merchant" and register:
            self.merchants[name] = party
        return party

    def tls_files(self, role: str, name: str, directory: Path) -> Any:
        """A TLS key and certificate for ``role``/``name`` (127.0.0.1, localhost) from this
        CA, written to ``directory`` (0600): a :class:`~ecash_tpm.service.tls.TlsFiles` to
        serve with, or ``(files.cert, files.key)`` to present as client (mutual TLS)."""
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ec

        from ecash_tpm.service.tls import TlsFiles

        directory.mkdir(parents=True, exist_ok=True)
        key = ec.generate_private_key(ec.SECP256R1())
        cert = self._ca.certify_tls(role, name, key.public_key(), hosts=("127.0.0.1", "localhost"))
        paths = (directory / "tls-cert.pem", directory / "tls-key.pem", directory / "root.pem")
        paths[0].write_bytes(cert.public_bytes(Encoding.PEM))
        paths[1].write_bytes(
            key.private_bytes(
                Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        paths[2].write_text(self.root_pem)
        for path in paths[:2]:
            path.chmod(0o600)
        return TlsFiles(cert=paths[0], key=paths[1], root=paths[2])

    def close(self) -> None:
        close = getattr(self._ca, "close", None)
        if close is not None:
            with contextlib.suppress(Exception):
                close()


# --- issuer and members --------------------------------------------------------------------------


@dataclass(frozen=True)
class Member:
    """A wallet's group membership: the (simulated) TPM key and the issued credential."""

    account_id: str
    signer: SoftwareDaaSigner
    credential: Credential
    epoch: int

    @property
    def t0(self) -> Point:
        return self.signer.t0


class TestIssuer:
    """IssuerSecrets + MembershipCheck for tests: secrets per epoch, active accounts."""

    __test__ = False

    def __init__(self, epochs: Iterable[int] = (1,)) -> None:
        self.secrets = {e: IssuerSecret.generate() for e in epochs}
        self.active: set[str] = set()
        self.opener = OpenerSecret.generate()
        #: epoch -> the central bank's ``issuer-epoch-key`` (protocol §3.6), when a test made one
        self.certificates: dict[int, dict[str, Any]] = {}

    def epoch_certificate(self, epoch: int) -> dict[str, Any] | None:
        """What ``IssuerKeyStore.epoch_certificate`` gives: the bank publishes it (§7.4)."""
        return self.certificates.get(epoch)

    @property
    def hop(self) -> Point:
        return self.opener.public

    def secret_for_epoch(self, epoch: int) -> IssuerSecret:
        try:
            return self.secrets[epoch]
        except KeyError:
            raise NotFoundError("unknown epoch", detail={"epoch": epoch}) from None

    def is_active_member(self, account_id: str) -> bool:
        return account_id in self.active

    def enroll(self, account_id: str, epoch: int = 1) -> Member:
        signer = SoftwareDaaSigner()
        cred, proof = issue_credential(self.secrets[epoch], signer.public_point)
        verify_credential_proof(signer.public_point, cred, proof)
        self.active.add(account_id)
        return Member(account_id, signer, cred, epoch)

    def revoke(self, account_id: str) -> None:
        self.active.discard(account_id)

    def open_t0(self, proof_dict: Mapping[str, Any]) -> Point:
        """Supervision's opening of a spend proof dict: T0 = c2 - h*c1 (with its proof)."""
        from ecash_tpm.crypto.groupsig import SpendProof

        p = SpendProof.from_dict(proof_dict)
        t0, _ = open_proof(self.opener.h, p.c1, p.c2)
        return t0


# --- coins ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class PendingCoin:
    """A coin between blind() and finalize(): what the wallet keeps during a withdrawal."""

    keyset: Keyset
    epoch: int
    sigma: bytes
    credential: RandomizedCredential
    msg_prefix: bytes
    prepared: bytes
    blinded: bytes
    inv: bytes

    @property
    def item(self) -> tuple[bytes, bytes]:
        """``(keyset_id, blinded_msg)`` for the withdrawal request."""
        return (self.keyset.keyset_id, self.blinded)

    def finalize(self, blind_sig: bytes) -> Coin:
        sig = blindrsa.finalize(
            self.keyset.public_key,
            self.prepared,
            blind_sig,
            self.inv,
            salt_length=self.keyset.variant.salt_length,
        )
        return Coin(
            self.keyset.keyset_id, self.epoch, self.sigma, self.credential, self.msg_prefix, sig
        )


def prepare_coin(member: Member, keyset: Keyset) -> PendingCoin:
    """Fresh serial, fresh randomized credential, blinded coin message for ``keyset``."""
    sigma = secrets.token_bytes(32)
    cred = member.credential.randomize()
    unsigned = Coin(keyset.keyset_id, member.epoch, sigma, cred, b"\x00" * 32, b"\x00")
    prepared = blindrsa.prepare(unsigned.message())
    blinded, inv = blindrsa.blind(
        keyset.public_key, prepared, salt_length=keyset.variant.salt_length
    )
    return PendingCoin(keyset, member.epoch, sigma, cred, prepared[:32], prepared, blinded, inv)


def withdraw_coins(
    withdraw: Callable[[str, list[tuple[bytes, bytes]]], list[bytes]],
    member: Member,
    keysets: Iterable[Keyset],
    request_id: str | None = None,
) -> list[Coin]:
    """Blind, call ``withdraw(request_id, items) -> blind signatures``, finalize."""
    pending = [prepare_coin(member, k) for k in keysets]
    rid = request_id or "w-" + secrets.token_hex(12)
    sigs = withdraw(rid, [p.item for p in pending])
    return [p.finalize(s) for p, s in zip(pending, sigs, strict=True)]


def make_spend(member: Member, coin: Coin, preq: bytes, hop: Point) -> Spend:
    """The wallet's spend of ``coin`` for the request digest ``preq``."""
    proof = make_spend_proof(
        member.signer,
        hop=hop,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
    )
    return Spend(coin, proof)


def payment_request(
    merchant: Party,
    *,
    amount: int,
    currency: str = "EUR",
    bank: str = "bank",
    deadline: int,
    product_id: str | None = None,
) -> dict[str, Any]:
    """A merchant-signed payment request (fresh nonce and contract hash)."""
    return sign_payment_request(
        merchant.key,
        merchant_id=merchant.name,
        amount=amount,
        currency=currency,
        contract_hash=secrets.token_bytes(32),
        nonce=secrets.token_bytes(16),
        deadline=deadline,
        bank=bank,
        product_id=product_id,
    )


def split_amount(amount: int, keysets: Iterable[Keyset]) -> list[Keyset]:
    """Greedy split of ``amount`` into the given denominations (largest first)."""
    by_value = sorted(keysets, key=lambda k: k.value, reverse=True)
    out: list[Keyset] = []
    rest = amount
    for keyset in by_value:
        while rest >= keyset.value:
            out.append(keyset)
            rest -= keyset.value
    if rest:
        raise ValueError(f"cannot split {amount} into {[k.value for k in by_value]}")
    return out
