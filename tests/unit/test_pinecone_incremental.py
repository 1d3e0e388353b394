"""The local Pinecone's in-memory namespaces, edited in place by writes, answer exactly as a reload does.

A service that has its namespace loaded applies a random sequence of writes (upserts that add and
overwrite, updates of values, metadata and sparse values by id or by filter, deletes by id, by filter and
deleteAll) with queries in between; then every query is asked of it and of a fresh service that loads the
same SQLite file from scratch. The answers must be equal: same ids, same order, same scores to the bit.
Vectors have small integer components and few ids, so scores tie often and tie-breaking is exercised.
"""

from __future__ import annotations

import sqlite3
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagerag.local.pinecone.service import PineconeService
from sagerag.local.pinecone.storage import PineconeStorage

DIM = 3
NS = "ns"
IDS = [f"id{i:02d}" for i in range(14)]
FILTERS: list[dict[str, Any]] = [
    {"color": "red"},
    {"color": {"$in": ["green", "blue"]}},
    {"color": {"$ne": "red"}},
    {"n": {"$gte": 2}},
    {"flag": True},
    {"n": {"$exists": False}},
    {"$or": [{"flag": False}, {"color": "blue"}]},
]

_ids = st.sampled_from(IDS)
_component = st.integers(-2, 2).map(float)
_metadata = st.fixed_dictionaries(
    {},
    optional={
        "color": st.one_of(
            st.sampled_from(["red", "green", "blue"]),
            st.lists(st.sampled_from(["red", "green", "blue"]), min_size=1, max_size=2),
        ),
        "n": st.integers(0, 3),
        "flag": st.booleans(),
    },
)
_sparse = st.dictionaries(
    st.integers(0, 5), st.sampled_from([-2.0, -1.0, 1.0, 2.0]), min_size=1, max_size=3
).map(lambda terms: {"indices": sorted(terms), "values": [terms[i] for i in sorted(terms)]})


def _vector(metric: str) -> st.SearchStrategy[list[float]]:
    vectors = st.lists(_component, min_size=DIM, max_size=DIM)
    return vectors.map(lambda v: v if any(v) else [1.0, 0.0, 0.0]) if metric == "cosine" else vectors


def _operations(metric: str) -> st.SearchStrategy[list[tuple[Any, ...]]]:
    sparse = _sparse if metric == "dotproduct" else st.none()
    record = st.tuples(_ids, _vector(metric), _metadata, sparse)
    op = st.one_of(
        st.tuples(st.just("upsert"), st.lists(record, min_size=1, max_size=6)),
        st.tuples(st.just("update_values"), _ids, _vector(metric), sparse),
        st.tuples(st.just("update_metadata"), _ids, _metadata.filter(bool)),
        st.tuples(st.just("update_filter"), st.sampled_from(FILTERS), _metadata.filter(bool)),
        st.tuples(st.just("delete_ids"), st.lists(_ids, min_size=1, max_size=4)),
        st.tuples(st.just("delete_filter"), st.sampled_from(FILTERS)),
        st.tuples(st.just("delete_all")),
        st.tuples(st.just("query"), _vector(metric)),
    )
    return st.lists(op, min_size=1, max_size=14)


def _record_body(id_: str, values: list[float], metadata: dict[str, Any], sparse: Any) -> dict[str, Any]:
    body: dict[str, Any] = {"id": id_, "values": values}
    if metadata:
        body["metadata"] = metadata
    if sparse is not None:
        body["sparseValues"] = sparse
    return body


