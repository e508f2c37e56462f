"""The one check of a spent coin (docs/protocol.md, "Payment" and "Deposit"), used by the wallet,
the merchant, the bank, the TTP and the audit alike.

Everything a party without the issuer secret can check runs here, in this order:

1. the coin's keyset is open for deposit at ``now`` (``coin.keyset_expired``);
2. the keyset's currency is the request's (``payment.wrong_currency``);
3. the bank's RSABSSA signature on ``msg_prefix || m`` under the keyset (``coin.bad_signature``);
4. the designated-verifier credential check ``S == y*R, T == x*(R + W)`` -- only the bank (and the
   audit) hold the issuer secret, so they pass it in as ``credential_check``;
5. the TPM spend proof for *this* payment request under the opener key Hop
   (``daa.spend_proof_invalid``).

A party that reports failures under its own codes (the bank) recodes the error it catches, see
:meth:`ecash_tpm.errors.EcashError.recode`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import verify_spend_proof
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import Coin, Spend
from ecash_tpm.protocol.errors import CoinSignatureError, WrongCurrencyError
from ecash_tpm.protocol.keysets import Keyset

__all__ = ["CredentialCheck", "spends_digest", "verify_coin_signature", "verify_spend"]

#: The bank's designated-verifier check of a coin's credential (step 4); raises on failure.
CredentialCheck = Callable[[Coin], None]


def verify_coin_signature(coin: Coin, keyset: Keyset) -> None:
    """Step 3: the bank's RSABSSA signature on ``msg_prefix || m`` under ``keyset``."""
    if keyset.keyset_id != coin.keyset_id:
        raise CoinSignatureError("coin checked against another keyset")
    try:
        blindrsa.verify(
            keyset.public_key,
            coin.prepared(),
            coin.signature,
            salt_length=keyset.variant.salt_length,
        )
    except EcashError as exc:
        raise CoinSignatureError(
            "coin signature does not verify",
            detail={"sigma": b64u_encode(coin.sigma), "cause": exc.code},
        ) from exc


def spends_digest(spends: Iterable[Spend]) -> bytes:
    """SHA-256 of the canonical spend list: tells an identical retry from a different payment."""
    return canonical_digest([sp.to_dict() for sp in spends])


def verify_spend(
    spend: Spend,
    keyset: Keyset,
    *,
    hop: Point,
    preq: bytes,
    currency: str,
    now: int,
    credential_check: CredentialCheck | None = None,
) -> None:
    """Steps 1-5 above for one spent coin of the payment request whose digest is ``preq``."""
    keyset.require_deposit(now)  # (1)
    if keyset.currency != currency:  # (2)
        raise WrongCurrencyError(
            "coin currency differs from the request",
            detail={"coin": keyset.currency, "request": currency},
        )
    coin = spend.coin
    verify_coin_signature(coin, keyset)  # (3)
    if credential_check is not None:  # (4)
        credential_check(coin)
    verify_spend_proof(  # (5)
        spend.proof,
        hop=hop,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
    )
