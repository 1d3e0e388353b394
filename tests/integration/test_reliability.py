"""Faults: injected throttling, a killed ingest, a restarted Pinecone, torn result files, a vanished endpoint.

Each test checks the outcome that matters: the store holds exactly the expected ids (no duplicates, none
missing), nothing acknowledged is lost, and failures end in one clear line instead of a hang.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.documents import Document

from sagerag.adapters import SagemakerEmbeddings
from sagerag.cli import main
from sagerag.ingest import ingest_documents
from sagerag.local import FaultConfig, LocalPinecone, LocalRuntime
from sagerag.stores import PineconeStore, ensure_index
from tests.subprocesses import (
    FACT_QUESTION,
    PINECONE_KEY,
    CutProxy,
    assert_one_line_error,
    base_env,
    ids_in_data_dir,
    ledger_count,
    remote_env,
    run_sagerag,
    short_rows,
    stored_ids,
    write_faq,
)


def _docs(n: int, prefix: str) -> list[Document]:
    return [
        Document(
            page_content=f"{prefix} note {i}: item {i} of the reliability corpus.",
            metadata={"source": f"{prefix}#{i}"},
        )
        for i in range(n)
    ]


def _expected_ids(docs: list[Document]) -> set[str]:
    """The ids ingestion gives documents: LangChain's indexing API keys them by a sha256 of content."""
    from langchain_core.indexing.api import _get_document_with_hash

    return {str(_get_document_with_hash(d, key_encoder="sha256").id) for d in docs}


def _run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


_INJECTED_CODES = ("ThrottlingException", "ModelNotReadyException", "ServiceUnavailable")


