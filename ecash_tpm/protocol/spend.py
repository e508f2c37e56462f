"""The one check of a spent coin (docs/protocol.md, "Payment" and "Deposit"), used by the wallet,
the merchant, the bank, the TTP and the audit alike.

Everything a party without the issuer secret can check runs here, in this order:

1. the coin's keyset is open for deposit at ``now`` (``coin.keyset_expired``);
2. the keyset's currency is the request's (``payment.wrong_currency``);
3. the bank's RSABSSA signature on ``msg_prefix || m`` under the keyset (``coin.bad_signature``);
4. the credential check ``S == y*R, T == x*(R + W)``, passed in as ``credential_check``: the bank
   runs it with the issuer secret (designated), everybody else with pairings and the epoch's
   certified G2 keys (:class:`PublicCredentialCheck`, docs/protocol.md §7.4);
5. the TPM spend proof for *this* payment request under the opener key Hop
   (``daa.spend_proof_invalid``).

A party that reports failures under its own codes (the bank) recodes the error it catches, see
:meth:`ecash_tpm.errors.EcashError.recode`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from ecash_tpm.crypto import blindrsa
from ecash_tpm.crypto.bn256 import Point, multi_mult
from ecash_tpm.crypto.encoding import b64u_encode
from ecash_tpm.crypto.groupsig import (
    IssuerPublic,
    check_spend_challenge,
    combine_terms,
    spend_equation_terms,
    verify_credential_public,
    verify_credentials_public,
    verify_spend_proof,
)
from ecash_tpm.crypto.signing import canonical_digest
from ecash_tpm.errors import EcashError
from ecash_tpm.protocol.coins import Coin, Spend
from ecash_tpm.protocol.errors import (
    CoinSignatureError,
    TooManyEpochsError,
    UnknownEpochError,
    WrongCurrencyError,
)
from ecash_tpm.protocol.keysets import Keyset

__all__ = [
    "CredentialBatch",
    "CredentialCheck",
    "EpochKeyLookup",
    "MAX_PAYMENT_EPOCHS",
    "IndexedCredentialCheck",
    "PublicCredentialCheck",
    "spend_proofs_batch_ok",
    "spends_digest",
    "verify_coin_signature",
    "verify_spend",
    "verify_spends",
]

#: The bank's designated-verifier check of a coin's credential (step 4); raises on failure.
CredentialCheck = Callable[[Coin], None]
#: Step 4 for all coins of one payment at once (random-weight batch): True when all pass.
CredentialBatch = Callable[[Sequence[Coin]], bool]
#: Step 4 for the coin at ``index`` (the per-coin fallback that names the bad coin).
IndexedCredentialCheck = Callable[[int, Coin], None]
#: The certified issuer key of an epoch (from an ``issuer-epoch-key``); None when unknown, which
#: refuses the coin (``coin.unknown_epoch``); may raise its own typed refusal.
EpochKeyLookup = Callable[[int], IssuerPublic | None]


#: Most distinct issuer epochs one payment's coins may span (docs/protocol.md §7.4): every new
#: epoch may cost a certificate fetch and adds two Miller loops, so a payment cannot make a
#: verifier look up and pair under dozens of epochs (``payment.too_many_epochs``).
MAX_PAYMENT_EPOCHS = 2


class PublicCredentialCheck:
    """Step 4 with public data only (docs/protocol.md §7.4): the pairing check of each coin
    under its epoch's certified G2 keys, as the hooks of :func:`verify_spend` (``check``) and
    :func:`verify_spends` (``indexed``, ``batch``). One object per verification.

    Fail closed: an epoch the lookup knows nothing of (None) refuses the coin
    (``coin.unknown_epoch``), and the lookup's own errors (e.g. 503 when the key cannot be
    fetched) propagate; only an epoch whose *verified* certificate predates issue 14 (no X2,
    Y2) is skipped and listed in :attr:`unverified`, so the caller can say that the bank's
    verdict decides for it. More than ``max_epochs`` distinct epochs:
    ``payment.too_many_epochs``, before any lookup. A bad credential raises
    ``daa.credential_invalid`` (detail ``check``). ``epoch_key=None`` is a deployment whose bank
    publishes no epoch keys: every coin is left to the bank (the operator's choice, never the
    customer's)."""

    def __init__(
        self, epoch_key: EpochKeyLookup | None, *, max_epochs: int = MAX_PAYMENT_EPOCHS
    ) -> None:
        self._lookup = epoch_key
        self._max_epochs = max_epochs
        self._keys: dict[int, IssuerPublic | None] = {}
        #: epochs whose coins were left to the bank (verified certificate without G2 keys)
        self.unverified: set[int] = set()
        #: coins checked with pairings
        self.verified = 0

    def _require_epochs(self, epochs: set[int]) -> None:
        if len(epochs | self._keys.keys()) > self._max_epochs:
            raise TooManyEpochsError(
                "the coins of one payment span too many issuer epochs",
                detail={"epochs": len(epochs | self._keys.keys()), "max": self._max_epochs},
            )

    def _key(self, epoch: int) -> IssuerPublic | None:
        if epoch not in self._keys:
            self._require_epochs({epoch})
            if self._lookup is None:
                self._keys[epoch] = None
                self.unverified.add(epoch)
                return None
            key = self._lookup(epoch)
            if key is None:
                raise UnknownEpochError(
                    "no certified issuer key for the coin's epoch", detail={"epoch": epoch}
                )
            self._keys[epoch] = key if key.has_g2 else None
        key = self._keys[epoch]
        if key is None:
            self.unverified.add(epoch)
        return key

    def check(self, coin: Coin) -> None:
        """One coin (:data:`CredentialCheck`)."""
        key = self._key(coin.epoch)
        if key is None or key.X2 is None or key.Y2 is None:
            return
        # one weighted product (one final exponentiation); both equations only to name a failure
        if not verify_credentials_public([(coin.credential, key.X2, key.Y2)]):
            verify_credential_public(coin.credential, key.X2, key.Y2)
        self.verified += 1

    def indexed(self, index: int, coin: Coin) -> None:
        """:meth:`check` as the per-coin fallback of :func:`verify_spends`."""
        self.check(coin)

    def batch(self, coins: Sequence[Coin]) -> bool:
        """All coins as one pairing product (:data:`CredentialBatch`, §7.3/§7.4). A refused
        epoch (unknown, unavailable) names the first coin of it (``index``)."""
        self._require_epochs({coin.epoch for coin in coins})
        items = []
        for index, coin in enumerate(coins):
            try:
                key = self._key(coin.epoch)
            except EcashError as exc:
                raise exc.recode(exc.code, detail={"index": index}) from exc
            if key is not None and key.X2 is not None and key.Y2 is not None:
                items.append((coin.credential, key.X2, key.Y2))
        ok = verify_credentials_public(items)
        if ok:
            self.verified += len(items)
        return ok


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
    _coin_checks(spend, keyset, currency=currency, now=now, credential_check=credential_check)
    _proof_check(spend, hop=hop, preq=preq)


def _coin_checks(
    spend: Spend,
    keyset: Keyset,
    *,
    currency: str,
    now: int,
    credential_check: CredentialCheck | None,
) -> None:
    """Steps 1-4."""
    _cheap_checks(spend, keyset, currency=currency, now=now)
    if credential_check is not None:  # (4)
        credential_check(spend.coin)


def _cheap_checks(spend: Spend, keyset: Keyset, *, currency: str, now: int) -> None:
    """Steps 1-3: what a coin must pass before any epoch lookup or pairing is spent on it
    (docs/protocol.md §7.4, availability). Its epoch is inside the bank-signed message, so a
    coin that reaches step 4 names an epoch some withdrawal paid for."""
    keyset.require_deposit(now)  # (1)
    if keyset.currency != currency:  # (2)
        raise WrongCurrencyError(
            "coin currency differs from the request",
            detail={"coin": keyset.currency, "request": currency},
        )
    verify_coin_signature(spend.coin, keyset)  # (3)


def _proof_check(spend: Spend, *, hop: Point, preq: bytes) -> None:
    """Step 5."""
    coin = spend.coin
    verify_spend_proof(  # (5)
        spend.proof,
        hop=hop,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
    )


def verify_spends(
    items: Sequence[tuple[Spend, Keyset]],
    *,
    hop: Point,
    preq: bytes,
    currency: str,
    now: int,
    credential_check: IndexedCredentialCheck | None = None,
    credential_batch: CredentialBatch | None = None,
) -> None:
    """:func:`verify_spend` for every coin of one payment; an error carries the coin's
    ``index`` in its detail (docs/protocol.md §7.3, "Batch verification").

    Steps 1-3 (keyset window, currency, RSA signature) run for every coin first, in order: a
    coin failing them is named before any credential work, so junk coins cost a verifier no
    epoch lookup and no pairing (§7.4). Then, with more than one coin and a
    ``credential_batch``, step 4 runs once for all coins with random weights; if that batch
    passes, the per-coin credential check is skipped, otherwise every coin is checked one by
    one, so the first bad coin is named with exactly the error (code and detail) a per-coin
    check gives. Step 5 last (batched too).
    """
    for index, (spend, keyset) in enumerate(items):
        try:
            _cheap_checks(spend, keyset, currency=currency, now=now)
        except EcashError as exc:
            raise exc.recode(exc.code, detail={"index": index}) from exc
    batch_ok = False
    if credential_check is not None and credential_batch is not None and len(items) > 1:
        batch_ok = credential_batch([spend.coin for spend, _ in items])
    proofs_ok = len(items) > 1 and spend_proofs_batch_ok(items, hop=hop, preq=preq)
    for index, (spend, _) in enumerate(items):
        try:
            if credential_check is not None and not batch_ok:
                credential_check(index, spend.coin)  # (4)
            if not proofs_ok:
                _proof_check(spend, hop=hop, preq=preq)
        except EcashError as exc:
            raise exc.recode(exc.code, detail={"index": index}) from exc


def spend_proofs_batch_ok(
    items: Sequence[tuple[Spend, Keyset]], *, hop: Point, preq: bytes
) -> bool:
    """Step 5 for all coins at once (docs/protocol.md §7.3): every proof carries its
    commitments, every c' matches them, and one random-weight multi-scalar multiplication
    shows that all commitments satisfy their equations. False when any of that fails or a
    proof has the first encoding: the caller then checks proof by proof."""
    terms: list[tuple[int, Point]] = []
    for spend, _ in items:
        proof, coin = spend.proof, spend.coin
        if proof.commitments is None:
            return False
        try:
            check_spend_challenge(
                proof,
                preq=preq,
                keyset_id=coin.keyset_id,
                epoch=coin.epoch,
                sigma=coin.sigma,
                coin=coin.credential,
            )
        except EcashError:
            return False
        terms += spend_equation_terms(proof, coin.credential, hop, first=not terms)
    return multi_mult(combine_terms(terms)).is_infinity
