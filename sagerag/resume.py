"""Append-only JSONL result files that let `batch` and `eval` resume where an interrupted run stopped.

Each finished item is one line, written and fsynced as soon as it is done, carrying its `id`. On start,
`ResultLog.open` reads the lines that are complete, drops a torn last line (a kill mid-write), and reports
which ids are done, so a re-run answers only the rest: nothing twice, nothing skipped.

One run at a time appends to a file (a lock beside it, `OUTPUT.lock`): two runs on one output would each
answer everything and keep both copies.
"""

from __future__ import annotations

import json
import os
import threading
from contextlib import ExitStack
from pathlib import Path
from typing import IO, Any

from sagerag.errors import InputError, OutputInUseError
from sagerag.locks import LockBusy, hold


class ResultLog:
    """A JSONL file of finished items keyed by `id`; thread-safe appends."""

    def __init__(
        self, path: Path, done: dict[str, dict[str, Any]], handle: IO[str], stack: ExitStack | None = None
    ):
        self.path = path
        self.done = done
        self._handle = handle
        self._lock = threading.Lock()
        self._stack = stack or ExitStack()

    @classmethod
    def open(cls, path: str | Path, restart: bool = False) -> ResultLog:
        """Open for appending (refusing when another run has it open); with `restart`, start empty."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        stack = ExitStack()
        try:
            stack.enter_context(hold(path.with_name(path.name + ".lock"), {"output": str(path)}))
        except LockBusy as busy:
            raise OutputInUseError(
                f"{path} is being written by another run (pid {busy.holder.get('pid', '?')}); wait for it "
                "to finish, or pass another output file"
            ) from None
        try:
            return cls._open_locked(path, restart, stack)
        except BaseException:
            stack.close()
            raise

    @classmethod
    def _open_locked(cls, path: Path, restart: bool, stack: ExitStack) -> ResultLog:
        done: dict[str, dict[str, Any]] = {}
        if path.exists() and not restart:
            raw = path.read_bytes()
            good = raw[: raw.rfind(b"\n") + 1]  # a line without its newline was torn by a kill
            for number, line in enumerate(good.decode("utf-8").splitlines(), start=1):
                if not line.strip():
                    continue
                try:
                    item = json.loads(line)
                    done[str(item["id"])] = item
                except (ValueError, KeyError, TypeError):
                    raise InputError(
                        f"{path} line {number} is not a sagerag result line; pass another output file or --restart"
                    ) from None
            if len(good) != len(raw):
                with path.open("r+b") as torn:
                    torn.truncate(len(good))
        handle = path.open("w" if restart else "a", encoding="utf-8")
        return cls(path, done, handle, stack)

    def append(self, item: dict[str, Any]) -> None:
        """Write one finished item durably (flush + fsync) before the next is reported done."""
        line = json.dumps(item, ensure_ascii=False, default=str) + "\n"
        with self._lock:
            self._handle.write(line)
            self._handle.flush()
            os.fsync(self._handle.fileno())
            self.done[str(item["id"])] = item

    def close(self) -> None:
        self._handle.close()
        self._stack.close()

    def __enter__(self) -> ResultLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
