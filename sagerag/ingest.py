"""Loaders (FAQ CSV, CSV with a header, folders of .txt/.md) and idempotent, resumable ingestion.

Ingestion goes through LangChain's indexing API with a SQL record manager: each document's hash is
recorded after its batch is stored, so a re-run skips what is already there, a changed document replaces
its old vectors (cleanup "incremental", keyed by `source`), `prune` removes vectors of documents no longer
in the source ("full"), and a run killed half-way resumes where it stopped.

The ledger is only a record of what was stored; the store can lose vectors behind its back (an index
deleted or reset, a namespace cleared). Each run first checks the ledger against the store (vector count,
then a sample of ids, then every id if either disagrees) and forgets what the store no longer holds, so
those documents are stored again instead of being reported as "unchanged" forever. One ingest at a time
writes a ledger (a lock beside it): a second one waits, then finds the documents stored and says so.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import random
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_core.documents import Document
from langchain_core.vectorstores import VectorStore

from sagerag.datafiles import explain
from sagerag.errors import InputError
from sagerag.kinds import IndexText
from sagerag.locks import HolderInfo, hold

if TYPE_CHECKING:
    from sagerag.ledger import SQLiteRecordManager
    from sagerag.stores.prefetch import PrefetchedEmbeddings

TEXT_SUFFIXES = (".txt", ".md", ".markdown")
CSV_SUFFIXES = (".csv",)
HEADER_NAMES = {"question", "answer", "text", "content", "body", "title", "section", "source"}


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
    mode: IndexText = "question+answer",
    header: bool | None = None,
    text_column: str | None = None,
    report: LoadReport | None = None,
) -> list[Document]:
    """Documents from a Q&A CSV: the FAQ's header-less (question, answer) file or one with a header.

    `mode="question+answer"` (the default) indexes both as "Q: ...\nA: ...", which users' paraphrases
    match far better (docs/benchmarks.md); `"answer"` indexes answers only, as the Pinecone RAG-on-SageMaker tutorial does.
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


def load_path(
    path: str | Path, mode: IndexText = "question+answer", report: LoadReport | None = None
) -> list[Document]:
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
    restored: int = 0
    """Documents the ledger listed but the store had lost; they were stored again (and count as added)."""


LEDGER_REBUILD = (
    "re-run `sagerag ingest` with the same sources: documents already in the store keep their ids, "
    "so nothing is duplicated"
)


def record_manager(db_path: Path, namespace: str) -> SQLiteRecordManager:
    """The ingestion ledger (a SQLite record manager) for one index and namespace."""
    from sagerag.ledger import SQLiteRecordManager

    try:
        db_path.parent.mkdir(parents=True, exist_ok=True)
        manager = SQLiteRecordManager(namespace, db_path)
        manager.create_schema()
    except Exception as exc:
        raise (explain(exc, db_path, LEDGER_REBUILD) or exc) from None
    return manager


def namespace_vector_count(store: VectorStore) -> int | None:
    """Vectors in the store's namespace (Pinecone index stats), or None for stores that cannot say."""
    index = getattr(store, "index", None)
    if index is None:
        return None
    stats = index.describe_index_stats()
    namespace = getattr(store, "namespace", "") or "__default__"
    namespaces = getattr(stats, "namespaces", None) or {}
    entry = namespaces.get(namespace)
    if entry is None and namespace == "__default__":
        entry = namespaces.get("")
    if entry is None:
        return 0
    value = getattr(entry, "vector_count", None)
    if value is None and hasattr(entry, "get"):
        value = entry.get("vector_count")
    return int(value or 0)


def _present(store: VectorStore, ids: list[str]) -> set[str]:
    return {str(doc.id) for doc in store.get_by_ids(ids)}


def missing_from_store(manager: object, store: VectorStore, sample: int = 64) -> list[str]:
    """Ledger keys whose vectors the store no longer holds.

    Cheap when all is well (one stats call and one fetch of a sample); every key is fetched only when the
    count is short or a sampled id is missing.
    """
    keys: list[str] = manager.list_keys()  # type: ignore[attr-defined]
    if not keys:
        return []
    count = namespace_vector_count(store)
    probe = random.sample(keys, min(sample, len(keys)))
    if (count is None or count >= len(keys)) and len(_present(store, probe)) == len(probe):
        return []
    present = _present(store, keys)
    return [key for key in keys if key not in present]


def _counting(docs: Iterable[Document], progress: Callable[[int], None] | None) -> Iterator[Document]:
    for doc in docs:
        yield doc
        if progress:
            progress(1)


