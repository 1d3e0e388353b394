"""Answer many questions with bounded concurrency, writing each answer as soon as it is done."""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from typing import Any

from langchain_core.runnables import Runnable

from sagerag.questions import Question
from sagerag.resume import ResultLog


@dataclass
class BatchStats:
    answered: int = 0
    abstained: int = 0
    failures: list[str] = field(default_factory=list)
    """`id: error` for each question that failed; they are not written, so the next run retries them."""

    @property
    def failed(self) -> int:
        return len(self.failures)


def answer_all(
    chain: Runnable[Any, dict[str, Any]],
    questions: list[Question],
    log: ResultLog,
    concurrency: int = 4,
    progress: Callable[[int], None] | None = None,
) -> BatchStats:
    """Run `chain` on each question; every answer is one durable line in `log` as soon as it is done.

    A question whose call fails does not stop the others; it is left out of `log`, so a re-run retries it.
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

    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        futures = {pool.submit(one, q): q for q in questions}
        for future in as_completed(futures):
            try:
                item = future.result()
            except Exception as exc:  # one failed question must not lose the others
                stats.failures.append(f"{futures[future].id}: {type(exc).__name__}: {exc}")
            else:
                log.append(item)
                stats.answered += 1
                stats.abstained += bool(item["abstained"])
            if progress:
                progress(1)
    return stats
