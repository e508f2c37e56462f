"""Where the wallet finds its TPM's EK certificate: NV, a file, or a web service.

Discrete TPMs store the certificate in NV (TCG indices 0x01c00002 RSA-2048, 0x01c0000a ECC P-256,
0x01c00016 ECC P-384). Many firmware TPMs (Intel PTT, AMD fTPM) and some vTPMs do not: their
manufacturer (or the operator) serves it online, keyed by a hash of the EK public key. The order:

1. ``--ek-cert FILE`` (PEM or DER): the operator's explicit choice, used instead of NV;
2. the certificate in NV;
3. ``--ek-cert-url TEMPLATE``, fetched with a timeout and a size limit; a 404 means "not there".

A certificate from a file or a URL must certify this TPM's EK. The issuer checks that anyway; the
wallet checks first, so a wrong file fails here (``wallet.ek_certificate_mismatch``) and not as a
refused join. Plain HTTP is acceptable: the issuer verifies the chain up to a manufacturer root.

URL template placeholders (the EK public key of the EK type being tried):

- ``{ek_hash}``: lowercase hex SHA-256 of the key's DER SubjectPublicKeyInfo, i.e. of
  ``openssl x509 -in ek.pem -noout -pubkey | openssl pkey -pubin -outform DER``. Computable from
  the certificate alone, so an operator's mirror can index certificates without the TPM.
- ``{intel_ek_hash}``: Intel's EK certificate service (``https://ekop.intel.com/ekcertservice/``):
  base64url of SHA-256(RSA modulus || exponent bytes) or SHA-256(x || y), ``=`` as ``%3D``.
- ``{amd_ek_hash}``: AMD's (``https://ftpm.amd.com/pki/aia/``): the first 16 bytes, hex, of
  SHA-256(00 00 22 22 || u32 exponent || modulus) or SHA-256(00 00 44 44 || x || y).

The Intel and AMD encodings are those of ``tpm2_getekcertificate`` (tpm2-tools). Responses may be
DER, PEM, or Intel's JSON ``{"pubhash": ..., "certificate": <base64url DER>}``.
"""

from __future__ import annotations

import base64
import hashlib
import json
import re
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ecash_tpm.attest import ek_public_matches_certificate, load_ek_certificate
from ecash_tpm.attest.errors import EkCertificateMalformedError, EkPublicMismatchError
from ecash_tpm.attest.wire import EccPoint, PublicArea, RsaParameters, as_public_area
from ecash_tpm.device import EK_SPECS, EkCertificateMissingError, EkKind, EkUnsupportedError
from ecash_tpm.errors import ConfigError

EK_PREFERENCE = (EkKind.RSA_2048, EkKind.ECC_P384, EkKind.ECC_P256)
"""EK types in the order the wallet tries them when none is requested."""

DEFAULT_TIMEOUT_S = 10.0
"""Whole-request deadline for one certificate download."""

DEFAULT_MAX_BYTES = 64 * 1024
"""Largest accepted response; EK certificates are 1-2 KiB."""

PLACEHOLDERS = ("ek_hash", "intel_ek_hash", "amd_ek_hash")

_OPTIONS_HINT = (
    "give it with --ek-cert FILE (PEM or DER, e.g. written by tpm2_getekcertificate) or "
    "--ek-cert-url TEMPLATE (e.g. https://ekop.intel.com/ekcertservice/{intel_ek_hash} for "
    "Intel PTT, https://ftpm.amd.com/pki/aia/{amd_ek_hash} for AMD fTPM, or an operator's "
    "mirror keyed by {ek_hash}); see docs/real-tpm.md"
)


class EkCertificateNotFoundError(EkCertificateMissingError):
    """No EK certificate in NV, the given file or at the configured URL; says which option helps."""

    code = "wallet.ek_certificate_missing"


class EkCertificateInvalidError(ConfigError):
    """The EK certificate file cannot be read, or a file or URL holds no parsable certificate."""

    code = "wallet.ek_certificate_invalid"


class EkCertificateMismatchError(ConfigError):
    """The certificate from a file or URL certifies another key than this TPM's EK."""

    code = "wallet.ek_certificate_mismatch"


class EkCertificateUrlError(ConfigError):
    """The URL template is not http(s) or uses an unknown placeholder."""

    code = "wallet.ek_certificate_url_invalid"


class EkCertificateFetchError(ConfigError):
    """The certificate service failed: network error, timeout, error status, response too big."""

    code = "wallet.ek_certificate_fetch_failed"


class EkDevice(Protocol):
    """The TPM methods the EK choice uses (a :class:`~ecash_tpm.device.TpmDevice` has them)."""

    def ek_kinds_present(self) -> list[EkKind]: ...

    def ek_certificate(self, kind: EkKind | str) -> bytes: ...

    def ek_public(self, kind: EkKind | str) -> bytes: ...


