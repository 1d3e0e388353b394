"""`LocalPinecone`: the Pinecone API on loopback, backed by SQLite under a data directory.

It lets the library, tests and `sagerag demo` use the real `pinecone` SDK offline: point the SDK at
`LocalPinecone.host` (or call `client()`) and nothing else changes. An index's data-plane host is
`{host}/data/{index_name}`; `describe_index(name).host` returns it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from sagerag.local._server import LOOPBACK, BackgroundServer, check_bind_host, free_port
from sagerag.local.pinecone.app import create_app
from sagerag.local.pinecone.service import PineconeService

DEFAULT_API_KEY = "sagerag-local"


def default_api_key() -> str:
    """`PINECONE_API_KEY` when set, so the same environment works against cloud and local."""
    return os.environ.get("PINECONE_API_KEY") or DEFAULT_API_KEY


class LocalPinecone:
    """A Pinecone-compatible server in a background thread; use as a context manager or start()/stop()."""

    def __init__(
        self,
        data_dir: str | Path,
        host: str = LOOPBACK,
        port: int | None = None,
        api_key: str | None = None,
        allow_remote: bool = False,
    ) -> None:
        self.data_dir = Path(data_dir)
        self.bind_host = check_bind_host(host, allow_remote)
        self.port = port or free_port(self.bind_host)
        self.api_key = api_key or default_api_key()
        self._allow_remote = allow_remote
        self._server: BackgroundServer | None = None
        self._app: Any = None

    @property
    def url(self) -> str:
        """The server's base URL, `http://127.0.0.1:PORT` (both emulators have `url`)."""
        return f"http://{self.bind_host}:{self.port}"

    @property
    def host(self) -> str:
        """`url` under the pinecone SDK's name for it: `Pinecone(host=...)` (the control plane)."""
        return self.url

    @property
    def service(self) -> PineconeService:
        """In-process access to the running server's state (bulk loads, benchmarks)."""
        if self._app is None:
            raise RuntimeError("LocalPinecone is not running; call start() first")
        service: PineconeService = self._app.state.pinecone_service
        return service

    def activity(self) -> tuple[int, int]:
        """(requests served, connections open): see `BackgroundServer.activity` (idle shutdown of serve)."""
        return self._server.activity() if self._server is not None else (0, 0)

    def start(self) -> LocalPinecone:
        if self._server is None:
            self._app = create_app(self.data_dir, self.api_key)
            self._server = BackgroundServer(self._app, self.bind_host, self.port, self._allow_remote)
            try:
                self._server.start()
            except BaseException:
                self._close_storage()
                self._server = None
                raise
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None
            self._close_storage()

    def _close_storage(self) -> None:
        if self._app is not None:
            self._app.state.pinecone_service.close()
            self._app = None

    def client(self, **kwargs: Any) -> Any:
        """A `pinecone.Pinecone` pointed at this server with its API key."""
        from pinecone import Pinecone

        return Pinecone(api_key=self.api_key, host=self.host, **kwargs)

    def __enter__(self) -> LocalPinecone:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
