"""Errors of the hermetic swtpm, each with its own stable code."""

from __future__ import annotations

from ecash_tpm.errors import SwtpmError


class SwtpmNotInstalledError(SwtpmError):
    """A swtpm binary is missing from PATH."""

    code = "swtpm.not_installed"


class SwtpmProvisionError(SwtpmError):
    """swtpm_setup failed or the state directory is not provisioned."""

    code = "swtpm.provision_failed"


class SwtpmStartError(SwtpmError):
    """The emulator did not come up (port clash after retries, crash, timeout)."""

    code = "swtpm.start_failed"


class SwtpmStopError(SwtpmError):
    """The emulator's process could not be ended."""

    code = "swtpm.stop_failed"


class SwtpmNotRunningError(SwtpmError):
    """An operation needs the emulator running, but it is not."""

    code = "swtpm.not_running"


class SwtpmStateError(SwtpmError):
    """The state directory's bookkeeping (instance.json) is unreadable or inconsistent."""

    code = "swtpm.state_invalid"


class SwtpmBootError(SwtpmError):
    """The synthetic measured boot could not be performed on a started emulator."""

    code = "swtpm.boot_failed"
