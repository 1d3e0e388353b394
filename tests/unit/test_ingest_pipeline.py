"""The ingest's write path: its ledger (SQLite record manager), its document keys and embedding ahead.

Guarantees under test: the ledger reads and writes LangChain's `SQLRecordManager` table as it does; the
keys are LangChain's own, so existing ledgers stay valid; vectors embedded ahead are the ones asked for,
never more than the window ahead; and the ledger never lists a document the store does not hold, however
the run ends.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document
from langchain_core.embeddings import DeterministicFakeEmbedding, Embeddings

from sagerag.ingest import document_key, ingest_documents, parse_processes_for, record_manager
from sagerag.ledger import SQLiteRecordManager
from sagerag.stores import PineconeStore
from sagerag.stores.prefetch import PrefetchedEmbeddings
from tests.support import make_index


def _docs(n: int, prefix: str = "doc") -> list[Document]:
    return [
        Document(page_content=f"{prefix} text {i}", metadata={"source": f"{prefix}#{i}", "row": i})
        for i in range(n)
    ]


def test_document_key_is_langchains_sha256_key() -> None:
    from langchain_core.indexing.api import _get_document_with_hash

    docs = [
        *_docs(3),
        Document(page_content="naïve ünïcode", metadata={"b": [1, 2], "a": {"z": None, "y": 1.5}}),
        Document(page_content="no metadata"),
    ]
    for doc in docs:
        assert document_key(doc) == _get_document_with_hash(doc, key_encoder="sha256").id


def test_ledger_shares_sqlrecordmanagers_table_both_ways(tmp_path: Path) -> None:
    from langchain_classic.indexes import SQLRecordManager

    path = tmp_path / "records.sqlite3"
    theirs = SQLRecordManager("ns", db_url=f"sqlite:///{path}")
    theirs.create_schema()
    theirs.update(["a", "b"], group_ids=["s1", "s2"])
    ours = record_manager(path, "ns")
    assert ours.exists(["a", "b", "c"]) == [True, True, False]
    assert sorted(ours.list_keys(group_ids=["s1"])) == ["a"]
    ours.update(["b", "c"], group_ids=["s2", "s3"])
    ours.close()
    assert theirs.exists(["a", "b", "c"]) == [True, True, True]
    assert sorted(theirs.list_keys(group_ids=["s2", "s3"])) == ["b", "c"]
    assert SQLRecordManager("other", db_url=f"sqlite:///{path}").list_keys() == []  # namespaces apart


def test_ledger_update_refreshes_time_and_group_and_lists_by_time(tmp_path: Path) -> None:
    ledger = record_manager(tmp_path / "r.sqlite3", "ns")
    ledger.update(["old", "kept"], group_ids=["s", "s"])
    start = ledger.get_time()
    while ledger.get_time() == start:  # SQLite's clock ticks in milliseconds
        pass
    ledger.update(["kept", "new"], group_ids=["t", "s"], time_at_least=start)
    # Half a tick: the clock is a julianday in floating point, so the next tick can be under start + 1 ms.
    assert ledger.list_keys(before=start + 0.5e-3) == ["old"]
    assert sorted(ledger.list_keys(after=start)) == ["kept", "new"]
    assert sorted(ledger.list_keys(group_ids=["s"])) == ["new", "old"]  # "kept" moved to group t
    assert len(ledger.list_keys(limit=2)) == 2
    keys = [f"k{i}" for i in range(1200)]  # more than one IN (...) list
    ledger.update(keys, group_ids=[f"g{i}" for i in range(1200)])
    assert (
        all(ledger.exists(keys)) and len(ledger.list_keys(group_ids=[f"g{i}" for i in range(1200)])) == 1200
    )
    assert len(ledger.list_keys(group_ids=[f"g{i}" for i in range(1200)], limit=700)) == 700
    ledger.delete_keys([*keys, "old"])
    assert sorted(ledger.list_keys()) == ["kept", "new"]
    with pytest.raises(AssertionError, match="Time sync"):
        ledger.update(["x"], time_at_least=ledger.get_time() + 3600)
    assert ledger.exists(["x"]) == [False]  # refused as a whole
    ledger.close()


class _Recording(Embeddings):
    """Deterministic vectors; records each call; fails on one text; can hold calls until released."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.inner = DeterministicFakeEmbedding(size=8)
        self.calls: list[list[str]] = []
        self.fail_on = fail_on
        self.lock = threading.Lock()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            self.calls.append(list(texts))
        if self.fail_on in texts:
            raise RuntimeError("endpoint refused")
        return self.inner.embed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self.inner.embed_query(text)


