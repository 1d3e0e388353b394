"""Exact nearest-neighbour search over one namespace held as a float32 matrix.

A snapshot is immutable: writers build a new one lazily instead of mutating, so queries never lock
around the arithmetic. Scores follow Pinecone: cosine similarity and dot product (higher is better) and,
for euclidean, the squared distance (lower is better). Records with sparse values (dotproduct indexes
only) add the sparse dot product to the dense one, as Pinecone scores a sparse-dense vector: one score,
`dense . dense + sparse . sparse`, computed from an inverted index of the namespace's sparse values.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import orjson

from sagerag.local.pinecone.filter import Mask, MetadataTable
from sagerag.local.pinecone.storage import unpack_sparse

F32 = npt.NDArray[np.float32]
Postings = dict[int, tuple[npt.NDArray[np.int64], F32]]
"""Sparse term -> (rows holding it, their values)."""


def build_postings(sparse: list[bytes | None]) -> Postings:
    """The inverted index of packed sparse values (`storage.pack_sparse`), per row."""
    rows: dict[int, list[int]] = {}
    vals: dict[int, list[float]] = {}
    for row, blob in enumerate(sparse):
        unpacked = unpack_sparse(blob)
        if unpacked is None:
            continue
        for index, value in zip(unpacked[0].tolist(), unpacked[1].tolist(), strict=True):
            rows.setdefault(index, []).append(row)
            vals.setdefault(index, []).append(value)
    return {i: (np.asarray(rows[i], dtype=np.int64), np.asarray(vals[i], dtype=np.float32)) for i in rows}


@dataclass(frozen=True)
class NamespaceSnapshot:
    """Everything a query over one namespace needs, precomputed for the metric."""

    ids: list[str]
    matrix: F32  # (n, dim), C-contiguous; unit rows for cosine
    metadata: list[str | None]
    metric: str
    sq_norms: F32 | None = None  # for euclidean
    position: dict[str, int] = field(default_factory=dict)
    postings: Postings = field(default_factory=dict)
    table: MetadataTable = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "table", MetadataTable(self.metadata, orjson.loads))

    @classmethod
    def build(
        cls,
        ids: list[str],
        blob: bytes,
        metadata: list[str | None],
        dimension: int,
        metric: str,
        sparse: list[bytes | None] | None = None,
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
        positions = {id_: i for i, id_ in enumerate(ids)}
        return cls(ids, matrix, metadata, metric, sq_norms, positions, build_postings(sparse or []))

    def sparse_scores(self, indices: npt.NDArray[np.uint32], values: F32) -> F32:
        """Each row's dot product with a sparse query (float32 accumulation, as the dense part)."""
        out = np.zeros(len(self.ids), dtype=np.float32)
        for index, value in zip(indices.tolist(), values.tolist(), strict=True):
            posting = self.postings.get(index)
            if posting is not None:
                out[posting[0]] += np.float32(value) * posting[1]
        return out

    def search(
        self,
        query: F32,
        top_k: int,
        mask: Mask | None,
        sparse: tuple[npt.NDArray[np.uint32], F32] | None = None,
    ) -> list[tuple[int, float]]:
        """Row numbers and Pinecone scores of the best `top_k` rows that pass `mask`, best first.

        `sparse` (dotproduct only, checked by the caller) adds each row's sparse dot product."""
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
        if sparse is not None:
            key = key + self.sparse_scores(*sparse)
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
