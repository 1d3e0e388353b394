"""Loaders and idempotent ingestion (fake embeddings against the local Pinecone: no model needed)."""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding

from sagerag.errors import InputError
from sagerag.ingest import LoadReport, ingest_documents, load_csv, load_path, load_text_folder
from sagerag.local import LocalPinecone
from sagerag.stores import PineconeStore, ensure_index
from tests.support import FAQ_CSV, faq_rows


def test_faq_csv_headerless_bom_crlf() -> None:
    docs = load_csv(FAQ_CSV)
    assert len(docs) == 154
    assert docs[0].metadata["row"] == 0 and docs[0].metadata["question"] == "What is Amazon SageMaker?"
    assert not docs[0].page_content.startswith("\ufeff") and "\r" not in docs[0].metadata["question"]
    # Question + answer by default: users' paraphrases match the question's words too (docs/benchmarks.md).
    assert docs[0].page_content.startswith(
        "Q: What is Amazon SageMaker?\nA: Amazon SageMaker is a fully managed"
    )
    assert load_csv(FAQ_CSV, mode="answer")[0].page_content.startswith("Amazon SageMaker is a fully managed")


def test_header_csv_and_question_answer_mode(tmp_path: Path) -> None:
    with_header = tmp_path / "faq.csv"
    with with_header.open("w", newline="", encoding="utf-8") as handle:
        csv.writer(handle).writerows([("Question", "Answer"), *faq_rows()])
    answers = load_csv(with_header, mode="answer")
    both = load_csv(with_header)
    assert len(answers) == len(both) == 154 and answers[0].metadata["row"] == 0
    assert both[5].page_content == f"Q: {both[5].metadata['question']}\nA: {answers[5].page_content}"


def test_text_folder_is_split_with_sources(tmp_path: Path) -> None:
    (tmp_path / "guide.md").write_text("# Title\n\n" + "Managed training. " * 200, encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "notes.txt").write_text("Short note.", encoding="utf-8")
    (tmp_path / "image.png").write_bytes(b"\x89PNG")
    docs = load_text_folder(tmp_path)
    sources = {d.metadata["source"] for d in docs}
    assert "sub/notes.txt#chunk0" in sources and sum(s.startswith("guide.md") for s in sources) > 1
    assert all(len(d.page_content) <= 1000 for d in docs)


def test_empty_answers_are_skipped_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "faq.csv"
    path.write_text('Question,Answer\nQ1,A1\nQ2,""\nQ3,A3\n', encoding="utf-8")
    report = LoadReport()
    docs = load_csv(path, report=report)
    assert [d.metadata["row"] for d in docs] == [0, 2]
    assert len(report.warnings) == 1 and "row 2" in report.warnings[0]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty"),
        (b"\x00\x01\x02binary", "binary"),
        ("Question,Answer\nQ,caf\u00e9".encode("latin-1"), "UTF-8"),
        (b'Question,Answer\nQ1,"unbalanced\n', "malformed CSV"),
        (b"Question,Answer\nQ1,A1,extra\n", "columns"),
    ],
)
def test_bad_files_name_the_file_and_the_fix(tmp_path: Path, content: bytes, message: str) -> None:
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as info:
        load_path(path)
    assert str(path) in str(info.value)


def test_missing_and_unsupported_paths(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="no such file"):
        load_path(tmp_path / "missing.csv")
    (tmp_path / "empty-dir").mkdir()
    with pytest.raises(InputError, match=r"no \.txt or \.md files"):
        load_path(tmp_path / "empty-dir")


@pytest.fixture
def store(tmp_path: Path) -> Iterator[PineconeStore]:
    with LocalPinecone(tmp_path / "pinecone") as pinecone:
        pc = pinecone.client()
        ensure_index(pc, "ingest", 16)
        yield PineconeStore.from_index_name(pc, "ingest", DeterministicFakeEmbedding(size=16))


def _count(store: PineconeStore) -> int:
    stats: Any = store.index.describe_index_stats()
    return int(stats.total_vector_count)


def test_ingest_is_idempotent_replaces_changed_and_prunes(store: PineconeStore, tmp_path: Path) -> None:
    records = tmp_path / "records.sqlite3"
    docs = load_csv(FAQ_CSV)
    first = ingest_documents(docs, store, records, "test")
    assert (first.added, _count(store)) == (154, 154)
    again = ingest_documents(docs, store, records, "test")
    assert (again.added, again.skipped, _count(store)) == (0, 154, 154)
    changed = [
        d.model_copy(update={"page_content": d.page_content + " (updated)"}) if i < 3 else d
        for i, d in enumerate(docs)
    ]
    update = ingest_documents(changed, store, records, "test")
    assert (update.added, update.updated, update.deleted, _count(store)) == (0, 3, 0, 154)
    pruned = ingest_documents(changed[:100], store, records, "test", prune=True)
    assert pruned.deleted == 54 and _count(store) == 100
