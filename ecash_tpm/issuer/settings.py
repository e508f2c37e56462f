"""Settings of the group manager (issuer): TOML section ``[issuer]``, env ``ECASH_TPM_ISSUER_*``.

Paths left unset default to files inside ``data_dir`` (what ``ecash-tpm issuer init`` creates):
``issuer-keys/`` (epoch secrets, 0600), ``ek-trust/`` (EK CA certificates), ``pcr-policy.json``,
``issuer-key.pem`` / ``issuer-cert.pem`` (the party key certified by the central bank, used to
sign member registrations for the supervision department).

EK trust: the issuer trusts the TPM manufacturer CAs shipped with the package (docs/real-tpm.md,
"Default EK trust store") plus every certificate in ``trust_dir``. ``trust_shipped = false``
(``ECASH_TPM_ISSUER_TRUST_SHIPPED=false``) leaves the shipped store out, so that only what the
operator put in ``trust_dir`` is trusted (e.g. a deployment admitting a single manufacturer).
"""

from __future__ import annotations

from pathlib import Path
from typing import ClassVar, Literal

from pydantic import Field

from ecash_tpm.service.settings import ServiceSettings

EkKindName = Literal["rsa2048", "ecc_p256", "ecc_p384"]


class IssuerSettings(ServiceSettings):
    """Keys of ``[issuer]``."""

    section: ClassVar[str] = "issuer"

    port: int = Field(default=8081, ge=0, le=65535)
    key_dir: Path | None = Field(
        default=None, description="epoch secrets (default data_dir/issuer-keys)"
    )
    trust_dir: Path | None = Field(
        default=None, description="operator's EK CA certificates (default data_dir/ek-trust)"
    )
    trust_shipped: bool = Field(
        default=True,
        description="also trust the TPM manufacturer CAs shipped with ecash-tpm "
        "(false: only trust_dir)",
    )
    pcr_policy_file: Path | None = Field(
        default=None, description="default data_dir/pcr-policy.json"
    )
    pcr_tofu: bool = Field(default=False, description="trust PCR values on first use (demo only)")
    max_body_bytes: int = Field(
        default=2 * 1024 * 1024,
        ge=1024,
        le=64 * 1024 * 1024,
        description="request size limit; join/finish carries the boot's event log (<= 1 MiB)",
    )
    join_ttl_s: int = Field(default=300, ge=10, le=3600, description="lifetime of a started join")
    opener_public: str | None = Field(default=None, description="Hop as base64url (65 bytes)")
    opener_public_file: Path | None = Field(
        default=None, description="file holding Hop (base64url)"
    )
    supervision_url: str | None = Field(default=None, description="where T0s are registered")
    signing_key_file: Path | None = Field(
        default=None, description="default data_dir/issuer-key.pem"
    )
    certificate_file: Path | None = Field(
        default=None, description="default data_dir/issuer-cert.pem"
    )
    central_bank_root: Path | None = Field(
        default=None, description="central bank root certificate (checks supervision evidence)"
    )
    supervision_name: str = Field(
        default="supervision",
        pattern=r"^[A-Za-z0-9._:-]{1,64}$",
        description="expected CN of supervision's TLS certificate",
    )
    required_ek_kinds: list[EkKindName] = Field(
        default_factory=lambda: list[EkKindName](["rsa2048"]),
        description="EK types every join must present (a TPM cannot hide them, so a revoked TPM "
        "is always recognised; docs/protocol.md 3.2 step 4)",
    )
    members_token: str | None = Field(
        default=None,
        min_length=16,
        description="only with insecure_http: bearer token for GET /v1/members (over TLS the "
        "bank's client certificate replaces it)",
    )

    def resolved_key_dir(self) -> Path:
        return self.key_dir or self.data_dir / "issuer-keys"

    def resolved_trust_dir(self) -> Path:
        return self.trust_dir or self.data_dir / "ek-trust"

    def resolved_policy_file(self) -> Path:
        return self.pcr_policy_file or self.data_dir / "pcr-policy.json"

    def resolved_central_bank_root(self) -> Path:
        """``central_bank_root``, else ``data_dir/central-bank-root.pem`` (the TLS trust anchor)."""
        return self.central_bank_root or self.data_dir / "central-bank-root.pem"

    def resolved_signing_key_file(self) -> Path:
        return self.signing_key_file or self.data_dir / "issuer-key.pem"

    def resolved_certificate_file(self) -> Path:
        return self.certificate_file or self.data_dir / "issuer-cert.pem"
