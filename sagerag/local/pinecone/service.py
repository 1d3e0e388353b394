"""The local Pinecone's behaviour, independent of HTTP: index and vector operations over storage.

Requests are checked by `validation` (Pinecone's own rules and limits) before anything is stored. Each
namespace is searched in memory (`search.NamespaceIndex`), loaded from SQLite on first use. A write commits
to SQLite first (the truth: what was acknowledged survives a crash) and is then applied to the loaded
namespace in place, under the index's write lock, so queries stay as fast after a write as before it. A
failed commit raises before memory is touched. Writes by another process on the same file (an embedded
`ask` or `ingest` beside another, when no `sagerag serve` owns the data directory) are seen through
SQLite's data_version: the next query reloads.
"""

from __future__ import annotations

import base64
import heapq
import logging
import threading
from collections.abc import Callable
from typing import Any

import numpy as np

from sagerag.local.pinecone.filter import evaluate_filter
from sagerag.local.pinecone.search import NamespaceIndex
from sagerag.local.pinecone.storage import (
    IndexRecord,
    PineconeStorage,
    Row,
    VectorRow,
    pack_sparse,
    unpack_sparse,
)
from sagerag.local.pinecone.validation import (
    DEFAULT_NAMESPACE_LABEL,
    DEFAULT_PAGE,
    MAX_FETCH_BY_METADATA,
    MAX_UPSERT_VECTORS,
    ApiProblem,
    bad_request,
    check_filter,
    check_id,
    check_index_name,
    check_metadata,
    check_namespace_name,
    check_sparse,
    check_top_k,
    check_vector,
    clean_metadata,
    decode_metadata,
    dense_field,
    dense_matrix,
    encode_metadata,
    not_found,
    not_supported,
    parse_namespace,
)

_log = logging.getLogger(__name__)


def _vector_entry(row: VectorRow) -> dict[str, Any]:
    """A stored vector as fetch answers it: values, sparseValues when it has them, metadata."""
    entry: dict[str, Any] = {"id": row.id, "values": row.values.tolist()}
    sparse = unpack_sparse(row.sparse)
    if sparse is not None:
        entry["sparseValues"] = {"indices": sparse[0].tolist(), "values": sparse[1].tolist()}
    if row.metadata:
        entry["metadata"] = decode_metadata(row.metadata)
    return entry