def _apply(service: PineconeService, op: tuple[Any, ...]) -> None:
    kind = op[0]
    if kind == "upsert":
        service.upsert("ix", {"namespace": NS, "vectors": [_record_body(*r) for r in op[1]]})
    elif kind == "update_values":
        body: dict[str, Any] = {"namespace": NS, "id": op[1], "values": op[2]}
        if op[3] is not None:
            body["sparseValues"] = op[3]
        service.update("ix", body)
    elif kind == "update_metadata":
        service.update("ix", {"namespace": NS, "id": op[1], "setMetadata": op[2]})
    elif kind == "update_filter":
        service.update("ix", {"namespace": NS, "filter": op[1], "setMetadata": op[2]})
    elif kind == "delete_ids":
        service.delete("ix", {"namespace": NS, "ids": op[1]})
    elif kind == "delete_filter":
        service.delete("ix", {"namespace": NS, "filter": op[1]})
    elif kind == "delete_all":
        service.delete("ix", {"namespace": NS, "deleteAll": True})
    else:
        service.query("ix", {"namespace": NS, "vector": op[1], "topK": 4, "includeMetadata": True})


def _queries(metric: str) -> list[dict[str, Any]]:
    vectors = [[1.0, 0.0, 0.0], [1.0, -1.0, 2.0], [0.0, 2.0, 1.0]]
    if metric != "cosine":
        vectors.append([0.0, 0.0, 0.0])  # every score ties: the order is the ids'
    queries: list[dict[str, Any]] = []
    for vector in vectors:
        for top_k in (1, 3, 20):
            for filter_ in [None, *FILTERS]:
                body: dict[str, Any] = {"namespace": NS, "vector": vector, "topK": top_k}
                body["includeMetadata"] = True
                if filter_ is not None:
                    body["filter"] = filter_
                queries.append(body)
    if metric == "dotproduct":
        queries += [{**q, "sparseVector": {"indices": [1, 4], "values": [1.0, -2.0]}} for q in queries[:12]]
    return queries


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_writes_applied_in_place_answer_as_a_reload(metric: str) -> None:
    @settings(max_examples=40, deadline=None)
    @given(st.lists(st.tuples(_ids, _vector(metric), _metadata, st.none()), max_size=8), _operations(metric))
    def check(initial: list[tuple[Any, ...]], operations: list[tuple[Any, ...]]) -> None:
        with tempfile.TemporaryDirectory() as data_dir:
            warm = PineconeService(PineconeStorage(data_dir))
            fresh: PineconeService | None = None
            try:
                warm.create_index({"name": "ix", "dimension": DIM, "metric": metric})
                if initial:
                    _apply(warm, ("upsert", initial))
                _apply(warm, ("query", [1.0, 0.0, 0.0]))  # load the namespace before the writes
                for op in operations:
                    _apply(warm, op)
                fresh = PineconeService(PineconeStorage(data_dir))
                for query in _queries(metric):
                    assert warm.query("ix", query) == fresh.query("ix", query), query
                for filter_ in FILTERS:
                    body = {"namespace": NS, "filter": filter_, "limit": 100}
                    assert warm.fetch_by_metadata("ix", body) == fresh.fetch_by_metadata("ix", body)
            finally:
                warm.close()
                if fresh is not None:
                    fresh.close()

    check()


def test_a_query_sees_a_write_whole_or_not_at_all(tmp_path: Path) -> None:
    """Writers rewrite a block of ids (vector and metadata carry one marker per write, some ids deleted
    and re-added) while readers query: every answer holds one write's marker, in scores and metadata."""
    block = [f"b{i:04d}" for i in range(600)]
    service = PineconeService(PineconeStorage(tmp_path))
    service.create_index({"name": "ix", "dimension": DIM, "metric": "dotproduct"})

    def write(marker: int) -> None:
        vectors = [{"id": i, "values": [float(marker), 0.0, 0.0], "metadata": {"m": marker}} for i in block]
        service.upsert("ix", {"vectors": vectors})

    write(1)
    query = {"vector": [1.0, 0.0, 0.0], "topK": len(block), "includeMetadata": True}
    service.query("ix", query)  # loaded: the writes below are applied in place
    done = threading.Event()
    seen: list[set[float]] = []

    def read() -> None:
        while not done.is_set():
            matches = service.query("ix", query)["matches"]
            seen.append({m["score"] for m in matches} | {float(m["metadata"]["m"]) for m in matches})

    readers = [threading.Thread(target=read) for _ in range(2)]
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible, mid-write included
    try:
        for thread in readers:
            thread.start()
        for marker in range(2, 40):
            service.delete("ix", {"ids": block[marker::7]})
            write(marker)
    finally:
        done.set()
        for thread in readers:
            thread.join()
        sys.setswitchinterval(interval)
        service.close()
    assert seen and all(len(markers) == 1 for markers in seen), [m for m in seen if len(m) > 1][:3]


