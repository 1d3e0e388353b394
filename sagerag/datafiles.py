"""The local data files (the SQLite store and the ingestion ledger): one way to open them, and their failures
as one line each.

SQLite reports a full disk, a read-only directory and a damaged file with messages that name neither the
file nor what to do ("database disk image is malformed", with the SQL attached). These map them to
sagerag errors that name the file and the remedy; nothing is deleted on the way, so what was stored
before stays stored.
"""

from __future__ import annotations

import errno
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from sagerag.errors import DataFileError, DiskFullError, SageRagError

_CORRUPT = ("malformed", "not a database", "file is encrypted")
_READ_ONLY = ("readonly database", "read-only", "unable to open database file", "permission denied")
_FULL = ("database or disk is full", "no space left")


def _root_cause(exc: BaseException) -> BaseException:
    """The sqlite3 / OS error under a SQLAlchemy wrapper, if any."""
    orig = getattr(exc, "orig", None)
    return orig if isinstance(orig, BaseException) else exc


def explain(exc: BaseException, path: Path, rebuild: str) -> SageRagError | None:
    """A one-line error for a data-file failure of `path`, or None when `exc` is something else.

    `rebuild` says how to get the file's content back once it is moved aside (e.g. "re-run `sagerag
    ingest`"), for the corrupt-file case.
    """
    cause = _root_cause(exc)
    if not isinstance(cause, sqlite3.Error | OSError):
        return None
    text = str(cause).lower()
    if isinstance(cause, OSError):
        if cause.errno == errno.ENOSPC:
            text = "no space left"
        elif cause.errno in (errno.EROFS, errno.EACCES, errno.EPERM):
            text = "read-only"
    if any(marker in text for marker in _FULL):
        return DiskFullError(
            f"{path}: the disk is full; free some space (or set SAGERAG_DATA_DIR to a disk with room) "
            "and re-run: what was stored before is intact, and an ingest resumes where it stopped"
        )
    if any(marker in text for marker in _READ_ONLY):
        return DataFileError(
            f"{path}: cannot be written (read-only file or directory); make {path.parent} writable, "
            "or set SAGERAG_DATA_DIR to a writable directory"
        )
    if any(marker in text for marker in _CORRUPT):
        return DataFileError(
            f"{path}: the file is damaged ({cause}); move it aside (mv {path} {path}.bad) and {rebuild}"
        )
    return None


class SharedConnection:
    """One SQLite connection that a process's threads take turns on: WAL, a lock around every use, and
    `BEGIN IMMEDIATE` transactions (a writer takes the file's write lock at once, so two processes never
    both read then deadlock upgrading). `synchronous` is the durability: FULL survives a power loss,
    NORMAL a killed process."""

    def __init__(self, path: Path, synchronous: str) -> None:
        self.path = path
        self.lock = threading.RLock()
        self.conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        try:
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute(f"PRAGMA synchronous={synchronous}")
        except BaseException:
            self.conn.close()
            raise

    def close(self) -> None:
        with self.lock:
            self.conn.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE .. COMMIT, rolled back if the block raises."""
        with self.lock:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                yield self.conn
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