class _CountingClient:
    """Passes `invoke_endpoint` through to a boto3 client and counts the calls that got an answer."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.answered = 0
        self._lock = threading.Lock()

    def invoke_endpoint(self, **kwargs: Any) -> Any:
        response = self.inner.invoke_endpoint(**kwargs)
        with self._lock:
            self.answered += 1
        return response


def test_ingest_2000_texts_through_injected_faults_stores_exactly_the_corpus(tmp_path: Path) -> None:
    """20% throttling / not-ready, 5% 503s and 5 ms latency: every text stored once, none missing."""
    faults = FaultConfig(
        throttle_rate=0.1, not_ready_rate=0.1, unavailable_rate=0.05, latency_s=0.005, seed=7
    )
    docs = _docs(2000, "faulty")
    with (
        LocalRuntime(faults=faults) as runtime,
        LocalPinecone(tmp_path / "pc", api_key=PINECONE_KEY) as pinecone,
    ):
        client = _CountingClient(runtime.client())
        embeddings = SagemakerEmbeddings(endpoint_name="minilm", client=client, max_retries=8)
        pc = pinecone.client()
        ensure_index(pc, "sagerag", 384)
        store = PineconeStore.from_index_name(pc, "sagerag", embeddings)
        result = ingest_documents(docs, store, tmp_path / "records.sqlite3", "faults", batch_size=200)
        ids = stored_ids(pinecone)
        counters = runtime.counters
    assert result.added == 2000 and result.skipped == 0
    assert len(ids) == len(set(ids)) == 2000
    assert set(ids) == _expected_ids(docs)
    # Faults of every kind were served, and each one was retried: the runtime saw exactly one request
    # per batch that came back to us plus one per fault (botocore retries throttling and 503s, our
    # retry policy retries "model not ready"), and refused nothing for size.
    assert min(counters.faults.get(code, 0) for code in _INJECTED_CODES) >= 1, counters.faults
    assert counters.faults_served >= 15  # ~25% of ~100 requests
    assert counters.invocations == client.answered + counters.faults_served
    assert counters.refused_requests == 0


def test_ingest_killed_with_sigkill_then_rerun_equals_an_uninterrupted_run(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    corpus = write_faq(tmp_path / "corpus.csv", short_rows(800, "killed"))
    killed_env = base_env(tmp_path / "killed", PINECONE_API_KEY=PINECONE_KEY)
    killed_dir = Path(killed_env["SAGERAG_DATA_DIR"])
    proc = subprocess.Popen(
        [sys.executable, "-m", "sagerag", "ingest", str(corpus), "--json"],
        env=killed_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.monotonic() + 120
    while ledger_count(killed_dir) < 64 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, "the ingest finished before it could be killed"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    stored_after_kill = ids_in_data_dir(killed_dir)
    assert 0 < len(stored_after_kill) < 800, len(stored_after_kill)

    monkeypatch.setenv("PINECONE_API_KEY", PINECONE_KEY)
    code, out, err = _run_main(capsys, "ingest", str(corpus), "--json", "--data-dir", str(killed_dir))
    assert code == 0, err
    rerun = json.loads(out)
    assert rerun["added"] + rerun["unchanged"] == 800 and rerun["vectors_in_namespace"] == 800

    reference_dir = tmp_path / "reference" / "data"
    code, out, err = _run_main(capsys, "ingest", str(corpus), "--json", "--data-dir", str(reference_dir))
    assert code == 0, err
    resumed, reference = ids_in_data_dir(killed_dir), ids_in_data_dir(reference_dir)
    assert len(resumed) == len(set(resumed)) == 800
    assert sorted(resumed) == sorted(reference)
    assert set(stored_after_kill) <= set(resumed)


def test_pinecone_restarted_mid_ingest_loses_nothing(tmp_path: Path, runtime: LocalRuntime) -> None:
    """Stop and start the local Pinecone (same port, same data) while an ingest runs."""
    docs = _docs(1200, "restart")
    pinecone = LocalPinecone(tmp_path / "pc", api_key=PINECONE_KEY).start()
    port = pinecone.port
    pc = pinecone.client()
    ensure_index(pc, "sagerag", 384)
    store = PineconeStore.from_index_name(
        pc, "sagerag", SagemakerEmbeddings(endpoint_name="minilm", client=runtime.client())
    )
    records = tmp_path / "records.sqlite3"
    outcome: dict[str, Any] = {}

    def ingest() -> None:
        try:
            outcome["result"] = ingest_documents(docs, store, records, "restart", batch_size=50)
        except Exception as exc:  # a clear error is acceptable; a re-run must then complete
            outcome["error"] = exc

    worker = threading.Thread(target=ingest)
    worker.start()
    deadline = time.monotonic() + 60
    while ledger_count(tmp_path) < 100 and worker.is_alive() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert worker.is_alive(), "the ingest finished before the restart"
    acknowledged = ledger_count(tmp_path)
    pinecone.stop()
    time.sleep(0.3)
    pinecone = LocalPinecone(tmp_path / "pc", port=port, api_key=PINECONE_KEY).start()
    try:
        worker.join(120)
        assert not worker.is_alive()
        if "error" in outcome:  # stopped with an error: the re-run finishes the job
            outcome["result"] = ingest_documents(docs, store, records, "restart", batch_size=50)
        ids = stored_ids(pinecone)
    finally:
        pinecone.stop()
    assert len(ids) == len(set(ids)) == 1200
    assert set(ids) == _expected_ids(docs)
    assert acknowledged >= 100


def test_batch_resumes_after_a_torn_last_line(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill mid-write leaves half a line: it is dropped and that question answered again, once."""
    monkeypatch.setenv("SAGERAG_MAX_NEW_TOKENS", "4")
    corpus = write_faq(tmp_path / "faq.csv", short_rows(5, "torn"))
    assert _run_main(capsys, "ingest", str(corpus), "--json")[0] == 0
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        "".join(json.dumps({"id": f"q{i}", "question": f"What is torn {i}?"}) + "\n" for i in range(5))
    )
    out = tmp_path / "answers.jsonl"
    done = [
        {
            "id": f"q{i}",
            "question": f"What is torn {i}?",
            "answer": "earlier",
            "abstained": False,
            "sources": [],
        }
        for i in range(2)
    ]
    out.write_text("".join(json.dumps(d) + "\n" for d in done) + '{"id": "q2", "question": "What is to')
    code, _, err = _run_main(capsys, "batch", str(questions), "-o", str(out), "--concurrency", "2")
    assert code == 0, err
    assert "resuming: 2 of 5" in err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    ids = [line["id"] for line in lines]
    assert sorted(ids) == [f"q{i}" for i in range(5)] and len(ids) == len(set(ids))
    assert [line["answer"] for line in lines[:2]] == ["earlier", "earlier"]  # not answered twice
    code, _, err = _run_main(capsys, "batch", str(questions), "-o", str(out))
    assert code == 0 and "resuming: 5 of 5" in err
    assert len(out.read_text().splitlines()) == 5


@pytest.mark.parametrize("mode", ["drop", "hang"])
def test_endpoint_gone_during_ask_fails_in_time_with_one_line(
    mode: str,
    remote_servers: dict[str, Any],
    tmp_path: Path,
) -> None:
    """The LLM endpoint vanishes (connection cut, then refused) or stops answering mid-`ask`."""
    runtime, pinecone = remote_servers["runtime"], remote_servers["pinecone"]
    proxy = CutProxy(int(runtime.endpoint_url.rsplit(":", 1)[1]), b"/endpoints/llama2/", mode)
    timeout = 1
    env = remote_env(tmp_path, proxy.url, pinecone.host, SAGERAG_TIMEOUT=str(timeout))
    started = time.monotonic()
    try:
        done = run_sagerag("ask", FACT_QUESTION, env=env, timeout=90)
    finally:
        proxy.close()
    elapsed = time.monotonic() - started
    assert proxy.triggered.is_set(), "the question never reached the LLM"
    assert done.returncode == 1, done.stderr
    assert done.stdout == ""
    line = assert_one_line_error(done.stderr, "SAGERAG_TIMEOUT")
    assert ("cannot reach" in line) if mode == "drop" else ("did not answer in time" in line)
    # botocore makes up to 4 attempts of at most `timeout` seconds each, plus process start-up
    assert elapsed < 4 * timeout + 20, elapsed
