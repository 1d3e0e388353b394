"""Exact nearest-neighbour search over one namespace held as a float32 matrix, edited in place by writes.

A write that SQLite has committed is applied to the in-memory namespace row by row (upsert overwrites or
appends a row, delete moves the last rows into the holes), so a query after a small write costs what it
cost before it instead of a reload of the whole namespace. The matrix grows by doubling its capacity, so
appends are amortised O(1) per row.

Thread safety: every namespace has a readers-writer lock. A query holds the read side from its filter to
reading the ids of its hits; a write holds the write side while it edits, so a query sees a write entirely
or not at all, never half of it. Queries run in parallel with each other (numpy releases the GIL).

Scores follow Pinecone: cosine similarity and dot product (higher is better) and, for euclidean, the
squared distance (lower is better). Records with sparse values (dotproduct indexes only) add the sparse
dot product to the dense one, as Pinecone scores a sparse-dense vector: one score,
`dense . dense + sparse . sparse`, computed from an inverted index of the namespace's sparse values.
The order of rows in memory never shows in an answer, so a namespace edited in place answers exactly as
the same namespace reloaded: BLAS's `matrix @ q` rounds a row's dot product differently depending on the
row's position, so it only picks candidates (the top k, widened by a bound on that rounding); their scores
are then recomputed row by row (the same arithmetic wherever the row sits), and equal scores rank by id.
"""

from __future__ import annotations

import heapq
import itertools
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager

import numpy as np
import numpy.typing as npt
import orjson

from sagerag.local.pinecone.filter import Mask, MetadataTable, Moves
from sagerag.local.pinecone.storage import Row, unpack_sparse

F32 = npt.NDArray[np.float32]
I64 = npt.NDArray[np.int64]
Postings = dict[int, tuple[I64, F32]]
"""Sparse term -> (rows holding it, their values)."""
_NO_ROWS = np.zeros(0, dtype=np.int64)
_NO_VALUES = np.zeros(0, dtype=np.float32)
_UNIT_ROUNDOFF = 2.0**-24  # float32


