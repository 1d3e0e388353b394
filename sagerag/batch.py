"""Answer many questions with bounded concurrency, writing the answers in the order of the questions.

`run_pool` is the one thread-pool loop of the project (`batch` and `eval` both use it): it runs items,
hands each result or failure to the caller as it completes, advances a progress bar, and on Ctrl-C
cancels the queued items at once instead of computing all of them before the interrupt is seen.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, as_completed, wait
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

from langchain_core.runnables import Runnable

from sagerag.errors import InputError
from sagerag.questions import Question
from sagerag.resume import ResultLog

T = TypeVar("T")
R = TypeVar("R")


def run_pool(
    items: Sequence[T],
    work: Callable[[T], R],
    on_result: Callable[[T, R], None],
    on_error: Callable[[T, Exception], None],
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> None:
    """Run `work` on every item, at most `concurrency` at once; results are handed over as they complete.

    A failed item goes to `on_error` and does not stop the others. On Ctrl-C the items not started are
    cancelled, the few already running are waited for and handed over (their work is done, so it is
    kept; a second Ctrl-C stops waiting), and KeyboardInterrupt is raised. Ctrl-C only sets a flag
    while results are handed over, so an interrupt never lands between writing a result and counting it.
    """
    pool = ThreadPoolExecutor(max_workers=concurrency)
    futures: dict[Future[R], T] = {pool.submit(work, item): item for item in items}
    stop = threading.Event()

    def settle(future: Future[R]) -> None:
        try:
            result = future.result()
        except Exception as exc:  # one failed item must not lose the others
            on_error(futures[future], exc)
        else:
            on_result(futures[future], result)
        if progress:
            progress(1)

    def on_sigint(signum: int, frame: object) -> None:
        if stop.is_set():
            raise KeyboardInterrupt  # the second Ctrl-C: stop waiting for the running items
        stop.set()

    previous = signal.getsignal(signal.SIGINT)
    install = threading.current_thread() is threading.main_thread() and previous not in (None, signal.SIG_IGN)
    if install:
        signal.signal(signal.SIGINT, on_sigint)
    try:
        pending = set(futures)
        try:
            while pending and not stop.is_set():
                done, pending = wait(pending, timeout=0.1, return_when=FIRST_COMPLETED)
                for future in done:
                    settle(future)
        except KeyboardInterrupt:  # raised by another handler (not the main thread, or replaced)
            stop.set()
        if stop.is_set():
            for future in pending:
                future.cancel()
            try:
                for future in as_completed([f for f in pending if not f.cancelled()]):
                    settle(future)
            except KeyboardInterrupt:
                pass
            raise KeyboardInterrupt
    finally:
        if install:
            signal.signal(signal.SIGINT, previous)
        pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class BatchStats:
    answered: int = 0
    abstained: int = 0
    failures: list[str] = field(default_factory=list)
    """`id: error` for each question that failed; they are not written, so the next run retries them."""
    interrupted: bool = False
    """Ctrl-C stopped the run; what was answered is in the log, the rest was not started."""

    @property
    def failed(self) -> int:
        return len(self.failures)


def pending(questions: list[Question], log: ResultLog, source: Path) -> tuple[list[Question], int]:
    """The questions `log` has no answer for, and how many of its answers are to questions not in `source`.

    Refuses a log that belongs to other questions: one whose answer for an id was given to another
    question text, or one in which no answer matches any question of `source`.
    """
    by_id = {q.id: q for q in questions}
    for qid, item in log.done.items():
        asked = by_id.get(qid)
        if asked is not None and "question" in item and item["question"] != asked.question:
            raise InputError(
                f"{log.path} holds answers to other questions than {source} (id {qid!r} is "
                f"{item['question']!r} there, {asked.question!r} here); pass another --output, or "
                "--restart to start it over"
            )
    foreign = sum(1 for qid in log.done if qid not in by_id)
    if log.done and foreign == len(log.done):
        raise InputError(
            f"{log.path} holds {len(log.done)} answers, none to a question in {source}: it belongs to "
            "another questions file (or was written by an older sagerag); pass another --output, or "
            "--restart to start it over"
        )
    return [q for q in questions if q.id not in log.done], foreign


def answer_all(
    chain: Runnable[Any, dict[str, Any]],
    questions: list[Question],
    log: ResultLog,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> BatchStats:
    """Run `chain` on each question; every answer is one durable line in `log`, in the questions' order.

    A question whose call fails does not stop the others; it is left out of `log`, so a re-run retries it.
    Ctrl-C returns with `interrupted` set once the questions already running are written.
    """
    stats = BatchStats()

    def one(question: Question) -> dict[str, Any]:
        started = time.perf_counter()
        result = chain.invoke(question.question)
        return {
            "id": question.id,
            "question": question.question,
            "answer": result["answer"],
            "abstained": result["abstained"],
            "sources": [{"id": s["id"], "score": s["score"]} for s in result["sources"]],
            "latency_s": round(time.perf_counter() - started, 3),
            **({"extra": question.extra} if question.extra else {}),
        }

    def write(item: dict[str, Any]) -> None:
        log.append(item)
        stats.answered += 1
        stats.abstained += bool(item["abstained"])

    in_order = InOrder(questions, write)

    def failed(question: Question, exc: Exception) -> None:
        stats.failures.append(f"{question.id}: {type(exc).__name__}: {exc}")
        in_order.settle(question, None)

    try:
        run_pool(questions, one, in_order.settle, failed, concurrency, progress)
    except KeyboardInterrupt:
        stats.interrupted = True
    finally:
        in_order.flush()  # what finished behind a gap (Ctrl-C) is kept: resume goes by id, not by line
    return stats


class InOrder:
    """Hands results over in the order of `items` although they complete in any order.

    A result waits only for the items before it that are still running (at most `concurrency` of
    them, as the pool starts items in order); a failed item is settled with None and leaves a gap that a
    re-run fills. `flush` hands over whatever finished behind a gap that will not close (an interrupt).
    """

    def __init__(self, items: Sequence[Question], write: Callable[[dict[str, Any]], None]) -> None:
        self._position = {id(item): i for i, item in enumerate(items)}  # ids may repeat in a file
        self._settled: dict[int, dict[str, Any] | None] = {}
        self._next = 0
        self._write = write

    def settle(self, item: Question, result: dict[str, Any] | None) -> None:
        self._settled[self._position[id(item)]] = result
        while self._next in self._settled:
            ready = self._settled.pop(self._next)
            self._next += 1
            if ready is not None:
                self._write(ready)

    def flush(self) -> None:
        for position in sorted(self._settled):
            ready = self._settled.pop(position)
            if ready is not None:
                self._write(ready)
