"""Settings of a merchant (shop): TOML section ``[merchant]``, env ``ECASH_TPM_MERCHANT_*``.

Paths left unset default to files inside ``data_dir``, which ``ecash-tpm merchant init``
creates: ``merchant-key.pem`` (0600), ``merchant-cert.pem`` (issued by the central bank for
role ``merchant`` with CN = ``name``) and ``central-bank-root.pem`` (the trust anchor).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ecash_tpm.service.settings import ServiceSettings

__all__ = ["MerchantSettings"]


class MerchantSettings(ServiceSettings):
    """Keys of ``[merchant]``."""

    section: ClassVar[str] = "merchant"

    port: int = Field(default=8085, ge=0, le=65535)
    name: str = Field(
        default="merchant",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="merchant id = CN of the merchant certificate",
    )
    bank_url: str = Field(default="https://127.0.0.1:8082", description="the bank's base URL")
    bank_name: str | None = Field(
        default=None,
        description="expected CN of the bank certificate (unset: any bank cert for signed "
        "answers, 'bank' for the TLS connection)",
    )
    issuer_url: str | None = Field(
        default="https://127.0.0.1:8081", description="where Hop is fetched (GET /v1/issuer/info)"
    )
    issuer_name: str = Field(
        default="issuer",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of the issuer's TLS certificate",
    )
    max_payment_epochs: int = Field(
        default=2,
        ge=1,
        le=16,
        description="most distinct issuer epochs one payment's coins may span "
        "(payment.too_many_epochs; docs/protocol.md 7.4)",
    )
    ttp_name: str = Field(
        default="ttp",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of the TTP's TLS certificate",
    )
    opener_public: str | None = Field(
        default=None, description="Hop as base64url (65 bytes); overrides issuer_url"
    )
    currencies: list[str] = Field(default_factory=lambda: ["EUR"], min_length=1)
    request_ttl_s: int = Field(default=300, ge=5, le=86400, description="payment request life")
    reserve: bool = Field(default=False, description="reserve coins at the bank before deposit")
    refund_period_s: int = Field(
        default=86400,
        ge=0,
        le=366 * 86400,
        description="requests may be refunded until deadline + this (0: no refunds)",
    )
    bank_timeout_s: float = Field(default=10.0, gt=0, le=120)
    deposit_retry_s: float = Field(
        default=60.0,
        gt=0,
        le=86400,
        description="how often deposits whose bank answer was lost are re-sent (also at start)",
    )
    deposit_retry_after_s: int = Field(
        default=60,
        ge=0,
        le=86400,
        description="a deposit is retried only once it has been pending this long (longer than"
        " a live payment's bank calls take)",
    )
    key_file: Path | None = Field(default=None, description="default data_dir/merchant-key.pem")
    cert_file: Path | None = Field(default=None, description="default data_dir/merchant-cert.pem")
    root_cert: Path | None = Field(
        default=None, description="central bank root (default data_dir/central-bank-root.pem)"
    )
    # --- fair exchange (issue 6, DESIGN §6) ---------------------------------------------------
    ttp_url: str | None = Field(default=None, description="the TTP products are registered with")
    public_url: str | None = Field(
        default=None, description="this shop's URL as the TTP reaches it (key requests)"
    )
    admin_token: str | None = Field(
        default=None, min_length=16, description="bearer token for POST /v1/products (unset: off)"
    )

    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "merchant-key.pem"

    def resolved_cert_file(self) -> Path:
        return self.cert_file or self.data_dir / "merchant-cert.pem"

    def resolved_root_cert(self) -> Path:
        return self.root_cert or self.data_dir / "central-bank-root.pem"
