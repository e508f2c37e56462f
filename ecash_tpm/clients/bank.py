"""httpx client of the bank for wallets, merchants and the TTP (docs/api.md, bank section).

Errors come back as :class:`~ecash_tpm.service.errors.RemoteCallError` carrying the bank's own code
and detail (``bank.double_spend`` with ``detail.transcript_id``, ``bank.coin_locked`` with
``detail.retry_after``...), so callers branch on ``exc.code`` exactly as on a local error. A
``remote.timeout`` on a withdrawal or deposit means "outcome unknown": retry with the *same*
request_id / deposit_id, which the bank answers idempotently.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from cryptography import x509

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.encoding import b64u_decode, b64u_encode
from ecash_tpm.crypto.signing import load_public_key
from ecash_tpm.pki import load_certificate, verify_party_certificate
from ecash_tpm.protocol.keysets import BankKeysets, Keyset
from ecash_tpm.service.errors import RemoteCallError

__all__ = ["BankClient"]


class BankClient(ServiceClient):
    """One bank's HTTP API. Thread-safe; keeps the bearer token of the last login."""

    # --- customer -----------------------------------------------------------------------------

    def login(self, account_id: str, password: str, totp: str) -> dict[str, Any]:
        """Log in; the token is kept for :meth:`account` and :meth:`withdraw`."""
        answer: dict[str, Any] = self.post_json(
            "/v1/login", {"account_id": account_id, "password": password, "totp": totp}
        )
        self.token = answer["token"]
        return answer

    def account(self) -> dict[str, Any]:
        """``{account_id, balance, currency}`` of the logged-in customer."""
        answer: dict[str, Any] = self.get_json("/v1/account", headers=self.auth_headers())
        return answer

    def withdraw(self, request_id: str, items: Sequence[tuple[bytes, bytes]]) -> list[bytes]:
        """Blind signatures for ``[(keyset_id, blinded_msg)]``, in order."""
        answer = self.post_json(
            "/v1/withdraw",
            {
                "request_id": request_id,
                "items": [
                    {"keyset_id": b64u_encode(k), "blinded_msg": b64u_encode(m)} for k, m in items
                ],
            },
            headers=self.auth_headers(),
        )
        return [b64u_decode(s) for s in answer["blind_signatures"]]

    def swap(self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]) -> list[bytes]:
        """docs/protocol.md 9.3: blind signatures on the swap's outputs, in order (no login)."""
        answer = self.post_json("/v1/swap", {"request": dict(request), "spends": list(spends)})
        return [b64u_decode(s) for s in answer["blind_signatures"]]

    def redeem_request(self, amount: int) -> dict[str, Any]:
        """docs/protocol.md 9.4: ``{request, cert}``, a bank-signed redeem request for the
        logged-in account."""
        answer: dict[str, Any] = self.post_json(
            "/v1/redeem/request", {"amount": amount}, headers=self.auth_headers()
        )
        return answer

    def redeem(
        self, request: Mapping[str, Any], spends: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """docs/protocol.md 9.4: ``{receipt, cert}`` for coins redeemed into the account."""
        answer: dict[str, Any] = self.post_json(
            "/v1/redeem",
            {"request": dict(request), "spends": list(spends)},
            headers=self.auth_headers(),
        )
        return answer

    def join_authorisation(self, binding: str) -> dict[str, Any]:
        """``{authorisation, cert}``: the bank-signed join authorisation for the logged-in
        account, bound to ``binding`` = Hash(join-binding, AK public) (docs/protocol.md)."""
        answer: dict[str, Any] = self.post_json(
            "/v1/join-authorisation", {"binding": binding}, headers=self.auth_headers()
        )
        return answer

    # --- public -------------------------------------------------------------------------------

    def keysets(
        self, *, central_bank_root: x509.Certificate | str | bytes | None = None
    ) -> BankKeysets:
        """The bank's keysets; with ``central_bank_root`` the bank certificate is checked too
        (without it only the descriptors' signatures under the presented certificate are)."""
        answer = self.get_json("/v1/keysets")
        cert = load_certificate(answer["bank_cert"])
        key = (
            verify_party_certificate(cert, central_bank_root, role="bank")
            if central_bank_root is not None
            else load_public_key(cert)
        )
        signed = list(answer["keysets"])
        return BankKeysets(
            cert,
            [Keyset.from_signed(d, key) for d in signed],
            signed,
            keyset_list=answer.get("keyset_list"),
        )

    def issuer_epoch(self, epoch: int) -> dict[str, Any]:
        """The central bank's ``issuer-epoch-key`` of ``epoch`` as the bank publishes it
        (docs/protocol.md 3.6; check it with ``IssuerEpochCertificate.from_signed``)."""
        path = f"/v1/issuer-epochs/{int(epoch)}"
        answer = self.get_json(path)
        cert = answer.get("certificate") if isinstance(answer, dict) else None
        if not isinstance(cert, dict):  # a 200 of the wrong shape is the bank's fault, typed
            raise RemoteCallError(
                "issuer epoch: expected {certificate: {...}}",
                code="remote.bad_response",
                status=200,
                url=path,
            )
        return dict(cert)

    def coin_status(self, sigma: bytes) -> dict[str, Any]:
        """``{sigma, state, locked_until?}`` with state unspent | locked | spent."""
        answer: dict[str, Any] = self.get_json(f"/v1/coins/{b64u_encode(sigma)}")
        return answer

    def coin_statuses(self, serials: Sequence[bytes]) -> dict[str, Any]:
        """``{status, cert}``: the bank-signed ``coin-status`` of ``serials`` (one request;
        verify with :meth:`ecash_tpm.protocol.status.CoinStatusStatement.from_signed`)."""
        answer: dict[str, Any] = self.post_json(
            "/v1/coins/status", {"serials": [b64u_encode(s) for s in serials]}
        )
        return answer

    def claim_refund(
        self,
        *,
        claim_id: str,
        permission: Mapping[str, Any],
        merchant_cert: str,
        outputs: Sequence[tuple[bytes, bytes]],
        proofs: Sequence[Mapping[str, Any]],
    ) -> list[bytes]:
        """``POST /v1/refunds/claim`` (anonymous): blind signatures on the fresh coins, in
        order (docs/protocol.md "Refunds"). An identical retry gets the same signatures."""
        answer = self.post_json(
            "/v1/refunds/claim",
            {
                "claim_id": claim_id,
                "permission": dict(permission),
                "merchant_cert": merchant_cert,
                "outputs": [
                    {"keyset_id": b64u_encode(k), "blinded_msg": b64u_encode(m)} for k, m in outputs
                ],
                "proofs": [dict(p) for p in proofs],
            },
        )
        return [b64u_decode(s) for s in answer["blind_signatures"]]

    # --- merchant -----------------------------------------------------------------------------

    def reserve(self, signed_reserve: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        """Hold coins for the lock period: ``{locked_until, serials}``."""
        answer: dict[str, Any] = self.post_json(
            "/v1/reserve", {**dict(signed_reserve), "cert": cert_pem}
        )
        return answer

    def deposit(self, signed_deposit: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        """Deposit; ``{receipt, cert}`` with the bank-signed receipt and the bank certificate."""
        answer: dict[str, Any] = self.post_json(
            "/v1/deposit", {**dict(signed_deposit), "cert": cert_pem}
        )
        return answer

    # --- supervision --------------------------------------------------------------------------

    def lift_blacklist(self, signed_lift: Mapping[str, Any], cert_pem: str) -> dict[str, Any]:
        """Lift a blacklist entry with a supervision-signed ``blacklist-lift`` order."""
        answer: dict[str, Any] = self.post_json(
            "/v1/blacklist/lift", {**dict(signed_lift), "cert": cert_pem}
        )
        return answer
