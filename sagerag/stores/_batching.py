"""Split upserts to fit Pinecone's per-request limits, and refuse what can never fit.

Pinecone rejects an upsert over 1000 vectors or 2 MB, a vector whose metadata exceeds 40 KB, and an id
over 512 bytes. We measure each record as it will be serialised, pack records greedily into requests
under both the count and the byte budget, and raise `DocumentTooLargeError` for a single record that no
request could carry, before anything is sent, so a failing ingest never leaves a half-written batch.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import orjson

from sagerag.errors import DocumentTooLargeError, InputError

MAX_VECTORS_PER_REQUEST = 1000
UPSERT_BYTE_BUDGET = 2 * 1024 * 1024 - 64 * 1024
"""Most bytes this client packs into one upsert: Pinecone's 2 MB request limit less headroom for the
envelope and encoder differences."""
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_BYTES = 512
_ENVELOPE_BYTES = 1024  # {"vectors": [...], "namespace": "..."}


def record_size(record: Mapping[str, Any]) -> int:
    """Bytes `record` adds to a request body (JSON plus its separating comma)."""
    return len(orjson.dumps(record)) + 1


def check_record(record: Mapping[str, Any]) -> int:
    """Validate one record against Pinecone's per-vector limits; return its serialised size."""
    vector_id = str(record["id"])
    if not vector_id or len(vector_id.encode()) > MAX_ID_BYTES:
        raise InputError(
            f"{_where(record)}: ids must be 1 to {MAX_ID_BYTES} bytes, this one is {len(vector_id.encode())}"
        )
    metadata = record.get("metadata")
    if not metadata:
        return check_size(record)
    meta_bytes = len(orjson.dumps(metadata))
    if meta_bytes > MAX_METADATA_BYTES:
        raise DocumentTooLargeError(
            f"{_where(record)}: its metadata (text included) is {meta_bytes} bytes, over Pinecone's limit of "
            f"{MAX_METADATA_BYTES} bytes per vector; split the document into smaller chunks"
        )
    # The record's JSON is the rest's with `,"metadata":{...}` added: sized without serialising it twice
    # (every document is checked before an ingest sends its first request).
    rest = {key: value for key, value in record.items() if key != "metadata"}
    return check_size(record, record_size(rest) + len(',"metadata":') + meta_bytes)


def _where(record: Mapping[str, Any]) -> str:
    """The record as an error names it: its id, and its document's source when the metadata has one."""
    source = str((record.get("metadata") or {}).get("source") or "")
    return f"document {str(record['id'])!r}" + (f" (source {source!r})" if source else "")


VALUE_JSON_BYTES = 25
"""Most bytes one float takes in a request's JSON: the shortest repr of a double is at most 24 characters
("-1.2345678901234567e-308"), plus its comma."""


def values_size_bound(dimension: int) -> int:
    """Bytes a record's `"values":[...],` can take at most: sizes a record without serialising its values."""
    return dimension * VALUE_JSON_BYTES + len('"values":[],')


def check_size(record: Mapping[str, Any], size: int | None = None) -> int:
    """`record`'s serialised size (or `size`, a bound of it), refused when no upsert request could carry it."""
    size = record_size(record) if size is None else size
    if size + _ENVELOPE_BYTES > UPSERT_BYTE_BUDGET:
        raise DocumentTooLargeError(
            f"{_where(record)}: it serialises to {size} bytes, more than one upsert request may carry "
            f"({UPSERT_BYTE_BUDGET} bytes)"
        )
    return size


def split_batches(
    records: Sequence[Mapping[str, Any]],
    sizes: Sequence[int],
    max_count: int = MAX_VECTORS_PER_REQUEST,
    max_bytes: int = UPSERT_BYTE_BUDGET,
) -> Iterator[list[Mapping[str, Any]]]:
    """Greedy, order-preserving packing of `records` (with precomputed `sizes`) into requests."""
    batch: list[Mapping[str, Any]] = []
    used = _ENVELOPE_BYTES
    for record, size in zip(records, sizes, strict=True):
        if batch and (len(batch) >= max_count or used + size > max_bytes):
            yield batch
            batch, used = [], _ENVELOPE_BYTES
        batch.append(record)
        used += size
    if batch:
        yield batch
