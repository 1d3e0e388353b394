"""The ingestion ledger: LangChain's record manager on SQLite, with plain `sqlite3` instead of SQLAlchemy.

Why not `langchain_classic.indexes.SQLRecordManager`: per 512-document batch it builds and compiles a
multi-row `INSERT ... ON CONFLICT` with 2,560 bound parameters (SQLAlchemy cannot cache it), which cost
~80 us of client CPU a document, as much as upserting the document's vector; importing it costs seconds of
CPU on a busy machine. This class keeps its table, its columns and its semantics (keys unique per
namespace, `updated_at` from SQLite's clock, `group_id` overwritten on every update), so ledgers written
by either one are read by the other, and `langchain_core.indexing.index()` drives it unchanged.

Durability: WAL with `synchronous=NORMAL`. A commit survives the process being killed (it is in the WAL
file); only a power loss or kernel crash can lose the last commits, and the ledger only says what the
store already holds: a lost record makes the next ingest store that document again under the same id,
nothing is lost or duplicated.
"""

from __future__ import annotations

import os
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

from langchain_core.indexing import RecordManager

from sagerag.datafiles import SharedConnection

_SCHEMA = """
CREATE TABLE IF NOT EXISTS upsertion_record (
    uuid VARCHAR NOT NULL,
    "key" VARCHAR,
    namespace VARCHAR NOT NULL,
    group_id VARCHAR,
    updated_at FLOAT,
    PRIMARY KEY (uuid),
    CONSTRAINT uix_key_namespace UNIQUE ("key", namespace)
);
CREATE INDEX IF NOT EXISTS ix_upsertion_record_updated_at ON upsertion_record (updated_at);
CREATE INDEX IF NOT EXISTS ix_upsertion_record_group_id ON upsertion_record (group_id);
CREATE INDEX IF NOT EXISTS ix_upsertion_record_namespace ON upsertion_record (namespace);
DROP INDEX IF EXISTS ix_upsertion_record_key;
DROP INDEX IF EXISTS ix_key_namespace;
DROP INDEX IF EXISTS ix_upsertion_record_uuid;
"""
"""SQLRecordManager's table and the indexes its queries use. The three it also creates duplicate indexes
SQLite keeps anyway (the unique `(key, namespace)` and the primary key) and each cost every insert a random
B-tree page: they are dropped (SQLRecordManager recreates them if it opens the file again)."""

_NOW = "SELECT (julianday('now') - 2440587.5) * 86400.0"
"""Seconds since the epoch from SQLite's clock, as SQLRecordManager reads it (one clock for every writer)."""
_CHUNK = 500
"""Keys per `IN (...)` list: well under SQLite's bound on the variables of one statement."""


def _ordered_ids(n: int) -> list[str]:
    """`n` unique row ids in UUIDv7's layout (milliseconds first, then a counter, then 48 random bits per
    call): a batch appends to the primary-key index instead of writing a random page of it per row, as
    uuid4 did (the ledger's commits grew from 5 to 40 ms a batch over 20,000 documents)."""
    ms = f"{time.time_ns() // 1_000_000:012x}"
    head, tail = f"{ms[:8]}-{ms[8:]}-7", os.urandom(6).hex()
    return [f"{head}{(i >> 14) & 0xFFF:03x}-{0x8000 | (i & 0x3FFF):04x}-{tail}" for i in range(n)]


def _chunks(items: Sequence[str]) -> Iterator[list[str]]:
    for start in range(0, len(items), _CHUNK):
        yield list(items[start : start + _CHUNK])


