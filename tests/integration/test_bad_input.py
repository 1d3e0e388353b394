"""Bad input: each gets one clear line naming the input and what to do, exit 2, and loses nothing stored.

The CLI runs in-process (`sagerag.cli.main`), so models stay loaded; the error path is the same one a
terminal sees (`main` turns errors into one `error:` line on stderr).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from sagerag.cli import main
from sagerag.local._server import free_port
from tests.subprocesses import (
    FACT_QUESTION,
    PINECONE_KEY,
    assert_one_line_error,
    ids_in_data_dir,
    short_rows,
    stored_ids,
    write_faq,
)
from tests.support import empty_config

_REMOTE_VARS = (
    "SAGERAG_REMOTE",
    "SAGERAG_ENDPOINT_URL",
    "SAGERAG_PINECONE_HOST",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as exited:
        main(list(argv))
    out, err = capsys.readouterr()
    return int(exited.value.code or 0), out, err


@pytest.fixture(scope="module")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local data dir holding 3 documents, shared by the ingest tests (each checks the count is kept)."""
    root = tmp_path_factory.mktemp("badinput")
    with pytest.MonkeyPatch.context() as mp:
        for key in _REMOTE_VARS:
            mp.delenv(key, raising=False)
        mp.setenv("SAGERAG_DATA_DIR", str(root / "data"))
        mp.setenv("SAGERAG_CONFIG", str(empty_config(root)))
        mp.setenv("PINECONE_API_KEY", PINECONE_KEY)
        mp.setenv("SAGERAG_MAX_NEW_TOKENS", "4")
        with pytest.raises(SystemExit) as exited:
            main(["ingest", str(write_faq(root / "good.csv", short_rows(3, "good"))), "--json"])
        assert exited.value.code == 0
        yield root / "data"