def test_prefetched_vectors_are_the_ones_asked_for_in_any_chunking() -> None:
    inner = _Recording()
    texts = [f"t{i % 90}" for i in range(120)]  # 30 texts twice
    with PrefetchedEmbeddings(inner, texts, window=7, workers=3, ahead=40) as ahead:
        got = ahead.embed_documents(texts[:50]) + ahead.embed_documents(texts[50:])
        extra = ahead.embed_documents(["never announced", "t1"])  # t1: asked for a third time
    assert got == inner.inner.embed_documents(texts)
    assert extra == inner.inner.embed_documents(["never announced", "t1"])
    assert inner.calls[-1] == ["never announced", "t1"]  # on the spot, after every announced group
    assert sorted(t for call in inner.calls[:-1] for t in call) == sorted(texts)  # each embedded once


def test_prefetch_sends_each_window_as_planned_and_embeds_every_text_once() -> None:
    """A plan may reorder a window (`SagemakerEmbeddings` sorts by length) and cut it into groups of any
    size: each group reaches the embeddings as planned, once, and every text gets its own vector back
    although the store asks in the original order."""
    inner = _Recording()
    texts = [f"t{i}" for i in range(20)]

    def backwards(window: list[str]) -> tuple[list[int], list[list[str]]]:
        order = list(range(len(window)))[::-1]
        ordered = [window[i] for i in order]
        return order, [g for g in (ordered[:3], ordered[3:4], ordered[4:]) if g]

    with PrefetchedEmbeddings(inner, texts, window=8, workers=2, ahead=8, plan=backwards) as ahead:
        got = ahead.embed_documents(texts[:5]) + ahead.embed_documents(texts[5:])
    assert got == inner.inner.embed_documents(texts)
    windows = [texts[:8][::-1], texts[8:16][::-1], texts[16:][::-1]]
    assert sorted(inner.calls) == sorted(g for w in windows for g in (w[:3], w[3:4], w[4:]) if g)

    def short(window: list[str]) -> tuple[list[int], list[list[str]]]:
        return list(range(len(window))), [window[:2]]  # loses texts: refused when the store gets there

    broken = PrefetchedEmbeddings(inner, texts, window=8, workers=1, ahead=8, plan=short)
    with broken, pytest.raises(ValueError, match="every text"):
        broken.embed_documents(texts[:4])


def test_prefetch_embeds_the_first_window_while_the_rest_is_still_planned() -> None:
    """Planning a large corpus's requests takes a while (~2.5 us a text): the first ones go out meanwhile."""
    inner = _Recording()
    texts = [f"t{i}" for i in range(10)]
    release, events = threading.Event(), []

    def plan(window: list[str]) -> tuple[list[int], list[list[str]]]:
        if window[0] != "t0":
            release.wait(2)
            events.append("planned the rest")
        return list(range(len(window))), [window]

    with PrefetchedEmbeddings(inner, texts, window=5, workers=1, ahead=10, plan=plan) as ahead:
        assert ahead.embed_documents(texts[:5]) == inner.inner.embed_documents(texts[:5])
        events.append("first vectors")
        release.set()
        assert ahead.embed_documents(texts[5:]) == inner.inner.embed_documents(texts[5:])
    assert events == ["first vectors", "planned the rest"]


def test_prefetch_stays_within_its_window() -> None:
    inner = _Recording()
    texts = [f"t{i}" for i in range(100)]
    with PrefetchedEmbeddings(inner, texts, window=10, workers=2, ahead=30) as ahead:
        for start in range(0, 100, 10):
            ahead.embed_documents(texts[start : start + 10])
            # the store asked for group k (start // 10): groups up to k + 2 may be embedded, none further
            embedded = {t for call in inner.calls for t in call}
            assert not embedded - set(texts[: start + 30]), start
    assert len(inner.calls) == 10


def test_prefetch_failure_reaches_the_caller_at_its_texts_and_stops_embedding() -> None:
    inner = _Recording(fail_on="t35")
    texts = [f"t{i}" for i in range(200)]
    with PrefetchedEmbeddings(inner, texts, window=10, workers=1, ahead=50) as ahead:
        assert ahead.embed_documents(texts[:30]) == inner.inner.embed_documents(texts[:30])
        with pytest.raises(RuntimeError, match="endpoint refused"):
            ahead.embed_documents(texts[30:40])
    assert max(int(t[1:]) for call in inner.calls for t in call) < 90  # stopped within the window


