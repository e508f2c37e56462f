"""Leaf errors of the service framework (the areas themselves live in :mod:`ecash_tpm.errors`)."""

from __future__ import annotations

from typing import Any

from ecash_tpm.errors import EcashError, InputError, RemoteError


class PayloadTooLargeError(InputError):
    """The request body exceeds the service's ``max_body_bytes`` (HTTP 413)."""

    code = "input.too_large"
    http_status = 413


class BodyReadTimeoutError(InputError):
    """The client stopped sending its request body for longer than ``body_read_timeout_s``
    (HTTP 408): the connection is dropped instead of being held open."""

    code = "input.read_timeout"
    http_status = 408


class ServerStartError(EcashError):
    """A service could not be started (lifespan failure, port not reachable in time)."""

    code = "service.start_failed"


class BindError(ServerStartError):
    """The listen address cannot be used (unknown host, not an address of this machine,
    a privileged port): found before anything else is started or announced."""

    code = "service.bind_failed"


class PortInUseError(BindError):
    """Another process already listens on the configured host and port."""

    code = "service.port_in_use"


class RemoteCallError(RemoteError):
    """Another party answered with an error body, a bad response, or not at all.

    ``code`` and ``detail`` are the remote party's own (e.g. ``bank.double_spend`` with its
    evidence) so callers branch exactly as if the error had been raised locally; ``status`` is
    the remote HTTP status (``None`` when nothing was received) and ``url`` what was called.
    Locally generated codes: ``remote.unreachable`` (connection failed; ``detail.outcome_unknown``
    says whether the request may have been processed), ``remote.timeout`` (no answer in time:
    the outcome is unknown, retry with the same idempotency key), ``remote.bad_response`` (not
    the ``{code, message, detail}`` / expected JSON shape).
    """

    def __init__(
        self,
        message: str,
        *,
        code: str,
        status: int | None,
        url: str,
        detail: dict[str, Any] | None = None,
        http_status: int | None = None,
    ) -> None:
        super().__init__(message, code=code, detail=detail)
        self.status = status
        self.url = url
        if http_status is not None:
            self.http_status = http_status
