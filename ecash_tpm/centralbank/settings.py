"""Settings of the central bank service (TOML section ``[centralbank]``).

Besides the common keys (host, port, data_dir, database_url, ...) the central bank needs the
hash of its admin token: ``certify`` and ``revoke`` change who the whole system trusts, so they
take a bearer token, and only its SHA-256 is configured — a leaked config file or environment
dump does not leak the token. Make one with ``ecash-tpm centralbank admin-token``. Without a
configured hash the admin routes are disabled (403), never open.

Environment overrides follow the usual rule, e.g. ``ECASH_TPM_CENTRALBANK_ADMIN_TOKEN_SHA256``.
"""

from __future__ import annotations

import hashlib
import hmac
from typing import ClassVar

from pydantic import Field, field_validator

from ecash_tpm.centralbank.ca import DEFAULT_ROOT_NAME
from ecash_tpm.service.settings import ServiceSettings

__all__ = ["DEFAULT_PORT", "CentralBankSettings", "hash_admin_token", "token_matches"]

#: 8080 = the framework default; the other parties already use 8081 (issuer) .. 8085.
DEFAULT_PORT = 8080


class CentralBankSettings(ServiceSettings):
    """``[centralbank]``: the root CA service."""

    section: ClassVar[str] = "centralbank"

    port: int = Field(default=DEFAULT_PORT, ge=0, le=65535)
    admin_token_sha256: str | None = Field(
        default=None,
        description="hex SHA-256 of the admin bearer token; unset = admin routes disabled",
    )
    init_if_missing: bool = Field(
        default=False,
        description="create the root CA in data_dir at start-up if there is none (demos)",
    )
    root_name: str = Field(default=DEFAULT_ROOT_NAME, min_length=1, max_length=64)
    crl_valid_s: int = Field(
        default=7 * 86400, ge=3600, le=90 * 86400, description="lifetime of published CRLs"
    )
    report_max_skew_s: int = Field(
        default=300, ge=0, le=3600, description="how far a report's as_of may lie in the future"
    )

    @field_validator("admin_token_sha256")
    @classmethod
    def _hex_digest(cls, value: str | None) -> str | None:
        if value is None or not value.strip():  # empty env var = not configured
            return None
        lowered = value.strip().lower()
        if len(lowered) != 64 or any(c not in "0123456789abcdef" for c in lowered):
            raise ValueError("must be 64 hex digits (SHA-256 of the admin token)")
        return lowered


def hash_admin_token(token: str) -> str:
    """The value for ``admin_token_sha256``.

    Unsalted on purpose: the token is 256 random bits (``ecash-tpm centralbank admin-token``),
    not a password, so a plain hash is as strong as the token and needs no state.
    """
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_matches(token: str, expected_sha256: str) -> bool:
    """Constant-time check of a presented token against the configured hash."""
    return hmac.compare_digest(hash_admin_token(token), expected_sha256)
