"""Create or check the Pinecone index the store writes to.

An index whose dimension or metric differs from the embedding model's silently returns garbage (or fails
every upsert), so an existing index is checked, not trusted. Returns the data-plane host, which is what
`pc.Index(host=...)` needs and what a configuration file can store.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

from sagerag.errors import ConfigurationError, IndexMismatchError


def index_shape(description: Any) -> tuple[int | None, str]:
    """(dimension, metric) of an index description's single dense vector field."""
    schema = getattr(description, "schema", None)
    fields = getattr(schema, "fields", None) or {}
    for field in fields.values():
        dimension = getattr(field, "dimension", None)
        metric = getattr(field, "metric", None)
        if dimension is not None:
            return int(dimension), str(metric or "cosine").lower()
    return None, "cosine"


def ensure_index(
    pc: Any,
    name: str,
    dimension: int,
    metric: str = "cosine",
    timeout: float = 60,
    cloud: str = "aws",
    region: str = "us-east-1",
    also_accept: tuple[str, ...] = (),
) -> str:
    """Create a managed (serverless) dense index, or check an existing one; return its host when ready.

    `metric="dotproduct"` is what sparse-dense (hybrid) records need; `also_accept` names other metrics
    an existing index may have (dense-only retrieval of unit vectors ranks the same under cosine and
    dotproduct). Raises `IndexMismatchError` when an existing index has another dimension or metric, and
    `ConfigurationError` when the index is not ready within `timeout` seconds; a rejected key is the
    SDK's own `UnauthorizedError`.
    """
    metric = metric.lower()
    exists = pc.indexes.exists(name)
    if not exists:
        from pinecone.errors.exceptions import ConflictError

        # Created concurrently by someone else: checked below like any existing index.
        with contextlib.suppress(ConflictError):
            pc.indexes.create(
                name=name,
                schema={
                    "fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}
                },
                deployment={"deployment_type": "managed", "cloud": cloud, "region": region},
                timeout=-1,
            )
    deadline = time.monotonic() + timeout
    while True:
        description = pc.indexes.describe(name)
        if getattr(description.status, "ready", False):
            break
        if time.monotonic() > deadline:
            raise ConfigurationError(f"Pinecone index {name!r} was not ready within {timeout:.0f}s")
        time.sleep(0.5)
    found_dimension, found_metric = index_shape(description)
    if found_dimension == dimension and metric == "dotproduct" and found_metric != metric:
        raise IndexMismatchError(
            f"Pinecone index {name!r} uses the {found_metric} metric and cannot hold sparse values, which "
            "hybrid retrieval needs (a dotproduct index); set SAGERAG_RETRIEVAL=dense to keep using it "
            "dense-only, or use another index name (SAGERAG_PINECONE_INDEX) and re-ingest"
        )
    if found_dimension != dimension or (found_metric != metric and found_metric not in also_accept):
        raise IndexMismatchError(
            f"Pinecone index {name!r} has dimension {found_dimension} and metric {found_metric}, but the "
            f"embedding model needs dimension {dimension} and metric {metric}; use another index name or "
            "delete the index"
        )
    return str(description.host)
