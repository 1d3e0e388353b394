"""Starlette routes that speak Pinecone's REST API (as the pinecone 10.x SDK sends it).

One port serves both planes. The control plane lives at `/indexes...`; each index's data plane lives under
`/data/{index}`, and that URL is the `host` an index description returns, so `pc.Index(host=desc.host)`
works unchanged (the SDK appends `/vectors/upsert`, `/query`, ... to the host).
"""

from __future__ import annotations

import hmac
import re
import sqlite3
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import orjson
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from sagerag.datafiles import explain
from sagerag.errors import DiskFullError
from sagerag.local.pinecone.service import PineconeService
from sagerag.local.pinecone.storage import STORE_REBUILD, IndexRecord, PineconeStorage
from sagerag.local.pinecone.validation import (
    PINECONE_MAX_REQUEST_BYTES,
    ApiProblem,
    bad_request,
    not_supported,
)

Handler = Callable[[Request], Awaitable[Response]]
DATA_PREFIX = "/data"

# What the pinecone 10.x SDK calls on routes the local Pinecone does not serve, so its 501 names the
# call; anything else unserved is named by method and path.
_UNSUPPORTED: list[tuple[re.Pattern[str], str]] = [
    (re.compile(pattern), name)
    for pattern, name in (
        (r"/indexes/create-for-model", "create_index_for_model (indexes with integrated embedding)"),
        (r"/indexes/[^/]+/backups", "backups"),
        (r"/indexes/[^/]+/backup-schedules(/.*)?", "backup schedules"),
        (r"/collections(/.*)?", "collections"),
        (r"/backups(/.*)?", "backups"),
        (r"/restore-jobs(/.*)?", "restore jobs"),
        (r"/backup-schedules(/.*)?", "backup schedules"),
        (r"/embed", "inference.embed (hosted embedding models)"),
        (r"/rerank", "inference.rerank (hosted reranking models)"),
        (r"/models(/.*)?", "inference models"),
        (r"/admin/.*", "the Admin API"),
        (r"/assistant/.*", "Pinecone Assistant"),
        (rf"{DATA_PREFIX}/[^/]+/records/namespaces/.+/upsert", "upsert_records (integrated embedding)"),
        (
            rf"{DATA_PREFIX}/[^/]+/records/namespaces/.+/search",
            "search / search_records (integrated embedding)",
        ),
        (rf"{DATA_PREFIX}/[^/]+/namespaces/.+/documents/.*", "document indexes (Index.documents)"),
        (rf"{DATA_PREFIX}/[^/]+/bulk/imports(/.*)?", "bulk imports (start_import and friends)"),
    )
]


def _json(payload: Any, status: int = 200) -> Response:
    return Response(orjson.dumps(payload), status_code=status, media_type="application/json")


def _error(status: int, code: str, message: str) -> Response:
    return _json({"error": {"code": code, "message": message}, "status": status}, status)


def _description(request: Request, record: IndexRecord) -> dict[str, Any]:
    base = str(request.base_url).rstrip("/")
    return {
        "name": record.name,
        "host": f"{base}{DATA_PREFIX}/{record.name}",
        "status": {"ready": True, "state": "Ready"},
        **record.description,
    }


