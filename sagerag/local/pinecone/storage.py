"""SQLite persistence for the local Pinecone: index descriptions and vectors.

One database file in WAL mode with `synchronous=FULL`, so a write that returned has reached the disk and
survives a crash of the process or the machine. Every request's writes run in one transaction, so a
request that fails leaves nothing half-written. A single connection behind a lock keeps it thread-safe;
SQLite serialises writers anyway and reads here are short.
"""

from __future__ import annotations

import logging
import re
import sqlite3
import threading
import weakref
from collections.abc import Iterable, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from sagerag.datafiles import SharedConnection, explain

STORE_REBUILD = (
    "re-run `sagerag ingest` with your sources: the ingestion ledger notices the empty store and "
    "stores every document again"
)

# A namespace exists once created or written to, and stays when emptied (as Pinecone's does) until
# delete_namespace; databases written before this table existed count a namespace holding vectors too.
_TABLES = (
    """CREATE TABLE IF NOT EXISTS indexes (
    name TEXT PRIMARY KEY,
    dimension INTEGER NOT NULL,
    metric TEXT NOT NULL,
    description TEXT NOT NULL
)""",
    """CREATE TABLE IF NOT EXISTS namespaces (
    index_name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    PRIMARY KEY (index_name, namespace)
) WITHOUT ROWID""",
)
_VECTORS = """CREATE TABLE {table} (
    index_name TEXT NOT NULL,
    namespace TEXT NOT NULL,
    id TEXT NOT NULL,
    vec BLOB NOT NULL,
    metadata TEXT,
    sparse BLOB,
    UNIQUE (index_name, namespace, id)
)"""
# A rowid table: its 2 KB rows are appended in arrival order and only the small unique index is kept in
# id order (every read that has an order, load_namespace and list_ids, asks for ORDER BY id and walks that
# index). The first schema was `WITHOUT ROWID`, keyed by (index_name, namespace, id): there a row that size
# spills into overflow pages and every random id splits pages in the middle of the table, so its SQL cost
# twice as much per upsert, and more as the namespace grew. `_open_schema` converts such a file.
_WITHOUT_ROWID = re.compile(r"\bWITHOUT\s+ROWID\b", re.IGNORECASE)
_MIGRATION_WAIT_MS = 600_000
"""How long opening the file waits for another process's conversion (a large file takes a while)."""
_CHECKPOINT_PAUSE_S = 0.05
"""The least time between two background checkpoints: each one syncs the database file, so under a stream
of upserts they batch the commits of 50 ms instead of following every commit."""
_WAL_BACKSTOP_PAGES = 4000
"""A commit that finds the WAL this long checkpoints it itself: the WAL stays bounded when writes never
pause long enough for the background checkpoint to finish (the WAL restarts only once fully copied)."""
_log = logging.getLogger(__name__)
Row = tuple[str, bytes, str | None, bytes | None]
"""(id, dense float32 bytes, metadata JSON text, sparse bytes from `pack_sparse` or None)."""


def pack_sparse(indices: npt.NDArray[np.uint32], values: npt.NDArray[np.float32]) -> bytes:
    """Sparse values as stored: n uint32 indices followed by n float32 values."""
    return indices.astype(np.uint32).tobytes() + values.astype(np.float32).tobytes()


def unpack_sparse(blob: bytes | None) -> tuple[npt.NDArray[np.uint32], npt.NDArray[np.float32]] | None:
    if not blob:
        return None
    n = len(blob) // 8
    return np.frombuffer(blob[: 4 * n], dtype=np.uint32), np.frombuffer(blob[4 * n :], dtype=np.float32)


@dataclass(frozen=True)
class IndexRecord:
    """An index as stored: its shape and the description parts echoed back to clients."""

    name: str
    dimension: int
    metric: str
    description: dict[str, object]


@dataclass(frozen=True)
class VectorRow:
    """One stored vector; `metadata` stays JSON text until someone needs it decoded."""

    id: str
    values: npt.NDArray[np.float32]
    metadata: str | None
    sparse: bytes | None = None
    """Packed sparse values (`unpack_sparse`), None for a dense-only vector."""