@dataclass(frozen=True)
class EkChoice:
    """The EK a join attests with and the certificate it sends (``origin``: nv, file or url)."""

    kind: EkKind
    certificate: bytes
    origin: str
    location: str


# --- the EK public key hashes ------------------------------------------------------------------


def _rsa_parts(area: PublicArea) -> tuple[bytes, int]:
    if not isinstance(area.parameters, RsaParameters) or not isinstance(area.unique, bytes):
        raise EkCertificateUrlError("the EK public area has no RSA modulus")
    return area.unique, area.parameters.exponent or 65537


def _ecc_parts(area: PublicArea) -> EccPoint:
    if not isinstance(area.unique, EccPoint):
        raise EkCertificateUrlError(f"EK type {area.type.name} has no EK hash")
    return area.unique


def ek_hashes(ek_public: bytes | PublicArea) -> dict[str, str]:
    """The values of the URL placeholders for one EK public area (TPM2B_PUBLIC)."""
    area = as_public_area(ek_public)
    spki = area.to_crypto_key().public_bytes(Encoding.DER, PublicFormat.SubjectPublicKeyInfo)
    if isinstance(area.unique, bytes):
        modulus, exponent = _rsa_parts(area)
        exp_bytes = exponent.to_bytes((exponent.bit_length() + 7) // 8, "big")
        intel = hashlib.sha256(modulus + exp_bytes).digest()
        amd = hashlib.sha256(b"\0\0\x22\x22" + exponent.to_bytes(4, "big") + modulus).digest()
    else:
        pt = _ecc_parts(area)
        intel = hashlib.sha256(pt.x + pt.y).digest()
        amd = hashlib.sha256(b"\0\0\x44\x44" + pt.x + pt.y).digest()
    return {
        "ek_hash": hashlib.sha256(spki).hexdigest(),
        "intel_ek_hash": urllib.parse.quote(base64.urlsafe_b64encode(intel).decode(), safe=""),
        "amd_ek_hash": amd[:16].hex(),
    }


_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")


def check_url_template(template: str) -> str:
    """The template if it is an http(s) URL using only known placeholders."""
    parsed = urllib.parse.urlsplit(_PLACEHOLDER.sub("x", template))
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise EkCertificateUrlError(
            f"--ek-cert-url must be an http(s) URL, got {template!r}", detail={"url": template}
        )
    unknown = sorted({n for n in _PLACEHOLDER.findall(template) if n not in PLACEHOLDERS})
    if unknown:
        raise EkCertificateUrlError(
            f"unknown placeholder(s) {unknown} in --ek-cert-url; known: {list(PLACEHOLDERS)}",
            detail={"url": template, "unknown": unknown},
        )
    return template


def expand_url(template: str, ek_public: bytes | PublicArea) -> str:
    """The URL for one EK: each placeholder replaced by its hash."""
    values = ek_hashes(ek_public)
    return _PLACEHOLDER.sub(lambda m: values[m.group(1)], check_url_template(template))


# --- reading certificates ----------------------------------------------------------------------


def certificate_from_bytes(body: bytes, where: str) -> bytes:
    """DER of the certificate in a file or response: DER (NV framing allowed), PEM or Intel JSON."""
    data = body
    if body.lstrip().startswith(b"{"):
        try:
            doc = json.loads(body)
            text = urllib.parse.unquote(str(doc["certificate"])).strip()
            data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        except (ValueError, KeyError, TypeError) as exc:
            raise EkCertificateInvalidError(
                f"{where} holds JSON without a base64 'certificate'", detail={"source": where}
            ) from exc
    try:
        cert = load_ek_certificate(data)
    except EkCertificateMalformedError as exc:
        raise EkCertificateInvalidError(
            f"{where} holds no EK certificate: {exc.message}", detail={"source": where}
        ) from exc
    if data.lstrip().startswith(b"-----BEGIN"):
        return cert.public_bytes(Encoding.DER)
    return data


def kind_of_certificate(der: bytes, where: str) -> EkKind:
    """The EK type a certificate's key belongs to (RSA-2048, ECC P-256 or P-384)."""
    key = load_ek_certificate(der).public_key()
    if isinstance(key, rsa.RSAPublicKey) and key.key_size == 2048:
        return EkKind.RSA_2048
    if isinstance(key, ec.EllipticCurvePublicKey):
        by_curve = {"secp256r1": EkKind.ECC_P256, "secp384r1": EkKind.ECC_P384}
        if key.curve.name in by_curve:
            return by_curve[key.curve.name]
    raise EkCertificateInvalidError(
        f"the certificate in {where} is not for an RSA-2048, ECC P-256 or P-384 EK",
        detail={"source": where},
    )


def fetch(url: str, *, timeout: float, max_bytes: int) -> bytes | None:
    """GET ``url``: the body, or None on 404; bounded in time and size."""
    deadline = time.monotonic() + timeout
    body = bytearray()
    try:
        with (
            httpx.Client(timeout=timeout, follow_redirects=True) as client,
            client.stream("GET", url) as resp,
        ):
            if resp.status_code == 404:
                return None
            if resp.status_code != 200:
                raise EkCertificateFetchError(
                    f"{url} answered HTTP {resp.status_code}",
                    detail={"url": url, "status": resp.status_code},
                )
            for chunk in resp.iter_bytes():
                body += chunk
                if len(body) > max_bytes:
                    raise EkCertificateFetchError(
                        f"{url} sent more than {max_bytes} bytes; that is no EK certificate",
                        detail={"url": url, "max_bytes": max_bytes},
                    )
                if time.monotonic() > deadline:
                    raise httpx.ReadTimeout("deadline exceeded")
    except httpx.HTTPError as exc:
        raise EkCertificateFetchError(
            f"cannot fetch the EK certificate from {url}: {exc}",
            detail={"url": url, "reason": type(exc).__name__},
        ) from exc
    return bytes(body)


def _check_matches(cert: bytes, ek_public: bytes, kind: EkKind, where: str) -> None:
    try:
        ek_public_matches_certificate(cert, ek_public)
    except (EkPublicMismatchError, EkCertificateMalformedError) as exc:
        raise EkCertificateMismatchError(
            f"the certificate from {where} is not for this TPM's {kind.value} EK",
            detail={"source": where, "ek": kind.value},
        ) from exc


# --- the choice --------------------------------------------------------------------------------


@dataclass(frozen=True)
class EkCertificateSource:
    """Where to look besides NV: ``file`` (instead of NV) and ``url_template`` (after NV)."""

    file: Path | None = None
    url_template: str | None = None
    timeout: float = DEFAULT_TIMEOUT_S
    max_bytes: int = DEFAULT_MAX_BYTES

    def __post_init__(self) -> None:
        if self.url_template is not None:
            check_url_template(self.url_template)
        if not (self.timeout > 0 and self.max_bytes > 0):
            raise EkCertificateUrlError("timeout and size limit must be positive")

    def choose(self, device: EkDevice, preferred: EkKind | str | None = None) -> EkChoice:
        """The EK and its certificate: from the file, else NV, else the URL (see module doc)."""
        wanted = EkKind(preferred) if preferred is not None else None
        if self.file is not None:
            return self._from_file(device, Path(self.file), wanted)
        kinds = [wanted] if wanted is not None else list(EK_PREFERENCE)
        present = device.ek_kinds_present()
        for kind in kinds:
            if kind in present:
                index = f"0x{EK_SPECS[kind].cert_nv_index:08x}"
                return EkChoice(kind, device.ek_certificate(kind), "nv", index)
        tried: list[str] = []
        if self.url_template is not None:
            for kind in kinds:
                try:
                    public = device.ek_public(kind)
                except EkUnsupportedError:
                    continue
                url = expand_url(self.url_template, public)
                body = fetch(url, timeout=self.timeout, max_bytes=self.max_bytes)
                if body is None:
                    tried.append(url)
                    continue
                cert = certificate_from_bytes(body, url)
                _check_matches(cert, public, kind, url)
                return EkChoice(kind, cert, "url", url)
        what = f"{wanted.value} EK certificate" if wanted is not None else "EK certificate"
        where = "in NV" + (f" nor at {', '.join(tried)}" if tried else "")
        raise EkCertificateNotFoundError(
            f"this TPM has no {what} {where}; {_OPTIONS_HINT}",
            detail={
                "ek": wanted.value if wanted is not None else None,
                "in_nv": [k.value for k in present],
                "urls_tried": tried,
                "options": ["--ek-cert FILE", "--ek-cert-url TEMPLATE"],
            },
        )

    @staticmethod
    def _from_file(device: EkDevice, path: Path, wanted: EkKind | None) -> EkChoice:
        try:
            body = path.read_bytes()
        except OSError as exc:
            raise EkCertificateInvalidError(
                f"cannot read the EK certificate file {path}: {exc.strerror or exc}",
                detail={"source": str(path)},
            ) from exc
        cert = certificate_from_bytes(body, str(path))
        kind = wanted or kind_of_certificate(cert, str(path))
        _check_matches(cert, device.ek_public(kind), kind, str(path))
        return EkChoice(kind, cert, "file", str(path))


def choose_ek_certificate(
    device: EkDevice,
    preferred: EkKind | str | None = None,
    source: EkCertificateSource | None = None,
) -> EkChoice:
    """The EK a join uses and its certificate (NV only when ``source`` is None)."""
    return (source or EkCertificateSource()).choose(device, preferred)
