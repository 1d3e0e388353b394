"""A BM25 sparse encoder for Pinecone's single-index hybrid search, and its persisted statistics.

The split follows Pinecone's BM25 recipe (as `pinecone-text` does it): a document vector holds each
term's saturated, length-normalised frequency `tf / (tf + k1 * (1 - b + b * len / avgdl))`, a query vector
holds each term's idf normalised to sum 1, so their dot product is a BM25 score scaled into [0, 1) and
comparable with a cosine. Term ids are CRC32 hashes (Pinecone indices are uint32), so a vector never
depends on a vocabulary.

Why our own and not `pinecone-text` or `bm25s` (README, "Why these libraries"): pinecone-text's tokenizer
downloads NLTK data (`punkt_tab`, `stopwords`) at run time, which fails offline, and it pulls in nltk,
mmh3, requests and python-dotenv; bm25s scores inside its own index and does not emit the query/document
vector split Pinecone needs. This module needs the standard library and numpy-free arithmetic only.

Versioning: document vectors depend on the tokenizer, `k1`, `b` and `avgdl`, the *version* hashes exactly
those, and every stored vector carries it in its metadata (`sparse_version`). Query vectors depend on the
document frequencies, which can grow with each ingest without invalidating stored vectors. `avgdl` is
refit only when there are no statistics yet or the ingest replaces the whole corpus (`--prune`).
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import zlib
from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sagerag.errors import ConfigurationError

TOKENIZER_VERSION = "words-v1"
"""Bump when `tokenize` changes: stored document vectors must then be rewritten."""
VERSION_KEY = "sparse_version"
"""Metadata key holding the statistics version each stored vector was encoded with."""
MAX_SPARSE_VALUES = 1000
"""Pinecone accepts at most 1000 non-zero values per sparse vector; longer documents keep their best."""

_WORD = re.compile(r"[a-z0-9]+")
# A small English stopword list: function words only, so that domain words ("model", "data") count.
_STOPWORD_TEXT = """a about above after again against all am an and any are as at be because been before
    being below between both but by can could did do does doing down during each few for from further had has have
    having he her here hers herself him himself his how i if in into is it its itself just me more most my
    myself no nor not now of off on once only or other our ours ourselves out over own same she should so
    some such than that the their theirs them themselves then there these they this those through to too
    under until up very was we were what when where which while who whom why will with would you your yours
    yourself yourselves s t don doesn isn aren wasn can't q also get use using used"""
STOPWORDS = frozenset(_STOPWORD_TEXT.split())


def _stem(word: str) -> str:
    """A light suffix stripper (plurals, -ing, -ed) so "instances"/"instance", "training"/"train" meet."""
    if len(word) > 4 and word.endswith("ies"):
        return word[:-3] + "y"
    if len(word) > 5 and word.endswith("ing"):
        return word[:-3]
    if len(word) > 4 and word.endswith("ed") and not word.endswith("eed"):
        return word[:-2]
    if len(word) > 3 and word.endswith("s") and not word.endswith(("ss", "us", "is")):
        return word[:-1]
    return word


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric words without stopwords, lightly stemmed."""
    return [_stem(w) for w in _WORD.findall(text.lower()) if w not in STOPWORDS]


def term_id(token: str) -> int:
    """A stable uint32 id for a token (CRC32: the same on every machine and Python run)."""
    return zlib.crc32(token.encode("utf-8"))


def term_counts(text: str) -> Counter[int]:
    return Counter(term_id(t) for t in tokenize(text))


@dataclass
class SparseVector:
    """Pinecone's sparse_values: parallel lists of uint32 indices and float weights."""

    indices: list[int]
    values: list[float]

    def as_dict(self) -> dict[str, list[Any]]:
        return {"indices": self.indices, "values": self.values}

    def scaled(self, factor: float) -> SparseVector:
        return SparseVector(list(self.indices), [v * factor for v in self.values])