class PineconeStorage:
    """The durable state; everything in memory is a cache rebuilt from here."""

    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir)
        self.path = path / "pinecone.sqlite3"
        self._checkpointer = _Checkpointer(self.path)
        weakref.finalize(self, self._checkpointer.close)  # a store dropped unclosed stops its thread too
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._db = SharedConnection(self.path, synchronous="FULL")
            self._lock, self._conn = self._db.lock, self._db.conn
            self._open_schema()
            self._conn.execute(f"PRAGMA wal_autocheckpoint = {_WAL_BACKSTOP_PAGES}")
        except (sqlite3.Error, OSError) as exc:
            raise (explain(exc, self.path, STORE_REBUILD) or exc) from None

    def _open_schema(self) -> None:
        """Create the tables, or convert a `WITHOUT ROWID` vectors table of an older version, in one
        transaction: a crash leaves the old table or the new one, never neither.

        BEGIN IMMEDIATE takes the write lock before looking at `sqlite_master`, so of two processes opening
        the file at once one converts and the other, waiting for the lock, then finds nothing to do. A file
        already in the current schema is opened without taking the write lock at all."""
        if self._schema_is_current():
            return
        (wait,) = self._conn.execute("PRAGMA busy_timeout").fetchone()
        self._conn.execute(f"PRAGMA busy_timeout = {max(int(wait), _MIGRATION_WAIT_MS)}")
        try:
            with self.transaction() as conn:
                for statement in _TABLES:
                    conn.execute(statement)
                found = conn.execute(
                    "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = 'vectors'"
                ).fetchone()
                if found is None:
                    conn.execute(_VECTORS.format(table="vectors"))
                elif _WITHOUT_ROWID.search(found[0]):
                    self._convert_vectors(conn)
        finally:
            self._conn.execute(f"PRAGMA busy_timeout = {int(wait)}")

    def _schema_is_current(self) -> bool:
        tables = dict(
            self._conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'").fetchall()
        )
        return {"indexes", "namespaces", "vectors"} <= tables.keys() and not _WITHOUT_ROWID.search(
            tables["vectors"]
        )

    @staticmethod
    def _convert_vectors(conn: sqlite3.Connection) -> None:
        """Copy the `WITHOUT ROWID` vectors table into the rowid one (inside the caller's transaction)."""
        columns = {r[1] for r in conn.execute("PRAGMA table_info(vectors)")}
        sparse = "sparse" if "sparse" in columns else "NULL"  # a file written before sparse values existed
        conn.execute(_VECTORS.format(table="vectors_rowid"))
        conn.execute(
            "INSERT INTO vectors_rowid (index_name, namespace, id, vec, metadata, sparse) "
            f"SELECT index_name, namespace, id, vec, metadata, {sparse} FROM vectors"
        )
        conn.execute("DROP TABLE vectors")
        conn.execute("ALTER TABLE vectors_rowid RENAME TO vectors")
        # The old table's pages stay in the file as free pages that later writes reuse (100,000 vectors:
        # about 5 s to convert and 470 MB freed); `VACUUM` on the file would return them to the disk.
        _log.info("converted the vectors table of the local Pinecone to the rowid schema")

    def data_version(self) -> int:
        """A number that changes whenever another connection (another process) commits to the file.

        Our own commits leave it alone, so it tells a cache exactly when writes it did not see happened.
        """
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self._checkpointer.close()
        self._db.close()

    def transaction(self) -> AbstractContextManager[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT, rolled back if the block raises."""
        return self._db.transaction()

    # -- indexes ---------------------------------------------------------------------------------------
    def create_index(self, record: IndexRecord) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT INTO indexes (name, dimension, metric, description) VALUES (?, ?, ?, ?)",
                (record.name, record.dimension, record.metric, orjson.dumps(record.description).decode()),
            )

    def update_index_description(self, name: str, description: dict[str, object]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "UPDATE indexes SET description = ? WHERE name = ?",
                (orjson.dumps(description).decode(), name),
            )

    def get_index(self, name: str) -> IndexRecord | None:
        with self._lock:
            row = self._conn.execute(
                "SELECT name, dimension, metric, description FROM indexes WHERE name = ?", (name,)
            ).fetchone()
        return None if row is None else IndexRecord(row[0], row[1], row[2], orjson.loads(row[3]))

    def list_indexes(self) -> list[IndexRecord]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT name, dimension, metric, description FROM indexes ORDER BY name"
            ).fetchall()
        return [IndexRecord(r[0], r[1], r[2], orjson.loads(r[3])) for r in rows]

    def delete_index(self, name: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM vectors WHERE index_name = ?", (name,))
            conn.execute("DELETE FROM namespaces WHERE index_name = ?", (name,))
            conn.execute("DELETE FROM indexes WHERE name = ?", (name,))

    # -- vectors ---------------------------------------------------------------------------------------
    def upsert(self, index: str, namespace: str, rows: Iterable[Row]) -> None:
        with self.transaction() as conn:
            conn.execute(
                "INSERT OR IGNORE INTO namespaces (index_name, namespace) VALUES (?, ?)", (index, namespace)
            )
            conn.executemany(
                "INSERT OR REPLACE INTO vectors (index_name, namespace, id, vec, metadata, sparse) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                ((index, namespace, id_, vec, meta, sparse) for id_, vec, meta, sparse in rows),
            )
        self._checkpointer.request()

    def delete_ids(self, index: str, namespace: str, ids: Sequence[str]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "DELETE FROM vectors WHERE index_name = ? AND namespace = ? AND id = ?",
                ((index, namespace, id_) for id_ in ids),
            )

    def delete_namespace(self, index: str, namespace: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM vectors WHERE index_name = ? AND namespace = ?", (index, namespace))

    # -- namespaces ------------------------------------------------------------------------------------
    def create_namespace(self, index: str, namespace: str) -> bool:
        """Record an empty namespace; False when it already exists."""
        with self.transaction() as conn:
            if self._namespace_exists(conn, index, namespace):
                return False
            conn.execute("INSERT INTO namespaces (index_name, namespace) VALUES (?, ?)", (index, namespace))
        return True

    def drop_namespace(self, index: str, namespace: str) -> bool:
        """Delete a namespace and its vectors; False when it did not exist."""
        with self.transaction() as conn:
            if not self._namespace_exists(conn, index, namespace):
                return False
            conn.execute("DELETE FROM vectors WHERE index_name = ? AND namespace = ?", (index, namespace))
            conn.execute("DELETE FROM namespaces WHERE index_name = ? AND namespace = ?", (index, namespace))
        return True

    def namespace_exists(self, index: str, namespace: str) -> bool:
        with self._lock:
            return self._namespace_exists(self._conn, index, namespace)

    @staticmethod
    def _namespace_exists(conn: sqlite3.Connection, index: str, namespace: str) -> bool:
        row = conn.execute(
            "SELECT 1 FROM namespaces WHERE index_name = ? AND namespace = ? UNION ALL "
            "SELECT 1 FROM vectors WHERE index_name = ? AND namespace = ? LIMIT 1",
            (index, namespace, index, namespace),
        ).fetchone()
        return row is not None

    def list_namespaces(self, index: str) -> dict[str, int]:
        """Every existing namespace of `index` with its vector count (empty ones count 0)."""
        with self._lock:
            names = self._conn.execute(
                "SELECT namespace FROM namespaces WHERE index_name = ?", (index,)
            ).fetchall()
        counts = self.namespace_counts(index)
        return {**{r[0]: 0 for r in names}, **counts}

    def fetch(self, index: str, namespace: str, ids: Sequence[str]) -> list[VectorRow]:
        out: list[VectorRow] = []
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT id, vec, metadata, sparse FROM vectors WHERE index_name = ? AND namespace = ? "
                    f"AND id IN ({marks})",
                    (index, namespace, *chunk),
                ).fetchall()
                out.extend(VectorRow(r[0], np.frombuffer(r[1], dtype=np.float32), r[2], r[3]) for r in rows)
        return out

    def load_namespace(
        self, index: str, namespace: str
    ) -> tuple[list[str], bytes, list[str | None], list[bytes | None]]:
        """All ids, the concatenated float32 vectors, the raw metadata and packed sparse values, in id order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, vec, metadata, sparse FROM vectors WHERE index_name = ? AND namespace = ? "
                "ORDER BY id",
                (index, namespace),
            ).fetchall()
        return [r[0] for r in rows], b"".join(r[1] for r in rows), [r[2] for r in rows], [r[3] for r in rows]

    def list_ids(self, index: str, namespace: str, prefix: str, after: str | None, limit: int) -> list[str]:
        sql = "SELECT id FROM vectors WHERE index_name = ? AND namespace = ? AND substr(id, 1, ?) = ?"
        params: list[object] = [index, namespace, len(prefix), prefix]
        if after is not None:
            sql += " AND id > ?"
            params.append(after)
        sql += " ORDER BY id LIMIT ?"
        params.append(limit)
        with self._lock:
            return [r[0] for r in self._conn.execute(sql, params).fetchall()]

    def namespace_counts(self, index: str) -> dict[str, int]:
        with self._lock:
            rows = self._conn.execute(
                "SELECT namespace, count(*) FROM vectors WHERE index_name = ? GROUP BY namespace", (index,)
            ).fetchall()
        return {r[0]: int(r[1]) for r in rows}


