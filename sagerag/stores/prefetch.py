"""Embeddings computed ahead of the store that asks for them, so the endpoint never waits for writes.

LangChain's `index()` works batch by batch: embed and upsert a batch, record it in the ledger, then start
the next. The ledger must stay behind the store (a document is recorded only once the store acknowledged
it), but the embedding endpoint has no such reason to wait: with `index()`'s barrier it idled while each
batch's last upserts and its ledger commit finished, and drained its requests in flight at every batch
boundary (a TEI endpoint of 4 instances was used at 20%). `PrefetchedEmbeddings` is told, before
`index()` starts, which texts the store will embed and in which order; it embeds them in the background,
a bounded window ahead, and the store's `embed_documents` calls take the vectors as they come. What is
prefetched but never stored (the run fails or is killed) is only lost work: nothing is written anywhere
before the store's upserts, and the ledger still follows them.
"""

from __future__ import annotations

import threading
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from langchain_core.embeddings import Embeddings


class PrefetchedEmbeddings(Embeddings):
    """`inner`'s vectors for `texts`, computed in order, `ahead` texts at most before they are asked for.

        Each group of texts goes to one `inner.embed_documents` call and `workers` calls run at a time. `group`
        is a group's size, or a function cutting `texts` into consecutive groups (run in the background: the first
    groups are embedded while the rest are cut). For a `SagemakerEmbeddings`
        (see `for_embeddings`) a group is exactly one request (its `request_batches`) and each call sends it
        alone, so `workers` is the number of requests in flight, as in one large `embed_documents` call, but
        without its end-of-call drain. Texts asked for that were not announced (or asked for again) are
        embedded on the spot. Close it (a context manager) to stop the background work.
    """

    def __init__(
        self,
        inner: Embeddings,
        texts: list[str],
        *,
        group: int | Callable[[list[str]], Iterable[list[str]]],
        workers: int,
        ahead: int,
    ) -> None:
        self._inner = inner
        self._texts = texts
        self._plan = group
        self._ahead = max(1, ahead)
        # Groups as the producer cuts them (planning a large corpus takes a while: the first requests go out
        # before it is done), where each starts in `texts`, and their results; `_planned` texts are covered.
        self._groups: list[list[str]] = []
        self._starts: list[int] = []
        self._results: list[Future[list[list[float]]] | None] = []
        self._planned = 0
        self._planning = True
        self._failure: BaseException | None = None
        # Where each text's vector will be: its position in `texts` (one int per text: a million-document
        # ingest holds a million of them), and the later positions of a text that comes again.
        self._first: dict[str, int] = {}
        self._again: dict[str, deque[int]] = {}
        for position, text in enumerate(texts):
            if self._first.setdefault(text, position) != position:
                self._again.setdefault(text, deque()).append(position)
        self._low = 0  # groups before this one are no longer needed
        self._stopped = False
        self._changed = threading.Condition()
        self._pool = ThreadPoolExecutor(max(1, workers), thread_name_prefix="sagerag-prefetch")
        self._producer = threading.Thread(target=self._produce, name="sagerag-prefetch", daemon=True)
        self._producer.start()

    @classmethod
    def for_embeddings(cls, inner: Embeddings, texts: list[str], ahead: int) -> PrefetchedEmbeddings:
        """One group per request as `inner` cuts them, `inner.max_concurrency` in flight, when `inner` can
        say (`SagemakerEmbeddings.request_batches`); otherwise two calls of 256 texts at a time."""
        plan = getattr(inner, "request_batches", None)
        concurrency = getattr(inner, "max_concurrency", None)
        copy = getattr(inner, "model_copy", None)
        if callable(plan) and isinstance(concurrency, int) and copy is not None:
            one_at_a_time = copy(update={"max_concurrency": 1})
            return cls(one_at_a_time, texts, group=plan, workers=concurrency, ahead=ahead)
        return cls(inner, texts, group=256, workers=2, ahead=ahead)

    def _cut(self) -> Iterator[list[str]]:
        texts, plan = self._texts, self._plan
        if isinstance(plan, int):
            return (texts[i : i + plan] for i in range(0, len(texts), plan))
        return (list(members) for members in plan(texts))

    def _produce(self) -> None:
        try:
            for members in self._cut():
                with self._changed:
                    g = len(self._groups)
                    result: Future[list[list[float]]] = Future()
                    self._groups.append(members)
                    self._starts.append(self._planned)
                    self._results.append(result)
                    self._planned += len(members)
                    self._changed.notify_all()
                    while (
                        not self._stopped
                        and g > self._low
                        and self._starts[g] - self._starts[self._low] >= self._ahead
                    ):
                        self._changed.wait()
                    if self._stopped:
                        return
                self._pool.submit(self._embed, g, members)
            if self._planned != len(self._texts):
                raise ValueError("the groups must cover the texts, in order")
        except BaseException as exc:  # the store gets it when it asks for a text not planned
            with self._changed:
                self._failure = exc
        finally:
            with self._changed:
                self._planning = False
                self._changed.notify_all()

    def _embed(self, g: int, members: list[str]) -> None:
        result = self._results[g]
        if result is None or self._stopped:
            return
        try:
            result.set_result(self._inner.embed_documents(members))
        except BaseException as exc:
            result.set_exception(exc)
            with self._changed:  # no point embedding more: the store will stop at this group
                self._stopped = True
                self._changed.notify_all()

    def _take(self, text: str) -> list[float] | None:
        position = self._first.pop(text, None)
        if position is None:
            later = self._again.get(text)
            if not later:
                return None
            position = later.popleft()
        with self._changed:
            while position >= self._planned and self._planning and not self._stopped:
                self._changed.wait()
            if position >= self._planned:
                if self._failure is not None:
                    raise self._failure
                return None
            g = bisect_right(self._starts, position) - 1
            result = self._results[g]
            if result is None:
                return None
            if g > self._low:  # the store asks in order: earlier groups are done with
                for done in range(self._low, g):
                    self._results[done] = None
                self._low = g
                self._changed.notify_all()
        return result.result()[position - self._starts[g]]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float] | None] = [self._take(text) for text in texts]
        missing = [i for i, vector in enumerate(vectors) if vector is None]
        if missing:
            for i, vector in zip(
                missing, self._inner.embed_documents([texts[i] for i in missing]), strict=True
            ):
                vectors[i] = vector
        return [vector for vector in vectors if vector is not None]

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)

    def close(self) -> None:
        """Stop embedding ahead; requests already sent finish (each is bounded by the client's timeout)."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._producer.join()
        self._pool.shutdown(wait=True, cancel_futures=True)

    def __enter__(self) -> PrefetchedEmbeddings:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
