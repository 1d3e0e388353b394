"""Pinecone's request rules for the local Pinecone: limits, ids, vectors, metadata, filters, namespaces.

Limits are Pinecone's own (1000 vectors and 2 MB per upsert, 40 KB metadata per vector, 512-byte ids,
topK <= 10000), enforced with Pinecone-shaped errors so code that passes locally does not fail in the
cloud. Everything here is pure: it checks and normalises request parts, and touches no state.
"""

from __future__ import annotations

import re
from typing import Any

import numpy as np
import numpy.typing as npt
import orjson

from sagerag.errors import ApiProblem
from sagerag.local.pinecone.filter import FilterError, validate_filter

MAX_UPSERT_VECTORS = 1000
PINECONE_MAX_REQUEST_BYTES = 2 * 1024 * 1024
"""Pinecone refuses request bodies over 2 MB (the local server applies it to every route)."""
MAX_METADATA_BYTES = 40 * 1024
MAX_ID_BYTES = 512
MAX_TOP_K = 10_000
MAX_FETCH_BY_METADATA = 10_000
DEFAULT_PAGE = 100
MAX_NAMESPACE_BYTES = 512
MAX_DIMENSION = 20_000
METRICS = ("cosine", "dotproduct", "euclidean")
SCHEMA_FIELD_TYPES = ("dense_vector", "sparse_vector")
"""Index schema fields the local Pinecone knows; document-index fields (text, filterable) it refuses."""
DEFAULT_NAMESPACE_LABEL = "__default__"
INDEX_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,43}[a-z0-9])?$")


def bad_request(message: str) -> ApiProblem:
    """Pinecone's answer to a malformed request: 400 INVALID_ARGUMENT."""
    return ApiProblem(400, "INVALID_ARGUMENT", message)


def not_found(name: str) -> ApiProblem:
    return ApiProblem(404, "NOT_FOUND", f"Resource {name} not found")


def not_supported(what: str) -> ApiProblem:
    """An operation Pinecone has and the local Pinecone does not: 501 UNIMPLEMENTED, never a 404 that
    `except NotFoundError` would read as "already gone", and not a status the SDK retries."""
    return ApiProblem(
        501,
        "UNIMPLEMENTED",
        f"The local Pinecone does not support {what}; run this against Pinecone itself "
        "(see 'What the local Pinecone does not support' in the sagerag README)",
    )


def check_namespace_name(value: Any) -> str:
    """A namespace named in a path or a create request: a non-empty string."""
    if not isinstance(value, str) or not value:
        raise bad_request("namespace name must be a non-empty string")
    if len(value.encode()) > MAX_NAMESPACE_BYTES:
        raise bad_request(f"namespace name exceeds the maximum length of {MAX_NAMESPACE_BYTES} bytes")
    return value


def parse_namespace(value: Any) -> str:
    """Pinecone names the default namespace both "" and "__default__"; store it as ""."""
    if value is None:
        return ""
    if not isinstance(value, str):
        raise bad_request("namespace must be a string")
    return "" if value == DEFAULT_NAMESPACE_LABEL else value


def check_id(vector_id: Any) -> str:
    if not isinstance(vector_id, str) or not vector_id:
        raise bad_request("Vector ID must be a non-empty string")
    if len(vector_id.encode()) > MAX_ID_BYTES:
        raise bad_request(
            f"Vector ID exceeds the maximum length of {MAX_ID_BYTES} bytes: {vector_id[:40]!r}..."
        )
    return vector_id


def metadata_value(vector_id: str, key: Any, value: Any) -> Any:
    """One metadata value as Pinecone stores it, or a 400 naming the key.

    Pinecone's documented rules: keys are strings that do not start with `$`; values are strings, numbers
    (stored as 64-bit floats, so `2019` comes back as `2019.0`), booleans or lists of strings; null is
    not supported (remove the key instead).
    """
    if not isinstance(key, str) or not key:
        raise bad_request(f"Metadata keys of vector {vector_id!r} must be non-empty strings")
    if key.startswith("$"):
        raise bad_request(
            f"Metadata key {key!r} of vector {vector_id!r} starts with '$', which Pinecone reserves "
            "for filter operators; rename the key"
        )
    if isinstance(value, bool | str):
        return value
    if isinstance(value, int | float):
        number = float(value)
        if not np.isfinite(number):
            raise bad_request(f"Metadata value for key {key!r} of vector {vector_id!r} must be finite")
        return number
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return value
    shown = "null" if value is None else orjson.dumps(value, default=str).decode()[:40]
    raise bad_request(
        f"Metadata value must be a string, number, boolean or list of strings, got '{shown}' for field "
        f"{key!r} of vector {vector_id!r}"
        + ("; null is not supported: leave the key out instead" if value is None else "")
    )


