"""Settings of the fair-exchange TTP: TOML section ``[ttp]``, env ``ECASH_TPM_TTP_*``.

Paths left unset default to files in ``data_dir`` that ``ecash-tpm ttp init`` creates:
``ttp-key.pem`` (0600), ``ttp-cert.pem`` (central-bank certificate, role ``ttp``, CN =
``name``) and ``central-bank-root.pem``. Escrowed content keys live in the TTP's database.
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ecash_tpm.service.settings import ServiceSettings

__all__ = ["TtpSettings"]


class TtpSettings(ServiceSettings):
    """Keys of ``[ttp]``."""

    section: ClassVar[str] = "ttp"

    port: int = Field(default=8083, ge=0, le=65535)
    name: str = Field(
        default="ttp",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="CN of the TTP certificate",
    )
    bank_url: str = Field(
        default="https://127.0.0.1:8082",
        description="the bank asked whether coins were deposited",
    )
    bank_name: str = Field(
        default="bank",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of the bank's TLS certificate",
    )
    issuer_name: str = Field(
        default="issuer",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="the issuer whose central-bank-certified epoch keys coins are checked with",
    )
    dispute_window_s: int = Field(
        default=600, ge=1, le=30 * 86400, description="how long a merchant has to answer"
    )
    registration_window_s: int = Field(default=300, ge=10, le=86400)
    max_content_bytes: int = Field(default=4 * 1024 * 1024, ge=1, le=64 * 1024 * 1024)
    # Anonymous callers (customers opening disputes) get the default 256 KiB; merchants, who
    # connect with their TLS client certificate, may upload product content up to this size.
    max_party_body_bytes: int | None = Field(default=8 * 1024 * 1024, ge=1024, le=128 * 1024 * 1024)
    remote_timeout_s: float = Field(
        default=10.0, gt=0, le=120, description="bank and merchant call timeout"
    )
    key_file: Path | None = Field(default=None, description="default data_dir/ttp-key.pem")
    cert_file: Path | None = Field(default=None, description="default data_dir/ttp-cert.pem")
    root_cert: Path | None = Field(
        default=None, description="central bank root (default data_dir/central-bank-root.pem)"
    )

    def resolved_key_file(self) -> Path:
        return self.key_file or self.data_dir / "ttp-key.pem"

    def resolved_cert_file(self) -> Path:
        return self.cert_file or self.data_dir / "ttp-cert.pem"

    def resolved_root_cert(self) -> Path:
        return self.root_cert or self.data_dir / "central-bank-root.pem"
