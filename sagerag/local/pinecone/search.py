"""Exact nearest-neighbour search over one namespace held as a float32 matrix.

A snapshot is immutable: writers build a new one lazily instead of mutating, so queries never lock
around the arithmetic. Scores follow Pinecone: cosine similarity and dot product (higher is better) and,
for euclidean, the squared distance (lower is better).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from sagerag.local.pinecone.filter import Mask, MetadataTable

F32 = npt.NDArray[np.float32]


@dataclass(frozen=True)
class NamespaceSnapshot:
    """Everything a query over one namespace needs, precomputed for the metric."""

    ids: list[str]
    matrix: F32  # (n, dim), C-contiguous; unit rows for cosine
    metadata: list[str | None]
    metric: str
    sq_norms: F32 | None = None  # for euclidean
    position: dict[str, int] = field(default_factory=dict)
    table: MetadataTable = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", MetadataTable(self.metadata, orjson.loads))

    @classmethod
    def build(
        cls, ids: list[str], blob: bytes, metadata: list[str | None], dimension: int, metric: str
    ) -> NamespaceSnapshot:
        matrix = np.frombuffer(blob, dtype=np.float32).reshape(len(ids), dimension)
        sq_norms: F32 | None = None
        if metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            matrix = matrix / norms
        elif metric == "euclidean":
            sq_norms = np.einsum("ij,ij->i", matrix, matrix)
        matrix = np.ascontiguousarray(matrix, dtype=np.float32)
        return cls(ids, matrix, metadata, metric, sq_norms, {id_: i for i, id_ in enumerate(ids)})

    def search(self, query: F32, top_k: int, mask: Mask | None) -> list[tuple[int, float]]:
        """Row numbers and Pinecone scores of the best `top_k` rows that pass `mask`, best first."""
        if not self.ids:
            return []
        q = np.ascontiguousarray(query, dtype=np.float32)
        if self.metric == "cosine":
            qn = float(np.linalg.norm(q))
            if qn:
                q = q / qn
        raw = self.matrix @ q
        if self.metric == "euclidean":
            assert self.sq_norms is not None
            # Higher-is-better key for ranking; the reported score is the squared distance.
            key = 2.0 * raw - self.sq_norms
        else:
            key = raw
        if mask is not None:
            candidates = np.flatnonzero(mask)
            if candidates.size == 0:
                return []
            key = key[candidates]
        else:
            candidates = None
        k = min(top_k, key.shape[0])
        if k < key.shape[0]:
            top = np.argpartition(-key, k - 1)[:k]
            top = top[np.argsort(-key[top], kind="stable")]
        else:
            top = np.argsort(-key, kind="stable")
        rows = top if candidates is None else candidates[top]
        if self.metric == "euclidean":
            q_sq = float(q @ q)
            scores = np.maximum(q_sq - key[top], 0.0)
        else:
            scores = key[top]
        return list(zip(rows.tolist(), scores.tolist(), strict=True))
