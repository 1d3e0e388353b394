"""The pipeline end to end through the CLI, offline: ingest the SageMaker FAQ, ask, abstain, batch and resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from sagerag.cli import main
from sagerag.config import load_settings
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.pipeline import from_settings
from tests.subprocesses import remote_env
from tests.support import FAQ_CSV, SEED_QUESTION, empty_config, run_cli


@pytest.fixture
def data_dir(cli_env: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("SAGERAG_MAX_NEW_TOKENS", "48")
    return cli_env


@pytest.fixture(scope="module")
def faq_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, str]]:
    """One local store with the SageMaker FAQ ingested through the CLI, shared by the ask tests."""
    root = tmp_path_factory.mktemp("faq")
    env = {"SAGERAG_DATA_DIR": str(root / "data"), "SAGERAG_CONFIG": str(empty_config(root))}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with pytest.raises(SystemExit) as exited:
            main(["ingest", str(FAQ_CSV), "--json"])
        assert exited.value.code == 0
        yield env
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def test_reingest_adds_nothing_and_keeps_154_vectors(
    faq_store: dict[str, str],
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for key, value in faq_store.items():
        monkeypatch.setenv(key, value)
    code, out, _ = run_cli(capsys, "ingest", str(FAQ_CSV), "--json")
    report = json.loads(out)
    assert code == 0
    assert report["added"] == 0 and report["unchanged"] == 154
    assert report["vectors_in_namespace"] == 154


def test_ask_spot_question_answers_from_managed_spot_rows(
    faq_store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in faq_store.items():
        monkeypatch.setenv(key, value)
    code, out, _ = run_cli(capsys, "ask", SEED_QUESTION, "--json")
    result = json.loads(out)
    assert code == 0 and not result["abstained"]
    assert "all instances" in result["answer"]
    questions = [s["metadata"].get("question", "") for s in result["sources"]]
    assert any("Managed Spot" in q for q in questions)


def test_ask_out_of_scope_abstains_exactly(
    faq_store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in faq_store.items():
        monkeypatch.setenv(key, value)
    code, out, _err = run_cli(capsys, "ask", "What is the capital of France?", "--json")
    result = json.loads(out)
    assert code == 0
    assert result["answer"] == "I don't know" and result["abstained"] is True
    plain_code, plain, status = run_cli(capsys, "ask", "What is the capital of France?")
    assert plain_code == 0 and plain.splitlines()[0] == "I don't know"
    assert "local:" in status  # says in one line that the embedded default is in use


def test_ask_streams_tokens(
    faq_store: dict[str, str], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in faq_store.items():
        monkeypatch.setenv(key, value)
    code, out, _ = run_cli(capsys, "ask", SEED_QUESTION, "--stream")
    assert code == 0 and "all instances" in out


def test_bad_questions_exit_2_without_traceback(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    for question in ("", "   \t ", "x" * 100_000):
        code, _, err = run_cli(capsys, "ask", question)
        assert code == 2
        assert err.startswith("error: question") and "Traceback" not in err


def test_missing_ingest_file_exits_2_and_names_it(data_dir: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_cli(capsys, "ingest", "/nonexistent/faq.csv")
    assert code == 2 and "/nonexistent/faq.csv" in err and "Traceback" not in err


def _count_lines(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def test_batch_is_resumable_after_sigkill(remote_servers: dict[str, Any], tmp_path: Path) -> None:
    """batch killed (SIGKILL: no handler runs, a line may be torn) part-way and re-run: every question
    answered exactly once. Remote mode against this session's servers, so the child loads no model."""
    env = remote_env(
        tmp_path,
        remote_servers["runtime"].endpoint_url,
        remote_servers["pinecone"].host,
        SAGERAG_TIMEOUT="120",  # a loaded machine must not turn slow answers into failures
    )
    total = 24
    questions = tmp_path / "questions.txt"
    questions.write_text("".join(f"What does reliability probe {i} check?\n" for i in range(total)))
    out = tmp_path / "answers.jsonl"
    command = [sys.executable, "-m", "sagerag", "batch", str(questions), "-o", str(out), "--concurrency", "2"]
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 300
    while _count_lines(out) < 4 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.05)
    assert proc.poll() is None, "batch finished before it could be interrupted"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first_run = _count_lines(out)
    assert 4 <= first_run < total
    # The re-run abstains without generating (--min-score 2): it is about which questions are left.
    finished = subprocess.run(
        [*command, "--min-score", "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    assert "resuming" in finished.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == total and len(set(ids)) == total


def test_remote_configuration_runs_the_same_chain(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Remote by configuration only: the local servers' URLs given as if they were AWS and Pinecone."""
    with (
        LocalRuntime() as runtime,
        LocalPinecone(tmp_path / "remote-pinecone", api_key="remote-key") as pinecone,
    ):
        settings: dict[str, Any] = {
            "SAGERAG_REMOTE": "1",
            "SAGERAG_ENDPOINT_URL": runtime.endpoint_url,
            "SAGERAG_PINECONE_HOST": pinecone.host,
            "PINECONE_API_KEY": "remote-key",
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "SAGERAG_DATA_DIR": str(tmp_path / "data"),
            "SAGERAG_MAX_NEW_TOKENS": "48",
        }
        for key, value in settings.items():
            monkeypatch.setenv(key, value)
        monkeypatch.setenv("SAGERAG_CONFIG", str(empty_config(tmp_path)))
        assert not load_settings().is_local
        with from_settings() as pipeline:
            assert pipeline.mode == "remote"
            pipeline.store.add_texts(
                ["Managed Spot Training can be used with all instances supported in Amazon SageMaker."],
                metadatas=[{"source": "faq#spot"}],
            )
            result = pipeline.rag_chain().invoke(SEED_QUESTION)
        assert (
            "all instances" in result["answer"] and result["sources"][0]["metadata"]["source"] == "faq#spot"
        )
        assert (
            pinecone.client()
            .Index(host=pinecone.client().describe_index("sagerag").host)
            .describe_index_stats()
        )


def test_the_embeddings_format_setting_reaches_the_pipeline_s_ingest(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`SAGERAG_EMBEDDINGS_FORMAT=npy`: the pipeline asks its feature-extraction endpoint for NPY answers,
    gets the vectors JSON answers give, and its ingest finds each FAQ row by its own question."""
    from sagerag.adapters import SagemakerEmbeddings
    from sagerag.ingest import load_csv

    monkeypatch.setenv("SAGERAG_EMBEDDINGS_FORMAT", "npy")
    docs = load_csv(FAQ_CSV)[:24]
    with from_settings() as pipeline:
        embeddings = pipeline.embeddings
        assert embeddings.content_handler.accepts == "application/x-npy"
        texts = [doc.page_content for doc in docs[:6]]
        as_json = SagemakerEmbeddings(endpoint_name=embeddings.endpoint_name, client=embeddings.client)
        assert np.allclose(embeddings.embed_documents(texts), as_json.embed_documents(texts), atol=1e-6)
        assert pipeline.ingest(docs).added == 24
        for doc in docs[:4]:
            (found, _), *_ = pipeline.store.similarity_search_with_score(doc.metadata["question"], k=1)
            assert found.metadata["row"] == doc.metadata["row"]
