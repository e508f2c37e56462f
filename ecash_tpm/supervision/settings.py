"""Settings of the supervision department: TOML ``[supervision]``, env ``ECASH_TPM_SUPERVISION_*``.

Unset paths default to files in ``data_dir`` created by ``ecash-tpm supervision init``:
``opener.key`` (h, 0600), ``opener-public.txt`` (Hop), ``supervision-key.pem`` and
``supervision-cert.pem`` (party key certified by the central bank with role ``supervision``,
which signs evidence bundles).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar

from pydantic import Field

from ecash_tpm.service.settings import ServiceSettings


class SupervisionSettings(ServiceSettings):
    """Keys of ``[supervision]``."""

    section: ClassVar[str] = "supervision"

    port: int = Field(default=8084, ge=0, le=65535)
    opener_key_file: Path | None = Field(default=None, description="default data_dir/opener.key")
    signing_key_file: Path | None = Field(
        default=None, description="default data_dir/supervision-key.pem"
    )
    certificate_file: Path | None = Field(
        default=None, description="default data_dir/supervision-cert.pem"
    )
    central_bank_root: Path | None = Field(
        default=None,
        description="central bank root: checks issuer registrations and bank transcripts",
    )
    issuer_url: str | None = Field(default=None, description="where revocations are requested")
    issuer_name: str = Field(
        default="issuer",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of the issuer's TLS certificate",
    )
    open_token: str | None = Field(
        default=None,
        min_length=16,
        description="bearer token for POST /v1/open; without one, opening over HTTP is off",
    )

    def resolved_opener_key_file(self) -> Path:
        return self.opener_key_file or self.data_dir / "opener.key"

    def resolved_central_bank_root(self) -> Path:
        """``central_bank_root``, else ``data_dir/central-bank-root.pem`` (the TLS trust anchor)."""
        return self.central_bank_root or self.data_dir / "central-bank-root.pem"

    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "supervision-key.pem"

    def resolved_certificate_file(self) -> Path:
        return self.certificate_file or self.data_dir / "supervision-cert.pem"