@dataclass
class BM25Stats:
    """Fitted corpus statistics: per-source term sets (so re-ingesting never double counts) and avgdl."""

    avgdl: float
    k1: float = 1.2
    b: float = 0.75
    docs: dict[str, tuple[int, list[int]]] = field(default_factory=dict)
    """source -> (token count, sorted unique term ids) for every document in the namespace."""
    _df: Counter[int] | None = field(default=None, repr=False, compare=False)

    @property
    def version(self) -> str:
        """Hash of what document vectors depend on; stored in each vector's metadata."""
        key = json.dumps([TOKENIZER_VERSION, self.k1, self.b, round(self.avgdl, 6)])
        return hashlib.sha256(key.encode()).hexdigest()[:12]

    @property
    def n_docs(self) -> int:
        return len(self.docs)

    @property
    def doc_freq(self) -> Counter[int]:
        if self._df is None:
            df: Counter[int] = Counter()
            for _, terms in self.docs.values():
                df.update(terms)
            self._df = df
        return self._df

    @classmethod
    def fit(cls, corpus: Mapping[str, str], k1: float = 1.2, b: float = 0.75) -> BM25Stats:
        """Statistics of `corpus` (source -> text)."""
        stats = cls(avgdl=1.0, k1=k1, b=b)
        stats.add(corpus)
        lengths = [n for n, _ in stats.docs.values()]
        stats.avgdl = (sum(lengths) / len(lengths)) if lengths and sum(lengths) else 1.0
        return stats

    def add(self, corpus: Mapping[str, str]) -> None:
        """Add or replace documents' term sets; `avgdl` (and so the version) stays as it is."""
        for source, text in corpus.items():
            counts = term_counts(text)
            self.docs[source] = (sum(counts.values()), sorted(counts))
        self._df = None

    def keep_only(self, sources: Iterable[str]) -> None:
        keep = set(sources)
        self.docs = {s: d for s, d in self.docs.items() if s in keep}
        self._df = None

    # -- encoding ---------------------------------------------------------------------------------------
    def encode_document(self, text: str) -> SparseVector:
        """Saturated, length-normalised term frequencies (at most `MAX_SPARSE_VALUES`, the largest kept)."""
        counts = term_counts(text)
        length = sum(counts.values())
        norm = self.k1 * (1.0 - self.b + self.b * length / self.avgdl)
        weights = {i: tf / (tf + norm) for i, tf in counts.items()}
        if len(weights) > MAX_SPARSE_VALUES:
            weights = dict(sorted(weights.items(), key=lambda kv: -kv[1])[:MAX_SPARSE_VALUES])
        indices = sorted(weights)
        return SparseVector(indices, [weights[i] for i in indices])

    def encode_query(self, text: str) -> SparseVector:
        """Idf weights of the query's terms, normalised to sum 1; terms never seen at ingest are dropped
        (they match nothing), so a query of unseen words yields an empty vector and dense-only results."""
        df = self.doc_freq
        n = self.n_docs
        idf = {i: math.log((n + 1) / (df[i] + 0.5)) for i in set(term_counts(text)) if df.get(i)}
        idf = {i: w for i, w in idf.items() if w > 0}
        total = sum(idf.values())
        if not total:
            return SparseVector([], [])
        indices = sorted(idf)[:MAX_SPARSE_VALUES]
        return SparseVector(indices, [idf[i] / total for i in indices])

    # -- persistence ------------------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        return {
            "format": 1,
            "tokenizer": TOKENIZER_VERSION,
            "version": self.version,
            "k1": self.k1,
            "b": self.b,
            "avgdl": self.avgdl,
            "docs": {s: [n, terms] for s, (n, terms) in self.docs.items()},
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> BM25Stats:
        if data.get("tokenizer") != TOKENIZER_VERSION:
            raise ConfigurationError(
                f"the stored BM25 statistics use tokenizer {data.get('tokenizer')!r}, this sagerag uses "
                f"{TOKENIZER_VERSION!r}; re-run `sagerag ingest --prune` to refit and rewrite the vectors"
            )
        docs = {str(s): (int(v[0]), [int(t) for t in v[1]]) for s, v in data["docs"].items()}
        return cls(avgdl=float(data["avgdl"]), k1=float(data["k1"]), b=float(data["b"]), docs=docs)


def stats_path(data_dir: Path, records_namespace: str) -> Path:
    """Where an index/namespace's statistics live: beside the ingestion ledger, which ingest and query
    already share (for a remote Pinecone too), one file per ledger namespace."""
    digest = hashlib.sha256(records_namespace.encode()).hexdigest()[:16]
    return data_dir / "sparse" / f"bm25-{digest}.json"


def load_stats(path: Path) -> BM25Stats | None:
    """The persisted statistics, or None when nothing was ingested with sparse vectors yet."""
    try:
        raw = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        return BM25Stats.from_json(json.loads(raw))
    except (ValueError, KeyError, TypeError, IndexError):
        raise ConfigurationError(
            f"{path}: the BM25 statistics file is damaged; re-run `sagerag ingest --prune` to refit it"
        ) from None


def save_stats(stats: BM25Stats, path: Path) -> None:
    """Write atomically (temp file + rename), so a killed ingest never leaves half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(stats.to_json(), separators=(",", ":")), encoding="utf-8")
    tmp.replace(path)


def hybrid_query(
    dense: list[float], sparse: SparseVector, alpha: float
) -> tuple[list[float], SparseVector | None]:
    """Pinecone's documented convex combination (`hybrid_score_norm`): dense * alpha, sparse * (1 - alpha),
    so the index's dot product scores `alpha * dense + (1 - alpha) * sparse`. An empty sparse part is
    dropped (Pinecone refuses empty sparse vectors)."""
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
    scaled = [v * alpha for v in dense]
    if not sparse.indices or alpha == 1.0:
        return scaled, None
    return scaled, sparse.scaled(1.0 - alpha)
