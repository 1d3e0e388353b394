"""The local Pinecone's behaviour, independent of HTTP: validation, limits, storage and search.

Limits are Pinecone's own (1000 vectors and 2 MB per upsert, 40 KB metadata per vector, 512-byte ids,
topK <= 10000), enforced with Pinecone-shaped errors so code that passes locally does not fail in the
cloud. Search snapshots are cached per (index, namespace) and dropped by every write to that namespace.
"""

from __future__ import annotations

import base64
import re
import threading
from typing import Any

import numpy as np
import orjson

from sagerag.local.pinecone.filter import FilterError, evaluate_filter, validate_filter
from sagerag.local.pinecone.search import NamespaceSnapshot
from sagerag.local.pinecone.storage import IndexRecord, PineconeStorage

MAX_UPSERT_VECTORS = 1000
MAX_REQUEST_BYTES = 2 * 1024 * 1024
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_BYTES = 512
MAX_TOP_K = 10_000
MAX_DIMENSION = 20_000
METRICS = ("cosine", "dotproduct", "euclidean")
DEFAULT_NAMESPACE_LABEL = "__default__"
_INDEX_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$")


class ApiProblem(Exception):
    """An error answered as Pinecone answers it: HTTP status, gRPC-style code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


def _bad(message: str) -> ApiProblem:
    return ApiProblem(400, "INVALID_ARGUMENT", message)


def _namespace(value: Any) -> str:
    """Pinecone names the default namespace both "" and "__default__"; store it as ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _bad("namespace must be a string")
    return "" if value == DEFAULT_NAMESPACE_LABEL else value


def _check_id(vector_id: Any) -> str:
    if not isinstance(vector_id, str) or not vector_id:
        raise _bad("Vector ID must be a non-empty string")
    if len(vector_id.encode()) > MAX_ID_BYTES:
        raise _bad(f"Vector ID exceeds the maximum length of {MAX_ID_BYTES} bytes: {vector_id[:40]!r}...")
    return vector_id


def _check_metadata(vector_id: str, metadata: Any) -> str | None:
    if metadata is None:
        return None
    if not isinstance(metadata, dict):
        raise _bad(f"Metadata of vector {vector_id!r} must be an object")
    clean: dict[str, Any] = {}
    for key, value in metadata.items():
        if value is None:
            continue
        if isinstance(value, list):
            if not all(isinstance(v, str) for v in value):
                raise _bad(
                    f"Metadata value for key {key!r} of vector {vector_id!r} must be a list of strings"
                )
        elif not isinstance(value, str | int | float | bool):
            raise _bad(
                f"Metadata value for key {key!r} of vector {vector_id!r} must be a string, number, "
                "boolean or list of strings"
            )
        clean[key] = value
    if not clean:
        return None
    text = orjson.dumps(clean)
    if len(text) > MAX_METADATA_BYTES:
        raise _bad(
            f"Metadata size is {len(text)} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes "
            f"per vector (vector {vector_id!r})"
        )
    return text.decode()


