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

import queue
import threading
from array import array
from bisect import bisect_right
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import CancelledError, Future, as_completed
from typing import Any

from langchain_core.embeddings import Embeddings

Plan = Callable[[list[str]], tuple[list[int], list[list[str]]]]
"""Texts -> the order to embed them in (a permutation of their indices) and the groups of one call each,
consecutive in that order: `SagemakerEmbeddings.plan_requests`."""


def _in_order(size: int) -> Plan:
    def plan(texts: list[str]) -> tuple[list[int], list[list[str]]]:
        return list(range(len(texts))), [texts[i : i + size] for i in range(0, len(texts), size)]

    return plan


class PrefetchedEmbeddings(Embeddings):
    """`inner`'s vectors for `texts`, computed window by window, `ahead` texts at most before they are asked
    for.

    Every `window` consecutive texts are planned together: `plan` (by default groups of `window` in the
    given order) may reorder them, as `SagemakerEmbeddings` sorts texts by length so that a padded request
    carries more of them, and cuts them into groups of one `send` call each (`inner.embed_documents` by
    default); `workers` calls run at a time. For a `SagemakerEmbeddings` (`for_embeddings`) a group is
    exactly one request, sent as planned (`embed_request`), so `workers` is the number of requests in
    flight, as in one large `embed_documents` call, but without its end-of-call drain. Windows are planned
    in the background (the first requests go out while the rest are planned). Texts asked for that were not
    announced (or asked for again) are embedded on the spot. A call that fails stops the rest: the store
    gets its error at the first text it asks for that is not embedded. Close it (a context manager) to
    stop the background work.

    The calls run on daemon threads of its own, not a `ThreadPoolExecutor`: Python joins an executor's
    threads at exit, so a Ctrl-C'd ingest waited for every request in flight (6 s with 32 in flight to a
    local CPU MiniLM) before it could exit; `close(wait=False)` leaves them behind.
    """

    def __init__(
        self,
        inner: Embeddings,
        texts: list[str],
        *,
        window: int,
        workers: int,
        ahead: int,
        plan: Plan | None = None,
        send: Callable[[list[str]], list[list[float]]] | None = None,
    ) -> None:
        self._inner = inner
        self._send = send or inner.embed_documents
        self._texts = texts
        self._window = max(1, window)
        self._plan = plan or _in_order(self._window)
        # A whole window must fit ahead: the store's first text of a window may be planned last in it.
        self._ahead = max(ahead, self._window)
        # Each text's place in the planned order (-1: not planned yet; an int per text: a million-document
        # ingest holds a million of them), the groups' first places, their results; `_planned` texts are.
        self._rank = array("q", [-1]) * len(texts)
        self._starts: list[int] = []
        self._results: list[Future[list[list[float]]] | None] = []
        self._planned = 0
        self._planning = True
        self._failure: BaseException | None = None
        # Where each text's vector will be: its position in `texts`, and the later positions of a text that
        # comes again.
        self._first: dict[str, int] = {}
        self._again: dict[str, deque[int]] = {}
        for position, text in enumerate(texts):
            if self._first.setdefault(text, position) != position:
                self._again.setdefault(text, deque()).append(position)
        self._low = 0  # groups before this one are no longer needed
        self._stopped = False
        self._changed = threading.Condition()
        self._workers = max(1, workers)
        self._jobs: queue.SimpleQueue[tuple[Future[list[list[float]]], list[str]] | None] = (
            queue.SimpleQueue()
        )
        self._senders: list[threading.Thread] = []
        self._sending = 0  # calls in flight (under `_changed`)
        self._error: BaseException | None = None  # the first call that failed
        self._producer = threading.Thread(target=self._produce, name="sagerag-embed-ahead", daemon=True)
        self._producer.start()

    @classmethod
    def for_embeddings(
        cls, inner: Embeddings, texts: list[str], ahead: int, window: int = 256
    ) -> PrefetchedEmbeddings:
        """`inner`'s own requests for each `window` texts, `inner.max_concurrency` in flight, when `inner` can
        plan and send them one by one (`SagemakerEmbeddings.plan_requests`, `embed_request`); otherwise two
        calls of `window` texts at a time.

        Texts that share a request only with texts of equal key (`SagemakerEmbeddings.groups_by_key`: NPY
        answers, one token count a request) are planned `ahead` at a time: 1,024 FAQ-like texts make 7.2
        texts a request where 256 make 2.2, and 4 toolkit instances served 645-705 texts/s against 524;
        with two such windows ahead, 0.85-0.87 of their capacity against 0.79-0.82 with one."""
        plan = getattr(inner, "plan_requests", None)
        send = getattr(inner, "embed_request", None)
        concurrency = getattr(inner, "max_concurrency", None)
        if getattr(inner, "groups_by_key", False):
            window = max(window, ahead)
            ahead = 2 * window  # the next window goes out while the store waits for this one's last texts
        if callable(plan) and callable(send) and isinstance(concurrency, int):
            return cls(inner, texts, window=window, workers=concurrency, ahead=ahead, plan=plan, send=send)
        return cls(inner, texts, window=window, workers=2, ahead=ahead)

    @property
    def window(self) -> int:
        """Texts planned together: a store asking for fewer at a time gets a window's vectors in pieces, the
        last of which waits for the window's last call."""
        return self._window

    def _produce(self) -> None:
        try:
            for first in range(0, len(self._texts), self._window):
                members = self._texts[first : first + self._window]
                order, groups = self._plan(members)
                if sorted(order) != list(range(len(members))) or sum(map(len, groups)) != len(members):
                    raise ValueError("a plan must order every text of its window once and group them all")
                with self._changed:
                    for place, i in enumerate(order, start=first):
                        self._rank[first + i] = place
                    calls: list[Future[list[list[float]]]] = []
                    place = first
                    for group in groups:
                        self._starts.append(place)
                        calls.append(Future())
                        place += len(group)
                    g0 = len(self._results)
                    self._results += calls
                    self._planned = first + len(members)
                    self._changed.notify_all()
                for g, (call, group) in enumerate(zip(calls, groups, strict=True), start=g0):
                    with self._changed:
                        while (
                            not self._stopped
                            and g > self._low
                            and self._starts[g] - self._starts[self._low] >= self._ahead
                        ):
                            self._changed.wait()
                        if self._stopped:
                            return
                    self._submit(call, group)
        except BaseException as exc:  # the store gets it when it asks for a text not planned
            with self._changed:
                self._failure = exc
        finally:
            with self._changed:
                self._planning = False
                self._changed.notify_all()

    def _submit(self, call: Future[list[list[float]]], members: list[str]) -> None:
        if len(self._senders) < self._workers:  # one more thread a call, up to `workers`
            sender = threading.Thread(target=self._send_jobs, name="sagerag-embed-ahead-send", daemon=True)
            self._senders.append(sender)
            sender.start()
        self._jobs.put((call, members))

    def _send_jobs(self) -> None:
        while (job := self._jobs.get()) is not None:
            self._embed(*job)

    def _embed(self, call: Future[list[list[float]]], members: list[str]) -> None:
        with self._changed:
            if self._stopped:  # a store waiting for it gets the failure instead (`_vectors`)
                call.cancel()
                return
            call.set_running_or_notify_cancel()  # pending: cancelled only here and below, under the lock
            self._sending += 1
        try:
            call.set_result(self._send(members))
        except BaseException as exc:
            call.set_exception(exc)
            with self._changed:  # no point embedding more: the store will stop at this call's texts
                if self._error is None:
                    self._error = exc
                self._stopped = True
                for other in self._results:  # planned, not sent: the store may wait for one of them first
                    if other is not None:
                        other.cancel()  # wakes a store waiting in `result()`; no-op once running
        finally:
            with self._changed:
                self._sending -= 1
                if self._stopped:  # for the producer, the store and `close`
                    self._changed.notify_all()

    def _locate(self, text: str) -> tuple[Future[list[list[float]]], int] | None:
        """The call that embeds `text` where the store will take it, and its row there; None when it was not
        announced (or is asked for once more than announced)."""
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
            place = self._rank[position]
            g = bisect_right(self._starts, place) - 1
            result = self._results[g]
            if result is None:
                return None
            # The store asks window by window: the groups of earlier windows are done with.
            window_first = bisect_right(self._starts, place - place % self._window) - 1
            if window_first > self._low:
                for done in range(self._low, window_first):
                    self._results[done] = None
                self._low = window_first
                self._changed.notify_all()
        return result, place - self._starts[g]

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float] | None] = []
        for text in texts:
            found = self._locate(text)
            vectors.append(None if found is None else self._vectors(found[0])[found[1]])
        missing = [i for i, vector in enumerate(vectors) if vector is None]
        if missing:
            for i, vector in zip(
                missing, self._inner.embed_documents([texts[i] for i in missing]), strict=True
            ):
                vectors[i] = vector
        return [vector for vector in vectors if vector is not None]

    def embed_as_ready(self, texts: list[str]) -> Iterator[tuple[list[int], list[list[float]]]]:
        """`texts`' vectors as the calls holding them answer: (positions in `texts`, their vectors), one pair
        a call, in the order the calls finish; texts not announced are embedded on the spot, last.

        A store that upserts each pair as it comes (`PineconeStore.add_texts`) has little left to write
        after the last answer, where taking `embed_documents` chunk by chunk in the texts' order left a
        window's upserts for the end: a plan sorts a window by length, so every chunk of it waits for the
        window's last call."""
        rows: dict[Future[list[list[float]]], list[tuple[int, int]]] = {}
        missing: list[int] = []
        for i, text in enumerate(texts):
            found = self._locate(text)
            if found is None:
                missing.append(i)
            else:
                rows.setdefault(found[0], []).append((i, found[1]))
        for call in as_completed(rows):
            vectors = self._vectors(call)
            members = rows[call]
            yield [i for i, _ in members], [vectors[row] for _, row in members]
        if missing:
            yield missing, self._inner.embed_documents([texts[i] for i in missing])

    def _vectors(self, call: Future[list[list[float]]]) -> list[list[float]]:
        """A call's vectors, once it answered; for a call cancelled because another failed (sent before it,
        but holding texts the store asks for later), that call's error: the store stops here instead."""
        try:
            return call.result()
        except CancelledError:
            with self._changed:
                error = self._error
            if error is None:
                raise
            raise error from None

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)

    def close(self, wait: bool = True) -> None:
        """Stop embedding ahead: calls not started are dropped; with `wait`, those in flight are waited for
        (each is bounded by the client's timeout), else left to finish or die with the process."""
        with self._changed:
            self._stopped = True
            self._changed.notify_all()
        self._producer.join()
        for _ in self._senders:
            self._jobs.put(None)
        if wait:  # for the calls in flight; not for idle threads to exit (32 of them: ~2 ms an ingest)
            with self._changed:
                while self._sending:
                    self._changed.wait()

    def __enter__(self) -> PrefetchedEmbeddings:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
