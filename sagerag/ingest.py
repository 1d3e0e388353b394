"""Loaders (FAQ CSV, CSV with a header, folders of .txt/.md) and idempotent, resumable ingestion.

Ingestion goes through LangChain's indexing API with a SQL record manager: each document's hash is
recorded after its batch is stored, so a re-run skips what is already there, a changed document replaces
its old vectors (cleanup "incremental", keyed by `source`), `prune` removes vectors of documents no longer
in the source ("full"), and a run killed half-way resumes where it stopped.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from sagerag.errors import InputError

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
CSV_SUFFIXES = (".csv",)
HEADER_NAMES = {"question", "answer", "text", "content", "body", "title", "section", "source"}
CsvMode = Literal["answer", "question+answer"]


@dataclass
class LoadReport:
    """What loading found besides documents: rows skipped and why."""

    warnings: list[str] = field(default_factory=list)


def _read_text(path: Path) -> str:
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; pass a file or use a folder of .txt/.md files") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror})") from None
    if not raw.strip():
        raise InputError(f"{path}: the file is empty; nothing to ingest")
    if b"\x00" in raw[:4096]:
        raise InputError(f"{path}: looks like a binary file; sagerag ingests UTF-8 text, .md and .csv files")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not valid UTF-8 (byte {exc.start}); re-save it as UTF-8, e.g. `iconv -t UTF-8`"
        ) from None


CSV_FIELD_LIMIT = 1 << 30
"""The csv module refuses fields over 128 KiB ("field larger than field limit"), which reads as a quoting
error; a long answer is not one. Size limits are checked later, with a message that names the limit."""


def _rows(path: Path, text: str) -> list[list[str]]:
    if csv.field_size_limit() < CSV_FIELD_LIMIT:
        csv.field_size_limit(CSV_FIELD_LIMIT)
    reader = csv.reader(io.StringIO(text, newline=""), strict=True)
    rows: list[list[str]] = []
    try:
        for row in reader:
            rows.append(row)
    except csv.Error as exc:
        raise InputError(
            f"{path}: malformed CSV near line {reader.line_num}: {exc}; check the quoting"
        ) from None
    return [row for row in rows if any(cell.strip() for cell in row)]


def load_csv(
    path: str | Path,
    mode: CsvMode = "answer",
    header: bool | None = None,
    text_column: str | None = None,
    report: LoadReport | None = None,
) -> list[Document]:
    """Documents from a Q&A CSV: the seed's header-less (question, answer) file or one with a header.

    `mode="answer"` indexes answers only (as the seed tutorial does); `"question+answer"` indexes both.
    Metadata keeps `row` (0-based data row, as the question sets' `answer_id`), `question` and `source`.
    """
    path = Path(path)
    rows = _rows(path, _read_text(path))
    if not rows:
        raise InputError(f"{path}: no rows found")
    has_header = header if header is not None else bool({c.strip().lower() for c in rows[0]} & HEADER_NAMES)
    columns = [c.strip().lower() for c in rows[0]] if has_header else ["question", "answer"]
    body = rows[1:] if has_header else rows
    if text_column:
        if text_column.lower() not in columns:
            raise InputError(f"{path}: no column named {text_column!r}; columns are {', '.join(columns)}")
        answer_at, question_at = columns.index(text_column.lower()), None
    else:
        if "answer" not in columns and len(columns) < 2:
            raise InputError(
                f"{path}: expected (question, answer) columns; name the text column with --text-column"
            )
        answer_at = columns.index("answer") if "answer" in columns else 1
        question_at = columns.index("question") if "question" in columns else 0
    report = report or LoadReport()
    docs: list[Document] = []
    first_line = 2 if has_header else 1
    for i, row in enumerate(body):
        if len(row) != len(columns):
            raise InputError(
                f"{path}: data row {i + 1} has {len(row)} columns, expected {len(columns)}; check that "
                "fields with commas are quoted"
            )
        answer = row[answer_at].strip()
        question = row[question_at].strip() if question_at is not None else ""
        if not answer:
            report.warnings.append(
                f"{path}: skipped data row {i + 1} (about line {i + first_line}): empty text"
            )
            continue
        text = f"Q: {question}\nA: {answer}" if mode == "question+answer" and question else answer
        metadata = {"source": f"{path.name}#row{i}", "row": i, "file": path.name}
        if question:
            metadata["question"] = question
        docs.append(Document(page_content=text, metadata=metadata))
    if not docs:
        raise InputError(f"{path}: every row is empty; nothing to ingest")
    return docs


def load_text_folder(
    path: str | Path, chunk_size: int = 1000, chunk_overlap: int = 100, report: LoadReport | None = None
) -> list[Document]:
    """Chunks of every .txt/.md file under `path` (or of one such file), split by a LangChain splitter."""
    from langchain_text_splitters import RecursiveCharacterTextSplitter

    root = Path(path)
    files = (
        [root] if root.is_file() else sorted(p for p in root.rglob("*") if p.suffix.lower() in TEXT_SUFFIXES)
    )
    if not files:
        raise InputError(f"{root}: no .txt or .md files found; sagerag ingests .txt, .md and .csv files")
    splitter = RecursiveCharacterTextSplitter(chunk_size=chunk_size, chunk_overlap=chunk_overlap)
    docs: list[Document] = []
    for file in files:
        name = file.name if root.is_file() else str(file.relative_to(root))
        for i, chunk in enumerate(splitter.split_text(_read_text(file))):
            docs.append(
                Document(
                    page_content=chunk, metadata={"source": f"{name}#chunk{i}", "file": name, "chunk": i}
                )
            )
    return docs


def load_path(path: str | Path, mode: CsvMode = "answer", report: LoadReport | None = None) -> list[Document]:
    """Documents from a .csv file, a .txt/.md file, or a folder of .txt/.md files."""
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or directory; check the path")
    if path.is_file() and path.suffix.lower() in CSV_SUFFIXES:
        return load_csv(path, mode=mode, report=report)
    if path.is_dir():  # a folder's CSV files are FAQ tables, as when named one by one
        files = sorted(path.rglob("*"))
        csvs = [p for p in files if p.is_file() and p.suffix.lower() in CSV_SUFFIXES]
        docs = [doc for csv_file in csvs for doc in load_csv(csv_file, mode=mode, report=report)]
        if not csvs or any(p.suffix.lower() in TEXT_SUFFIXES for p in files):
            docs += load_text_folder(path, report=report)
        return docs
    if path.suffix.lower() in TEXT_SUFFIXES:
        return load_text_folder(path, report=report)
    raise InputError(
        f"{path}: unsupported file type {path.suffix!r}; sagerag ingests .csv, .txt and .md files"
    )


@dataclass
class IngestResult:
    """Counts from one ingestion run."""

    added: int
    updated: int
    skipped: int
    deleted: int
    warnings: list[str] = field(default_factory=list)


def record_manager(db_path: Path, namespace: str) -> object:
    """A SQLite record manager (the ingestion ledger) for one index and namespace."""
    from langchain_classic.indexes import SQLRecordManager

    db_path.parent.mkdir(parents=True, exist_ok=True)
    manager = SQLRecordManager(namespace, db_url=f"sqlite:///{db_path}")
    manager.create_schema()
    return manager


def _counting(docs: Iterable[Document], progress: Callable[[int], None] | None) -> Iterator[Document]:
    for doc in docs:
        yield doc
        if progress:
            progress(1)


def _stored_keys(manager: Any, sources: list[str], chunk: int = 500) -> set[str]:
    """Ledger keys of these sources (in chunks: SQLite bounds the variables of one query)."""
    keys: set[str] = set()
    for i in range(0, len(sources), chunk):
        keys.update(manager.list_keys(group_ids=sources[i : i + chunk]))
    return keys


def ingest_documents(
    docs: list[Document],
    store: VectorStore,
    records_db: Path,
    records_namespace: str,
    prune: bool = False,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> IngestResult:
    """Store `docs` idempotently: unchanged ones are skipped, changed ones replace their old vectors.

    LangChain's indexing API counts a changed document as one added and one deleted (ids are content
    hashes); we report it as updated: an old key of a source that is still present, replaced by a new one.
    """
    from langchain_core.indexing import index

    manager = record_manager(records_db, records_namespace)
    sources = list({str(doc.metadata.get("source")) for doc in docs})
    before = _stored_keys(manager, sources)
    result = index(
        _counting(docs, progress),
        manager,  # type: ignore[arg-type]
        store,
        batch_size=batch_size,
        cleanup="full" if prune else "incremental",
        source_id_key="source",
        key_encoder="sha256",
    )
    after = _stored_keys(manager, sources)
    replaced = min(result["num_added"], len(before - after))
    return IngestResult(
        result["num_added"] - replaced,
        result["num_updated"] + replaced,
        result["num_skipped"],
        result["num_deleted"] - replaced,
    )