def clean_metadata(vector_id: str, metadata: Any) -> dict[str, Any]:
    """Every key checked and every number a float, in the order given."""
    if not isinstance(metadata, dict):
        raise bad_request(f"Metadata of vector {vector_id!r} must be an object")
    return {key: metadata_value(vector_id, key, value) for key, value in metadata.items()}


def encode_metadata(vector_id: str, metadata: dict[str, Any]) -> str | None:
    """Checked metadata as stored JSON text (None when empty), within Pinecone's 40 KB per vector."""
    if not metadata:
        return None
    text = orjson.dumps(metadata)
    if len(text) > MAX_METADATA_BYTES:
        raise bad_request(
            f"Metadata size is {len(text)} bytes, which exceeds the limit of {MAX_METADATA_BYTES} bytes "
            f"per vector (vector {vector_id!r})"
        )
    return text.decode()


def check_metadata(vector_id: str, metadata: Any) -> str | None:
    """The metadata of an upserted vector as stored JSON text (None when absent or empty)."""
    if metadata is None:
        return None
    return encode_metadata(vector_id, clean_metadata(vector_id, metadata))


def decode_metadata(text: str | None) -> dict[str, Any]:
    """Stored metadata as Pinecone returns it: numbers as floats, also for rows stored before that rule."""
    if not text:
        return {}
    decoded: dict[str, Any] = orjson.loads(text)
    for key, value in decoded.items():
        if isinstance(value, int) and not isinstance(value, bool):
            decoded[key] = float(value)
    return decoded


def check_vector(values: Any, dimension: int, metric: str, what: str) -> npt.NDArray[np.float32]:
    """Dense values as float32, refused as Pinecone refuses them (shape, finiteness, zero for cosine)."""
    if not isinstance(values, list) or not values:
        raise bad_request(f"{what} must have dense 'values'")
    try:
        with np.errstate(over="ignore"):  # beyond float32 becomes inf, refused below as not finite
            array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise bad_request(f"{what} values must be numbers") from None
    if array.ndim != 1 or array.shape[0] != dimension:
        raise bad_request(
            f"{what} dimension {array.shape[0] if array.ndim == 1 else '?'} does not match "
            f"the dimension of the index {dimension}"
        )
    if not np.all(np.isfinite(array)):
        raise bad_request(f"{what} values must be finite numbers")
    if metric == "cosine" and not np.any(array):
        raise bad_request(f"{what}: dense vectors must contain at least one non-zero value for cosine")
    return array


def dense_matrix(values: list[Any], dimension: int, metric: str) -> npt.NDArray[np.float32] | None:
    """A request's dense values as one float32 matrix when every one of them passes `check_vector`, else
    None: the caller then checks them vector by vector, which refuses the first bad one by name.

    One conversion and two reductions for the whole request instead of one of each per vector (half the
    CPU of checking a 256-vector upsert one vector at a time). A row that is a list of `dimension` items
    converts here exactly as it does alone; anything else (a ragged row, a nested list) fails the shape
    check or the conversion and takes the per-vector path."""
    if not values or not all(isinstance(v, list) and len(v) == dimension for v in values):
        return None
    try:
        with np.errstate(over="ignore"):
            matrix = np.array(values, dtype=np.float32)
    except (TypeError, ValueError, OverflowError):
        return None
    if matrix.shape != (len(values), dimension) or not np.isfinite(matrix).all():
        return None
    if metric == "cosine" and not matrix.any(axis=1).all():
        return None
    return matrix


def check_filter(filter_: Any) -> None:
    try:
        validate_filter(filter_)
    except FilterError as exc:
        raise bad_request(f"Invalid filter: {exc}") from None


