"""The service framework every party is built on: app factory, settings, client, server.

- :func:`create_app` — FastAPI app with the project's error bodies, limits, logs, /healthz
- :class:`ServiceSettings` / :func:`load_settings` — typed TOML + environment settings
- :data:`B64Bytes`, :class:`ApiModel`, :class:`ErrorBody` — body building blocks
- :class:`ServiceClient` / :class:`RemoteCallError` — calling another party
- :func:`serve` / :func:`running_server` — uvicorn for the CLI and for end-to-end tests
"""
