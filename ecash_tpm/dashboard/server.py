"""Serve the dashboard on 127.0.0.1 in a background thread (the story keeps the main thread,
which owns the signal handlers).

The port is bound here, before anything is announced: a busy port is one clear error
(``dashboard.port_in_use``) before the demo starts, and the URL printed is the one that answers.
"""

from __future__ import annotations

import socket
import threading
import time

import uvicorn
from starlette.applications import Starlette

from ecash_tpm.dashboard.errors import DashboardPortError, DashboardStartError

HOST = "127.0.0.1"


class DashboardServer:
    """uvicorn on ``127.0.0.1:port`` (0: a free port) in a daemon thread."""

    def __init__(self, app: Starlette, port: int = 0) -> None:
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        try:
            self._sock.bind((HOST, port))
        except OSError as exc:
            self._sock.close()
            raise DashboardPortError(
                f"cannot listen on {HOST}:{port}: {exc.strerror or exc}",
                detail={"host": HOST, "port": port},
            ) from exc
        self.port: int = self._sock.getsockname()[1]
        config = uvicorn.Config(
            app,
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            server_header=False,
            timeout_graceful_shutdown=2,
        )
        self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=self._server.run,
            kwargs={"sockets": [self._sock]},
            daemon=True,
            name=f"dashboard-{self.port}",
        )

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}/"

    def start(self, timeout_s: float = 15.0) -> str:
        """Start serving; returns the URL once the server accepts connections."""
        self._thread.start()
        deadline = time.monotonic() + timeout_s
        while not self._server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise DashboardStartError("the dashboard did not start", detail={"port": self.port})
            time.sleep(0.02)
        return self.url

    def stop(self) -> None:
        """Stop serving and release the port."""
        self._server.should_exit = True
        if self._thread.is_alive():
            self._thread.join(5.0)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(3.0)
        self._sock.close()