class PineconeService:
    """Index and vector operations over `PineconeStorage`, with a lazily rebuilt search cache."""

    def __init__(self, storage: PineconeStorage) -> None:
        self.storage = storage
        self._snapshots: dict[tuple[str, str], NamespaceSnapshot] = {}
        self._records: dict[str, IndexRecord] = {}  # index descriptions, dropped on configure/delete
        self._lock = threading.Lock()
        self._write_locks: dict[str, threading.RLock] = {}
        self._seen_version = storage.data_version()

    # -- control plane ----------------------------------------------------------------------------------
    def create_index(self, body: Any) -> IndexRecord:
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        name = body.get("name")
        if not isinstance(name, str) or not _INDEX_NAME.match(name):
            raise _bad(
                "Index name must be 1-45 characters, lowercase alphanumeric or '-', "
                "starting and ending with an alphanumeric character"
            )
        dimension, metric, schema = self._dense_field(body)
        deployment = body.get("deployment")
        if deployment is None:
            spec = body.get("spec") or {}
            serverless = spec.get("serverless") if isinstance(spec, dict) else None
            serverless = serverless if isinstance(serverless, dict) else {}
            deployment = {
                "deployment_type": "managed",
                "cloud": serverless.get("cloud", "aws"),
                "region": serverless.get("region", "us-east-1"),
            }
        description: dict[str, Any] = {
            "schema": schema,
            "deployment": deployment,
            "deletion_protection": body.get("deletion_protection") or "disabled",
        }
        if body.get("tags"):
            description["tags"] = body["tags"]
        record = IndexRecord(name, dimension, metric, description)
        with self._lock:
            if self.storage.get_index(name) is not None:
                raise ApiProblem(409, "ALREADY_EXISTS", f"Resource {name} already exists")
            self.storage.create_index(record)
        return record

    @staticmethod
    def _dense_field(body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
        """(dimension, metric, schema) from a 10.x `schema` body or an older `dimension`/`metric` one."""
        schema = body.get("schema")
        if isinstance(schema, dict):
            fields = schema.get("fields")
            fields = fields if isinstance(fields, dict) else {}
            dense = [f for f in fields.values() if isinstance(f, dict) and f.get("type") == "dense_vector"]
            if len(dense) != 1:
                raise _bad("the local Pinecone supports exactly one dense_vector field per index")
            dimension, metric = dense[0].get("dimension"), dense[0].get("metric") or "cosine"
        else:
            dimension, metric = body.get("dimension"), body.get("metric") or "cosine"
            schema = {
                "fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}
            }
        if (
            not isinstance(dimension, int)
            or isinstance(dimension, bool)
            or not 1 <= dimension <= MAX_DIMENSION
        ):
            raise _bad(f"dimension must be an integer between 1 and {MAX_DIMENSION}")
        metric = str(metric).lower()
        if metric not in METRICS:
            raise _bad(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
        return dimension, metric, schema

    def describe_index(self, name: str) -> IndexRecord:
        record = self._records.get(name)
        if record is None:
            with self._lock:  # so a concurrent delete cannot leave a stale entry behind
                record = self.storage.get_index(name)
                if record is None:
                    raise ApiProblem(404, "NOT_FOUND", f"Resource {name} not found")
                self._records[name] = record
        return record

    def configure_index(self, name: str, body: Any) -> IndexRecord:
        record = self.describe_index(name)
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        description = dict(record.description)
        if body.get("deletion_protection") in ("enabled", "disabled"):
            description["deletion_protection"] = body["deletion_protection"]
        if isinstance(body.get("tags"), dict):
            tags = {**(description.get("tags") or {}), **body["tags"]}  # type: ignore[dict-item]
            description["tags"] = {k: v for k, v in tags.items() if v != ""}
        with self._lock:
            self.storage.update_index_description(name, description)
            self._records.pop(name, None)
        return IndexRecord(record.name, record.dimension, record.metric, description)

    def delete_index(self, name: str) -> None:
        record = self.describe_index(name)
        if record.description.get("deletion_protection") == "enabled":
            raise ApiProblem(
                403, "FORBIDDEN", f"Deletion protection is enabled for this index ({name}); disable it first"
            )
        with self._index_lock(name):
            with self._lock:
                self.storage.delete_index(name)
                self._records.pop(name, None)
            self._drop(name, None)

    # -- data plane -------------------------------------------------------------------------------------
    def upsert(self, index: str, body: Any) -> int:
        record = self.describe_index(index)
        if not isinstance(body, dict) or not isinstance(body.get("vectors"), list):
            raise _bad("request body must be an object with a 'vectors' array")
        vectors = body["vectors"]
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise _bad(
                f"Upsert request contains {len(vectors)} vectors; "
                f"the maximum is {MAX_UPSERT_VECTORS} per request"
            )
        namespace = _namespace(body.get("namespace"))
        rows: dict[str, tuple[str, bytes, str | None]] = {}
        for item in vectors:
            if not isinstance(item, dict):
                raise _bad("each vector must be an object with 'id' and 'values'")
            vector_id = _check_id(item.get("id"))
            values = self._vector(item.get("values"), record, f"Vector {vector_id!r}")
            rows[vector_id] = (vector_id, values.tobytes(), _check_metadata(vector_id, item.get("metadata")))
        with self._index_lock(index):
            self._require_live(index)
            self.storage.upsert(index, namespace, rows.values())
            self._drop(index, namespace)
        return len(vectors)

    @staticmethod
    def _vector(values: Any, record: IndexRecord, what: str) -> np.ndarray:
        if not isinstance(values, list) or not values:
            raise _bad(f"{what} must have dense 'values'")
        try:
            array = np.asarray(values, dtype=np.float32)
        except (TypeError, ValueError):
            raise _bad(f"{what} values must be numbers") from None
        if array.ndim != 1 or array.shape[0] != record.dimension:
            raise _bad(
                f"{what} dimension {array.shape[0] if array.ndim == 1 else '?'} does not match "
                f"the dimension of the index {record.dimension}"
            )
        if not np.all(np.isfinite(array)):
            raise _bad(f"{what} values must be finite numbers")
        if record.metric == "cosine" and not np.any(array):
            raise _bad(f"{what}: dense vectors must contain at least one non-zero value for cosine")
        return array

    def load_arrays(
        self,
        index: str,
        ids: list[str],
        vectors: np.ndarray,
        metadata: list[dict[str, Any] | None] | None = None,
        namespace: str = "",
    ) -> None:
        """In-process bulk load (benchmarks, large local ingests): no HTTP, no JSON floats, no limits."""
        record = self.describe_index(index)
        matrix = np.ascontiguousarray(vectors, dtype=np.float32)
        if matrix.shape != (len(ids), record.dimension):
            raise _bad(f"expected a ({len(ids)}, {record.dimension}) matrix, got {matrix.shape}")
        metas = metadata or [None] * len(ids)
        rows = (
            (_check_id(i), matrix[n].tobytes(), orjson.dumps(m).decode() if m else None)
            for n, (i, m) in enumerate(zip(ids, metas, strict=True))
        )
        with self._index_lock(index):
            self._require_live(index)
            self.storage.upsert(index, _namespace(namespace), rows)
            self._drop(index, _namespace(namespace))

    def query(self, index: str, body: Any) -> dict[str, Any]:
        record = self.describe_index(index)
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        top_k = body.get("topK")
        if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
            raise _bad(f"topK must be an integer between 1 and {MAX_TOP_K}, got {top_k!r}")
        namespace = _namespace(body.get("namespace"))
        filter_ = body.get("filter")
        if filter_ is not None:
            self._validate_filter(filter_)
        snapshot = self.snapshot(record, namespace)
        if body.get("vector") is not None:
            query = self._vector(body["vector"], record, "Query vector")
        elif body.get("id") is not None:
            position = snapshot.position.get(str(body["id"]))
            if position is None:
                return {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}
            query = np.frombuffer(self._raw_vector(index, namespace, str(body["id"])), dtype=np.float32)
        else:
            raise _bad("query needs 'vector' or 'id'")
        mask = evaluate_filter(filter_, snapshot.table) if filter_ else None
        hits = snapshot.search(query, top_k, mask)
        include_metadata = bool(body.get("includeMetadata"))
        include_values = bool(body.get("includeValues"))
        stored = (
            self._stored_values(index, namespace, [snapshot.ids[r] for r, _ in hits])
            if include_values
            else {}
        )
        matches: list[dict[str, Any]] = []
        for row, score in hits:
            vector_id = snapshot.ids[row]
            match: dict[str, Any] = {"id": vector_id, "score": score, "values": []}
            if include_values:
                match["values"] = stored.get(vector_id, [])
            if include_metadata and snapshot.metadata[row]:
                match["metadata"] = orjson.loads(snapshot.metadata[row] or "{}")
            matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}

    def _raw_vector(self, index: str, namespace: str, vector_id: str) -> bytes:
        rows = self.storage.fetch(index, namespace, [vector_id])
        return rows[0].values.tobytes() if rows else b""

    def _stored_values(self, index: str, namespace: str, ids: list[str]) -> dict[str, list[float]]:
        """Original (not normalised) values, read from storage only when a client asks for them."""
        return {row.id: row.values.tolist() for row in self.storage.fetch(index, namespace, ids)}

    def fetch(self, index: str, ids: list[str], namespace: Any) -> dict[str, Any]:
        self.describe_index(index)
        ns = _namespace(namespace)
        for vector_id in ids:
            _check_id(vector_id)
        vectors: dict[str, Any] = {}
        for row in self.storage.fetch(index, ns, ids):
            entry: dict[str, Any] = {"id": row.id, "values": row.values.tolist()}
            if row.metadata:
                entry["metadata"] = orjson.loads(row.metadata)
            vectors[row.id] = entry
        return {"vectors": vectors, "namespace": ns, "usage": {"readUnits": 1}}

    def delete(self, index: str, body: Any) -> None:
        record = self.describe_index(index)
        if not isinstance(body, dict):
            raise _bad("request body must be a JSON object")
        namespace = _namespace(body.get("namespace"))
        ids, delete_all, filter_ = body.get("ids"), bool(body.get("deleteAll")), body.get("filter")
        if sum(x is not None and x is not False for x in (ids, filter_)) + delete_all != 1:
            raise _bad("delete needs exactly one of 'ids', 'deleteAll' or 'filter'")
        with self._index_lock(index):
            if delete_all:
                self.storage.delete_namespace(index, namespace)
            elif ids is not None:
                if not isinstance(ids, list) or len(ids) > MAX_UPSERT_VECTORS:
                    raise _bad(f"'ids' must be an array of at most {MAX_UPSERT_VECTORS} ids")
                self.storage.delete_ids(index, namespace, [_check_id(i) for i in ids])
            else:
                if not filter_:
                    raise _bad("filter must not be empty")
                self._validate_filter(filter_)
                snapshot = self.snapshot(record, namespace)
                mask = evaluate_filter(filter_, snapshot.table)
                self.storage.delete_ids(index, namespace, [snapshot.ids[i] for i in np.flatnonzero(mask)])
            self._drop(index, namespace)

    def update(self, index: str, body: Any) -> dict[str, Any]:
        record = self.describe_index(index)
        if not isinstance(body, dict) or not isinstance(body.get("id"), str):
            raise _bad("the local Pinecone supports updates by 'id' only")
        namespace = _namespace(body.get("namespace"))
        vector_id = _check_id(body["id"])
        with self._index_lock(index):
            self._require_live(index)
            rows = self.storage.fetch(index, namespace, [vector_id])
            if not rows:
                return {"matchedRecords": 0}
            current = rows[0]
            values = current.values
            if body.get("values"):
                values = self._vector(body["values"], record, f"Vector {vector_id!r}")
            metadata = orjson.loads(current.metadata) if current.metadata else {}
            if isinstance(body.get("setMetadata"), dict):
                metadata.update(body["setMetadata"])
            meta_text = _check_metadata(vector_id, metadata)
            self.storage.upsert(index, namespace, [(vector_id, values.tobytes(), meta_text)])
            self._drop(index, namespace)
        return {"matchedRecords": 1}

    def list_ids(
        self, index: str, namespace: Any, prefix: str | None, limit: int | None, token: str | None
    ) -> dict[str, Any]:
        self.describe_index(index)
        ns = _namespace(namespace)
        limit = 100 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise _bad("limit must be between 1 and 1000")
        after: str | None = None
        if token:
            try:
                after = base64.urlsafe_b64decode(token.encode()).decode()
            except (ValueError, UnicodeDecodeError):
                raise _bad("invalid pagination token") from None
        ids = self.storage.list_ids(index, ns, prefix or "", after, limit + 1)
        result: dict[str, Any] = {
            "vectors": [{"id": i} for i in ids[:limit]],
            "namespace": ns,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            result["pagination"] = {"next": base64.urlsafe_b64encode(ids[limit - 1].encode()).decode()}
        return result

    def stats(self, index: str) -> dict[str, Any]:
        record = self.describe_index(index)
        counts = self.storage.namespace_counts(index)
        return {
            "namespaces": {
                (ns or DEFAULT_NAMESPACE_LABEL): {"vectorCount": count}
                for ns, count in sorted(counts.items())
            },
            "dimension": record.dimension,
            "indexFullness": 0.0,
            "totalVectorCount": sum(counts.values()),
            "metric": record.metric,
            "vectorType": "dense",
        }

    # -- cache ------------------------------------------------------------------------------------------
    def snapshot(self, record: IndexRecord, namespace: str) -> NamespaceSnapshot:
        """The cached search snapshot, rebuilt from SQLite after a write invalidated it.

        Writes by another process (an embedded ingest, a second server on the same file) do not pass
        through `_drop`; SQLite's data_version reveals them, and then every cached snapshot is rebuilt.
        """
        version = self.storage.data_version()
        if version != self._seen_version:
            with self._lock:
                self._seen_version = version
                self._snapshots.clear()
                self._records.clear()
        key = (record.name, namespace)
        snap = self._snapshots.get(key)
        if snap is not None:
            return snap
        with self._index_lock(record.name):
            snap = self._snapshots.get(key)
            if snap is None:
                ids, blob, metadata = self.storage.load_namespace(record.name, namespace)
                snap = NamespaceSnapshot.build(ids, blob, metadata, record.dimension, record.metric)
                self._snapshots[key] = snap
        return snap

    def _drop(self, index: str, namespace: str | None) -> None:
        for key in list(self._snapshots):  # list() copies atomically; other threads may insert
            if key[0] == index and (namespace is None or key[1] == namespace):
                self._snapshots.pop(key, None)

    def _require_live(self, index: str) -> None:
        """Under the index lock: the index was not deleted since this request looked it up."""
        if self.storage.get_index(index) is None:
            raise ApiProblem(404, "NOT_FOUND", f"Resource {index} not found")

    def _index_lock(self, index: str) -> threading.RLock:
        with self._lock:
            return self._write_locks.setdefault(index, threading.RLock())

    @staticmethod
    def _validate_filter(filter_: Any) -> None:
        try:
            validate_filter(filter_)
        except FilterError as exc:
            raise _bad(f"Invalid filter: {exc}") from None