class _Blocking(Embeddings):
    """Each call starts, then waits for `release`."""

    def __init__(self) -> None:
        self.release, self.started, self.finished = threading.Event(), threading.Event(), threading.Event()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.started.set()
        self.release.wait(5)
        self.finished.set()
        return [[1.0] for _ in texts]

    def embed_query(self, text: str) -> list[float]:
        return [1.0]


@pytest.mark.parametrize("wait", [True, False])
def test_closing_the_prefetch_waits_for_the_calls_in_flight_only_when_asked(wait: bool) -> None:
    """A finished ingest closes with `wait=True`: a request still in flight ends before it returns (the
    store's client is not used after); an interrupted one closes with `wait=False` and leaves at once."""
    held = _Blocking()
    ahead = PrefetchedEmbeddings(held, ["a", "b"], window=1, workers=1, ahead=1)
    assert held.started.wait(5)
    threading.Timer(0.5, held.release.set).start()
    ahead.close(wait=wait)
    assert held.finished.is_set() is wait
    held.release.set()


def test_a_failed_call_reaches_the_store_even_when_it_waits_for_a_call_queued_behind_it() -> None:
    """A window's calls are sent in planned order, not in the store's: here the call for t4-t7 goes first
    and fails, and the one for t0-t3 (asked for first) is still queued. The store gets the endpoint's
    error; it used to wait for that call forever (an ingest hung instead of failing)."""
    inner = _Recording(fail_on="t7")
    texts = [f"t{i}" for i in range(8)]

    def backwards(window: list[str]) -> tuple[list[int], list[list[str]]]:
        order = list(range(len(window)))[::-1]
        ordered = [window[i] for i in order]
        return order, [ordered[:4], ordered[4:]]

    with PrefetchedEmbeddings(inner, texts, window=8, workers=1, ahead=8, plan=backwards) as ahead:
        done: list[BaseException] = []

        def store() -> None:
            try:
                ahead.embed_documents(texts[:4])
            except BaseException as exc:
                done.append(exc)

        asking = threading.Thread(target=store, daemon=True)
        asking.start()
        asking.join(10)
        assert [str(e) for e in done] == ["endpoint refused"]


def test_prefetch_hands_vectors_over_as_their_calls_answer() -> None:
    """`embed_as_ready` yields (positions, vectors) a call at a time in the order the calls finish, each
    vector at its text's position, texts never announced last."""
    inner = _Held("t0")  # the call holding t0-t3 answers last
    texts = [f"t{i}" for i in range(12)]

    def in_fours(window: list[str]) -> tuple[list[int], list[list[str]]]:
        return list(range(len(window))), [window[i : i + 4] for i in range(0, len(window), 4)]

    with PrefetchedEmbeddings(inner, texts, window=12, workers=3, ahead=12, plan=in_fours) as ahead:
        asked = [*texts[:8], "never announced"]
        pairs = []
        for positions, vectors in ahead.embed_as_ready(asked):
            pairs.append((positions, vectors))
            if len(pairs) == 1:
                inner.release.set()
    assert [p for p, _ in pairs] == [[4, 5, 6, 7], [0, 1, 2, 3], [8]]
    assert [v for _, vs in pairs for v in vs] == inner.inner.embed_documents(
        [asked[i] for p, _ in pairs for i in p]
    )


def test_the_store_upserts_a_windows_answers_while_its_last_call_is_out(pc: Any) -> None:
    """A plan sorts a window by length, so every chunk of the store's may wait for the window's last call;
    the store upserts the vectors it has meanwhile, leaves little for after the last answer, and what it
    stores is each text's own vector."""
    texts = [f"doc text {i}" for i in range(300)]
    held = _Held("doc text 0")
    store = PineconeStore(make_index(pc, dimension=8, prefix="ready"), held, "ns")
    upserted: list[int] = []
    early: list[bool] = []
    send = store._send

    def counted(batch: list[Any], namespace: str) -> None:
        send(batch, namespace)
        upserted.append(len(batch))
        if sum(upserted) >= 256 and not early:  # all but the held call's 10 texts and a chunk's remainder
            early.append(not held.returned.is_set())
            held.release.set()

    store._send = counted  # type: ignore[method-assign]

    def in_tens(window: list[str]) -> tuple[list[int], list[list[str]]]:
        return list(range(len(window))), [window[i : i + 10] for i in range(0, len(window), 10)]

    with PrefetchedEmbeddings(held, texts, window=300, workers=4, ahead=300, plan=in_tens) as ahead:
        ids = store.with_embeddings(ahead, embed_batch_size=64).add_texts(texts, ids=texts)
    assert early == [True] and sum(upserted) == 300
    assert min(upserted) == 10  # the last upsert: the held call's texts, not the chunk's remainder with them
    stored = store.index.fetch(ids=ids[:3] + ids[-3:], namespace="ns").vectors
    for text in texts[:3] + texts[-3:]:
        assert stored[text].values == pytest.approx(held.inner.embed_query(text), abs=1e-6)


