"""ecash-tpm: anonymous online e-cash whose coins are bound to a device's TPM 2.0."""

__version__ = "0.1.0"