@pytest.fixture
def local_env(store_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    for key in _REMOTE_VARS:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("SAGERAG_DATA_DIR", str(store_dir))
    monkeypatch.setenv("SAGERAG_CONFIG", str(empty_config(store_dir.parent)))
    monkeypatch.setenv("PINECONE_API_KEY", PINECONE_KEY)
    monkeypatch.setenv("SAGERAG_MAX_NEW_TOKENS", "4")
    return store_dir


def _bad_files(root: Path) -> dict[str, tuple[Path, str]]:
    """name -> (path, a phrase the message must contain)."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "nodocs").mkdir(exist_ok=True)
    (root / "nodocs" / "slides.pdf").write_bytes(b"%PDF-1.4")
    (root / "empty.csv").write_bytes(b"")
    (root / "blob.txt").write_bytes(b"\x00\x01\x02binary\x00" * 10)
    (root / "latin1.txt").write_bytes("Caf\u00e9 au lait".encode("latin-1"))
    (root / "quotes.csv").write_text('question,answer\n"unbalanced,answer text\nq2,a2\n')
    (root / "columns.csv").write_text("question,answer\nq1,a1,surplus\n")
    (root / "metadata.csv").write_text("question,answer\nbig," + "word " * 20_000 + "\n")
    return {
        "missing file": (root / "absent.csv", "no such file"),
        "no supported files": (root / "nodocs", "no .txt or .md files"),
        "empty file": (root / "empty.csv", "empty"),
        "binary file": (root / "blob.txt", "binary"),
        "non-UTF-8": (root / "latin1.txt", "UTF-8"),
        "unbalanced quotes": (root / "quotes.csv", "malformed CSV"),
        "wrong column count": (root / "columns.csv", "3 columns, expected 2"),
        "metadata over 40 KB": (root / "metadata.csv", "metadata"),
    }


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "no supported files",
        "empty file",
        "binary file",
        "non-UTF-8",
        "unbalanced quotes",
        "wrong column count",
        "metadata over 40 KB",
    ],
)
def test_bad_ingest_input_exits_2_names_it_and_keeps_the_store(
    case: str, local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = ids_in_data_dir(local_env)
    path, phrase = _bad_files(tmp_path / "inputs")[case]
    code, out, err = run(capsys, "ingest", str(path))
    assert code == 2, err
    line = assert_one_line_error(err, path.name, phrase)
    assert len(line) < 400 and out == ""
    assert sorted(ids_in_data_dir(local_env)) == sorted(before) and len(before) >= 3


def test_document_too_large_for_one_request_is_refused_before_sending(
    local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A 5.5 MB answer fits neither Pinecone's metadata limit nor SageMaker's request limit: refused as too
    large before anything is embedded or sent (the store checks metadata first), not as a CSV quoting error."""
    before = ids_in_data_dir(local_env)
    huge = tmp_path / "huge.csv"
    huge.write_text("question,answer\nhuge," + "x" * (5_500_000) + "\n")
    code, _, err = run(capsys, "ingest", str(huge))
    assert code == 2
    assert_one_line_error(err, "huge.csv#row0", "over Pinecone's limit", "split the document")
    assert sorted(ids_in_data_dir(local_env)) == sorted(before)


def test_row_with_empty_answer_is_skipped_with_a_warning_and_the_rest_stored(
    local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    before = set(ids_in_data_dir(local_env))
    csv_file = tmp_path / "gaps.csv"
    csv_file.write_text("question,answer\ngap q1,gap answer one\ngap q2,\ngap q3,gap answer three\n")
    code, out, err = run(capsys, "ingest", str(csv_file), "--json")
    assert code == 0, err
    report = json.loads(out)
    assert report["added"] == 2 and report["documents"] == 2
    assert any("gaps.csv" in w and "row 2" in w and "empty" in w for w in report["warnings"])
    after = set(ids_in_data_dir(local_env))
    assert before < after and len(after - before) == 2


def test_question_with_control_characters_is_cleaned_and_answered(
    local_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "ask", "What\x00 is\x07 good\x1b 1?\r\n", "--json")
    assert code == 0, err
    assert json.loads(out)["question"] == "What is good 1?"


@pytest.mark.parametrize("question", ["", "  \t\n ", "why " * 25_000])
def test_empty_blank_or_huge_question_exits_2(
    question: str, local_env: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, err = run(capsys, "ask", question)
    assert code == 2 and out == ""
    assert_one_line_error(err, "question")


def test_questions_file_with_a_broken_line(
    local_env: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(
        '{"id": "a", "question": "What is good 0?"}\n{"id": "b", "question": \n{"id": "c", "question": "What is good 2?"}\n'
    )
    out_file = tmp_path / "answers.jsonl"
    code, _, err = run(capsys, "batch", str(questions), "-o", str(out_file))
    assert code == 2
    assert_one_line_error(err, "q.jsonl line 2", "--skip-bad-lines")
    assert not out_file.exists() or out_file.read_text() == ""
    code, out, err = run(capsys, "batch", str(questions), "-o", str(out_file), "--skip-bad-lines", "--json")
    assert code == 0, err
    assert "skipped: q.jsonl line 2" in err
    summary = json.loads(out)
    assert summary["answered_now"] == 2 and summary["skipped_lines"] == 1
    assert sorted(json.loads(line)["id"] for line in out_file.read_text().splitlines()) == ["a", "c"]


# -- configuration ----------------------------------------------------------------------------------------


def _remote(monkeypatch: pytest.MonkeyPatch, servers: dict[str, Any], tmp_path: Path, **extra: str) -> None:
    settings = {
        "SAGERAG_REMOTE": "1",
        "SAGERAG_ENDPOINT_URL": servers["runtime"].endpoint_url,
        "SAGERAG_PINECONE_HOST": servers["pinecone"].host,
        "PINECONE_API_KEY": PINECONE_KEY,
        "AWS_ACCESS_KEY_ID": "test-access",
        "AWS_SECRET_ACCESS_KEY": "test-secret",
        "SAGERAG_DATA_DIR": str(tmp_path / "data"),
        "SAGERAG_CONFIG": str(empty_config(tmp_path)),
        "SAGERAG_MAX_NEW_TOKENS": "4",
        "SAGERAG_TIMEOUT": "5",
    }
    for key, value in {**settings, **extra}.items():
        monkeypatch.setenv(key, value)


def _index(servers: dict[str, Any], name: str, dimension: int, metric: str) -> None:
    pc = servers["pinecone"].client()
    if not pc.indexes.exists(name):
        pc.indexes.create(
            name=name,
            schema={
                "fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}
            },
            deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
        )


CONFIG_CASES: dict[str, tuple[dict[str, str], int, tuple[str, ...]]] = {
    "unknown LLM endpoint": ({"SAGERAG_LLM_ENDPOINT": "nope"}, 2, ("'nope'", "SAGERAG_LLM_ENDPOINT")),
    "unknown embeddings endpoint": (
        {"SAGERAG_EMBEDDINGS_ENDPOINT": "nope"},
        2,
        ("'nope'", "SAGERAG_EMBEDDINGS_ENDPOINT"),
    ),
    "invalid region": ({"SAGERAG_REGION": "moon base 1"}, 2, ("'moon base 1'", "SAGERAG_REGION")),
    "wrong Pinecone key": ({"PINECONE_API_KEY": "not-the-key"}, 2, ("401", "PINECONE_API_KEY")),
    "index dimension mismatch": ({"SAGERAG_PINECONE_INDEX": "dim8"}, 2, ("dimension 8", "384")),
    "index metric mismatch": (
        {"SAGERAG_PINECONE_INDEX": "euclid", "SAGERAG_RETRIEVAL": "dense"},
        2,
        ("metric euclidean", "cosine"),
    ),
    "index without sparse values for hybrid": (
        {"SAGERAG_PINECONE_INDEX": "euclid"},
        2,
        ("'euclid'", "euclidean", "SAGERAG_RETRIEVAL=dense"),
    ),
    "unreachable endpoint URL": (
        {"SAGERAG_ENDPOINT_URL": "closed", "SAGERAG_TIMEOUT": "1"},
        1,
        ("cannot reach", "SAGERAG_ENDPOINT_URL"),
    ),
    "non-positive timeout": ({"SAGERAG_TIMEOUT": "-3"}, 2, ("SAGERAG_TIMEOUT", "positive")),
}


@pytest.mark.parametrize("case", list(CONFIG_CASES))
def test_bad_configuration_is_one_line_naming_the_setting(
    case: str,
    remote_servers: dict[str, Any],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    extra, expected_code, needles = CONFIG_CASES[case]
    extra = dict(extra)
    if extra.get("SAGERAG_ENDPOINT_URL") == "closed":
        extra["SAGERAG_ENDPOINT_URL"] = f"http://127.0.0.1:{free_port()}"
    _index(remote_servers, "dim8", 8, "cosine")
    _index(remote_servers, "euclid", 384, "euclidean")
    _remote(monkeypatch, remote_servers, tmp_path, **extra)
    before = stored_ids(remote_servers["pinecone"])
    code, out, err = run(capsys, "ask", FACT_QUESTION, "--json")
    assert code == expected_code, err
    assert out == ""
    assert_one_line_error(err, *needles)
    assert stored_ids(remote_servers["pinecone"]) == before