def fit_sparse(docs: list[Document], store: VectorStore, stats_file: Path, prune: bool) -> list[Document]:
    """Fit (or extend) the BM25 statistics for a store that writes sparse values; `docs` stamped with them.

    The statistics are refit from scratch when there are none yet or `prune` replaces the whole corpus;
    otherwise these documents' terms are added and the version (what stored vectors depend on) is kept,
    so vectors from earlier ingests stay valid. Each document's metadata carries the version, so the
    ledger's hash changes, and the vector is rewritten, exactly when the version does. The statistics
    are saved before anything is upserted: a run killed half-way leaves vectors of the old version,
    which a hybrid query reports, and re-running the ingest finishes the job.
    """
    from sagerag.stores.sparse import VERSION_KEY, BM25Stats, load_stats, save_stats

    if getattr(store, "metric", None) != "dotproduct" or not hasattr(store, "sparse"):
        return docs
    corpus = {str(d.metadata.get("source", i)): d.page_content for i, d in enumerate(docs)}
    stats = None if prune else load_stats(stats_file)
    if stats is None:
        stats = BM25Stats.fit(corpus)
    else:
        stats.add(corpus)
    save_stats(stats, stats_file)
    store.sparse = stats
    return [
        Document(page_content=d.page_content, metadata={**d.metadata, VERSION_KEY: stats.version}, id=d.id)
        for d in docs
    ]


def _stored_keys(manager: Any, sources: list[str], chunk: int = 500) -> set[str]:
    """Ledger keys of these sources (in chunks: SQLite bounds the variables of one query)."""
    keys: set[str] = set()
    for i in range(0, len(sources), chunk):
        keys.update(manager.list_keys(group_ids=sources[i : i + chunk]))
    return keys


_METADATA_JSON = json.JSONEncoder(sort_keys=True).encode
"""`json.dumps(metadata, sort_keys=True)`, as LangChain hashes it, without building an encoder a call (a
third of the key's cost: keys are computed for every document before the first request is sent)."""


def document_key(doc: Document) -> str:
    """LangChain's "sha256" key of a document (its content's hash, then its metadata's), the ledger's key.

    Computed here, and given to `index()` as its key encoder, so that the ingest knows ahead of `index()`
    which documents it will store (and can embed them ahead); a test holds it equal to LangChain's own.
    """
    sha256 = hashlib.sha256
    content = sha256(doc.page_content.encode("utf-8")).hexdigest()
    metadata = sha256(_METADATA_JSON(dict(doc.metadata or {})).encode("utf-8")).hexdigest()
    return sha256((content + metadata).encode()).hexdigest()


def _to_store(docs: list[Document], keys: dict[int, str], manager: SQLiteRecordManager) -> list[Document]:
    """The documents `index()` will hand the store, in its order: first occurrences of keys not in the ledger
    (a later duplicate is skipped: deduplicated in its batch, or found in the ledger after an earlier one)."""
    listed = manager.exists([keys[id(doc)] for doc in docs])
    seen: set[str] = set()
    out: list[Document] = []
    for doc, known in zip(docs, listed, strict=True):
        key = keys[id(doc)]
        if not known and key not in seen:
            seen.add(key)
            out.append(doc)
    return out


PREFETCHED_CHUNK = 128
"""Texts the store upserts at a time when their vectors are embedded ahead (the first this many that have
come, `PrefetchedEmbeddings.embed_as_ready`): taking vectors costs nothing then, so the chunk only sets how
soon the upserts start behind the endpoint and how many trail the last answer (2,000 texts, 4 TEI
instances: 0.80 of capacity against 0.79 with the store's own 256; the same at 20,000; 32 and 64 were
worse, medians 0.61 and 0.66 against 0.71 for 128 over 4 interleaved rounds: more upserts)."""


def _embedding_ahead(
    store: VectorStore, docs: list[Document], ahead: int
) -> tuple[VectorStore, PrefetchedEmbeddings | None]:
    """`store` embedding `docs` ahead of `index()` (`stores.prefetch`) when it can take other embeddings."""
    swap = getattr(store, "with_embeddings", None)
    embeddings = getattr(store, "embeddings", None)
    if swap is None or embeddings is None or not docs:
        return store, None
    from sagerag.stores.prefetch import PrefetchedEmbeddings

    prefetch = PrefetchedEmbeddings.for_embeddings(embeddings, [d.page_content for d in docs], ahead)
    return swap(prefetch, embed_batch_size=PREFETCHED_CHUNK), prefetch


INGEST_BATCH = 512
"""Documents `index()` stores, then records in the ledger, at a time by default."""


def _batch_for(prefetch: PrefetchedEmbeddings | None) -> int:
    """`INGEST_BATCH`, or the prefetch's window when that is more (1,024 texts for NPY answers): a batch of
    whole windows is upserted as its calls answer (`embed_as_ready`), where a window cut in two batches
    left the second half's upserts, all ready at once, for after its last answer (toolkit-free-npy at 4
    instances: ~40 ms of a ~1 s ingest of 2,000 texts)."""
    return max(INGEST_BATCH, prefetch.window) if prefetch is not None else INGEST_BATCH


PARSE_PROCESSES_MIN_TEXTS = 2000
"""Fewer texts to embed than this, and an ingest parses answers in its own threads: against 4 toolkit
instances of 4 workers, 2 workers gained 8-14% at 2,000 texts (3 interleaved pairs) and were a wash at 500
and 1,000 (-10% to +17%): a short ingest is over before they pay for their start."""


