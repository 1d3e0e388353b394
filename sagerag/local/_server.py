"""Run an ASGI app on loopback in a background thread.

Both local services (SageMaker Runtime and Pinecone) use this so that tests and `sagerag demo` can start
them in-process, and `sagerag serve` can run them in the foreground, with one code path.
"""

from __future__ import annotations

import ipaddress
import socket
import threading
import time
from typing import Any

import uvicorn

from sagerag.errors import ConfigurationError

LOOPBACK = "127.0.0.1"


def check_bind_host(host: str, allow_remote: bool = False) -> str:
    """Refuse a non-loopback bind address unless the caller explicitly allowed it."""
    if host == "localhost":
        return host
    try:
        is_loopback = ipaddress.ip_address(host).is_loopback
    except ValueError as exc:
        raise ConfigurationError(f"bind host {host!r} is not an IP address; use 127.0.0.1") from exc
    if not is_loopback and not allow_remote:
        raise ConfigurationError(
            f"refusing to bind {host}: local servers listen on loopback only. "
            "Pass --allow-remote (or allow_remote=True) if you really want other machines to reach it."
        )
    return host


def free_port(host: str = LOOPBACK) -> int:
    """Ask the OS for a free TCP port on `host`."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class BackgroundServer:
    """A uvicorn server in a daemon thread; `start()` returns once it accepts connections."""

    def __init__(self, app: Any, host: str = LOOPBACK, port: int | None = None, allow_remote: bool = False):
        self.host = check_bind_host(host, allow_remote)
        self.port = port or free_port(self.host)
        config = uvicorn.Config(
            app, host=self.host, port=self.port, log_level="warning", access_log=False, lifespan="off"
        )
        self._server = uvicorn.Server(config)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def activity(self) -> tuple[int, int]:
        """(requests served so far, connections open now): a server is idle while both stay still."""
        state = self._server.server_state
        return state.total_requests, len(state.connections)

    def start(self, timeout: float = 30.0) -> BackgroundServer:
        self._thread = threading.Thread(
            target=self._server.run, name=f"sagerag-server-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + timeout
        while not self._server.started:
            if not self._thread.is_alive():
                raise ConfigurationError(f"local server failed to start on {self.url} (is the port in use?)")
            if time.monotonic() > deadline:
                raise ConfigurationError(f"local server did not start on {self.url} within {timeout:.0f}s")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def __enter__(self) -> BackgroundServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
