"""The service framework every party is built on: app factory, settings, client, server.

- :func:`create_app` — FastAPI app with the project's error bodies, limits, logs, /healthz
- :class:`ServiceSettings` / :func:`load_settings` — typed TOML + environment settings
- :data:`B64Bytes`, :class:`ApiModel`, :class:`ErrorBody` — body building blocks
- :class:`ServiceClient` / :class:`RemoteCallError` — calling another party
- :func:`serve` / :func:`running_server` — uvicorn for the CLI and for end-to-end tests
"""

from ecash_tpm.service.app import create_app, error_response, get_db, get_settings
from ecash_tpm.service.client import ServiceClient
from ecash_tpm.service.errors import PayloadTooLargeError, RemoteCallError, ServerStartError
from ecash_tpm.service.logs import JsonFormatter, configure_logging, current_request_id
from ecash_tpm.service.models import ApiModel, B64Bytes, ErrorBody, validate_model
from ecash_tpm.service.server import running_server, serve
from ecash_tpm.service.settings import ServiceSettings, default_data_dir, load_settings

__all__ = [
    "ApiModel",
    "B64Bytes",
    "ErrorBody",
    "JsonFormatter",
    "PayloadTooLargeError",
    "RemoteCallError",
    "ServerStartError",
    "ServiceClient",
    "ServiceSettings",
    "configure_logging",
    "create_app",
    "current_request_id",
    "default_data_dir",
    "error_response",
    "get_db",
    "get_settings",
    "load_settings",
    "running_server",
    "serve",
    "validate_model",
]