class ReadWriteLock:
    """Many readers or one writer; a waiting writer holds back new readers, so writes never starve."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._readers = 0
        self._writing = False
        self._writers_waiting = 0

    @contextmanager
    def reading(self) -> Iterator[None]:
        with self._cond:
            while self._writing or self._writers_waiting:
                self._cond.wait()
            self._readers += 1
        try:
            yield
        finally:
            with self._cond:
                self._readers -= 1
                if not self._readers:
                    self._cond.notify_all()

    @contextmanager
    def writing(self) -> Iterator[None]:
        with self._cond:
            self._writers_waiting += 1
            try:
                while self._writing or self._readers:
                    self._cond.wait()
            finally:
                self._writers_waiting -= 1
            self._writing = True
        try:
            yield
        finally:
            with self._cond:
                self._writing = False
                self._cond.notify_all()


def _sparse_terms(blob: bytes | None) -> list[int]:
    unpacked = unpack_sparse(blob)
    return [] if unpacked is None else unpacked[0].tolist()


class NamespaceIndex:
    """Everything a query over one namespace needs, precomputed for the metric and kept current by writes.

    Mutators (`upsert`, `delete`, `clear`) are called by the one writer of the index (the service holds a
    lock per index) and take the write lock themselves; readers wrap their whole read in `reading()`.
    """

    def __init__(self, dimension: int, metric: str) -> None:
        self.dimension = dimension
        self.metric = metric
        self.lock = ReadWriteLock()
        self._matrix: F32 = np.zeros((0, dimension), dtype=np.float32)  # rows [0, n) are live
        self._sq_norms: F32 = np.zeros(0, dtype=np.float32)  # squared norms of the rows as searched
        self._max_sq_norm = 0.0  # an upper bound of _sq_norms (deletes leave it: still a bound)
        self.ids: list[str] = []
        self.position: dict[str, int] = {}
        self.metadata: list[str | None] = []
        self._sparse: list[bytes | None] = []
        self.postings: Postings = {}
        self.table = MetadataTable([], orjson.loads)

    @classmethod
    def build(
        cls,
        ids: list[str],
        blob: bytes,
        metadata: list[str | None],
        dimension: int,
        metric: str,
        sparse: list[bytes | None] | None = None,
    ) -> NamespaceIndex:
        """The index of a whole namespace as stored (a cold load or a reload)."""
        index = cls(dimension, metric)
        raw = np.frombuffer(blob, dtype=np.float32).reshape(len(ids), dimension)
        index._matrix, index._sq_norms = index._prepare(raw)
        index._max_sq_norm = float(index._sq_norms.max(initial=0.0))
        index.ids = list(ids)
        index.position = {id_: i for i, id_ in enumerate(ids)}
        index.metadata = list(metadata)
        index._sparse = list(sparse) if sparse is not None else [None] * len(ids)
        index.table = MetadataTable(index.metadata, orjson.loads)
        index._edit_postings(_NO_ROWS, None, list(enumerate(index._sparse)))
        return index

    @property
    def n(self) -> int:
        return len(self.ids)

    @property
    def matrix(self) -> F32:
        """The live rows (a view: C-contiguous, unit rows for cosine)."""
        return self._matrix[: self.n]

    def _prepare(self, raw: F32) -> tuple[F32, F32]:
        """Stored vectors as searched (unit rows for cosine) and their squared norms.

        Row by row, so that a row prepared alone (a write) equals the same row prepared in a reload."""
        matrix = np.array(raw, dtype=np.float32, order="C")
        if self.metric == "cosine":
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            norms[norms == 0] = 1.0
            matrix = np.ascontiguousarray(matrix / norms, dtype=np.float32)
        return matrix, np.einsum("ij,ij->i", matrix, matrix)

    # -- writes -----------------------------------------------------------------------------------------
    def upsert(self, rows: Sequence[Row]) -> None:
        """Apply committed upserts: an existing id's row is overwritten, a new id is appended."""
        rows = list({r[0]: r for r in rows}.values())  # one row per id, the last one wins (as in SQLite)
        if not rows:
            return
        raw = np.frombuffer(b"".join(r[1] for r in rows), dtype=np.float32).reshape(len(rows), self.dimension)
        prepared, sq_norms = self._prepare(raw)
        self._reserve(self.n + len(rows))  # outside the lock: queries go on while a grown matrix is copied
        with self.lock.writing():
            n = self.n
            targets: list[int] = []
            new = 0
            for id_, *_ in rows:
                row = self.position.get(id_)
                if row is None:
                    row = self.position[id_] = n + new
                    new += 1
                targets.append(row)
            self._reserve(n + new)
            target = np.asarray(targets, dtype=np.int64)
            self._matrix[target] = prepared
            self._sq_norms[target] = sq_norms
            self._max_sq_norm = max(self._max_sq_norm, float(sq_norms.max()))
            old_sparse = [self._sparse[t] if t < n else None for t in targets]
            for (id_, _, meta, sparse), row in zip(rows, targets, strict=True):
                if row >= n:
                    self.ids.append(id_)
                    self.metadata.append(meta)
                    self._sparse.append(sparse)
                else:
                    self.metadata[row] = meta
                    self._sparse[row] = sparse
            self.table.assign(targets, [r[2] for r in rows])
            if any(old_sparse) or any(r[3] for r in rows):
                dropped = [t for t, blob in zip(targets, old_sparse, strict=True) if blob]
                self._edit_postings(
                    np.asarray(dropped, dtype=np.int64),
                    None,
                    [(t, r[3]) for t, r in zip(targets, rows, strict=True)],
                    extra_terms=[term for blob in old_sparse for term in _sparse_terms(blob)],
                )

    def delete(self, ids: Iterable[str]) -> None:
        """Apply committed deletes: the last live rows move into the holes (ids not held are ignored)."""
        with self.lock.writing():
            doomed = sorted({self.position[i] for i in ids if i in self.position})
            if not doomed:
                return
            n = self.n
            keep_n = n - len(doomed)
            doomed_set = set(doomed)
            holes = [r for r in doomed if r < keep_n]
            movers = [r for r in range(keep_n, n) if r not in doomed_set]
            src = np.asarray(movers, dtype=np.int64)
            dst = np.asarray(holes, dtype=np.int64)
            deleted = np.asarray(doomed, dtype=np.int64)
            terms = [t for r in doomed + movers for t in _sparse_terms(self._sparse[r])]
            for r in doomed:
                del self.position[self.ids[r]]
            self._matrix[dst] = self._matrix[src]
            self._sq_norms[dst] = self._sq_norms[src]
            for old, new in zip(movers, holes, strict=True):
                self.ids[new] = self.ids[old]
                self.metadata[new] = self.metadata[old]
                self._sparse[new] = self._sparse[old]
                self.position[self.ids[new]] = new
            del self.ids[keep_n:], self.metadata[keep_n:], self._sparse[keep_n:]
            self.table.remove(deleted, (src, dst))
            if terms:
                self._edit_postings(deleted, (src, dst), [], extra_terms=terms)

    def clear(self) -> None:
        """Apply a committed deleteAll."""
        with self.lock.writing():
            empty = NamespaceIndex(self.dimension, self.metric)
            self._matrix, self._sq_norms, self._max_sq_norm = empty._matrix, empty._sq_norms, 0.0
            self.ids, self.position, self.metadata, self._sparse = [], {}, [], []
            self.postings, self.table = {}, empty.table

    def _reserve(self, rows: int) -> None:
        """Room for `rows` live rows, doubling the capacity when it runs out (amortised O(1) appends).

        Safe without the write lock (only the one writer calls it): the live rows are copied first and
        each array is swapped whole, so a query reads the old array or the new one, equal in rows 0..n."""
        capacity = self._matrix.shape[0]
        if rows <= capacity:
            return
        capacity = max(rows, 2 * capacity, 1024)
        matrix = np.empty((capacity, self.dimension), dtype=np.float32)
        matrix[: self.n] = self._matrix[: self.n]
        self._matrix = matrix
        sq_norms = np.empty(capacity, dtype=np.float32)
        sq_norms[: self.n] = self._sq_norms[: self.n]
        self._sq_norms = sq_norms

    def _edit_postings(
        self,
        dropped: I64,
        moves: Moves | None,
        added: Sequence[tuple[int, bytes | None]],
        extra_terms: Sequence[int] = (),
    ) -> None:
        """Drop the postings of `dropped` rows, renumber `moves` (source -> destination), add `added`.

        Only the terms these rows hold are touched (`extra_terms` names the terms of rows being dropped
        or moved, whose sparse values are no longer at hand)."""
        new_rows: dict[int, list[int]] = {}
        new_vals: dict[int, list[float]] = {}
        for row, blob in added:
            unpacked = unpack_sparse(blob)
            if unpacked is None:
                continue
            for term, value in zip(unpacked[0].tolist(), unpacked[1].tolist(), strict=True):
                new_rows.setdefault(term, []).append(row)
                new_vals.setdefault(term, []).append(value)
        remap: I64 | None = None
        if moves is not None and moves[0].size:
            remap = np.arange(int(moves[0].max()) + 1, dtype=np.int64)
            remap[moves[0]] = moves[1]
        for term in set(extra_terms) | set(new_rows):
            rows, vals = self.postings.get(term, (_NO_ROWS, _NO_VALUES))
            if dropped.size and rows.size:
                keep = ~np.isin(rows, dropped)
                rows, vals = rows[keep], vals[keep]
            if remap is not None and rows.size:
                inside = rows < remap.size
                rows = rows.copy()
                rows[inside] = remap[rows[inside]]
            if term in new_rows:
                rows = np.concatenate([rows, np.asarray(new_rows[term], dtype=np.int64)])
                vals = np.concatenate([vals, np.asarray(new_vals[term], dtype=np.float32)])
            if rows.size:
                self.postings[term] = (rows, vals)
            else:
                self.postings.pop(term, None)

    # -- reads (inside `reading()`) ---------------------------------------------------------------------
    def reading(self) -> AbstractContextManager[None]:
        """Hold while reading anything of the index: no write lands halfway through the read."""
        return self.lock.reading()

    def sparse_scores(self, indices: npt.NDArray[np.uint32], values: F32) -> F32:
        """Each row's dot product with a sparse query (float32 accumulation, as the dense part)."""
        out = np.zeros(self.n, dtype=np.float32)
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
        # Higher-is-better key for ranking; for euclidean the reported score is the squared distance.
        key = self._keys(self.matrix @ q, slice(0, self.n))
        sparse_part = self.sparse_scores(*sparse) if sparse is not None else None
        if sparse_part is not None:
            key = key + sparse_part
        if mask is not None:
            candidates = np.flatnonzero(mask)
            if candidates.size == 0:
                return []
            key = key[candidates]
        else:
            candidates = None
        k = min(top_k, key.shape[0])
        if k < key.shape[0]:
            best = np.argpartition(-key, k - 1)[:k]
            # Every row whose score may reach the k-th once rounded the same way for all rows.
            kth = float(key[best].min())
            top = np.flatnonzero(key >= kth - self._rounding_margin(q, kth))
        else:
            top = np.arange(key.shape[0])
        rows = top if candidates is None else candidates[top]
        exact = self._keys((self._matrix[rows] * q).sum(axis=1, dtype=np.float32), rows)
        if sparse_part is not None:
            exact = exact + sparse_part[rows]
        by_key = np.argsort(-exact, kind="stable")
        rows, exact = rows[by_key], exact[by_key]
        order = self._by_id_within_ties(rows, exact, k)
        rows, keys = rows[order], exact[order]
        scores = np.maximum(float(q @ q) - keys, 0.0) if self.metric == "euclidean" else keys
        return list(zip(rows.tolist(), scores.tolist(), strict=True))

    def _keys(self, dots: F32, rows: slice | I64) -> F32:
        """Ranking keys (higher is better) from dot products: for euclidean, 2 q.x - |x|^2."""
        return 2.0 * dots - self._sq_norms[rows] if self.metric == "euclidean" else dots

    def _rounding_margin(self, q: F32, kth: float) -> float:
        """Four float32 error bounds of a dot product (gamma_d |x| |q|) on the key's scale, plus the
        rounding of the key's own sum (euclidean's `- |x|^2`, the sparse part) near the k-th key.

        A row's key as BLAS rounds it and as recomputed row by row each lie within the bound of the exact
        value, so a row that ranks in the top k once recomputed has a BLAS key at most four bounds below
        the k-th BLAS key (two for each of the row and the k-th)."""
        d = self.dimension * _UNIT_ROUNDOFF
        bound = d / (1 - d) * float(np.sqrt(self._max_sq_norm)) * float(np.linalg.norm(q))
        return 4 * bound * (2 if self.metric == "euclidean" else 1) + 8 * _UNIT_ROUNDOFF * abs(kth)

    def _by_id_within_ties(self, rows: I64, keys: F32, k: int) -> I64:
        """Positions of the first `k` of `rows` (sorted by key, best first) with equal keys ranked by id."""
        if keys.size < 2 or not np.any(keys[1:] == keys[:-1]):
            return np.arange(min(k, rows.size))
        starts = [*np.flatnonzero(np.r_[True, keys[1:] != keys[:-1]]).tolist(), rows.size]

        def by_id(position: int) -> str:
            return self.ids[int(rows[position])]

        order: list[int] = []
        for start, end in itertools.pairwise(starts):
            if len(order) >= k:
                break
            run = list(range(start, end))
            if len(run) > 1:
                need = k - len(order)
                run = heapq.nsmallest(need, run, key=by_id) if need < len(run) else sorted(run, key=by_id)
            order.extend(run)
        return np.asarray(order[:k], dtype=np.int64)
