"""Client of the central bank's HTTP API, for the other parties and the operator.

Parties fetch the root once (and pin it: compare :func:`root_fingerprint` out of band), then
the CRL before trusting a certificate; the bank submits its supply reports; an operator with
the admin token certifies and revokes. Errors come back as
:class:`~ecash_tpm.service.errors.RemoteCallError` carrying the central bank's own codes
(``cert.revoked``, ``auth.admin_token_invalid``, ``supply_report.conflict``, ...).
"""

from __future__ import annotations

import ssl
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.groupsig import IssuerPublic
from ecash_tpm.crypto.signing import load_public_key, public_key_bytes
from ecash_tpm.pki import load_certificate, load_crl
from ecash_tpm.protocol.api.centralbank import (
    CertifyResponse,
    IssuerEpochAnswer,
    KeysetListAnswer,
    RevokeResponse,
    StoredSupplyReport,
    SupplyReportReceipt,
)
from ecash_tpm.service.errors import RemoteCallError

__all__ = ["CentralBankClient"]


class CentralBankClient(ServiceClient):
    """``CentralBankClient(url, admin_token=...)``; the token is only sent to admin routes."""

    def __init__(
        self,
        base_url: str,
        *,
        admin_token: str | None = None,
        timeout: float = 10.0,
        transport: httpx.BaseTransport | None = None,
        headers: Mapping[str, str] | None = None,
        tls: ssl.SSLContext | None = None,
        expect: tuple[str, str] | None = None,
    ) -> None:
        super().__init__(
            base_url,
            timeout=timeout,
            transport=transport,
            headers=headers,
            token=admin_token,
            tls=tls,
            expect=expect,
        )

    def _get_bytes(self, path: str, params: Mapping[str, str] | None = None) -> bytes:
        """GET a non-JSON resource; error bodies still become :class:`RemoteCallError`."""
        url = self.base_url + path
        try:
            response = self._client.get(path, params=params)
        except httpx.TransportError as exc:
            raise RemoteCallError(
                f"cannot reach {self.base_url}",
                code="remote.unreachable",
                status=None,
                url=url,
                detail={"url": url, "reason": type(exc).__name__},
            ) from exc
        if not 200 <= response.status_code < 300:
            self._decode(response, url, None)  # raises with the remote code
        return response.content

    # --- public -------------------------------------------------------------------------------

    def root_pem(self) -> bytes:
        return self._get_bytes("/v1/root")

    def root_certificate(self) -> x509.Certificate:
        """The root as served; pin it by fingerprint, do not trust it blindly."""
        return load_certificate(self.root_pem())

    def crl(self) -> x509.CertificateRevocationList:
        """The current CRL (verify it against the pinned root: ``verify_party_certificate``)."""
        return load_crl(self._get_bytes("/v1/crl"))

    def submit_supply_report(
        self, report: Mapping[str, Any], cert: x509.Certificate | bytes | str
    ) -> SupplyReportReceipt:
        """Send a signed ``supply-report`` with the bank's certificate."""
        pem = _pem(cert)
        return self.post_json(
            "/v1/supply-reports",
            {"report": dict(report), "cert": pem},
            response_model=SupplyReportReceipt,
        )

    def latest_supply_report(self, bank_id: str | None = None) -> StoredSupplyReport:
        params = None if bank_id is None else {"bank_id": bank_id}
        return self.get_json(
            "/v1/supply-reports/latest", params=params, response_model=StoredSupplyReport
        )

    # --- admin --------------------------------------------------------------------------------

    def certify(
        self,
        role: str,
        name: str,
        public_key: ec.EllipticCurvePublicKey | bytes,
        *,
        valid_days: int | None = None,
    ) -> CertifyResponse:
        """Have the central bank certify ``public_key`` for ``role``/``name`` (admin token)."""
        body: dict[str, Any] = {
            "role": role,
            "name": name,
            "public_key": public_key_bytes(load_public_key(public_key)),
        }
        if valid_days is not None:
            body["valid_days"] = valid_days
        return self.post_json(
            "/v1/certify", body, headers=self.auth_headers(), response_model=CertifyResponse
        )

    def certify_tls(
        self,
        role: str,
        name: str,
        public_key: ec.EllipticCurvePublicKey | bytes,
        *,
        hosts: Sequence[str] = (),
        valid_days: int | None = None,
    ) -> CertifyResponse:
        """Have the central bank issue the TLS certificate of ``role``/``name`` for
        ``public_key`` (also naming ``hosts``; admin token)."""
        body: dict[str, Any] = {
            "role": role,
            "name": name,
            "public_key": public_key_bytes(load_public_key(public_key)),
            "hosts": list(hosts),
        }
        if valid_days is not None:
            body["valid_days"] = valid_days
        return self.post_json(
            "/v1/certify-tls", body, headers=self.auth_headers(), response_model=CertifyResponse
        )

    def revoke(self, serial: int | str, reason: str = "unspecified") -> RevokeResponse:
        """Revoke by serial (int or hex string; admin token)."""
        serial_hex = format(serial, "x") if isinstance(serial, int) else serial
        return self.post_json(
            "/v1/revoke",
            {"serial": serial_hex, "reason": reason},
            headers=self.auth_headers(),
            response_model=RevokeResponse,
        )

    # --- certified issuer epochs and keyset lists (docs/protocol.md 3.6, 4.1) -------------------

    def certify_issuer_epoch(self, issuer: str, epoch: int, public: IssuerPublic) -> dict[str, Any]:
        """The root-signed ``issuer-epoch-key`` for (issuer, epoch) (admin token)."""
        answer = self.post_json(
            "/v1/certify-issuer-epoch",
            {"issuer": issuer, "epoch": epoch, **public.to_dict()},
            headers=self.auth_headers(),
            response_model=IssuerEpochAnswer,
        )
        return dict(answer.certificate)

    def issuer_epoch(self, issuer: str, epoch: int) -> dict[str, Any]:
        answer = self.get_json(
            f"/v1/issuer-epochs/{issuer}/{epoch}", response_model=IssuerEpochAnswer
        )
        return dict(answer.certificate)

    def certify_keyset_list(
        self, bank_cert: x509.Certificate | bytes | str, keysets: Sequence[Mapping[str, Any]]
    ) -> dict[str, Any]:
        """Submit the bank's signed descriptors; the root-signed ``bank-keyset-list``."""
        answer = self.post_json(
            "/v1/keyset-lists",
            {"cert": _pem(bank_cert), "keysets": [dict(k) for k in keysets]},
            response_model=KeysetListAnswer,
        )
        return dict(answer.keyset_list)

    def keyset_list(self, bank: str) -> dict[str, Any]:
        """The bank's current certified keyset list."""
        answer = self.get_json(f"/v1/keyset-lists/{bank}", response_model=KeysetListAnswer)
        return dict(answer.keyset_list)


def _pem(cert: x509.Certificate | bytes | str) -> str:
    return load_certificate(cert).public_bytes(serialization.Encoding.PEM).decode("ascii")