class PineconeService:
    """Index and vector operations over `PineconeStorage`, with namespaces searched in memory."""

    def __init__(self, storage: PineconeStorage) -> None:
        self.storage = storage
        self._namespaces: dict[tuple[str, str], NamespaceIndex] = {}
        self._generation = 0  # bumped whenever the whole cache is dropped (another process wrote)
        self._records: dict[str, IndexRecord] = {}  # index descriptions, dropped on configure/delete
        self._lock = threading.Lock()
        self._write_locks: dict[str, threading.RLock] = {}
        self._seen_version = storage.data_version()

    def close(self) -> None:
        """Close the database; the service is unusable afterwards."""
        self.storage.close()

    # -- control plane ----------------------------------------------------------------------------------
    def create_index(self, body: Any) -> IndexRecord:
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        name = check_index_name(body.get("name"))
        dimension, metric, schema = dense_field(body)
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

    def list_indexes(self) -> list[IndexRecord]:
        return self.storage.list_indexes()

    def describe_index(self, name: str) -> IndexRecord:
        record = self._records.get(name)
        if record is None:
            with self._lock:  # so a concurrent delete cannot leave a stale entry behind
                record = self.storage.get_index(name)
                if record is None:
                    raise not_found(name)
                self._records[name] = record
        return record

    def configure_index(self, name: str, body: Any) -> IndexRecord:
        record = self.describe_index(name)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        self._refuse_unsupported_configuration(record, body)
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

    @staticmethod
    def _refuse_unsupported_configuration(record: IndexRecord, body: dict[str, Any]) -> None:
        """Refuse what a serverless index cannot change, instead of answering success and ignoring it."""
        deployment = body.get("deployment")
        if deployment:
            keys = ", ".join(sorted(deployment)) if isinstance(deployment, dict) else "deployment"
            raise bad_request(
                f"Index {record.name} is a serverless index: {keys} (pod scaling) applies to pod-based "
                "indexes only; serverless indexes scale on their own"
            )
        if body.get("schema") is not None:
            raise bad_request(
                f"The schema of index {record.name} was fixed when it was created and cannot be changed"
            )
        read_capacity = body.get("read_capacity")
        if read_capacity is not None:
            mode = read_capacity.get("mode") if isinstance(read_capacity, dict) else None
            if mode != "OnDemand":
                raise not_supported(f"read_capacity mode {mode!r} (dedicated read nodes)")

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
            raise bad_request("request body must be an object with a 'vectors' array")
        vectors = body["vectors"]
        if len(vectors) > MAX_UPSERT_VECTORS:
            raise bad_request(
                f"Upsert request contains {len(vectors)} vectors; "
                f"the maximum is {MAX_UPSERT_VECTORS} per request"
            )
        namespace = parse_namespace(body.get("namespace"))
        rows: dict[str, Row] = {}
        # Every dense value checked at once; None when one fails, and then the loop names the first bad one.
        matrix = dense_matrix(
            [item.get("values") if isinstance(item, dict) else None for item in vectors],
            record.dimension,
            record.metric,
        )
        for i, item in enumerate(vectors):
            if not isinstance(item, dict):
                raise bad_request("each vector must be an object with 'id' and 'values'")
            vector_id = check_id(item.get("id"))
            what = f"Vector {vector_id!r}"
            values = (
                matrix[i]
                if matrix is not None
                else check_vector(item.get("values"), record.dimension, record.metric, what)
            )
            sparse = check_sparse(item.get("sparseValues"), record.metric, what)
            rows[vector_id] = (
                vector_id,
                values.tobytes(),
                check_metadata(vector_id, item.get("metadata")),
                pack_sparse(*sparse) if sparse is not None else None,
            )
        with self._index_lock(index):
            self._require_live(index)
            self.storage.upsert(index, namespace, rows.values())
            self._apply(index, namespace, lambda cached: cached.upsert(list(rows.values())))
        return len(vectors)

    def query(self, index: str, body: Any) -> dict[str, Any]:
        record = self.describe_index(index)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        top_k = check_top_k(body.get("topK"))
        namespace = parse_namespace(body.get("namespace"))
        filter_ = body.get("filter")
        if filter_ is not None:
            check_filter(filter_)
        sparse = check_sparse(body.get("sparseVector"), record.metric, "Query")
        if body.get("vector") is not None:
            query = check_vector(body["vector"], record.dimension, record.metric, "Query vector")
        elif body.get("id") is not None:
            stored_query = self.storage.fetch(index, namespace, [str(body["id"])])
            if not stored_query:
                return {"matches": [], "namespace": namespace, "usage": {"readUnits": 1}}
            query = stored_query[0].values
        else:
            raise bad_request("query needs 'vector' or 'id'")
        include_metadata = bool(body.get("includeMetadata"))
        include_values = bool(body.get("includeValues"))
        cached = self.namespace_index(record, namespace)
        with cached.reading():  # the filter, the ranking and the ids of the hits: one state of the namespace
            mask = evaluate_filter(filter_, cached.table) if filter_ else None
            hits = [
                (cached.ids[row], score, cached.metadata[row] if include_metadata else None)
                for row, score in cached.search(query, top_k, mask, sparse)
            ]
        stored = self._stored_values(index, namespace, [h[0] for h in hits]) if include_values else {}
        matches: list[dict[str, Any]] = []
        for vector_id, score, metadata in hits:
            match: dict[str, Any] = {"id": vector_id, "score": score, "values": []}
            if include_values:
                match["values"] = stored.get(vector_id, [])
            if metadata:
                match["metadata"] = decode_metadata(metadata)
            matches.append(match)
        return {"matches": matches, "namespace": namespace, "usage": {"readUnits": 1}}

    def _stored_values(self, index: str, namespace: str, ids: list[str]) -> dict[str, list[float]]:
        """Original (not normalised) values, read from storage only when a client asks for them."""
        return {row.id: row.values.tolist() for row in self.storage.fetch(index, namespace, ids)}

    def fetch(self, index: str, ids: list[str], namespace: Any) -> dict[str, Any]:
        self.describe_index(index)
        ns = parse_namespace(namespace)
        for vector_id in ids:
            check_id(vector_id)
        vectors: dict[str, Any] = {}
        for row in self.storage.fetch(index, ns, ids):
            vectors[row.id] = _vector_entry(row)
        return {"vectors": vectors, "namespace": ns, "usage": {"readUnits": 1}}

    def delete(self, index: str, body: Any) -> None:
        record = self.describe_index(index)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        namespace = parse_namespace(body.get("namespace"))
        ids, delete_all, filter_ = body.get("ids"), bool(body.get("deleteAll")), body.get("filter")
        if sum(x is not None and x is not False for x in (ids, filter_)) + delete_all != 1:
            raise bad_request("delete needs exactly one of 'ids', 'deleteAll' or 'filter'")
        with self._index_lock(index):
            if delete_all:
                self.storage.delete_namespace(index, namespace)
                self._apply(index, namespace, NamespaceIndex.clear)
                return
            if ids is not None:
                if not isinstance(ids, list) or len(ids) > MAX_UPSERT_VECTORS:
                    raise bad_request(f"'ids' must be an array of at most {MAX_UPSERT_VECTORS} ids")
                doomed = [check_id(i) for i in ids]
            else:
                if not filter_:
                    raise bad_request("filter must not be empty")
                check_filter(filter_)
                doomed = self._matching_ids(record, namespace, filter_)
            self.storage.delete_ids(index, namespace, doomed)
            self._apply(index, namespace, lambda cached: cached.delete(doomed))

    def update(self, index: str, body: Any) -> dict[str, Any]:
        """By id (values and/or metadata; answers `{}` as Pinecone does) or, metadata only, by filter."""
        record = self.describe_index(index)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        namespace = parse_namespace(body.get("namespace"))
        set_metadata = body.get("setMetadata")
        if set_metadata is not None and not isinstance(set_metadata, dict):
            raise bad_request("setMetadata must be an object")
        if body.get("filter") is not None:
            return self._update_by_filter(record, namespace, body, set_metadata or {})
        if not isinstance(body.get("id"), str):
            raise bad_request("update needs exactly one of 'id' or 'filter'")
        vector_id = check_id(body["id"])
        if body.get("values") is None and body.get("sparseValues") is None and not set_metadata:
            raise bad_request(
                f"Update of vector {vector_id!r} changes nothing: give values, sparseValues or setMetadata"
            )
        new_values = (
            check_vector(body["values"], record.dimension, record.metric, f"Vector {vector_id!r}")
            if body.get("values") is not None
            else None
        )
        new_sparse = check_sparse(body.get("sparseValues"), record.metric, f"Vector {vector_id!r}")
        patch = clean_metadata(vector_id, set_metadata or {})
        with self._index_lock(index):
            self._require_live(index)
            rows = self.storage.fetch(index, namespace, [vector_id])
            if rows:  # an unknown id is not an error in Pinecone: nothing is written
                current = rows[0]
                values = current.values if new_values is None else new_values
                sparse_blob = current.sparse if new_sparse is None else pack_sparse(*new_sparse)
                metadata = {**decode_metadata(current.metadata), **patch}
                row = (vector_id, values.tobytes(), encode_metadata(vector_id, metadata), sparse_blob)
                self.storage.upsert(index, namespace, [row])
                self._apply(index, namespace, lambda cached: cached.upsert([row]))
        return {}

    def _update_by_filter(
        self, record: IndexRecord, namespace: str, body: dict[str, Any], set_metadata: dict[str, Any]
    ) -> dict[str, Any]:
        if body.get("id") is not None:
            raise bad_request("update needs exactly one of 'id' or 'filter', not both")
        if body.get("values") is not None or body.get("sparseValues") is not None:
            raise bad_request("Update by metadata request does not support updating vector values")
        filter_ = body["filter"]
        if not filter_:
            raise bad_request("Update with empty metadata filter is not allowed")
        check_filter(filter_)
        if not set_metadata:
            raise bad_request("Update by metadata filter changes nothing: give setMetadata")
        patch = clean_metadata("(matched by filter)", set_metadata)
        with self._index_lock(record.name):
            self._require_live(record.name)
            ids = self._matching_ids(record, namespace, filter_)
            if not body.get("dryRun") and ids:
                rows: list[Row] = []
                for row in self.storage.fetch(record.name, namespace, ids):
                    metadata = {**decode_metadata(row.metadata), **patch}
                    rows.append((row.id, row.values.tobytes(), encode_metadata(row.id, metadata), row.sparse))
                self.storage.upsert(record.name, namespace, rows)
                self._apply(record.name, namespace, lambda cached: cached.upsert(rows))
        return {"matchedRecords": len(ids)}

    def list_ids(
        self, index: str, namespace: Any, prefix: str | None, limit: int | None, token: str | None
    ) -> dict[str, Any]:
        self.describe_index(index)
        ns = parse_namespace(namespace)
        limit = 100 if limit is None else limit
        if not 1 <= limit <= 1000:
            raise bad_request("limit must be between 1 and 1000")
        after = _decode_token(token)
        ids = self.storage.list_ids(index, ns, prefix or "", after, limit + 1)
        result: dict[str, Any] = {
            "vectors": [{"id": i} for i in ids[:limit]],
            "namespace": ns,
            "usage": {"readUnits": 1},
        }
        if len(ids) > limit:
            result["pagination"] = {"next": _encode_token(ids[limit - 1])}
        return result

    def fetch_by_metadata(self, index: str, body: Any) -> dict[str, Any]:
        """The vectors a filter admits, in id order, a page at a time (a lookup: no ranking, no score)."""
        record = self.describe_index(index)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        filter_ = body.get("filter")
        if not filter_:
            raise bad_request("Empty filter provided for fetch by metadata request")
        check_filter(filter_)
        namespace = parse_namespace(body.get("namespace"))
        limit = body.get("limit", DEFAULT_PAGE)
        if not isinstance(limit, int) or isinstance(limit, bool) or not 1 <= limit <= MAX_FETCH_BY_METADATA:
            raise bad_request(f"limit must be an integer between 1 and {MAX_FETCH_BY_METADATA}")
        after = _decode_token(body.get("paginationToken"))
        ids = self._matching_ids(record, namespace, filter_)
        if after is not None:
            ids = [i for i in ids if i > after]
        ids = heapq.nsmallest(limit + 1, ids)  # the page in id order, and whether more follow
        page = ids[:limit]
        vectors: dict[str, Any] = {}
        for row in sorted(self.storage.fetch(index, namespace, page), key=lambda r: r.id):
            vectors[row.id] = _vector_entry(row)
        result: dict[str, Any] = {"vectors": vectors, "namespace": namespace, "usage": {"readUnits": 1}}
        if len(ids) > limit:
            result["pagination"] = {"next": _encode_token(page[-1])}
        return result

    # -- namespaces -------------------------------------------------------------------------------------
    def list_namespaces(
        self, index: str, prefix: str | None, limit: int | None, token: str | None
    ) -> dict[str, Any]:
        self.describe_index(index)
        limit = DEFAULT_PAGE if limit is None else limit
        if not 1 <= limit <= 1000:
            raise bad_request("limit must be between 1 and 1000")
        after = _decode_token(token)
        labelled = sorted(
            (ns or DEFAULT_NAMESPACE_LABEL, count)
            for ns, count in self.storage.list_namespaces(index).items()
            if (ns or DEFAULT_NAMESPACE_LABEL).startswith(prefix or "")
        )
        remaining = [item for item in labelled if after is None or item[0] > after]
        page = remaining[:limit]
        result: dict[str, Any] = {
            "namespaces": [_namespace_description(name, count) for name, count in page],
            "total_count": len(labelled),
        }
        if len(remaining) > limit:
            result["pagination"] = {"next": _encode_token(page[-1][0])}
        return result

    def describe_namespace(self, index: str, name: str) -> dict[str, Any]:
        self.describe_index(index)
        label = check_namespace_name(name)
        namespace = parse_namespace(label)
        # On an index with a dense schema the default namespace always exists.
        if namespace and not self.storage.namespace_exists(index, namespace):
            raise not_found(f"namespace {label}")
        count = self.storage.namespace_counts(index).get(namespace, 0)
        return _namespace_description(label, count)

    def create_namespace(self, index: str, body: Any) -> dict[str, Any]:
        self.describe_index(index)
        if not isinstance(body, dict):
            raise bad_request("request body must be a JSON object")
        name = check_namespace_name(body.get("name"))
        if name == DEFAULT_NAMESPACE_LABEL:
            raise bad_request(f"{DEFAULT_NAMESPACE_LABEL} is reserved for the default namespace")
        if body.get("schema") is not None:
            raise not_supported("namespace schemas (selective metadata indexing)")
        with self._index_lock(index):
            self._require_live(index)
            if not self.storage.create_namespace(index, name):
                raise ApiProblem(409, "ALREADY_EXISTS", f"Namespace {name} already exists")
        return _namespace_description(name, 0)

    def delete_namespace(self, index: str, name: str) -> None:
        self.describe_index(index)
        namespace = parse_namespace(check_namespace_name(name))
        with self._index_lock(index):
            self._require_live(index)
            if not self.storage.drop_namespace(index, namespace) and namespace:
                raise not_found(f"namespace {name}")
            self._drop(index, namespace)

    def stats(self, index: str, body: Any = None) -> dict[str, Any]:
        record = self.describe_index(index)
        if isinstance(body, dict) and body.get("filter"):
            # Serverless Pinecone's own answer; pod-based indexes were the only ones with filtered stats.
            raise bad_request(
                "Serverless and Starter indexes do not support describing index stats with metadata filtering"
            )
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
    def namespace_index(self, record: IndexRecord, namespace: str) -> NamespaceIndex:
        """The namespace as searched in memory, loaded from SQLite on first use or after a foreign write.

        Writes by another process (an embedded ingest, a second server on the same file) do not pass
        through `_apply`; SQLite's data_version reveals them, and then every loaded namespace is dropped.
        """
        version = self.storage.data_version()
        if version != self._seen_version:
            with self._lock:
                self._seen_version = version
                self._generation += 1
                self._namespaces.clear()
                self._records.clear()
        key = (record.name, namespace)
        cached = self._namespaces.get(key)
        if cached is not None:
            return cached
        with self._index_lock(record.name):
            cached = self._namespaces.get(key)
            if cached is None:
                generation = self._generation
                ids, blob, metadata, sparse = self.storage.load_namespace(record.name, namespace)
                cached = NamespaceIndex.build(ids, blob, metadata, record.dimension, record.metric, sparse)
                with self._lock:
                    # Not if the cache was dropped meanwhile: this load may predate the foreign write.
                    if generation == self._generation:
                        self._namespaces[key] = cached
        return cached

    def _matching_ids(self, record: IndexRecord, namespace: str, filter_: Any) -> list[str]:
        cached = self.namespace_index(record, namespace)
        with cached.reading():
            return [cached.ids[i] for i in np.flatnonzero(evaluate_filter(filter_, cached.table))]

    def _apply(self, index: str, namespace: str, edit: Callable[[NamespaceIndex], None]) -> None:
        """Under the index lock, after SQLite committed a write: apply it to the loaded namespace, if any.

        The write is durable whatever happens here; if applying it fails (out of memory, say), the loaded
        copy is dropped instead of served half-edited, and the next query reloads it from SQLite."""
        cached = self._namespaces.get((index, namespace))
        if cached is None:
            return
        try:
            edit(cached)
        except Exception:
            _log.warning("reloading %s/%s after a failed in-memory edit", index, namespace, exc_info=True)
            self._drop(index, namespace)

    def _drop(self, index: str, namespace: str | None) -> None:
        for key in list(self._namespaces):  # list() copies atomically; other threads may insert
            if key[0] == index and (namespace is None or key[1] == namespace):
                self._namespaces.pop(key, None)

    def _require_live(self, index: str) -> None:
        """Under the index lock: the index was not deleted since this request looked it up."""
        if self.storage.get_index(index) is None:
            raise not_found(index)

    def _index_lock(self, index: str) -> threading.RLock:
        with self._lock:
            return self._write_locks.setdefault(index, threading.RLock())


def _encode_token(last: str) -> str:
    """A pagination token: the last key of the page, so the next page starts after it."""
    return base64.urlsafe_b64encode(last.encode()).decode()


def _decode_token(token: Any) -> str | None:
    if not token:
        return None
    if not isinstance(token, str):
        raise bad_request("invalid pagination token")
    try:
        return base64.urlsafe_b64decode(token.encode()).decode()
    except (ValueError, UnicodeDecodeError):
        raise bad_request("invalid pagination token") from None


def _namespace_description(name: str, count: int) -> dict[str, Any]:
    # Pinecone's namespace API sends record_count as a string-encoded integer.
    return {"name": name, "record_count": str(count)}
