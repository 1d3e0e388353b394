"""Worker processes that parse and pool token-level answers, so that an ingest's parsing uses several cores.

Against a scaled-out token-level endpoint, parsing its answers is the client's main work (~1.3 ms for a
FAQ answer of 0.84 MB), and pysimdjson holds the GIL: one process keeps 4 instances of 4 workers busy
only about 60% of the time (docs/benchmarks.md, "Parsing on several cores"). `PoolingProcesses` sends each
answer to one of a few workers and gets its pooled rows back.

The workers are plain subprocesses (`python -c ...; pooling_workers.main()`) reading requests on
their stdin and answering on their stdout, not `multiprocessing`: its spawn re-runs the caller's main
script in every worker (a user's script without a `__main__` guard would start its work again) and
imports whatever that script imports. These import numpy and simdjson only, and start in a fraction of a
second.
"""

from __future__ import annotations

import json
import logging
import os
import queue
import signal
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import IO

import numpy as np

logger = logging.getLogger(__name__)

_LENGTH = 8  # bytes of the little-endian length before each part of a message


def _write(stream: IO[bytes], *parts: bytes) -> None:
    for part in parts:
        stream.write(len(part).to_bytes(_LENGTH, "little"))
        stream.write(part)
    stream.flush()


def _read(stream: IO[bytes], count: int) -> list[bytes] | None:
    """`count` parts, or None at the end of the stream (the other side closed or died)."""
    parts = []
    for _ in range(count):
        head = stream.read(_LENGTH)
        if len(head) < _LENGTH:
            return None
        size = int.from_bytes(head, "little")
        part = stream.read(size)
        if len(part) < size:
            return None
        parts.append(part)
    return parts


class PoolingProcesses:
    """`processes` workers pooling answers as `token_vectors.pool_answer` does, one answer at a time each.

    `pool` returns None when the answer is not token-level (or the worker failed on it: the caller then
    parses it itself, and reports what is wrong), until the first worker is ready (they take ~0.2 s to
    import numpy and simdjson, while the first answers arrive), and for a dead worker's turns (logged once
    a worker). `close` ends the workers (they also end when this process does: their stdin closes).
    """

    def __init__(self, processes: int, *, normalize: bool, tokenizer: Path | None, max_tokens: int) -> None:
        settings = json.dumps([normalize, str(tokenizer) if tokenizer else None, max_tokens])
        # The workers import this very copy of sagerag, whatever the working directory holds: `python -m`
        # would put the working directory first on sys.path (a checkout there would win).
        root = str(Path(__file__).resolve().parents[2])
        start = f"import sys; sys.path.insert(0, {root!r}); from {__name__} import main; main()"
        self._workers = [
            subprocess.Popen(
                [sys.executable, "-c", start, settings],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
            )
            for _ in range(processes)
        ]
        self._idle: queue.SimpleQueue[subprocess.Popen[bytes] | None] = queue.SimpleQueue()
        self._ready = threading.Event()
        for worker in self._workers:
            threading.Thread(target=self._started, args=(worker,), daemon=True).start()

    def _started(self, worker: subprocess.Popen[bytes]) -> None:
        """Wait for the worker's first message (empty: it is ready), then give it work."""
        assert worker.stdout is not None
        if _read(worker.stdout, 1) is None:
            logger.warning(
                "a worker parsing embedding answers did not start; its answers are parsed in this process"
            )
            self._idle.put(None)
        else:
            self._idle.put(worker)
        self._ready.set()

    def wait_ready(self, timeout: float) -> bool:
        """Whether a worker has started (or failed to) within `timeout` seconds."""
        return self._ready.wait(timeout)

    def pool(self, raw: bytes, texts: Sequence[str] | None) -> np.ndarray | None:
        if not self._ready.is_set():
            return None
        worker = self._idle.get()
        if worker is None:  # a worker died: its turns are parsed by the callers
            self._idle.put(None)
            return None
        assert worker.stdin is not None and worker.stdout is not None
        answer = None
        try:
            _write(worker.stdin, json.dumps(list(texts) if texts is not None else None).encode(), raw)
            answer = _read(worker.stdout, 2)
        except (OSError, ValueError):  # a closed pipe: the worker died, or close() ran
            pass
        finally:  # a worker cut off mid-message (an interrupt, too) is never handed out again
            self._idle.put(worker if answer is not None else None)
        if answer is None:
            logger.warning(
                "a worker parsing embedding answers stopped; its answers are parsed in this process"
            )
            return None
        shape, rows = answer
        if not shape:
            return None
        return np.frombuffer(bytearray(rows), dtype="<f8").reshape(json.loads(shape))

    def close(self) -> None:
        for worker in self._workers:
            try:
                if worker.stdin is not None:
                    worker.stdin.close()
                worker.wait(timeout=10)
            except (OSError, subprocess.TimeoutExpired):
                worker.kill()
                worker.wait()
            if worker.stdout is not None:
                worker.stdout.close()


def main() -> None:
    """A worker: pool each answer read on stdin until it closes; anything printed goes to stderr."""
    from sagerag.adapters.token_vectors import pool_answer

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle; it closes our stdin
    normalize, tokenizer, max_tokens = json.loads(sys.argv[-1])
    reader = sys.stdin.buffer
    writer = os.fdopen(os.dup(sys.stdout.fileno()), "wb")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    _write(writer, b"")  # ready
    while (request := _read(reader, 2)) is not None:
        texts, raw = json.loads(request[0]), request[1]
        try:
            pooled = pool_answer(raw, texts, normalize, Path(tokenizer) if tokenizer else None, max_tokens)
        except Exception:  # the caller parses this one itself and reports what is wrong
            pooled = None
        if pooled is None:
            _write(writer, b"", b"")
        else:
            rows = np.ascontiguousarray(pooled, dtype="<f8")
            _write(writer, json.dumps(rows.shape).encode(), rows.tobytes())
