"""Token-level answers parsed in worker processes (`MiniLMContentHandler.pooling_processes`): the same rows
as in the caller's thread, for every answer shape, from many threads, and when a worker dies."""

from __future__ import annotations

import json
import logging
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest

from sagerag.adapters import MiniLMContentHandler
from sagerag.errors import EmbeddingOutputError


def _tokens(count: int, value: float, dim: int = 4) -> list[list[float]]:
    return [[value + 0.25 * i] * dim for i in range(count)]


def _answers(handler: MiniLMContentHandler) -> list[tuple[bytes, list[str]]]:
    texts = ["hi", "a much longer input sentence here"]
    short, width = handler.token_counts(texts)
    padded = [_tokens(short, 1.0) + _tokens(width - short, 100.0), _tokens(width, 2.0)]  # junk padding
    return [
        (json.dumps([[_tokens(2, 1.0)], [_tokens(3, 3.0)]]).encode(), ["a", "b"]),  # (1, len_i, dim) each
        (json.dumps(padded).encode(), texts),  # (batch, longest, dim): pooled over real tokens only
        (json.dumps([_tokens(1, 5.0)[0], _tokens(1, 6.0)[0]]).encode(), ["a", "b"]),  # already pooled
        (json.dumps({"embeddings": [[_tokens(2, 7.0)]]}).encode(), ["a"]),  # a wrapper
    ]


def _by_workers(handler: MiniLMContentHandler) -> list[bool]:
    """Whether each answer from now on was pooled by a worker (not handed back to the caller's thread)."""
    workers, seen = handler._processes, []
    assert workers is not None and workers.wait_ready(30)
    pool = workers.pool

    def watched(raw: bytes, texts: object) -> object:
        rows = pool(raw, texts)  # type: ignore[arg-type]
        seen.append(rows is not None)
        return rows

    workers.pool = watched  # type: ignore[method-assign,assignment]
    return seen


def test_workers_pool_every_answer_as_the_callers_thread_does() -> None:
    handler = MiniLMContentHandler(normalize=False)
    answers = _answers(handler)
    expected = [handler.pool_body(raw, texts) for raw, texts in answers]
    with handler.pooling_processes(2):
        by_workers = _by_workers(handler)
        got = [handler.pool_body(raw, texts) for raw, texts in answers]
        assert by_workers == [True, True, False, False]  # token-level ones; the others parsed here
        with pytest.raises(EmbeddingOutputError, match="equal-length lists of numbers"):
            handler.pool_body(json.dumps([[[1.0, 2.0], [3.0]]]).encode(), ["a"])  # reported as in-thread
        with pytest.raises(EmbeddingOutputError, match="not JSON"):
            handler.pool_body(b"[[[1.0, 2.0]", ["a"])
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))
    short = handler.token_counts(["hi"])[0]
    assert np.allclose(got[1][0], 1.0 + 0.25 * (short - 1) / 2)  # its real tokens' mean, no padding


def test_workers_serve_many_threads_and_normalise_like_the_handler() -> None:
    handler = MiniLMContentHandler()
    bodies = [json.dumps([[_tokens(2 + i % 5, float(i))]]).encode() for i in range(60)]
    expected = [handler.pool_body(body, ["t"]) for body in bodies]
    with handler.pooling_processes(2), ThreadPoolExecutor(8) as threads:
        by_workers = _by_workers(handler)
        got = list(threads.map(lambda body: handler.pool_body(body, ["t"]), bodies))
    assert by_workers == [True] * len(bodies)
    assert all(np.array_equal(a, b) for a, b in zip(expected, got, strict=True))


def test_a_dead_worker_leaves_the_answers_right(caplog: pytest.LogCaptureFixture) -> None:
    handler = MiniLMContentHandler(normalize=False)
    body = json.dumps([[_tokens(3, 1.0)]]).encode()
    with handler.pooling_processes(1):
        assert handler._processes is not None and handler._processes.wait_ready(30)
        worker = handler._processes._workers[0]
        worker.kill()
        worker.wait()
        with caplog.at_level(logging.WARNING, logger="sagerag.adapters.pooling_workers"):
            rows = [handler.pool_body(body, ["t"]) for _ in range(3)]
    assert all(np.allclose(r, [[1.25] * 4]) for r in rows)
    assert len([r for r in caplog.records if "parsed in this process" in r.getMessage()]) == 1


def test_workers_import_this_sagerag_whatever_the_working_directory_holds(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "sagerag").mkdir()
    (tmp_path / "sagerag" / "__init__.py").write_text("raise ImportError('another sagerag')\n")
    monkeypatch.chdir(tmp_path)
    handler = MiniLMContentHandler(normalize=False)
    with handler.pooling_processes(1):
        by_workers = _by_workers(handler)
        rows = handler.pool_body(json.dumps([[_tokens(3, 1.0)]]).encode(), ["t"])
    assert by_workers == [True] and np.allclose(rows, [[1.25] * 4])


def test_a_worker_cut_off_mid_answer_is_not_handed_out_again(monkeypatch: pytest.MonkeyPatch) -> None:
    from sagerag.adapters import pooling_workers

    handler = MiniLMContentHandler(normalize=False)
    body = json.dumps([[_tokens(3, 1.0)]]).encode()
    with handler.pooling_processes(1):
        by_workers = _by_workers(handler)
        write = pooling_workers._write

        def interrupted(stream: object, *parts: bytes) -> None:
            monkeypatch.setattr(pooling_workers, "_write", write)
            raise KeyboardInterrupt  # e.g. Ctrl-C while the answer was half sent

        monkeypatch.setattr(pooling_workers, "_write", interrupted)
        with pytest.raises(KeyboardInterrupt):
            handler.pool_body(body, ["t"])
        rows = handler.pool_body(body, ["t"])  # no worker left to wait for: parsed here, no hang
    assert by_workers == [False] and np.allclose(rows, [[1.25] * 4])


def test_a_handler_counting_tokens_its_own_way_pools_in_its_own_thread() -> None:
    class Counting(MiniLMContentHandler):
        def token_counts(self, texts):  # type: ignore[no-untyped-def]
            return [1, 2]

    handler = Counting(normalize=False)
    padded = json.dumps([_tokens(2, 1.0), _tokens(2, 3.0)]).encode()  # (batch, longest, dim)
    with handler.pooling_processes(2):
        assert handler._processes is None
        rows = handler.pool_body(padded, ["a", "b"])
    assert np.allclose(rows, [[1.0] * 4, [3.125] * 4])  # the first over 1 token, as its counts say
