"""Nothing lost, nothing duplicated, nothing stale: the store, the ledger, serve and batch under real mistakes.

Each test is one experiment of docs/reliability.md ("Data integrity"): a stale `serve.json`, two serves on
one data dir, a store reset behind the ledger's back, questions inserted into a batch file, two runs on one
output, another process writing the store under a serve, Ctrl-C in batch, damaged and full data files.
Most run the CLI in remote mode against the session's local servers, so no child process loads a model.
"""

from __future__ import annotations

import json
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.runnables import RunnableLambda

from sagerag.batch import answer_all
from sagerag.config import Settings
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.questions import Question, read_questions
from sagerag.resume import ResultLog
from sagerag.serve_state import running_server
from tests.subprocesses import (
    PINECONE_KEY,
    assert_one_line_error,
    base_env,
    ids_in_data_dir,
    interruptible,
    remote_env,
    run_sagerag,
    short_rows,
    start_serve,
    stop_process,
    stored_ids,
    write_faq,
)
from tests.support import make_index, run_cli, unique_name


@pytest.fixture
def remote_cli(
    remote_servers: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, Any]:
    """In-process CLI runs in remote mode against the session's servers, with a private data dir and index."""
    env = remote_env(
        tmp_path,
        remote_servers["runtime"].endpoint_url,
        remote_servers["pinecone"].host,
        SAGERAG_PINECONE_INDEX=unique_name("integrity"),
    )
    for key, value in env.items():
        if key.startswith(("SAGERAG_", "AWS_", "PINECONE_")):
            monkeypatch.setenv(key, value)
    return {**remote_servers, "env": env, "index": env["SAGERAG_PINECONE_INDEX"], "data": tmp_path / "data"}


def _json_out(out: str) -> dict[str, Any]:
    return json.loads(out.strip().splitlines()[-1])


# -- 1, 6: which serve a command uses ----------------------------------------------------------------------


