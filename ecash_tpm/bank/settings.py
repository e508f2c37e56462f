"""Typed settings of the bank service (section ``[bank]``, env ``ECASH_TPM_BANK_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field, field_validator

from ecash_tpm.protocol.money import CURRENCY_PATTERN
from ecash_tpm.service.settings import ServiceSettings

DEFAULT_DENOMINATIONS = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1000, 2000, 5000, 10000]


class BankSettings(ServiceSettings):
    """Policy knobs and file locations; paths left unset default to files in ``data_dir``."""

    section: ClassVar[str] = "bank"

    port: int = Field(default=8082, ge=0, le=65535)
    currency: str = Field(default="EUR", pattern=CURRENCY_PATTERN)

    key_file: Path | None = Field(default=None, description="bank P-256 key (default bank.key)")
    cert_file: Path | None = Field(default=None, description="bank certificate (bank.crt)")
    central_bank_root: Path | None = Field(
        default=None, description="central-bank root certificate (central-bank-root.pem)"
    )
    keys_dir: Path | None = Field(default=None, description="keyset RSA keys (keysets/)")
    opener_public: str | None = Field(
        default=None, description="opener public key Hop, base64url 04||X||Y on BN_P256"
    )

    lock_period_s: int = Field(default=300, ge=1, description="lock period T of a reservation")
    blacklist_threshold: int = Field(default=5, ge=1, description="failures that blacklist")
    blacklist_window_s: int = Field(default=600, ge=1, description="window for the failures")
    login_threshold: int = Field(default=5, ge=1)
    login_window_s: int = Field(default=900, ge=1)
    token_ttl_s: int = Field(default=3600, ge=60)
    login_source_limit: int = Field(
        default=20, ge=1, description="failed logins per client address and window"
    )
    login_source_window_s: int = Field(default=300, ge=1)
    scrypt_n: int = Field(default=2**14, ge=2**10, le=2**20)

    denominations: list[int] = Field(default_factory=lambda: list(DEFAULT_DENOMINATIONS))
    fees: dict[int, tuple[int, int, int, int]] = Field(
        default_factory=dict,
        description="fees of new keysets per denomination value: [withdraw, deposit, refresh, "
        "refund] in minor units, each below the value; unlisted denominations have none "
        "(docs/protocol.md 4.2)",
    )
    withdraw_period_s: int = Field(default=30 * 86400, ge=60)
    deposit_period_s: int = Field(default=365 * 86400, ge=0)
    rsa_bits: Literal[2048, 3072] = 2048
    max_withdraw_items: int = Field(default=64, ge=1, le=1024)
    max_spends: int = Field(default=64, ge=1, le=1024)
    max_deadline_s: int = Field(
        default=600, ge=60, description="furthest a request deadline may lie ahead (issue 10)"
    )

    issuer_secrets_dir: Path | None = Field(
        default=None, description="the issuer's epoch key directory (shared, same operator)"
    )
    issuer_url: str | None = Field(
        default=None, description="issuer base URL, asked whether an account's member is active"
    )
    issuer_name: str = Field(
        default="issuer",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of the issuer's TLS certificate",
    )
    issuer_token: str | None = Field(
        default=None,
        min_length=16,
        description="only with insecure_http: the issuer's members_token (over TLS the bank's "
        "client certificate replaces it)",
    )
    supervision_url: str | None = Field(
        default=None, description="supervision department base URL for double-spend reports"
    )
    supervision_name: str = Field(
        default="supervision",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of supervision's TLS certificate",
    )
    membership: Literal["issuer", "open"] = Field(
        default="issuer",
        description="'issuer' asks issuer_url; 'open' treats every account as an active "
        "member (demos only)",
    )

    @field_validator("denominations")
    @classmethod
    def _positive_distinct(cls, value: list[int]) -> list[int]:
        if not value or any(v <= 0 for v in value) or len(set(value)) != len(value):
            raise ValueError("denominations must be distinct positive integers")
        return sorted(value)

    @field_validator("fees")
    @classmethod
    def _fees_below_value(
        cls, value: dict[int, tuple[int, int, int, int]]
    ) -> dict[int, tuple[int, int, int, int]]:
        for denomination, fees in value.items():
            if any(f < 0 or f >= denomination for f in fees):
                raise ValueError(
                    f"fees of denomination {denomination} must be integers from 0 to below it"
                )
        return value

    @field_validator("scrypt_n")
    @classmethod
    def _power_of_two(cls, value: int) -> int:
        if value & (value - 1):
            raise ValueError("scrypt_n must be a power of two")
        return value

    def path(self, name: Literal["key_file", "cert_file", "central_bank_root", "keys_dir"]) -> Path:
        """The configured path, or its default inside ``data_dir``."""
        defaults = {
            "key_file": "bank.key",
            "cert_file": "bank.crt",
            "central_bank_root": "central-bank-root.pem",
            "keys_dir": "keysets",
        }
        value = getattr(self, name)
        return Path(value) if value is not None else self.data_dir / defaults[name]