class _Checkpointer:
    """Copies committed WAL frames into the database file on its own thread and connection.

    With SQLite's automatic checkpoint, the commit that crosses 1000 WAL pages copies them all before it
    returns: every third or fourth 256-vector upsert took 15-25 ms longer. A PASSIVE checkpoint runs beside
    writers (they keep appending to the WAL), so here it costs the upsert nothing; durability is the WAL's
    (synchronous=FULL), whichever connection later copies it. The thread starts on the first request and
    exits on `close`; if it cannot run, the writer's own checkpoint (`_WAL_BACKSTOP_PAGES`) still does.
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._wanted = threading.Event()
        self._closed = threading.Event()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()

    def request(self) -> None:
        with self._start_lock:
            if self._closed.is_set():
                return
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="pinecone-checkpoint", daemon=True)
                self._thread.start()
        self._wanted.set()

    def close(self) -> None:
        with self._start_lock:
            self._closed.set()
            thread = self._thread
        self._wanted.set()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _run(self) -> None:
        try:
            conn = sqlite3.connect(self._path, isolation_level=None, check_same_thread=False)
        except sqlite3.Error:
            _log.warning(
                "no background checkpoint for %s; commits checkpoint instead", self._path, exc_info=True
            )
            return
        try:
            conn.execute("PRAGMA synchronous=FULL")  # a checkpoint syncs the WAL and then the database
            while True:
                self._wanted.wait()
                self._wanted.clear()
                if self._closed.is_set():
                    return
                try:
                    conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
                except sqlite3.Error:  # a full disk, say: the writers' own checkpoint retries later
                    _log.warning("background checkpoint of %s failed", self._path, exc_info=True)
                if self._closed.wait(_CHECKPOINT_PAUSE_S):
                    return
        finally:
            conn.close()
