"""The dashboard's own refusals, with stable codes."""

from __future__ import annotations

from ecash_tpm.errors import ConfigError, EcashError


class DashboardConfigError(ConfigError):
    """The deployment's file or a ``--party`` cannot be read as party URLs."""

    code = "dashboard.config_invalid"


class DashboardPortError(EcashError):
    """The page's port on 127.0.0.1 cannot be bound (in use, or not allowed)."""

    code = "dashboard.port_in_use"


class DashboardStartError(EcashError):
    """The page's server did not come up."""

    code = "dashboard.start_failed"