class PineconeApp:
    """Binds the routes to one service and one API key."""

    def __init__(self, service: PineconeService, api_key: str) -> None:
        self.service = service
        self._api_key = api_key.encode()

    def _authorised(self, request: Request) -> bool:
        given = request.headers.get("api-key", "")
        return hmac.compare_digest(given.encode(), self._api_key)

    def endpoint(self, fn: Callable[[Request, Any], Any], status: int = 200) -> Handler:
        """Wrap `fn(request, json_body)` with auth, size limit, JSON and Pinecone-shaped errors."""

        async def handle(request: Request) -> Response:
            if not self._authorised(request):
                return _error(401, "UNAUTHENTICATED", "Invalid API Key")
            raw = await request.body()
            if len(raw) > PINECONE_MAX_REQUEST_BYTES:
                return _error(
                    413,
                    "OUT_OF_RANGE",
                    f"Request size {len(raw)} bytes exceeds the maximum supported size of "
                    f"{PINECONE_MAX_REQUEST_BYTES} bytes (2 MB)",
                )
            try:
                body = orjson.loads(raw) if raw else None
            except orjson.JSONDecodeError:
                return _error(400, "INVALID_ARGUMENT", "request body is not valid JSON")
            try:
                result = await run_in_threadpool(fn, request, body)
            except ApiProblem as problem:
                return _error(problem.status, problem.code, problem.message)
            except (sqlite3.Error, OSError) as exc:  # the data file: one line naming it, no traceback
                error = explain(exc, self.service.storage.path, STORE_REBUILD)
                if error is None:
                    raise
                return _error(
                    500, "DISK_FULL" if isinstance(error, DiskFullError) else "DATA_FILE", str(error)
                )
            if result is None:
                return Response(status_code=status)
            return _json(result, status)

        return handle

    # -- control plane ----------------------------------------------------------------------------------
    def create_index(self, request: Request, body: Any) -> dict[str, Any]:
        return _description(request, self.service.create_index(body))

    def list_indexes(self, request: Request, body: Any) -> dict[str, Any]:
        return {"indexes": [_description(request, r) for r in self.service.list_indexes()]}

    def describe_index(self, request: Request, body: Any) -> dict[str, Any]:
        return _description(request, self.service.describe_index(request.path_params["name"]))

    def configure_index(self, request: Request, body: Any) -> dict[str, Any]:
        return _description(request, self.service.configure_index(request.path_params["name"], body))

    def delete_index(self, request: Request, body: Any) -> None:
        self.service.delete_index(request.path_params["name"])

    # -- data plane -------------------------------------------------------------------------------------
    def upsert(self, request: Request, body: Any) -> dict[str, Any]:
        return {"upsertedCount": self.service.upsert(request.path_params["index"], body)}

    def query(self, request: Request, body: Any) -> dict[str, Any]:
        return self.service.query(request.path_params["index"], body)

    def fetch(self, request: Request, body: Any) -> dict[str, Any]:
        params = request.query_params
        return self.service.fetch(
            request.path_params["index"], params.getlist("ids"), params.get("namespace")
        )

    def delete(self, request: Request, body: Any) -> dict[str, Any]:
        self.service.delete(request.path_params["index"], body)
        return {}

    def update(self, request: Request, body: Any) -> dict[str, Any]:
        return self.service.update(request.path_params["index"], body)

    def list_ids(self, request: Request, body: Any) -> dict[str, Any]:
        params = request.query_params
        return self.service.list_ids(
            request.path_params["index"],
            params.get("namespace"),
            params.get("prefix"),
            _int_param(params.get("limit"), "limit"),
            params.get("paginationToken"),
        )

    def stats(self, request: Request, body: Any) -> dict[str, Any]:
        return self.service.stats(request.path_params["index"], body)

    def fetch_by_metadata(self, request: Request, body: Any) -> dict[str, Any]:
        return self.service.fetch_by_metadata(request.path_params["index"], body)

    def list_namespaces(self, request: Request, body: Any) -> dict[str, Any]:
        params = request.query_params
        return self.service.list_namespaces(
            request.path_params["index"],
            params.get("prefix"),
            _int_param(params.get("limit"), "limit"),
            params.get("paginationToken"),
        )

    def describe_namespace(self, request: Request, body: Any) -> dict[str, Any]:
        return self.service.describe_namespace(request.path_params["index"], request.path_params["namespace"])

    def create_namespace(self, request: Request, body: Any) -> dict[str, Any]:
        return self.service.create_namespace(request.path_params["index"], body)

    def delete_namespace(self, request: Request, body: Any) -> None:
        self.service.delete_namespace(request.path_params["index"], request.path_params["namespace"])

    def unsupported(self, request: Request, body: Any) -> None:
        path = request.url.path
        for pattern, name in _UNSUPPORTED:
            if pattern.fullmatch(path):
                raise not_supported(name)
        raise not_supported(f"{request.method} {path}")

    def routes(self) -> list[Route]:
        data = f"{DATA_PREFIX}/{{index}}"
        unsupported = self.endpoint(self.unsupported)
        return [
            Route("/health", _health, methods=["GET"]),
            Route("/indexes", self.endpoint(self.create_index, 201), methods=["POST"]),
            Route("/indexes", self.endpoint(self.list_indexes), methods=["GET"]),
            Route("/indexes/{name}", self.endpoint(self.describe_index), methods=["GET"]),
            Route("/indexes/{name}", self.endpoint(self.configure_index), methods=["PATCH"]),
            Route("/indexes/{name}", self.endpoint(self.delete_index, 202), methods=["DELETE"]),
            Route(f"{data}/vectors/upsert", self.endpoint(self.upsert), methods=["POST"]),
            Route(f"{data}/query", self.endpoint(self.query), methods=["POST"]),
            Route(f"{data}/vectors/fetch", self.endpoint(self.fetch), methods=["GET"]),
            Route(f"{data}/vectors/delete", self.endpoint(self.delete), methods=["POST"]),
            Route(f"{data}/vectors/update", self.endpoint(self.update), methods=["POST"]),
            Route(f"{data}/vectors/list", self.endpoint(self.list_ids), methods=["GET"]),
            Route(f"{data}/describe_index_stats", self.endpoint(self.stats), methods=["POST", "GET"]),
            Route(
                f"{data}/vectors/fetch_by_metadata", self.endpoint(self.fetch_by_metadata), methods=["POST"]
            ),
            Route(f"{data}/namespaces", self.endpoint(self.list_namespaces), methods=["GET"]),
            Route(f"{data}/namespaces", self.endpoint(self.create_namespace, 201), methods=["POST"]),
            Route(f"{data}/namespaces/{{rest:path}}/documents/{{op}}", unsupported, methods=_ALL_METHODS),
            Route(
                f"{data}/namespaces/{{namespace:path}}",
                self.endpoint(self.describe_namespace),
                methods=["GET"],
            ),
            Route(
                f"{data}/namespaces/{{namespace:path}}",
                self.endpoint(self.delete_namespace, 202),
                methods=["DELETE"],
            ),
            # Last: every other route answers 501 naming what is not supported, never a bare 404/405.
            Route("/{rest:path}", unsupported, methods=_ALL_METHODS),
        ]


_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE"]


def _int_param(value: str | None, name: str) -> int | None:
    if value is None:
        return None
    if not value.isdigit():
        raise bad_request(f"{name} must be an integer")
    return int(value)


async def _health(request: Request) -> Response:
    return _json({"status": "ok"})


def create_app(data_dir: str | Path, api_key: str) -> Starlette:
    """The ASGI app for `sagerag serve` and `LocalPinecone`; state lives in `data_dir/pinecone.sqlite3`."""
    service = PineconeService(PineconeStorage(data_dir))
    app = Starlette(routes=PineconeApp(service, api_key).routes())
    app.state.pinecone_service = service
    return app
