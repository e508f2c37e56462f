"""What every wallet verb needs, built once per session instead of passed piece by piece.

Like go-attestation's ``ActivationParameters{...}.Generate()``: the long list of wallet
dependencies (store, trust root, clock, bank, TPM signer, membership facts) becomes one frozen
object, and each verb takes it plus what is specific to the request::

    ctx = WalletContext(store, root, clock, bank_name="bank")
    withdraw(ctx, bank, credential=m.credential, epoch=m.epoch, amount=100, currency="EUR")
    spending = ctx.spending(signer, hop=m.opener_public, expected_t0=m.t0)
    pay(spending, offer["request"], offer["cert"], merchant=shop)

Two levels, because withdrawing needs no TPM (``wallet withdraw`` never opens it) while paying
and buying do: :class:`SpendingContext` is a :class:`WalletContext` with the signer added.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from cryptography import x509

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.groupsig import DaaSigner, make_spend_proof
from ecash_tpm.pki import CrlProvider
from ecash_tpm.protocol.coins import Spend
from ecash_tpm.wallet.coins import HeldCoin
from ecash_tpm.wallet.store import WalletStore

__all__ = [
    "MAX_REQUEST_DEADLINE_S",
    "RootCertificate",
    "SpendingContext",
    "WalletContext",
    "spend_coin",
]

#: The central-bank root as a certificate, DER bytes or PEM text.
RootCertificate = x509.Certificate | bytes | str

#: Furthest a payment request's deadline may lie ahead for the wallet to pay it (issue 10,
#: attack 5): the coins of a sent payment stay pending until the bank's clock passes it.
MAX_REQUEST_DEADLINE_S = 600


@dataclass(frozen=True)
class WalletContext:
    """The wallet's coins and what it trusts: withdrawals and keysets need nothing more."""

    store: WalletStore
    #: Bank, merchant and TTP certificates must chain to this root (docs/protocol.md 1.5).
    root: RootCertificate
    clock: Callable[[], int]
    #: The bank's certificate CN; requests naming another bank are refused (protocol.md 6).
    bank_name: str | None = None
    #: Requests whose deadline lies further ahead are refused before any proof is made.
    max_deadline_s: int = MAX_REQUEST_DEADLINE_S
    #: The central bank's current CRL: merchant and bank certificates on it are refused
    #: (docs/protocol.md, "Revocation"); None only where no CRL is configured.
    crl: CrlProvider | None = None

    def spending(
        self, signer: DaaSigner, *, hop: Point, expected_t0: Point | None = None
    ) -> SpendingContext:
        """This wallet with its TPM signer, ready to pay and buy."""
        return SpendingContext(
            self.store,
            self.root,
            self.clock,
            self.bank_name,
            max_deadline_s=self.max_deadline_s,
            crl=self.crl,
            signer=signer,
            hop=hop,
            expected_t0=expected_t0,
        )


@dataclass(frozen=True, kw_only=True)
class SpendingContext(WalletContext):
    """A wallet that can spend: the TPM's DAA signer and the membership facts its proofs use."""

    signer: DaaSigner
    #: The opener's public key Hop: spend proofs encrypt the member's identity to it.
    hop: Point
    #: The member's registered T0; the TPM's commit must reproduce it (None: not checked).
    expected_t0: Point | None = None


def spend_coin(
    ctx: SpendingContext, hc: HeldCoin, preq: bytes, *, self_check: bool = True
) -> Spend:
    """One TPM2_Commit and one TPM2_Sign over ``preq`` (docs/protocol.md 7): the spend of a
    payment, a swap (9.3) or a redeem (9.4) alike."""
    coin = hc.coin
    proof = make_spend_proof(
        ctx.signer,
        hop=ctx.hop,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
        expected_t0=ctx.expected_t0,
        self_check=self_check,
    )
    return Spend(coin, proof)