def test_stale_serve_file_does_not_send_documents_to_another_projects_store(
    tmp_path: Path,
    runtime: LocalRuntime,
    cli_env: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A serve for A was killed; a serve for B now answers on its ports. `ingest` in A must stay in A."""
    monkeypatch.setenv("PINECONE_API_KEY", PINECONE_KEY)
    corpus = write_faq(tmp_path / "a.csv", short_rows(12, "project-a"))
    with LocalPinecone(tmp_path / "b" / "pinecone", api_key=PINECONE_KEY) as project_b:
        cli_env.mkdir(parents=True)
        # What the killed serve left behind: its URLs (now B's), and no live process holding the file.
        stale = {"runtime_url": runtime.endpoint_url, "pinecone_host": project_b.host, "pid": 2**22 + 1}
        (cli_env / "serve.json").write_text(json.dumps(stale))
        code, out, err = run_cli(capsys, "ingest", str(corpus))
        assert code == 0, err
        assert "embedded local services" in err and "running `sagerag serve`" not in err
        assert not project_b.client().indexes.exists("sagerag")  # nothing went to B
    assert "12 added" in out
    assert len(ids_in_data_dir(cli_env)) == 12


def test_killed_serve_is_recognised_as_stale_and_replaced(tmp_path: Path) -> None:
    env = base_env(tmp_path, PINECONE_API_KEY=PINECONE_KEY)
    data_dir = Path(env["SAGERAG_DATA_DIR"])
    first, state = start_serve(env, data_dir)
    assert state.pid == first.pid  # type: ignore[attr-defined]
    stop_process(first, signal.SIGKILL)
    assert (data_dir / "serve.json").exists()  # the kill left the file behind...
    assert running_server(data_dir) is None  # ...and it is known to be stale
    second, state = start_serve(env, data_dir)
    try:
        assert state.pid == second.pid  # type: ignore[attr-defined]
    finally:
        assert stop_process(second) == 0
    assert not (data_dir / "serve.json").exists()


def test_second_serve_on_one_data_dir_refuses_and_leaves_the_first_running(tmp_path: Path) -> None:
    env = base_env(tmp_path, PINECONE_API_KEY=PINECONE_KEY)
    data_dir = Path(env["SAGERAG_DATA_DIR"])
    first, _ = start_serve(env, data_dir)
    try:
        second = run_sagerag(
            "serve", "--data-dir", str(data_dir), "--port", "0", "--pinecone-port", "0", env=env, timeout=60
        )
        assert second.returncode == 2, second.stderr
        assert_one_line_error(second.stderr, "already serves data dir", str(first.pid))
        found = running_server(data_dir)
        assert found is not None and found.pid == first.pid
    finally:
        assert stop_process(first) == 0
    assert not (data_dir / "serve.json").exists()


# -- 2, 10: the ledger and the store -----------------------------------------------------------------------


def test_ingest_restores_documents_the_store_lost(
    remote_cli: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_faq(tmp_path / "c.csv", short_rows(30, "ledger"))
    code, out, err = run_cli(capsys, "ingest", str(corpus), "--json")
    assert code == 0 and _json_out(out)["added"] == 30, err
    remote_cli["pinecone"].client().indexes.delete(remote_cli["index"])  # the index is reset
    code, out, err = run_cli(capsys, "ingest", str(corpus), "--json")
    assert code == 0, err
    result = _json_out(out)
    assert (result["added"], result["vectors_in_namespace"]) == (30, 30)
    assert result["restored"] == 30
    assert "no longer holds" in err
    code, out, err = run_cli(capsys, "ingest", str(corpus), "--json")
    assert (_json_out(out)["added"], _json_out(out)["unchanged"]) == (0, 30)
    ids = stored_ids(remote_cli["pinecone"], remote_cli["index"])
    assert len(ids) == len(set(ids)) == 30


def test_two_concurrent_ingests_report_what_each_wrote(remote_cli: dict[str, Any], tmp_path: Path) -> None:
    corpus = write_faq(tmp_path / "c.csv", short_rows(300, "twice"))
    command = [sys.executable, "-m", "sagerag", "ingest", str(corpus), "--json"]
    procs = [
        subprocess.Popen(
            command, env=remote_cli["env"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for _ in range(2)
    ]
    outputs = [proc.communicate(timeout=300) for proc in procs]
    assert [proc.returncode for proc in procs] == [0, 0], outputs
    results = [_json_out(out) for out, _ in outputs]
    assert sorted(r["added"] for r in results) == [0, 300]
    assert sorted(r["unchanged"] for r in results) == [0, 300]
    ids = stored_ids(remote_cli["pinecone"], remote_cli["index"])
    assert len(ids) == len(set(ids)) == 300


# -- 3, 4: batch output files ------------------------------------------------------------------------------


def _write_questions(path: Path, questions: list[str]) -> Path:
    if path.suffix == ".csv":
        path.write_text("question\n" + "".join(f'"{q}"\n' for q in questions))
    else:
        path.write_text("".join(f"{q}\n" for q in questions))
    return path


@pytest.mark.parametrize("suffix", [".txt", ".csv"])
def test_batch_resume_matches_answers_to_questions_not_line_numbers(
    remote_cli: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str], suffix: str
) -> None:
    """`--min-score 2` abstains without calling the LLM: the test is about which questions get answered."""
    asked = ["What is alpha?", "What is beta?", "What is gamma?"]
    questions, out = tmp_path / f"q{suffix}", tmp_path / "answers.jsonl"
    batch = ("batch", str(questions), "-o", str(out), "--min-score", "2")
    _write_questions(questions, asked)
    code, _, err = run_cli(capsys, *batch)
    assert code == 0, err
    _write_questions(questions, ["What is new?", *asked])  # a question inserted at the top
    code, _, err = run_cli(capsys, *batch)
    assert code == 0 and "resuming: 3 of 4" in err, err
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert sorted(line["question"] for line in lines) == sorted(["What is new?", *asked])
    assert len({line["id"] for line in lines}) == 4

    other = _write_questions(tmp_path / f"other{suffix}", ["What is delta?"])
    code, _, err = run_cli(capsys, "batch", str(other), "-o", str(out), "--min-score", "2")
    assert code == 2
    assert_one_line_error(err, str(out), "another questions file", "--restart")
    assert len(out.read_text().splitlines()) == 4  # nothing appended, nothing lost


def test_two_batch_runs_on_one_output_the_second_refuses(
    remote_cli: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = _write_questions(tmp_path / "q.txt", ["What is alpha?", "What is beta?"])
    out = tmp_path / "answers.jsonl"
    batch = ("batch", str(questions), "-o", str(out), "--min-score", "2")
    with ResultLog.open(out):  # the first run, still writing
        code, _, err = run_cli(capsys, *batch)
        assert code == 2
        assert_one_line_error(err, str(out), "being written by another run", "pid")
        assert out.read_text() == ""
    code, _, err = run_cli(capsys, *batch)
    assert code == 0, err
    assert len(out.read_text().splitlines()) == 2


def test_question_ids_survive_inserted_lines_and_repeats(tmp_path: Path) -> None:
    first = read_questions(_write_questions(tmp_path / "a.txt", ["One?", "Two?", "One?"])).questions
    second = read_questions(_write_questions(tmp_path / "b.txt", ["Zero?", "One?", "Two?", "One?"])).questions
    assert [q.id for q in first] == [q.id for q in second[1:]]
    assert len({q.id for q in second}) == 4


# -- 5: a serve's snapshot and writes by another process -----------------------------------------------------


def test_queries_see_writes_made_through_another_connection(tmp_path: Path) -> None:
    """Two servers on one store file: what one writes, the other's queries see at once."""
    rng = np.random.default_rng(5)
    with (
        LocalPinecone(tmp_path / "pc", api_key=PINECONE_KEY) as serving,
        LocalPinecone(tmp_path / "pc", api_key=PINECONE_KEY) as writer,
    ):
        index = make_index(serving.client(), 8)
        (name,) = [description.name for description in serving.client().indexes.list()]
        vectors = [(f"v{i}", rng.random(8).tolist()) for i in range(40)]
        index.upsert(vectors=vectors[:10])
        probe = rng.random(8).tolist()
        assert len(index.query(vector=probe, top_k=100).matches) == 10  # snapshot built and cached
        other = writer.client()
        other.Index(host=other.indexes.describe(name).host).upsert(vectors=vectors[10:])
        assert len(index.query(vector=probe, top_k=100).matches) == 40
        assert index.describe_index_stats().total_vector_count == 40


# -- 7: Ctrl-C in batch ----------------------------------------------------------------------------------------


def test_ctrl_c_cancels_queued_questions_and_keeps_finished_ones(tmp_path: Path) -> None:
    calls: list[str] = []
    main_thread = threading.main_thread().ident
    assert main_thread is not None

    def answer(question: str) -> dict[str, Any]:
        calls.append(question)
        time.sleep(0.2)
        if len(calls) == 6:
            signal.pthread_kill(main_thread, signal.SIGINT)  # the user presses Ctrl-C
        return {"answer": f"about {question}", "abstained": False, "sources": []}

    questions = [Question(str(i), f"question {i}") for i in range(100)]
    # As in a terminal: SIGINT raises KeyboardInterrupt (a background CI job may have inherited it ignored).
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        with ResultLog.open(tmp_path / "out.jsonl") as log:
            stats = answer_all(RunnableLambda(answer), questions, log, concurrency=2)
            kept = dict(log.done)
    finally:
        signal.signal(signal.SIGINT, previous)
    assert stats.interrupted
    assert len(calls) <= 6 + 4  # the queued questions were cancelled, only those running finished
    assert stats.answered == len(kept) == len((tmp_path / "out.jsonl").read_text().splitlines())
    assert stats.answered + stats.failed == len(calls)


def test_ctrl_c_in_batch_stops_says_what_was_kept_and_resumes(
    remote_servers: dict[str, Any], tmp_path: Path
) -> None:
    env = remote_env(
        tmp_path,
        remote_servers["runtime"].endpoint_url,
        remote_servers["pinecone"].host,
        SAGERAG_MAX_NEW_TOKENS="16",
        SAGERAG_TIMEOUT="120",  # a loaded machine must not turn slow answers into failures
    )
    total = 40
    questions = _write_questions(
        tmp_path / "q.txt", [f"What does reliability probe {i} check?" for i in range(total)]
    )
    out = tmp_path / "answers.jsonl"
    command = [sys.executable, "-m", "sagerag", "batch", str(questions), "-o", str(out), "--concurrency", "2"]
    proc = subprocess.Popen(
        command,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        preexec_fn=interruptible,
    )
    deadline = time.monotonic() + 300
    while (not out.exists() or not out.read_text()) and time.monotonic() < deadline:
        assert proc.poll() is None, proc.communicate()
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)  # once the first answer is written: the others are queued or running
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 130, err
    kept = len(out.read_text().splitlines())
    assert 1 <= kept < total
    lines = [line for line in err.splitlines() if line.startswith(("interrupted", "error"))]
    assert "Traceback" not in err and len(lines) == 1, err
    assert f"{kept} answers written by this run are kept in {out}" in lines[0]
    assert "run the same command again" in lines[0]
    # The re-run abstains without generating (--min-score 2): it is about which questions are left.
    finished = subprocess.run(
        [*command, "--min-score", "2"], env=env, capture_output=True, text=True, timeout=300
    )
    assert finished.returncode == 0, finished.stderr
    assert f"resuming: {kept} of {total}" in finished.stderr
    ids = [json.loads(line)["id"] for line in out.read_text().splitlines()]
    assert len(ids) == len(set(ids)) == total


