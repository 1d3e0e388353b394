"""One holder at a time for a file: `serve` per data dir, `ingest` per ledger, `batch` per output file.

A lock is an advisory `flock` on a small JSON file that names its holder (pid, command, what it serves).
The kernel drops the lock when the holder dies, however it dies (SIGKILL included), so a lock file left
behind by a crash is never mistaken for a live holder: whoever can take the lock knows the file is stale.
The holder removes the file on a clean exit; a file reopened after such a removal is detected by its inode
and re-taken, so two processes can never both believe they hold the lock.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO, Any

from sagerag.errors import LockBusy

HolderInfo = dict[str, Any]


def _read(handle: IO[str]) -> HolderInfo:
    handle.seek(0)
    try:
        data = json.loads(handle.read() or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _same_file(handle: IO[str], path: Path) -> bool:
    """False when `path` was removed (or replaced) after `handle` opened it."""
    try:
        return os.fstat(handle.fileno()).st_ino == os.stat(path).st_ino
    except FileNotFoundError:
        return False


def _open_locked(path: Path, operation: int) -> IO[str]:
    """Open `path` (created if missing) and take `operation` on it; raises BlockingIOError when busy."""
    path.parent.mkdir(parents=True, exist_ok=True)
    while True:
        handle = path.open("a+", encoding="utf-8")
        try:
            fcntl.flock(handle.fileno(), operation)
        except BaseException:
            handle.close()
            raise
        if _same_file(handle, path):
            return handle
        handle.close()  # the previous holder removed it between our open and our lock: try again


class Held:
    """A lock this process holds; `record` rewrites what readers see (e.g. once ports are known)."""

    def __init__(self, path: Path, handle: IO[str]) -> None:
        self.path = path
        self._handle = handle

    def record(self, info: HolderInfo) -> None:
        self._handle.seek(0)
        self._handle.truncate()
        self._handle.write(json.dumps({**info, "pid": os.getpid(), "since": time.time()}))
        self._handle.flush()


@contextlib.contextmanager
def hold(
    path: Path,
    info: HolderInfo,
    wait: bool = False,
    on_wait: Callable[[HolderInfo], None] | None = None,
) -> Iterator[Held]:
    """Hold the lock at `path` while the block runs, recording `info` (plus our pid) in the file.

    Without `wait`, raise `LockBusy` at once when another process holds it; with `wait`, call `on_wait`
    once with the holder's info and block until it lets go.
    """
    try:
        handle = _open_locked(path, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = read_holder(path) or {}
        if not wait:
            raise LockBusy(path, holder) from None
        if on_wait:
            on_wait(holder)
        handle = _open_locked(path, fcntl.LOCK_EX)
    try:
        held = Held(path, handle)
        held.record(info)
        yield held
    finally:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()  # still under our lock: nobody else can be holding this inode
        handle.close()


def read_holder(path: Path) -> HolderInfo | None:
    """What the live holder of `path` recorded, or None when nobody holds it (missing or stale file)."""
    try:
        handle = path.open("r", encoding="utf-8")
    except (FileNotFoundError, NotADirectoryError):
        return None
    with handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(handle)  # a holder keeps it exclusively: it is alive
        fcntl.flock(handle.fileno(), fcntl.LOCK_UN)
        return None
