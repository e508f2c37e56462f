"""What ``ecash-tpm bank serve`` injects into the bank: the one place that picks implementations.

- issuer secrets: the issuer's :class:`~ecash_tpm.issuer.keys.IssuerKeyStore` on the directory
  both share (same operator), ``[bank] issuer_secrets_dir``;
- membership: :class:`IssuerMembership` asks the issuer's ``GET /v1/members?account_id=..&
  status=active`` (``[bank] issuer_url``); ``membership = "open"`` treats every account as an
  active member (demos only: revocation then has no effect on withdrawals);
- double-spend reports: :class:`HttpDoubleSpendReporter` posts both transcripts and the bank
  certificate to the supervision department's ``/v1/double-spend`` (``[bank] supervision_url``);
  without it :class:`UnwiredReporter` fails each report, which stays recorded as ``failed`` and
  is sent by ``retry_double_spend_reports`` once configured.

Imports of the other parties are lazy so the bank package itself depends on none of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ecash_tpm.bank.protocols import DoubleSpendReporter, IssuerSecrets, MembershipCheck
from ecash_tpm.bank.settings import BankSettings
from ecash_tpm.clients.base import ServiceClient
from ecash_tpm.clients.connect import Link, party_link
from ecash_tpm.errors import ConfigError

__all__ = [
    "AdminOnly",
    "BankDependencies",
    "HttpDoubleSpendReporter",
    "IssuerMembership",
    "OpenMembership",
    "UnwiredReporter",
    "double_spend_reporter",
    "issuer_link",
    "load_dependencies",
]


class OpenMembership:
    """Every account counts as an active member. Demos only: revocation has no effect."""

    def is_active_member(self, account_id: str) -> bool:
        return True


class IssuerMembership:
    """Active membership from the issuer's HTTP API (one call per withdrawal)."""

    def __init__(
        self, issuer_url: str, *, token: str | None, link: Link, timeout: float = 10.0
    ) -> None:
        from ecash_tpm.clients.issuer import IssuerClient

        self._client = IssuerClient(
            issuer_url, timeout=timeout, token=token, tls=link.tls, expect=link.expect
        )

    def is_active_member(self, account_id: str) -> bool:
        return bool(self._client.members(account_id=account_id, status="active"))

    def close(self) -> None:
        self._client.close()


class HttpDoubleSpendReporter:
    """``POST /v1/double-spend`` ``{transcripts: [t1, t2], cert}`` to the supervision dept."""

    def __init__(
        self, base_url: str, bank_cert_pem: str, *, link: Link, timeout: float = 30.0
    ) -> None:
        self._client = ServiceClient(base_url, timeout=timeout, tls=link.tls, expect=link.expect)
        self._cert = bank_cert_pem

    def report(self, transcript_a: Mapping[str, Any], transcript_b: Mapping[str, Any]) -> Any:
        return self._client.post_json(
            "/v1/double-spend",
            {"transcripts": [dict(transcript_a), dict(transcript_b)], "cert": self._cert},
        )

    def close(self) -> None:
        self._client.close()


class AdminOnly:
    """Protocols an administrative command (or a deployment step) never needs: accounts,
    keysets and merchant registrations work without them; using one is a configuration bug."""

    def secret_for_epoch(self, epoch: int) -> Any:
        raise ConfigError("issuer secrets are not available to administrative commands")

    def is_active_member(self, account_id: str) -> bool:
        raise ConfigError("membership checks are not available to administrative commands")

    def report(self, transcript_a: Any, transcript_b: Any) -> Any:
        raise ConfigError("double-spend reports are sent by 'bank serve' or 'bank reports retry'")


class UnwiredReporter:
    """Fails every report (recorded as ``failed``, retried once a reporter is configured)."""

    def report(self, transcript_a: Mapping[str, Any], transcript_b: Mapping[str, Any]) -> Any:
        raise ConfigError("no supervision_url configured: double-spend report kept for retry")


def issuer_link(settings: BankSettings) -> Link:
    """TLS to the issuer (role ``issuer``, ``issuer_name``) with the bank's client certificate:
    the issuer lists members only to a bank."""
    if settings.issuer_url is None:  # pragma: no cover - callers check
        raise ConfigError("issuer_url is not set", detail={"setting": "issuer_url"})
    return party_link(
        settings,
        settings.issuer_url,
        role="issuer",
        name=settings.issuer_name,
        root=settings.path("central_bank_root"),
    )


def double_spend_reporter(settings: BankSettings, bank_cert_pem: str) -> DoubleSpendReporter:
    """Reports to ``supervision_url`` over mutual TLS (the department takes reports only from
    a bank's client certificate), or :class:`UnwiredReporter` without one."""
    if not settings.supervision_url:
        return UnwiredReporter()
    link = party_link(
        settings,
        settings.supervision_url,
        role="supervision",
        name=settings.supervision_name,
        root=settings.path("central_bank_root"),
    )
    return HttpDoubleSpendReporter(settings.supervision_url, bank_cert_pem, link=link)


@dataclass(frozen=True)
class BankDependencies:
    """The protocols :class:`~ecash_tpm.bank.domain.BankDomain` needs."""

    issuer_secrets: IssuerSecrets
    membership: MembershipCheck
    reporter: DoubleSpendReporter


def load_dependencies(settings: BankSettings, bank_cert_pem: str) -> BankDependencies:
    """Build the protocols from settings; a ConfigError names whatever is missing."""
    if settings.issuer_secrets_dir is None:
        raise ConfigError(
            "issuer_secrets_dir is not set: the bank needs the issuer's epoch secrets to check "
            "coin credentials",
            detail={"setting": "issuer_secrets_dir"},
        )
    from ecash_tpm.issuer.keys import IssuerKeyStore

    secrets = IssuerKeyStore.open(settings.issuer_secrets_dir)
    membership: MembershipCheck
    if settings.membership == "open":
        membership = OpenMembership()
    elif settings.issuer_url and (settings.issuer_token or not settings.insecure_http):
        membership = IssuerMembership(
            settings.issuer_url,
            token=settings.issuer_token if settings.insecure_http else None,
            link=issuer_link(settings),
        )
    elif settings.issuer_url:
        raise ConfigError(
            "issuer_token is not set: over plain HTTP (insecure_http) the issuer lists members "
            "only to holders of its members_token, so every withdrawal would fail",
            detail={"setting": "issuer_token"},
        )
    else:
        raise ConfigError(
            "issuer_url is not set: the bank asks the issuer whether an account's member is "
            "active (or set membership = 'open' for a demo)",
            detail={"setting": "issuer_url"},
        )
    reporter = double_spend_reporter(settings, bank_cert_pem)
    return BankDependencies(issuer_secrets=secrets, membership=membership, reporter=reporter)
