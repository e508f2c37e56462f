"""The service framework every party is built on: app factory, settings, server, logs.

- :mod:`.app` — :func:`create_app`: FastAPI app with the project's error bodies, limits, logs,
  /healthz
- :mod:`.settings` — :class:`ServiceSettings` / :func:`load_settings`: typed TOML + environment
- :mod:`.server` — :func:`serve` / :func:`running_server`: uvicorn for the CLI and for tests
- :mod:`.errors` — :class:`RemoteCallError` and the service's own errors; :mod:`.auth` — bearer
  tokens; :mod:`.logs` — JSON logs with request ids

Body building blocks (``B64Bytes``, ``ApiModel``) are the wire specification's
(``ecash_tpm.protocol.api.base``); the client every party uses is ``ecash_tpm.clients.base``.
This package imports nothing at import time.
"""