class SQLiteRecordManager(RecordManager):
    """A `RecordManager` over one SQLite file (the `upsertion_record` table of `SQLRecordManager`)."""

    def __init__(self, namespace: str, path: Path) -> None:
        super().__init__(namespace)
        self.path = path
        self._db = SharedConnection(path, synchronous="NORMAL")
        self._lock, self._conn = self._db.lock, self._db.conn

    def close(self) -> None:
        self._db.close()

    def create_schema(self) -> None:
        with self._lock:
            self._conn.executescript(_SCHEMA)

    def get_time(self) -> float:
        with self._lock:
            return float(self._conn.execute(_NOW).fetchone()[0])

    def update(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        """Insert or refresh `keys` in one transaction, stamped with SQLite's time."""
        if group_ids is None:
            group_ids = [None] * len(keys)
        if len(keys) != len(group_ids):
            raise ValueError(
                f"Number of keys ({len(keys)}) does not match number of group_ids ({len(group_ids)})"
            )
        with self._db.transaction() as conn:
            now = float(conn.execute(_NOW).fetchone()[0])
            if time_at_least and now < time_at_least:  # the clock went back: refuse, as SQLRecordManager does
                raise AssertionError(f"Time sync issue: {now} < {time_at_least}")
            conn.executemany(
                'INSERT INTO upsertion_record (uuid, "key", namespace, group_id, updated_at) '
                'VALUES (?, ?, ?, ?, ?) ON CONFLICT ("key", namespace) DO UPDATE SET '
                "updated_at = excluded.updated_at, group_id = excluded.group_id",
                [
                    (row_id, key, self.namespace, group, now)
                    for row_id, key, group in zip(_ordered_ids(len(keys)), keys, group_ids, strict=True)
                ],
            )

    def exists(self, keys: Sequence[str]) -> list[bool]:
        found: set[str] = set()
        with self._lock:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                rows = self._conn.execute(
                    f'SELECT "key" FROM upsertion_record WHERE namespace = ? AND "key" IN ({marks})',
                    (self.namespace, *chunk),
                )
                found.update(row[0] for row in rows)
        return [key in found for key in keys]

    def list_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        # With groups, the unary + keeps SQLite off the namespace and time indexes (every row of the
        # namespace: a scan per batch of an ingest) so it takes the group index.
        plus = "+" if group_ids else ""
        sql = f'SELECT "key" FROM upsertion_record WHERE {plus}namespace = ?'
        params: list[object] = [self.namespace]
        if after:
            sql += f" AND {plus}updated_at > ?"
            params.append(after)
        if before:
            sql += f" AND {plus}updated_at < ?"
            params.append(before)
        groups: list[list[str] | None] = list(_chunks(group_ids)) if group_ids else [None]
        keys: list[str] = []
        with self._lock:
            for chunk in groups:
                query, args = sql, list(params)
                if chunk is not None:
                    query += f" AND group_id IN ({','.join('?' * len(chunk))})"
                    args += chunk
                if limit:
                    query += " LIMIT ?"
                    args.append(limit - len(keys))
                keys += [row[0] for row in self._conn.execute(query, args)]
                if limit and len(keys) >= limit:
                    break
        return keys

    def delete_keys(self, keys: Sequence[str]) -> None:
        with self._db.transaction() as conn:
            for chunk in _chunks(keys):
                marks = ",".join("?" * len(chunk))
                conn.execute(
                    f'DELETE FROM upsertion_record WHERE namespace = ? AND "key" IN ({marks})',
                    (self.namespace, *chunk),
                )

    # The async API runs the same statements: each is a short local SQLite call.
    async def acreate_schema(self) -> None:
        self.create_schema()

    async def aget_time(self) -> float:
        return self.get_time()

    async def aupdate(
        self,
        keys: Sequence[str],
        *,
        group_ids: Sequence[str | None] | None = None,
        time_at_least: float | None = None,
    ) -> None:
        self.update(keys, group_ids=group_ids, time_at_least=time_at_least)

    async def aexists(self, keys: Sequence[str]) -> list[bool]:
        return self.exists(keys)

    async def alist_keys(
        self,
        *,
        before: float | None = None,
        after: float | None = None,
        group_ids: Sequence[str] | None = None,
        limit: int | None = None,
    ) -> list[str]:
        return self.list_keys(before=before, after=after, group_ids=group_ids, limit=limit)

    async def adelete_keys(self, keys: Sequence[str]) -> None:
        self.delete_keys(keys)
