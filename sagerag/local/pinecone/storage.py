"""SQLite persistence for the local Pinecone: index descriptions and vectors.

One database file in WAL mode with `synchronous=FULL`, so a write that returned has reached the disk and
survives a crash of the process or the machine. Every request's writes run in one transaction, so a
request that fails leaves nothing half-written. A single connection behind a lock keeps it thread-safe;
SQLite serialises writers anyway and reads here are short.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
import orjson

from sagerag.datafiles import explain

STORE_REBUILD = (
    "re-run `sagerag ingest` with your sources: the ingestion ledger notices the empty store and "
    "stores every document again"
)

_SCHEMA = """
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
    PRIMARY KEY (index_name, namespace, id)
) WITHOUT ROWID;
"""


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


class PineconeStorage:
    """The durable state; everything in memory is a cache rebuilt from here."""

    def __init__(self, data_dir: str | Path) -> None:
        path = Path(data_dir)
        self.path = path / "pinecone.sqlite3"
        self._lock = threading.RLock()
        try:
            path.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=FULL")
            self._conn.executescript(_SCHEMA)
        except (sqlite3.Error, OSError) as exc:
            raise (explain(exc, self.path, STORE_REBUILD) or exc) from None

    def data_version(self) -> int:
        """A number that changes whenever another connection (another process) commits to the file.

        Our own commits leave it alone, so it tells a cache exactly when writes it did not see happened.
        """
        with self._lock:
            return int(self._conn.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT, rolled back if the block raises."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                yield self._conn
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            self._conn.execute("COMMIT")

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
            conn.execute("DELETE FROM indexes WHERE name = ?", (name,))

    # -- vectors ---------------------------------------------------------------------------------------
    def upsert(self, index: str, namespace: str, rows: Iterable[tuple[str, bytes, str | None]]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "INSERT OR REPLACE INTO vectors (index_name, namespace, id, vec, metadata) "
                "VALUES (?, ?, ?, ?, ?)",
                ((index, namespace, id_, vec, meta) for id_, vec, meta in rows),
            )

    def delete_ids(self, index: str, namespace: str, ids: Sequence[str]) -> None:
        with self.transaction() as conn:
            conn.executemany(
                "DELETE FROM vectors WHERE index_name = ? AND namespace = ? AND id = ?",
                ((index, namespace, id_) for id_ in ids),
            )

    def delete_namespace(self, index: str, namespace: str) -> None:
        with self.transaction() as conn:
            conn.execute("DELETE FROM vectors WHERE index_name = ? AND namespace = ?", (index, namespace))

    def fetch(self, index: str, namespace: str, ids: Sequence[str]) -> list[VectorRow]:
        out: list[VectorRow] = []
        with self._lock:
            for start in range(0, len(ids), 500):
                chunk = list(ids[start : start + 500])
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f"SELECT id, vec, metadata FROM vectors WHERE index_name = ? AND namespace = ? "
                    f"AND id IN ({marks})",
                    (index, namespace, *chunk),
                ).fetchall()
                out.extend(VectorRow(r[0], np.frombuffer(r[1], dtype=np.float32), r[2]) for r in rows)
        return out

    def load_namespace(self, index: str, namespace: str) -> tuple[list[str], bytes, list[str | None]]:
        """All ids, the concatenated float32 vectors and the raw metadata, in id order."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT id, vec, metadata FROM vectors WHERE index_name = ? AND namespace = ? ORDER BY id",
                (index, namespace),
            ).fetchall()
        return [r[0] for r in rows], b"".join(r[1] for r in rows), [r[2] for r in rows]

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
