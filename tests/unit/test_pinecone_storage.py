"""The local Pinecone's SQLite file: a data directory written by an older version opens with every vector.

The first schema kept vectors in a `WITHOUT ROWID` table; the current one is a rowid table with a unique
index (much cheaper to write). Opening an old file converts it in one transaction, once, and the service
then answers exactly as a file written by the current version from the same records.
"""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from sagerag.local.pinecone.service import PineconeService
from sagerag.local.pinecone.storage import PineconeStorage, pack_sparse

# The schema as the local Pinecone wrote it before the rowid table, verbatim (do not edit: it is the past).
_OLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS indexes (
    name TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    metric TEXT NOT NULL,
    description TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS vectors (
    index_name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    vec BLOB NOT NULL,
    metadata TEXT,
    sparse BLOB,
    PRIMARY KEY (index_name, namespace, id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS namespaces (
    index_name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    PRIMARY KEY (index_name, namespace)
) WITHOUT ROWID;
"""
DIM = 4
FILE = "pinecone.sqlite3"
Record = dict[str, Any]


def _records(metric: str, n: int, seed: int) -> list[Record]:
    """Records in no particular id order, with metadata on most and sparse values on dotproduct ones."""
    rng = np.random.default_rng(seed)
    out: list[Record] = []
    for i in rng.permutation(n).tolist():
        record: Record = {"id": f"doc{i:03d}#{i % 3}", "values": rng.standard_normal(DIM).round(3).tolist()}
        if i % 4:
            record["metadata"] = {"source": f"doc{i % 5}", "row": float(i), "tags": ["a", f"t{i % 2}"]}
        if metric == "dotproduct" and i % 3:
            terms = sorted(rng.choice(50, size=3, replace=False).tolist())
            record["sparseValues"] = {"indices": terms, "values": rng.standard_normal(3).round(3).tolist()}
        out.append(record)
    return out


# index -> (metric, namespace -> records); "empty" exists with no vectors (the namespaces table).
LAYOUT: dict[str, tuple[str, dict[str, list[Record]]]] = {
    "dense": ("cosine", {"": _records("cosine", 40, 1), "ns": _records("cosine", 25, 2), "empty": []}),
    "hybrid": ("dotproduct", {"ns": _records("dotproduct", 30, 3)}),
}


def _stored_row(index: str, namespace: str, record: Record) -> tuple[Any, ...]:
    """The row an older local Pinecone stored for `record`."""
    sparse = record.get("sparseValues")
    blob = (
        pack_sparse(np.asarray(sparse["indices"], np.uint32), np.asarray(sparse["values"], np.float32))
        if sparse
        else None
    )
    metadata = orjson.dumps(record["metadata"]).decode() if record.get("metadata") else None
    vec = np.asarray(record["values"], dtype=np.float32).tobytes()
    return (index, namespace, record["id"], vec, metadata, blob)


def _write_old_file(data_dir: Path, with_sparse_column: bool = True) -> set[tuple[Any, ...]]:
    """A data directory as the previous version left it; returns every vectors row it holds."""
    data_dir.mkdir(parents=True, exist_ok=True)
    schema = _OLD_SCHEMA if with_sparse_column else _OLD_SCHEMA.replace("    sparse BLOB,\n", "")
    rows: set[tuple[Any, ...]] = set()
    conn = sqlite3.connect(data_dir / FILE)
    try:
        conn.execute("PRAGMA journal_mode=WAL")
        conn.executescript(schema)
        with conn:
            for index, (metric, namespaces) in LAYOUT.items():
                description = {"schema": {"fields": {}}, "deletion_protection": "disabled"}
                conn.execute(
                    "INSERT INTO indexes VALUES (?, ?, ?, ?)",
                    (index, DIM, metric, orjson.dumps(description).decode()),
                )
                for namespace, records in namespaces.items():
                    conn.execute("INSERT INTO namespaces VALUES (?, ?)", (index, namespace))
                    for record in records:
                        row = _stored_row(index, namespace, record)
                        values = row if with_sparse_column else row[:5]
                        conn.execute(f"INSERT INTO vectors VALUES ({', '.join('?' * len(values))})", values)
                        rows.add(row if with_sparse_column else (*values, None))
    finally:
        conn.close()
    return rows


def _vectors_rows(path: Path) -> set[tuple[Any, ...]]:
    conn = sqlite3.connect(path)
    try:
        return set(conn.execute("SELECT index_name, namespace, id, vec, metadata, sparse FROM vectors"))
    finally:
        conn.close()


def _schema(path: Path) -> tuple[int, list[tuple[str, str]]]:
    """(schema_version, the tables and their DDL): the version moves on any schema change."""
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA schema_version").fetchone()[0]
        tables = conn.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'table' ORDER BY name"
        ).fetchall()
        return int(version), tables
    finally:
        conn.close()


def _answers(service: PineconeService) -> list[Any]:
    """Everything a client can read back: stats, namespaces, pages of ids, fetches and queries."""
    out: list[Any] = []
    for index, (metric, namespaces) in LAYOUT.items():
        out.append(service.stats(index))
        out.append(service.list_namespaces(index, None, None, None))
        for namespace, records in namespaces.items():
            ids = sorted(r["id"] for r in records)
            token = None
            while True:  # every page of 7, then one by prefix
                page = service.list_ids(index, namespace, None, 7, token)
                out.append(page)
                token = page.get("pagination", {}).get("next")
                if token is None:
                    break
            out.append(service.list_ids(index, namespace, "doc01", None, None))
            out.append(service.fetch(index, [*ids[:9], "missing"], namespace))
            for k, record in enumerate(records[:4]):
                query: dict[str, Any] = {"namespace": namespace, "vector": record["values"], "topK": 5}
                query.update(includeMetadata=True, includeValues=bool(k % 2))
                if k == 2:
                    query["filter"] = {"tags": {"$in": ["t1"]}}
                if metric == "dotproduct" and "sparseValues" in record:
                    query["sparseVector"] = record["sparseValues"]
                out.append(service.query(index, query))
    return out


def _fresh_service(data_dir: Path) -> PineconeService:
    """The same records written through the current version."""
    service = PineconeService(PineconeStorage(data_dir))
    for index, (metric, namespaces) in LAYOUT.items():
        service.create_index({"name": index, "dimension": DIM, "metric": metric})
        for namespace, records in namespaces.items():
            if records:
                service.upsert(index, {"namespace": namespace, "vectors": records})
            elif namespace:
                service.create_namespace(index, {"name": namespace})
    return service


def test_an_old_data_dir_is_converted_on_open_keeping_every_vector(tmp_path: Path) -> None:
    old = tmp_path / "old"
    rows = _write_old_file(old)
    assert "WITHOUT ROWID" in dict(_schema(old / FILE)[1])["vectors"]

    migrated = PineconeService(PineconeStorage(old))
    fresh = _fresh_service(tmp_path / "fresh")
    try:
        version, tables = _schema(old / FILE)
        assert [name for name, _ in tables] == ["indexes", "namespaces", "vectors"]
        assert "WITHOUT ROWID" not in dict(tables)["vectors"]
        assert _vectors_rows(old / FILE) == rows  # every vector, metadata and sparse value, byte for byte
        assert _answers(migrated) == _answers(fresh)
    finally:
        migrated.close()
        fresh.close()

    again = PineconeStorage(old)  # the second open finds the new table: no schema change at all
    again.close()
    assert _schema(old / FILE) == (version, tables)
    assert _vectors_rows(old / FILE) == rows


def test_a_file_from_before_sparse_values_is_converted_too(tmp_path: Path) -> None:
    rows = _write_old_file(tmp_path, with_sparse_column=False)
    PineconeStorage(tmp_path).close()
    assert _vectors_rows(tmp_path / FILE) == rows  # sparse NULL for every row


def test_a_conversion_that_fails_leaves_the_old_table_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A crash before COMMIT (here an exception after the copy) keeps the old table and every row: the
    copy, the drop and the rename are one transaction. The next open converts."""
    rows = _write_old_file(tmp_path)
    before = _schema(tmp_path / FILE)
    convert = PineconeStorage._convert_vectors

    def convert_then_crash(conn: sqlite3.Connection) -> None:
        convert(conn)
        raise KeyboardInterrupt  # what a process interrupted mid-conversion raises

    monkeypatch.setattr(PineconeStorage, "_convert_vectors", staticmethod(convert_then_crash))
    with pytest.raises(KeyboardInterrupt):
        PineconeStorage(tmp_path)
    assert _schema(tmp_path / FILE) == before
    assert _vectors_rows(tmp_path / FILE) == rows

    monkeypatch.setattr(PineconeStorage, "_convert_vectors", staticmethod(convert))
    PineconeStorage(tmp_path).close()
    assert "WITHOUT ROWID" not in dict(_schema(tmp_path / FILE)[1])["vectors"]
    assert _vectors_rows(tmp_path / FILE) == rows


def test_openers_racing_on_an_old_file_convert_it_once(tmp_path: Path) -> None:
    """Two openers at once (two embedded commands, or a serve and an ingest): both succeed, one converts,
    the other waits for the write lock and then finds nothing to do. A third connection holds the write
    lock until both are waiting, so they really do arrive together."""
    rows = _write_old_file(tmp_path)
    holder = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    opened: list[PineconeStorage] = []
    errors: list[BaseException] = []

    def open_store() -> None:
        try:
            opened.append(PineconeStorage(tmp_path))
        except BaseException as exc:  # reported below, not lost in the thread
            errors.append(exc)

    threads = [threading.Thread(target=open_store) for _ in range(2)]
    for thread in threads:
        thread.start()
    threads[0].join(0.5)  # both are now waiting on the lock (their busy handler retries)
    assert not opened and not errors
    holder.execute("COMMIT")
    holder.close()
    for thread in threads:
        thread.join(60)
    assert not errors and len(opened) == 2
    try:
        service = PineconeService(opened[1])
        assert service.stats("dense")["totalVectorCount"] == 65
        assert _vectors_rows(tmp_path / FILE) == rows
        assert "WITHOUT ROWID" not in dict(_schema(tmp_path / FILE)[1])["vectors"]
    finally:
        for store in opened:
            store.close()


# -- checkpoints: off the upsert's path, and the WAL bounded ------------------------------------------------


def _upsert_batches(service: PineconeService, first: int, batches: int, size: int = 256) -> None:
    """Batches of new 384-d vectors with 500 bytes of metadata each (about one 4 KB page per vector)."""
    rng = np.random.default_rng(first)
    for b in range(first, first + batches):
        vectors = rng.standard_normal((size, 384)).astype(np.float32)
        records = [
            {"id": f"b{b}-{i}", "values": v.tolist(), "metadata": {"text": "x" * 500}}
            for i, v in enumerate(vectors)
        ]
        service.upsert("ix", {"vectors": records})


def _checkpoint_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "pinecone-checkpoint"]


def test_upserted_pages_reach_the_database_file_in_the_background_and_close_stops_it(tmp_path: Path) -> None:
    """The commits stay in the WAL until a checkpoint copies them; the background checkpoint does that
    without any commit crossing SQLite's threshold (here ~0.6 MB, far below it), and close ends it."""
    before = set(_checkpoint_threads())
    service = PineconeService(PineconeStorage(tmp_path))
    try:
        service.create_index({"name": "ix", "dimension": 384, "metric": "cosine"})
        _upsert_batches(service, 0, 1)
        database = tmp_path / FILE
        for _ in range(200):  # wait for the background copy: at most 10 s, normally milliseconds
            if database.stat().st_size > 256 * 384 * 4:
                break
            threading.Event().wait(0.05)
        assert database.stat().st_size > 256 * 384 * 4
        assert len(set(_checkpoint_threads()) - before) == 1
    finally:
        service.close()
    assert set(_checkpoint_threads()) <= before


def test_the_wal_stays_bounded_under_back_to_back_upserts(tmp_path: Path) -> None:
    """Writes that never pause would keep a background checkpoint from ever finishing (the WAL restarts
    only once fully copied); the commit's own checkpoint past `_WAL_BACKSTOP_PAGES` bounds it."""
    service = PineconeService(PineconeStorage(tmp_path))
    try:
        service.create_index({"name": "ix", "dimension": 384, "metric": "cosine"})
        sizes = []
        for round_ in range(10):
            _upsert_batches(service, 4 * round_, 4)
            sizes.append((tmp_path / f"{FILE}-wal").stat().st_size)
        assert service.stats("ix")["totalVectorCount"] == 40 * 256
    finally:
        service.close()
    assert max(sizes) < 24 * 1024 * 1024, sizes  # 4000 pages of 4 KB and one commit, not all 40 commits


def test_a_current_file_opens_while_another_process_holds_the_write_lock(tmp_path: Path) -> None:
    """Only a file that needs creating or converting takes the write lock on open: a command opening the
    store while another one is mid-write (a long ingest transaction, say) does not wait for it."""
    PineconeStorage(tmp_path).close()
    holder = sqlite3.connect(tmp_path / FILE, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        opened: list[PineconeStorage] = []
        thread = threading.Thread(target=lambda: opened.append(PineconeStorage(tmp_path)), daemon=True)
        thread.start()
        thread.join(30)
        assert opened, "opening waited for another connection's write transaction"
        opened[0].close()
    finally:
        holder.execute("ROLLBACK")
        holder.close()
