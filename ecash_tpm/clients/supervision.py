"""HTTP client of the supervision department, and the issuer's HTTP member registry.

The bank reports a double spend with::

    with SupervisionClient(url) as sup:
        case = sup.report_double_spend([transcript_1, transcript_2], bank_cert_pem)
        case.member_id, case.evidence, case.revocation.status
"""

from __future__ import annotations

from typing import Any

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.crypto.bn256 import Point
from ecash_tpm.crypto.signing import PartyKey, sign_object
from ecash_tpm.pki import certificate_fingerprint
from ecash_tpm.protocol.api.supervision import (
    DoubleSpendRequest,
    DoubleSpendResponse,
    OpenerInfo,
    OpenRequest,
    OpenResponse,
    RegistrationRequest,
    RegistrationResponse,
)
from ecash_tpm.protocol.evidence import REGISTRATION_KIND
from ecash_tpm.protocol.registry import RegistryEntry


class SupervisionClient(ServiceClient):
    """Typed calls to the supervision department."""

    default_timeout = 30.0

    def opener_public(self) -> Point:
        info = self.get_json("/v1/opener", response_model=OpenerInfo)
        return Point.decode(info.opener_public)

    def register(self, registration: dict[str, Any], cert: str | None) -> str:
        """POST an issuer-signed registration; returns the member id."""
        res = self.post_json(
            "/v1/registry",
            RegistrationRequest(registration=registration, cert=cert),
            response_model=RegistrationResponse,
        )
        return res.member_id

    def open(self, c1: Point, c2: Point, reason: str) -> OpenResponse:
        return self.post_json(
            "/v1/open",
            OpenRequest(c1=c1.encode(), c2=c2.encode(), reason=reason),
            headers=self.auth_headers(),
            response_model=OpenResponse,
        )

    def report_double_spend(
        self, transcripts: list[dict[str, Any]], cert: str | None
    ) -> DoubleSpendResponse:
        """Two bank-signed transcripts of one serial -> the case (evidence, revocation)."""
        return self.post_json(
            "/v1/double-spend",
            DoubleSpendRequest(transcripts=transcripts, cert=cert),
            response_model=DoubleSpendResponse,
        )


class HttpMemberRegistry:
    """The issuer's :class:`~ecash_tpm.protocol.registry.MemberRegistry` over HTTP.

    Each entry is signed with the issuer's party key (kind ``member-registration``) and sent
    with its certificate, so the supervision department accepts T0s only from the issuer.
    """

    def __init__(self, client: SupervisionClient, key: PartyKey, cert_pem: str) -> None:
        self._client = client
        self._key = key
        self._cert = cert_pem
        self._signer = certificate_fingerprint(cert_pem)

    def register(self, entry: RegistryEntry) -> None:
        doc = sign_object(self._key, REGISTRATION_KIND, entry.to_body(), signer=self._signer)
        self._client.register(doc, self._cert)
