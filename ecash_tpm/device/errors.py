"""Leaf errors of the TPM device layer (importable without tpm2-pytss)."""

from __future__ import annotations

from ecash_tpm.errors import InputError, TpmCapabilityError, TpmError


class TpmConnectionError(TpmError):
    """The TCTI could not be loaded or the TPM did not answer."""

    code = "tpm.connect_failed"


class TpmCommandError(TpmError):
    """A TPM command returned an error; ``detail`` carries the TSS/TPM response code."""

    code = "tpm.command_failed"


class TpmArgumentError(InputError):
    """The caller passed a value the TPM would reject (too long, bad point encoding...)."""

    code = "tpm.invalid_argument"


class EcdaaUnsupportedError(TpmCapabilityError):
    """The TPM lacks ECDAA or the BN_P256 curve, which the anonymous credential needs."""

    code = "tpm.ecdaa_unsupported"


class EkUnsupportedError(TpmCapabilityError):
    """The TPM cannot create the requested EK type (algorithm or curve missing)."""

    code = "tpm.ek_unsupported"


class EkCertificateMissingError(TpmError):
    """No EK certificate of the requested type is stored in the TPM's NV."""

    code = "tpm.ek_cert_missing"
    http_status = 404


class KeyBlobError(TpmError):
    """A saved key blob lacks its pair, is unreadable, does not load, or has another template."""

    code = "tpm.key_blob_invalid"