def parse_processes_for(texts: int, cpus: int | None = None) -> int:
    """Worker processes parsing a token-level endpoint's answers for an ingest of `texts` texts, by default:
    none for a small ingest or one CPU, else one a CPU up to 4 (on 2 CPUs, 2 workers, with 32 requests in
    flight, took 4 toolkit instances of 4 workers from a median 0.565 to 0.745 of their capacity; 1 worker
    was slower than none: docs/benchmarks.md, "Parsing on several cores"). `cpus`: this machine's when None
    (the scale model asks for another's)."""
    if cpus is None:
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return 0 if texts < PARSE_PROCESSES_MIN_TEXTS or cpus < 2 else min(4, cpus)


def _parsing_processes(store: VectorStore, texts: int, processes: int | None) -> AbstractContextManager[Any]:
    """The store's content handler parsing answers in worker processes for the ingest, when it can."""
    handler = getattr(getattr(store, "embeddings", None), "content_handler", None)
    start = getattr(handler, "pooling_processes", None)
    count = parse_processes_for(texts) if processes is None else processes
    return start(count) if start is not None and count > 0 else nullcontext()


def ingest_documents(
    docs: list[Document],
    store: VectorStore,
    records_db: Path,
    records_namespace: str,
    prune: bool = False,
    batch_size: int | None = None,
    progress: Callable[[int], None] | None = None,
    sparse_stats: Path | None = None,
    on_wait: Callable[[HolderInfo], None] | None = None,
    parse_processes: int | None = None,
) -> IngestResult:
    """Store `docs` idempotently: unchanged ones are skipped, changed ones replace their old vectors.

    With `sparse_stats` (a file path) and a store on a dotproduct index, BM25 statistics are fitted
    there and every vector gets sparse values too (`fit_sparse`). Holds the ledger's lock for the whole
    run (`on_wait` is told when another ingest has it), so the counts are what this run wrote.
    LangChain's indexing API counts a changed document as one added and one deleted (ids are content
    hashes); we report it as updated: an old key of a source that is still present, replaced by a new one.

    `index()` stores `batch_size` documents at a time (None: `INGEST_BATCH`, or a whole window of the
    vectors embedded ahead when that is more, 1,024 for NPY answers) and writes the ledger after each
    batch, once the store acknowledged it; a killed ingest redoes at most that batch. The documents it will
    store are known before it starts (their keys are not in the ledger), so their ids and metadata are
    checked first (bad input sends and stores nothing) and a store that can
    (`PineconeStore.with_embeddings`) gets their vectors embedded up to two batches ahead, while earlier
    batches are upserted and recorded (`stores.prefetch`; docs/benchmarks.md, "The pooled path at 4
    instances"). A token-level endpoint's answers are parsed in `parse_processes` worker processes (None:
    `parse_processes_for` the texts to embed; 0: in the requesting threads).
    """
    from langchain_core.indexing import index

    lock = records_db.with_name(records_db.name + ".lock")
    manager: SQLiteRecordManager | None = None
    try:
        with hold(lock, {"command": "ingest"}, wait=True, on_wait=on_wait):
            if sparse_stats is not None:
                docs = fit_sparse(docs, store, sparse_stats, prune)
            manager = record_manager(records_db, records_namespace)
            missing = missing_from_store(manager, store)
            if missing:
                manager.delete_keys(missing)
            keys = {id(doc): document_key(doc) for doc in docs}
            storing = _to_store(docs, keys, manager)
            check = getattr(store, "check_documents", None)
            if check is not None:
                check(storing, [keys[id(doc)] for doc in storing])
            with _parsing_processes(store, len(storing), parse_processes):
                target, prefetch = _embedding_ahead(store, storing, 2 * (batch_size or INGEST_BATCH))
                finished = False
                try:
                    sources = list({str(doc.metadata.get("source")) for doc in docs})
                    before = _stored_keys(manager, sources)  # while the first requests are in flight
                    result = index(
                        _counting(docs, progress),
                        manager,
                        target,
                        batch_size=batch_size or _batch_for(prefetch),
                        cleanup="full" if prune else "incremental",
                        source_id_key="source",
                        key_encoder=lambda doc: keys.get(id(doc)) or document_key(doc),
                    )
                    finished = True
                finally:
                    if prefetch is not None:  # a failed or interrupted run does not wait for its requests
                        prefetch.close(wait=finished)
            # Only to count replaced keys (`before - after`): none when the ledger had none of these sources.
            after = _stored_keys(manager, sources) if before else set()
    except Exception as exc:
        where = lock if isinstance(exc, OSError) and not records_db.exists() else records_db
        raise (explain(exc, where, LEDGER_REBUILD) or exc) from None
    finally:
        if manager is not None:
            manager.close()
    replaced = min(result["num_added"], len(before - after))
    warnings = []
    if missing:
        warnings.append(
            f"the ledger {records_db} listed {len(missing)} documents the store no longer holds "
            "(index deleted or reset?); they were stored again if still in the sources"
        )
    return IngestResult(
        result["num_added"] - replaced,
        result["num_updated"] + replaced,
        result["num_skipped"],
        result["num_deleted"] - replaced,
        warnings,
        restored=len(missing),
    )
