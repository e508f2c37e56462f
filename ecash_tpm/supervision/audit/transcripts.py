"""Transcripts: each recorded spend is re-verified with the protocol's one spend check.

The row, the body and the deposit must tell one story; then the coin goes through
:func:`~ecash_tpm.protocol.spend.verify_spend` at its deposit time: keyset open for deposit,
coin signature under its keyset, the credential check -- the designated one with the issuer
secret of the coin's epoch, or without the secrets publicly with pairings under the epoch's
certified G2 keys (docs/protocol.md §7.4), skipped and said so without either --, the spend
proof over the recorded
preq with the opener key. ``verify_spend`` stops at the first failure; an auditor wants every
failure, so after a failing step the remaining steps run one by one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any

from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.groupsig import (
    IssuerPublic,
    IssuerSecret,
    verify_credential,
    verify_credential_public,
    verify_spend_proof,
)
from ecash_tpm.errors import EcashError, NotFoundError
from ecash_tpm.protocol.coins import Coin, Spend
from ecash_tpm.protocol.errors import CoinSignatureError, KeysetExpiredError
from ecash_tpm.protocol.evidence import parse_transcript
from ecash_tpm.protocol.spend import CredentialCheck, verify_coin_signature, verify_spend
from ecash_tpm.supervision.audit.context import AuditContext, AuditKeyset, blob

__all__ = ["CoinAudit", "check_transcript"]


MSG_PREFIX_LEN = 32
#: verify_spend's steps in its order (the currency step cannot fail here: the audit passes the
#: keyset's own currency and compares the transcript's separately).
_STEPS = ("window", "signature", "credential", "proof")


class _CredentialRejected(EcashError):
    """The designated credential check failed; told apart from a spend-proof failure."""

    code = "coin.bad_credential"


def check_transcript(
    ctx: AuditContext, t: Mapping[str, Any], d: Mapping[str, Any] | None
) -> dict[str, Any] | None:
    """Verify one recorded spend (``d``: its deposit row); returns its body (None if unreadable)."""
    tid = int(t["transcript_id"])
    sigma = blob(t["sigma"])
    created = int(t["created_at"])
    ctx.counts["coins_verified"] += 1

    def mismatch(name: str, expected: Any, found: Any) -> None:
        ctx.flag(
            "transcript.row_mismatch",
            f"transcript {name} disagrees",
            table="spend_transcript",
            row_id=tid,
            serial=sigma,
            expected=expected,
            found=found,
            field=name,
        )

    try:
        body = json.loads(t["body"])
        if not isinstance(body, dict):
            raise ValueError("body is not an object")
        parsed = parse_transcript({**body, "transcript_id": tid})
        coin = body["spend"]["coin"]
        msg_prefix = b64u_decode(coin["msg_prefix"])
        signature = b64u_decode(coin["signature"])
        if len(msg_prefix) != MSG_PREFIX_LEN or not signature:
            raise ValueError("msg_prefix or signature has the wrong length")
    except (EcashError, ValueError, TypeError, KeyError) as exc:
        message = exc.message if isinstance(exc, EcashError) else str(exc)
        ctx.flag(
            "transcript.malformed",
            f"transcript cannot be parsed: {message}",
            table="spend_transcript",
            row_id=tid,
            serial=sigma,
        )
        return None
    ctx.parsed[tid] = parsed

    # the row, the body and the deposit must tell one story
    pairs: list[tuple[str, Any, Any]] = [
        ("sigma", b64u_encode(sigma), b64u_encode(parsed.sigma)),
        ("sigma", b64u_encode(sigma), body.get("sigma")),
        ("keyset_id", b64u_encode(blob(t["keyset_id"])), b64u_encode(parsed.keyset_id)),
        ("keyset_id", b64u_encode(blob(t["keyset_id"])), body.get("keyset_id")),
        ("epoch", parsed.epoch, body.get("epoch")),
        ("preq", b64u_encode(blob(t["preq"])), b64u_encode(parsed.preq)),
        ("merchant_id", str(t["merchant_id"]), parsed.merchant_id),
        ("deposit_id", str(t["deposit_id"]), body.get("deposit_id")),
        ("deposited_at", created, body.get("deposited_at")),
    ]
    if d is not None:
        pairs += [
            ("preq", b64u_encode(blob(d["preq"])), b64u_encode(blob(t["preq"]))),
            ("merchant_id", str(d["merchant_id"]), str(t["merchant_id"])),
            ("created_at", int(d["created_at"]), created),
        ]
    for name, expected, found in pairs:
        if expected != found:
            mismatch(name, expected, found)

    keyset = ctx.keysets.get(parsed.keyset_id)
    if keyset is None:
        ctx.flag(
            "coin.unknown_keyset",
            "deposited coin under an unknown keyset",
            table="spend_transcript",
            row_id=tid,
            serial=sigma,
            found=parsed.keyset_id.hex(),
        )
    else:
        if body.get("value") != keyset.value:
            mismatch("value", keyset.value, body.get("value"))
        if body.get("currency") != keyset.currency:
            mismatch("currency", keyset.currency, body.get("currency"))
    spent = Coin(parsed.keyset_id, parsed.epoch, parsed.sigma, parsed.coin, msg_prefix, signature)
    CoinAudit(ctx, tid=tid, sigma=sigma, created=created, keyset=keyset).run(
        Spend(spent, parsed.proof), preq=blob(t["preq"])
    )
    return body


class CoinAudit:
    """The spend check of one transcribed coin, every failing step reported as its own kind."""

    def __init__(
        self,
        ctx: AuditContext,
        *,
        tid: int | str,
        sigma: bytes,
        created: int,
        keyset: AuditKeyset | None,
        table: str = "spend_transcript",
    ) -> None:
        self.ctx = ctx
        self.table = table  # where the spend is recorded (a swap's: swap_input, §9.3)
        self.tid = tid
        self.sigma = sigma
        self.created = created
        self.keyset = keyset

    def run(self, spend: Spend, *, preq: bytes) -> None:
        """``verify_spend`` at the deposit time; past a failing step, the rest one by one. Without
        a usable keyset (unknown, or a forged row's key) only the steps that need none run."""
        coin = spend.coin
        credential = self._credential_check(coin.epoch)
        spec = None if self.keyset is None else self.keyset.spec()
        steps: dict[str, Callable[[], None]] = {
            "proof": partial(_verify_proof, spend, hop=self.ctx.hop, preq=preq)
        }
        if self.keyset is not None:
            steps["window"] = partial(_require_deposit, self.keyset, self.created)
        if spec is not None:
            steps["signature"] = partial(verify_coin_signature, coin, spec)
        if credential is not None:
            steps["credential"] = partial(credential, coin)
        start = 0
        if spec is not None:
            try:
                verify_spend(
                    spend,
                    spec,
                    hop=self.ctx.hop,
                    preq=preq,
                    currency=spec.currency,
                    now=self.created,
                    credential_check=credential,
                )
                return
            except EcashError as exc:
                failed = _failed_step(exc)
                self._report(failed, exc, coin)
                start = _STEPS.index(failed) + 1
        for name in _STEPS[start:]:
            step = steps.get(name)
            if step is None:
                continue
            try:
                step()
            except EcashError as exc:
                self._report(name, exc, coin)

    def _report(self, step: str, exc: EcashError, coin: Coin) -> None:
        """Map a failing step of ``verify_spend`` to the audit's violation kind."""
        where: dict[str, Any] = {
            "table": self.table,
            "row_id": self.tid,
            "serial": self.sigma,
        }
        keyset = self.keyset
        if step == "credential":
            self.ctx.flag(
                "coin.bad_credential",
                "coin credential is not valid for its epoch",
                found=exc.detail.get("check", exc.code),
                epoch=coin.epoch,
                **where,
            )
        elif step == "proof":
            self.ctx.flag(
                "spend.bad_proof",
                "spend proof does not verify for the recorded payment request",
                found=exc.code,
                **where,
            )
        elif keyset is None:  # the window and signature steps run only under a known keyset
            return
        elif step == "window":
            self.ctx.flag(
                "coin.keyset_not_depositable",
                "coin accepted outside its keyset's deposit window",
                expected=[keyset.withdraw_from, keyset.deposit_until],
                found=self.created,
                **where,
            )
        else:
            self.ctx.flag(
                "coin.bad_signature",
                "coin signature does not verify under its keyset",
                keyset_id=keyset.keyset_id.hex(),
                **where,
            )

    def _credential_check(self, epoch: int) -> CredentialCheck | None:
        """Step 4: the designated check when the audit holds the issuer secrets (which are
        also checked against the published key), else publicly with the epoch's certified G2
        keys (§7.4), else none (said in ``report.skipped``). Public-only with the epochs'
        keys given, a coin of an epoch that has none is flagged ``coin.unknown_epoch`` (as in
        secret mode: the wallet picks the epoch) and a certified epoch without G2 keys (before
        issue 14) gets its own ``report.skipped`` entry."""
        if self.ctx.secrets is None:
            if self.ctx.issuer_public is None:
                return None  # nothing given: the whole check is skipped (check_deposits says so)
            public = self.ctx.issuer_public.get(epoch)
            if public is None:
                self.ctx.flag(
                    "coin.unknown_epoch",
                    "no certified issuer key for the coin's epoch",
                    table=self.table,
                    row_id=self.tid,
                    serial=self.sigma,
                    found=epoch,
                )
                return None
            if not public.has_g2:
                _skip_legacy_epoch(self.ctx, epoch)
                return None
            self.ctx.counts["credentials_checked_public"] += 1
            return _public_credential_check(public)
        secret = self._epoch_secret(epoch)
        return None if secret is None else _credential_check(secret)

    def _epoch_secret(self, epoch: int) -> IssuerSecret | None:
        """The issuer secret of the coin's epoch (None: skipped, or flagged as unknown)."""
        if self.ctx.secrets is None:
            return None
        try:
            secret = self.ctx.secrets.secret_for_epoch(epoch)
        except NotFoundError:
            self.ctx.flag(
                "coin.unknown_epoch",
                "no issuer secret for the coin's epoch",
                table=self.table,
                row_id=self.tid,
                serial=self.sigma,
                found=epoch,
            )
            return None
        _check_epoch_key(self.ctx, epoch, secret)
        self.ctx.counts["credentials_checked"] += 1
        return secret


def _skip_legacy_epoch(ctx: AuditContext, epoch: int) -> None:
    """One ``report.skipped`` entry per epoch certified without X2, Y2 (§3.6, §7.4)."""
    check = f"coin.credential/epoch/{epoch}"
    if all(entry.get("check") != check for entry in ctx.skipped):
        ctx.skipped.append(
            {
                "check": check,
                "reason": f"issuer epoch {epoch} was certified without G2 keys (before issue 14) "
                "and no issuer secret was given: its coins' credentials were not checked",
            }
        )


def _failed_step(exc: EcashError) -> str:
    """Which step of ``verify_spend`` raised ``exc`` (anything else is the spend proof's)."""
    if isinstance(exc, KeysetExpiredError):
        return "window"
    if isinstance(exc, CoinSignatureError):
        return "signature"
    if isinstance(exc, _CredentialRejected):
        return "credential"
    return "proof"


def _require_deposit(keyset: AuditKeyset, at: int) -> None:
    """Step 1 for a keyset whose key is unusable (no protocol keyset to ask)."""
    if not keyset.can_deposit(at):
        raise KeysetExpiredError("keyset was not valid for deposit then")


def _verify_proof(spend: Spend, *, hop: Point, preq: bytes) -> None:
    """Step 5 on its own (when an earlier step failed, or the keyset is unknown)."""
    coin = spend.coin
    verify_spend_proof(
        spend.proof,
        hop=hop,
        preq=preq,
        keyset_id=coin.keyset_id,
        epoch=coin.epoch,
        sigma=coin.sigma,
        coin=coin.credential,
    )


def _credential_check(secret: IssuerSecret) -> CredentialCheck:
    """Step 4: ``S == y*R, T == x*(R + W)`` with the secret of the coin's epoch."""

    def check(coin: Coin) -> None:
        try:
            verify_credential(secret, *coin.credential)
        except EcashError as exc:
            raise _CredentialRejected(
                exc.message, detail={"check": exc.detail.get("check", exc.code)}
            ) from exc

    return check


def _public_credential_check(public: IssuerPublic) -> CredentialCheck:
    """Step 4 with public data only: the pairing check under the epoch's X2, Y2 (§7.4)."""

    def check(coin: Coin) -> None:
        if public.X2 is None or public.Y2 is None:
            return
        try:
            verify_credential_public(coin.credential, public.X2, public.Y2)
        except EcashError as exc:
            raise _CredentialRejected(
                exc.message, detail={"check": exc.detail.get("check", exc.code)}
            ) from exc

    return check


def _check_epoch_key(ctx: AuditContext, epoch: int, secret: IssuerSecret) -> None:
    """The secret of an epoch must match its published public key (checked once per epoch)."""
    if ctx.issuer_public is None or epoch in ctx.epochs_checked:
        return
    ctx.epochs_checked.add(epoch)
    published = ctx.issuer_public.get(epoch)
    if (
        published is not None
        and (secret.public if published.has_g2 else secret.public_g1) != published
    ):
        ctx.flag(
            "issuer.secret_mismatch",
            "the issuer secret of this epoch does not match the published public key",
            row_id=epoch,
            expected=published.to_dict(),
            found=secret.public.to_dict(),
        )