# -- 8, 9: damaged and full data files, a local hint -----------------------------------------------------------


def test_damaged_ledger_is_one_line_naming_it_and_the_store_keeps_its_vectors(
    remote_cli: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    corpus = write_faq(tmp_path / "c.csv", short_rows(10, "damaged"))
    assert run_cli(capsys, "ingest", str(corpus), "--json")[0] == 0
    ledger = remote_cli["data"] / "records.sqlite3"
    ledger.write_bytes(b"SQLite format 3\x00" + b"\xff" * 4096)
    code, _, err = run_cli(capsys, "ingest", str(corpus), "--json")
    assert code == 2
    assert_one_line_error(err, str(ledger), "damaged", "move it aside")
    assert "SELECT" not in err and "Traceback" not in err
    assert len(stored_ids(remote_cli["pinecone"], remote_cli["index"])) == 10


def test_damaged_store_file_is_one_line_naming_it(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    store = cli_env / "pinecone" / "pinecone.sqlite3"
    store.parent.mkdir(parents=True)
    garbage = b"this is not a database" * 100
    store.write_bytes(garbage)
    code, _, err = run_cli(capsys, "ask", "What is alpha?")
    assert code == 2
    assert_one_line_error(err, str(store), "damaged", "move it aside")
    assert store.read_bytes() == garbage  # left for the user to inspect, not deleted


def test_full_disk_while_recording_is_one_line_exit_1(
    remote_cli: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import langchain_core.indexing

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(langchain_core.indexing, "index", full)
    corpus = write_faq(tmp_path / "c.csv", short_rows(3, "full"))
    code, _, err = run_cli(capsys, "ingest", str(corpus))
    assert code == 1
    assert_one_line_error(err, "records.sqlite3", "disk is full", "re-run")


def test_full_disk_inside_the_local_pinecone_is_one_line_exit_1(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's own write fails for lack of space: one line naming the store file, nothing lost."""
    from sagerag.local.pinecone.storage import PineconeStorage

    corpus = write_faq(tmp_path / "c.csv", short_rows(3, "first"))
    assert run_cli(capsys, "ingest", str(corpus))[0] == 0

    def full(*args: object, **kwargs: object) -> None:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(PineconeStorage, "upsert", full)
    more = write_faq(tmp_path / "more.csv", short_rows(3, "second"))
    code, _, err = run_cli(capsys, "ingest", str(more))
    assert code == 1
    assert_one_line_error(err, "pinecone.sqlite3", "disk is full", "re-run")
    monkeypatch.undo()
    assert len(ids_in_data_dir(cli_env)) == 3  # what was stored before is intact


def test_read_only_data_dir_is_one_line_exit_2_and_keeps_what_is_stored(
    tmp_path: Path, cli_env: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """SQLite's own words for a read-only ledger, as it says them (the tests run as root, where file
    permissions do not apply, so the refusal is injected where SQLite raises it)."""
    from sagerag.ledger import SQLiteRecordManager

    corpus = write_faq(tmp_path / "c.csv", short_rows(3, "kept"))
    assert run_cli(capsys, "ingest", str(corpus))[0] == 0

    def read_only(self: object) -> None:
        raise sqlite3.OperationalError("attempt to write a readonly database")

    monkeypatch.setattr(SQLiteRecordManager, "create_schema", read_only)
    code, _, err = run_cli(capsys, "ingest", str(write_faq(tmp_path / "d.csv", short_rows(2, "new"))))
    assert code == 2
    assert_one_line_error(err, "records.sqlite3", "read-only", "writable")
    monkeypatch.undo()
    assert len(ids_in_data_dir(cli_env)) == 3


def test_local_services_gone_mid_ingest_hint_at_serve_not_aws_region() -> None:
    from botocore.exceptions import EndpointConnectionError

    from sagerag.cli._errors import explain_service_error

    error = explain_service_error(EndpointConnectionError(endpoint_url="http://127.0.0.1:9"), Settings())
    assert error is not None
    assert "sagerag serve" in str(error) and "SAGERAG_REGION" not in str(error)