def check_top_k(top_k: Any) -> int:
    if not isinstance(top_k, int) or isinstance(top_k, bool) or not 1 <= top_k <= MAX_TOP_K:
        raise bad_request(f"topK must be an integer between 1 and {MAX_TOP_K}, got {top_k!r}")
    return top_k


def dense_field(body: dict[str, Any]) -> tuple[int, str, dict[str, Any]]:
    """(dimension, metric, schema) from a 10.x `schema` body or an older `dimension`/`metric` one."""
    schema = body.get("schema")
    if isinstance(schema, dict):
        fields = schema.get("fields")
        fields = fields if isinstance(fields, dict) else {}
        for name, field in fields.items():
            kind = field.get("type") if isinstance(field, dict) else None
            if kind not in SCHEMA_FIELD_TYPES:
                raise not_supported(f"index schema field {name!r} of type {kind!r} (document indexes)")
        dense = [f for f in fields.values() if isinstance(f, dict) and f.get("type") == "dense_vector"]
        if len(dense) != 1:
            raise bad_request("the local Pinecone supports exactly one dense_vector field per index")
        dimension, metric = dense[0].get("dimension"), dense[0].get("metric") or "cosine"
    else:
        dimension, metric = body.get("dimension"), body.get("metric") or "cosine"
        schema = {"fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}}
    if not isinstance(dimension, int) or isinstance(dimension, bool) or not 1 <= dimension <= MAX_DIMENSION:
        raise bad_request(f"dimension must be an integer between 1 and {MAX_DIMENSION}")
    metric = str(metric).lower()
    if metric not in METRICS:
        raise bad_request(f"metric must be one of {', '.join(METRICS)}, got {metric!r}")
    return dimension, metric, schema


def check_index_name(name: Any) -> str:
    if not isinstance(name, str) or not INDEX_NAME.match(name):
        raise bad_request(
            "Index name must be 1-45 characters, lowercase alphanumeric or '-', "
            "starting and ending with an alphanumeric character"
        )
    return name


MAX_SPARSE_VALUES = 1000
"""Pinecone's limit of non-zero values in the sparse part of a sparse-dense vector."""
_UINT32_MAX = 2**32 - 1


def check_sparse(
    raw: Any, metric: str, what: str
) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float32]] | None:
    """Sparse values (`sparseValues` / `sparseVector`) as (uint32 indices, float32 values), or None.

    Refused as Pinecone refuses them: on an index whose metric is not dotproduct ("Index configuration
    does not support sparse values"), with indices and values of different lengths, more than
    `MAX_SPARSE_VALUES` non-zeros, indices outside uint32, repeated indices or non-finite values.
    """
    if raw is None:
        return None
    if metric != "dotproduct":
        raise bad_request(
            "Index configuration does not support sparse values - only indexes using the dotproduct "
            f"metric can store or query them (this index uses {metric})"
        )
    if not isinstance(raw, dict) or not isinstance(raw.get("indices"), list):
        raise bad_request(f"{what}: sparse values must be an object with 'indices' and 'values' arrays")
    indices, values = raw["indices"], raw.get("values")
    if not isinstance(values, list) or len(indices) != len(values):
        count = len(values) if isinstance(values, list) else "no"
        raise bad_request(
            f"{what}: sparse vector indices and values must have the same length "
            f"(got {len(indices)} indices and {count} values)"
        )
    if not indices:
        raise bad_request(f"{what}: sparse vector must contain at least one non-zero value")
    if len(indices) > MAX_SPARSE_VALUES:
        raise bad_request(
            f"{what}: sparse vector has {len(indices)} non-zero values; the maximum is {MAX_SPARSE_VALUES}"
        )
    if not all(isinstance(i, int) and not isinstance(i, bool) and 0 <= i <= _UINT32_MAX for i in indices):
        raise bad_request(f"{what}: sparse vector indices must be integers between 0 and {_UINT32_MAX}")
    if len(set(indices)) != len(indices):
        raise bad_request(f"{what}: sparse vector indices must be unique")
    try:
        array = np.asarray(values, dtype=np.float32)
    except (TypeError, ValueError):
        raise bad_request(f"{what}: sparse vector values must be numbers") from None
    if not np.all(np.isfinite(array)):
        raise bad_request(f"{what}: sparse vector values must be finite numbers")
    return np.asarray(indices, dtype=np.uint32), array
