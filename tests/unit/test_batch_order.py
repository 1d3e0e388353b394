"""`batch` writes answers in the order of the questions, whatever order they complete in; resume still works."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableLambda

from sagerag.batch import answer_all
from sagerag.questions import Question
from sagerag.resume import ResultLog


def _reverse_completion_chain(
    questions: list[Question], fail: frozenset[str] = frozenset()
) -> RunnableLambda[str, dict[str, Any]]:
    """Each question finishes only after every later question that is running has finished: the pool
    completes them in reverse order within each window of `concurrency`."""
    done = {q.question: threading.Event() for q in questions}
    order = [q.question for q in questions]

    def answer(question: str) -> dict[str, Any]:
        position = order.index(question)
        window_end = (position // 3 + 1) * 3  # windows of 3 questions, run at once (concurrency=3)
        for other in order[position + 1 : window_end]:
            done[other].wait(timeout=5)
        done[question].set()
        if question in fail:
            raise RuntimeError(f"endpoint failed on {question}")
        return {"answer": f"about {question}", "abstained": False, "sources": []}

    return RunnableLambda(answer)


def _ids(path: Path) -> list[str]:
    return [json.loads(line)["id"] for line in path.read_text().splitlines()]


def test_answers_are_written_in_question_order_not_completion_order(tmp_path: Path) -> None:
    questions = [Question(str(i), f"question {i}") for i in range(9)]
    completed: list[str] = []
    chain = _reverse_completion_chain(questions)
    with ResultLog.open(tmp_path / "out.jsonl") as log:
        stats = answer_all(chain, questions, log, concurrency=3, progress=lambda n: completed.append("x"))
    assert stats.answered == 9 and not stats.failures
    assert _ids(tmp_path / "out.jsonl") == [q.id for q in questions]
    assert len(completed) == 9  # the progress bar still moves as answers complete


def test_a_failed_question_leaves_a_gap_that_the_next_run_fills(tmp_path: Path) -> None:
    questions = [Question(str(i), f"question {i}") for i in range(6)]
    out = tmp_path / "out.jsonl"
    with ResultLog.open(out) as log:
        stats = answer_all(
            _reverse_completion_chain(questions, fail=frozenset({"question 2"})), questions, log, 3
        )
    assert stats.failed == 1 and stats.answered == 5
    assert _ids(out) == ["0", "1", "3", "4", "5"]  # later answers are not held back by the failure
    with ResultLog.open(out) as log:
        todo = [q for q in questions if q.id not in log.done]
        assert [q.id for q in todo] == ["2"]
        answer_all(_reverse_completion_chain(todo), todo, log, 3)
    assert sorted(_ids(out)) == [q.id for q in questions]  # resume goes by id: each answered once


def test_repeated_ids_keep_their_own_positions(tmp_path: Path) -> None:
    """Ids are not positions: two questions with the same id are both written, in file order."""
    questions = [Question("same", "question a"), Question("same", "question b"), Question("c", "question c")]
    with ResultLog.open(tmp_path / "out.jsonl") as log:
        answer_all(_reverse_completion_chain(questions), questions, log, concurrency=3)
    lines = [json.loads(line)["question"] for line in (tmp_path / "out.jsonl").read_text().splitlines()]
    assert lines == ["question a", "question b", "question c"]
