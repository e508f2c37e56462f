"""HTTP client of the issuer API; remote errors come back as RemoteCallError with their code."""

from __future__ import annotations

from typing import Any

from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.protocol.api.issuer import (
    IssuerInfo,
    JoinFinishRequest,
    JoinFinishResponse,
    JoinStartRequest,
    JoinStartResponse,
    LiftRequest,
    MemberList,
    MemberRecord,
    RevokeRequest,
)


class IssuerClient(ServiceClient):
    """Typed calls to one issuer (wallet join, bank membership checks, supervision revocation)."""

    default_timeout = 30.0

    def info(self) -> IssuerInfo:
        return self.get_json("/v1/issuer/info", response_model=IssuerInfo)

    def join_start(self, req: JoinStartRequest) -> JoinStartResponse:
        return self.post_json("/v1/join/start", req, response_model=JoinStartResponse)

    def join_finish(self, req: JoinFinishRequest) -> JoinFinishResponse:
        return self.post_json("/v1/join/finish", req, response_model=JoinFinishResponse)

    def member(self, member_id: str) -> MemberRecord:
        return self.get_json(f"/v1/members/{member_id}", response_model=MemberRecord)

    def members(
        self, *, account_id: str | None = None, status: str | None = None
    ) -> list[MemberRecord]:
        params = {k: v for k, v in (("account_id", account_id), ("status", status)) if v}
        return self.get_json(
            "/v1/members", params=params, headers=self.auth_headers(), response_model=MemberList
        ).members

    def revoke(
        self, member_id: str, evidence: dict[str, Any], cert: str | None = None
    ) -> MemberRecord:
        """Ask for revocation with the supervision department's evidence bundle."""
        return self.post_json(
            f"/v1/members/{member_id}/revoke",
            RevokeRequest(evidence=evidence, cert=cert),
            response_model=MemberRecord,
        )

    def lift(self, member_id: str, lift: dict[str, Any], cert: str) -> MemberRecord:
        """Lift a revocation with the supervision department's signed ``revocation-lift``."""
        return self.post_json(
            f"/v1/members/{member_id}/lift",
            LiftRequest(lift=lift, cert=cert),
            response_model=MemberRecord,
        )