class _Grouped(_Recording):
    """An endpoint whose requests group texts of one token count (NPY answers): planned 1,024 at a time."""

    groups_by_key = True


def test_an_ingest_stores_whole_windows_a_batch_by_default(tmp_path: Path, pc: Any) -> None:
    docs = _docs(1500)
    store = PineconeStore(make_index(pc, dimension=8, prefix="windows"), _Grouped(), "ns")
    updates: list[int] = []
    update = SQLiteRecordManager.update

    def counted(self: SQLiteRecordManager, keys: Any, **kwargs: Any) -> None:
        updates.append(len(keys))
        update(self, keys, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(SQLiteRecordManager, "update", counted)
        ingest_documents(docs, store, tmp_path / "records.sqlite3", "ns")
        assert updates == [1024, 476]
        updates.clear()
        ingest_documents(_docs(700, "other"), store, tmp_path / "records.sqlite3", "ns", batch_size=300)
        assert updates == [300, 300, 100]  # a batch size asked for is kept


def _ledger_keys(path: Path, namespace: str) -> set[str]:
    ledger = SQLiteRecordManager(namespace, path)
    try:
        return set(ledger.list_keys())
    finally:
        ledger.close()


def _stored(store: PineconeStore, keys: set[str]) -> set[str]:
    return {str(doc.id) for doc in store.get_by_ids(sorted(keys))}


def test_embedding_ahead_never_puts_the_ledger_ahead_of_the_store(tmp_path: Path, pc: Any) -> None:
    docs = _docs(700)
    keys = {document_key(d) for d in docs}
    failing = _Recording(fail_on="doc text 600")  # embedded ahead in groups of 256: the third fails
    store = PineconeStore(make_index(pc, dimension=8, prefix="ahead"), failing, "ns")
    records = tmp_path / "records.sqlite3"
    with pytest.raises(RuntimeError, match="endpoint refused"):
        ingest_documents(docs, store, records, "ns", batch_size=100)
    recorded = _ledger_keys(records, "ns")
    assert recorded == {document_key(d) for d in docs[:500]}  # the five batches before the failing one
    assert _stored(store, keys) >= recorded  # whatever the ledger lists, the store holds

    working = store.with_embeddings(_Recording())
    result = ingest_documents(docs, working, records, "ns", batch_size=100)
    assert (result.added, result.skipped) == (200, 500)
    assert _ledger_keys(records, "ns") == keys == _stored(store, keys)


class _Held(_Recording):
    """Holds the call carrying `held` (a request in flight) until released or 30 s have passed."""

    def __init__(self, held: str) -> None:
        super().__init__()
        self.held = held
        self.holding, self.release, self.returned = threading.Event(), threading.Event(), threading.Event()

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.held in texts:
            self.holding.set()
            self.release.wait(30)
            self.returned.set()
        return super().embed_documents(texts)


def test_an_interrupted_ingest_does_not_wait_for_its_requests_in_flight(tmp_path: Path, pc: Any) -> None:
    docs = _docs(700)
    embeddings = _Held("doc text 600")  # embedded ahead (third window of 256) while batch 1 is stored
    store = PineconeStore(make_index(pc, dimension=8, prefix="interrupt"), embeddings, "ns")
    counted = 0

    def progress(step: int) -> None:  # Ctrl-C while index() reads the second batch
        nonlocal counted
        counted += step
        if counted > 300 and embeddings.holding.wait(10):
            raise KeyboardInterrupt

    started = time.monotonic()
    try:
        with pytest.raises(KeyboardInterrupt):
            ingest_documents(docs, store, tmp_path / "r.sqlite3", "ns", batch_size=300, progress=progress)
        assert time.monotonic() - started < 10 and not embeddings.returned.is_set()
        senders = [t for t in threading.enumerate() if t.name.startswith("sagerag-embed-ahead")]
        assert senders and all(t.daemon for t in senders)  # the held call's thread does not hold up exit
    finally:
        embeddings.release.set()
    assert _ledger_keys(tmp_path / "r.sqlite3", "ns") == {document_key(d) for d in docs[:300]}


def test_oversize_metadata_fails_before_anything_is_embedded_or_stored(tmp_path: Path, pc: Any) -> None:
    from sagerag.errors import DocumentTooLargeError

    docs = _docs(250)
    docs[230].metadata["blob"] = "x" * 50_000  # over Pinecone's 40 KB per vector
    embeddings = _Recording()
    store = PineconeStore(make_index(pc, dimension=8, prefix="big"), embeddings, "ns")
    with pytest.raises(DocumentTooLargeError, match=r"doc#230"):
        ingest_documents(docs, store, tmp_path / "records.sqlite3", "ns", batch_size=100)
    assert embeddings.calls == []
    assert _stored(store, {document_key(d) for d in docs}) == set()


def test_ledger_row_ids_are_unique_and_in_insertion_order() -> None:
    from sagerag.ledger import _ordered_ids

    first, second = _ordered_ids(20_000), _ordered_ids(3)
    assert len(set(first + second)) == 20_003
    assert first == sorted(first)  # appended to the primary-key index, not scattered over it
    assert all(len(row_id) == 36 and row_id[14] == "7" for row_id in first)  # UUIDv7's layout


def test_a_batchs_cleanup_query_takes_the_group_index_not_the_whole_namespace(tmp_path: Path) -> None:
    ledger = record_manager(tmp_path / "r.sqlite3", "ns")
    ledger.update([f"k{i}" for i in range(50)], group_ids=[f"s{i}" for i in range(50)])
    statements: list[str] = []
    ledger._conn.set_trace_callback(statements.append)
    ledger.list_keys(group_ids=["s1", "s2"], before=2e9, limit=1000)
    ledger._conn.set_trace_callback(None)
    query = next(s for s in statements if "FROM upsertion_record" in s)
    plan = " ".join(str(row[3]) for row in ledger._conn.execute(f"EXPLAIN QUERY PLAN {query}"))
    assert "ix_upsertion_record_group_id" in plan, plan
    ledger.close()


class _Handler:
    """A content handler that records the parsing workers an ingest asked it for, and while."""

    def __init__(self) -> None:
        self.opened: list[int] = []
        self.open = False

    @contextmanager
    def pooling_processes(self, processes: int) -> Iterator[None]:
        self.opened.append(processes)
        self.open = True
        try:
            yield
        finally:
            self.open = False


class _HandledEmbeddings(_Recording):
    def __init__(self) -> None:
        super().__init__()
        self.content_handler = _Handler()
        self.open_during: list[bool] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.open_during.append(self.content_handler.open)
        return super().embed_documents(texts)


def test_large_ingests_parse_in_worker_processes_while_they_embed(
    tmp_path: Path, pc: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1}, raising=False)
    assert [parse_processes_for(n) for n in (1999, 2000, 20_000)] == [0, 2, 2]
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(16)), raising=False)
    assert parse_processes_for(5000) == 4
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0}, raising=False)
    assert parse_processes_for(5000) == 0
    assert [parse_processes_for(5000, cpus) for cpus in (1, 3, 8)] == [0, 3, 4]  # another machine's

    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: {0, 1, 2}, raising=False)
    monkeypatch.setattr("sagerag.ingest.PARSE_PROCESSES_MIN_TEXTS", 1000)  # a smaller ingest, same rule
    embeddings = _HandledEmbeddings()
    store = PineconeStore(make_index(pc, dimension=8, prefix="parse"), embeddings, "ns")
    records = tmp_path / "records.sqlite3"
    ingest_documents(_docs(1200), store, records, "ns")
    assert embeddings.content_handler.opened == [3]
    assert embeddings.open_during and all(embeddings.open_during)  # every vector embedded with them
    assert not embeddings.content_handler.open  # closed with the ingest
    # a re-run embeds nothing (no workers), and an explicit count wins over the default
    ingest_documents(_docs(1200), store, records, "ns")
    ingest_documents(_docs(50, "small"), store, records, "ns", parse_processes=2)
    ingest_documents(_docs(1100, "off"), store, records, "ns", parse_processes=0)
    assert embeddings.content_handler.opened == [3, 2]
