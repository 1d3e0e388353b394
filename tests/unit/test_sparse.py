"""The BM25 sparse encoder: Pinecone's document/query split, versioning, persistence and limits."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from sagerag.errors import ConfigurationError
from sagerag.stores.sparse import (
    MAX_SPARSE_VALUES,
    BM25Stats,
    SparseVector,
    hybrid_query,
    load_stats,
    save_stats,
    stats_path,
    term_id,
    tokenize,
)

CORPUS = {
    "a": "Managed Spot Training works with all instances supported in SageMaker.",
    "b": "SageMaker Canvas is a visual interface for business analysts.",
    "c": "You can train models on GPU instances and deploy them to endpoints.",
}


def _dot(query: SparseVector, doc: SparseVector) -> float:
    weights = dict(zip(query.indices, query.values, strict=True))
    return sum(weights.get(i, 0.0) * v for i, v in zip(doc.indices, doc.values, strict=True))


def test_tokenize_drops_stopwords_and_meets_plurals() -> None:
    assert tokenize("Which INSTANCES can I use for training?") == ["instance", "train"]
    assert term_id("instance") == term_id(tokenize("instances")[0])


def test_bm25_ranks_by_rare_shared_terms_and_scores_stay_below_one() -> None:
    stats = BM25Stats.fit(CORPUS)
    docs = {s: stats.encode_document(t) for s, t in CORPUS.items()}
    query = stats.encode_query("does spot training work on gpu instances?")
    assert math.isclose(sum(query.values), 1.0)
    scores = {s: _dot(query, d) for s, d in docs.items()}
    assert max(scores, key=scores.__getitem__) == "a"
    assert all(0.0 <= score < 1.0 for score in scores.values())


def test_unseen_words_give_an_empty_query_and_hybrid_drops_it() -> None:
    stats = BM25Stats.fit(CORPUS)
    empty = stats.encode_query("zyxxy qwopt")
    assert empty.indices == []
    dense, sparse = hybrid_query([0.5, -0.5], empty, 0.7)
    assert dense == pytest.approx([0.35, -0.35]) and sparse is None
    dense, sparse = hybrid_query([1.0], stats.encode_query("canvas"), 0.25)
    assert dense == [0.25] and sparse is not None and sparse.values == pytest.approx([0.75])
    with pytest.raises(ValueError, match="alpha"):
        hybrid_query([1.0], empty, 1.5)


def test_version_is_kept_by_adding_documents_and_changed_by_a_refit() -> None:
    stats = BM25Stats.fit(CORPUS)
    version = stats.version
    stats.add({"d": "A new document about pipelines and many many other words to change the average."})
    assert stats.version == version and stats.n_docs == 4
    stats.add({"a": CORPUS["a"]})  # re-adding a source replaces it, never double counts
    assert stats.n_docs == 4 and stats.doc_freq[term_id("spot")] == 1
    assert BM25Stats.fit({**CORPUS, "d": "pipelines " * 40}).version != version


def test_long_documents_keep_pinecone_limit_of_non_zeros() -> None:
    text = " ".join(f"term{i}" for i in range(MAX_SPARSE_VALUES + 200))
    stats = BM25Stats.fit({"long": text})
    assert len(stats.encode_document(text).indices) == MAX_SPARSE_VALUES


def test_statistics_round_trip_and_damage_is_explained(tmp_path: Path) -> None:
    path = stats_path(tmp_path, "local/sagerag/")
    assert load_stats(path) is None
    stats = BM25Stats.fit(CORPUS)
    save_stats(stats, path)
    loaded = load_stats(path)
    assert loaded is not None and loaded.version == stats.version and loaded.doc_freq == stats.doc_freq
    assert stats_path(tmp_path, "local/other/") != path
    path.write_text("{not json", encoding="utf-8")
    with pytest.raises(ConfigurationError, match=r"damaged.*ingest --prune"):
        load_stats(path)