def test_writes_by_another_process_on_the_same_file_are_seen(tmp_path: Path) -> None:
    """Without a `sagerag serve`, each embedded command opens the data directory itself: a service
    whose namespace is loaded must notice another connection's writes (SQLite's data_version), and its
    own in-place writes after them must not hide them."""
    here, there = PineconeService(PineconeStorage(tmp_path)), PineconeService(PineconeStorage(tmp_path))
    try:
        here.create_index({"name": "ix", "dimension": DIM, "metric": "dotproduct"})
        here.upsert("ix", {"vectors": [{"id": "a", "values": [1.0, 0.0, 0.0]}]})
        query = {"vector": [1.0, 0.0, 0.0], "topK": 10}
        assert [m["id"] for m in here.query("ix", query)["matches"]] == ["a"]  # loaded
        there.upsert("ix", {"vectors": [{"id": "b", "values": [2.0, 0.0, 0.0]}]})
        here.upsert("ix", {"vectors": [{"id": "c", "values": [3.0, 0.0, 0.0]}]})  # in place, after b
        assert [m["id"] for m in here.query("ix", query)["matches"]] == ["c", "b", "a"]
        there.delete("ix", {"ids": ["a"]})
        assert [m["id"] for m in here.query("ix", query)["matches"]] == ["c", "b"]
        assert here.query("ix", query) == there.query("ix", query)
    finally:
        here.close()
        there.close()


def test_a_failed_commit_leaves_the_loaded_namespace_as_it_was(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write whose transaction fails (disk full at COMMIT, say) is an error and changes nothing: not
    the file, and not the namespace in memory, which is edited only after SQLite committed."""
    service = PineconeService(PineconeStorage(tmp_path))
    try:
        service.create_index({"name": "ix", "dimension": DIM, "metric": "euclidean"})
        service.upsert(
            "ix", {"vectors": [{"id": i, "values": [float(n), 1.0, 0.0]} for n, i in enumerate(IDS)]}
        )
        query = {"vector": [2.0, 1.0, 0.0], "topK": 5, "includeMetadata": True}
        before = service.query("ix", query)

        @contextmanager
        def failing_commit(storage: PineconeStorage) -> Iterator[sqlite3.Connection]:
            with storage._lock:
                storage._conn.execute("BEGIN IMMEDIATE")
                yield storage._conn  # the statements run, then the commit fails
                storage._conn.execute("ROLLBACK")
                raise sqlite3.OperationalError("database or disk is full")

        monkeypatch.setattr(PineconeStorage, "transaction", failing_commit)
        writes: list[dict[str, Any]] = [
            {
                "vectors": [
                    {"id": "new", "values": [2.0, 1.0, 0.0]},
                    {"id": IDS[3], "values": [9.0, 9.0, 9.0]},
                ]
            },
            {"ids": IDS[:4]},
            {"filter": {"missing": {"$exists": False}}},
            {"deleteAll": True},
        ]
        for body in writes:
            write = service.upsert if "vectors" in body else service.delete
            with pytest.raises(sqlite3.OperationalError):
                write("ix", body)
        with pytest.raises(sqlite3.OperationalError):
            service.update("ix", {"id": IDS[2], "values": [2.0, 1.0, 0.0], "setMetadata": {"k": "v"}})
        assert service.query("ix", query) == before
        monkeypatch.undo()
        fresh = PineconeService(PineconeStorage(tmp_path))
        assert fresh.query("ix", query) == before
        fresh.close()
    finally:
        service.close()
