"""`PineconeStore`: a LangChain vector store on the current `pinecone` SDK (10.x).

Why not langchain-pinecone: it pins `pinecone<8` and gives re-ingested documents fresh uuid4 ids, so
re-running an ingest duplicates the corpus. Here ids are stable (caller's id, else `Document.id`, else a
sha256 of source and text), upserts are split to Pinecone's request limits and retried on 429/5xx, and
scores are "higher is better" for every metric.

Scores: cosine -> cosine similarity; dotproduct -> dot product; euclidean -> `1 / (1 + d²)` where d² is
the squared distance Pinecone returns, so 1.0 is identical and scores fall towards 0 with distance.

Hybrid search: given fitted BM25 statistics (`sparse`) the store upserts each text's sparse values next to
its dense ones (dotproduct index) and, with `alpha < 1`, queries with both, weighted as Pinecone documents
(`stores.sparse.hybrid_query`): the score is `alpha * cosine + (1 - alpha) * BM25` for unit dense vectors.
Each vector's metadata records the statistics version it was encoded with; a hybrid query that meets
another version stops with `SparseStatsMismatchError` instead of ranking on inconsistent scores. With no
statistics at hand (ingested from another data directory) queries are dense-only, with one warning.
"""

from __future__ import annotations

import copy
import functools
import hashlib
import logging
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, wait
from typing import Any

from langchain_core.documents import Document
from langchain_core.embeddings import Embeddings
from langchain_core.vectorstores import VectorStore

from sagerag.errors import IndexMismatchError, SparseStatsMismatchError
from sagerag.stores import _retry
from sagerag.stores._batching import check_record, check_size, record_size, split_batches, values_size_bound
from sagerag.stores._index import index_shape
from sagerag.stores.sparse import VERSION_KEY, BM25Stats, hybrid_query

_log = logging.getLogger(__name__)
_FETCH_CHUNK = 100  # ids travel in the query string; keep URLs short
_DELETE_CHUNK = 1000


def stable_id(text: str, metadata: dict[str, Any] | None) -> str:
    """Same source and text -> same id, so re-adding a document overwrites it instead of duplicating."""
    source = str((metadata or {}).get("source", ""))
    return hashlib.sha256(f"{source}\x1f{text}".encode()).hexdigest()


def _floats(values: Sequence[float]) -> list[float]:
    """The values as a list of Python floats: as they are when an embeddings class gave a list of floats
    (TEI's `tolist()`), which saves a conversion per value; converted otherwise."""
    if type(values) is list and (not values or type(values[0]) is float):
        return values
    return [float(x) for x in values]


def _plain(value: Any) -> Any:
    """Python scalars for JSON (numpy floats and ints are rejected by the SDK)."""
    if hasattr(value, "item") and not isinstance(value, list | dict | str):
        return value.item()
    return value


class PineconeStore(VectorStore):
    """LangChain `VectorStore` over one Pinecone index (any host the SDK can reach, local or cloud)."""

    def __init__(
        self,
        index: Any,
        embedding: Embeddings,
        namespace: str = "",
        text_key: str = "text",
        *,
        metric: str | None = None,
        max_workers: int = 4,
        max_attempts: int = 5,
        embed_batch_size: int = 256,
        sparse: BM25Stats | None = None,
        alpha: float = 1.0,
        index_name: str | None = None,
    ) -> None:
        if not 0.0 <= alpha <= 1.0:
            raise ValueError(f"alpha must be between 0 and 1, got {alpha}")
        self._index = index
        self._embedding = embedding
        self.namespace = namespace
        self.text_key = text_key
        self._metric = metric
        self.max_workers = max_workers
        self.max_attempts = max_attempts
        self.embed_batch_size = embed_batch_size
        self.sparse = sparse
        """Fitted BM25 statistics: texts are upserted with sparse values when set (dotproduct index)."""
        self.alpha = alpha
        """Dense weight of a hybrid query; 1.0 (the default) queries the dense part only."""
        self.index_name = index_name
        self._warned = False

    @property
    def hybrid(self) -> bool:
        """True when queries weight in BM25 scores (`alpha` < 1); needs a dotproduct index."""
        return self.alpha < 1.0

    def _require_dotproduct(self) -> None:
        if self.metric != "dotproduct":
            name = self.index_name or self._host()
            raise IndexMismatchError(
                f"Pinecone index {name!r} uses the {self.metric} metric and cannot hold or query sparse "
                "values; hybrid retrieval needs a dotproduct index: set SAGERAG_RETRIEVAL=dense to use it "
                "dense-only, or use another index name (SAGERAG_PINECONE_INDEX) and re-ingest"
            )

    @classmethod
    def from_index_name(
        cls,
        pc: Any,
        index_name: str,
        embedding: Embeddings,
        namespace: str = "",
        text_key: str = "text",
        **kwargs: Any,
    ) -> PineconeStore:
        """Describe the index once (host and metric) and build the store from a `Pinecone` client."""
        description = pc.indexes.describe(index_name)
        _, metric = index_shape(description)
        return cls(
            pc.Index(host=description.host),
            embedding,
            namespace,
            text_key,
            metric=metric,
            index_name=index_name,
            **kwargs,
        )

    @property
    def embeddings(self) -> Embeddings:
        return self._embedding

    def with_embeddings(self, embedding: Embeddings, embed_batch_size: int | None = None) -> PineconeStore:
        """The same store (index, namespace, settings) embedding with `embedding`, in chunks of
        `embed_batch_size` if given: how an ingest hands it vectors computed ahead (`stores.prefetch`)."""
        store = copy.copy(self)
        store._embedding = embedding
        if embed_batch_size is not None:
            store.embed_batch_size = embed_batch_size
        return store

    @property
    def index(self) -> Any:
        return self._index

    @property
    def metric(self) -> str:
        """The index's metric; asked of `describe_index_stats` once when not given."""
        if self._metric is None:
            stats = self._call(lambda: self._index.describe_index_stats())
            self._metric = str(getattr(stats, "metric", None) or "cosine").lower()
        return self._metric

    def _host(self) -> str:
        return str(getattr(self._index, "host", "the Pinecone index"))

    def _call(self, fn: Callable[[], Any]) -> Any:
        return _retry.call(fn, self._host(), attempts=self.max_attempts)

    def _ns(self, namespace: str | None) -> str:
        return self.namespace if namespace is None else namespace

    # -- writing ----------------------------------------------------------------------------------------
    def add_texts(
        self,
        texts: Iterable[str],
        metadatas: list[dict] | None = None,
        *,
        ids: Sequence[str | None] | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> list[str]:
        """Embed and upsert; ids are the caller's, else stable hashes of (source, text)."""
        texts = list(texts)
        metadatas = metadatas or [{} for _ in texts]
        given = list(ids) if ids is not None else [None] * len(texts)
        if len(metadatas) != len(texts) or len(given) != len(texts):
            raise ValueError("texts, metadatas and ids must have the same length")
        final_ids = [i if i else stable_id(t, m) for t, m, i in zip(texts, metadatas, given, strict=True)]
        ns = self._ns(namespace)
        # Ids and metadata are checked before anything is embedded or sent: bad input stores nothing.
        records_metadata, base_sizes = self._checked(texts, metadatas, final_ids)
        # Embed chunk by chunk and upsert each chunk while the next one is embedded: the endpoint and
        # Pinecone work at the same time instead of in turn. Returns once every upsert is acknowledged.
        with ThreadPoolExecutor(max_workers=self.max_workers, thread_name_prefix="sagerag-upsert") as pool:
            pending: list[Future[None]] = []
            try:
                for chunk, vectors in self._embedded(texts):
                    records, sizes = self._records(
                        [final_ids[i] for i in chunk],
                        [records_metadata[i] for i in chunk],
                        [base_sizes[i] for i in chunk],
                        vectors,
                    )
                    pending += [pool.submit(self._send, batch, ns) for batch in split_batches(records, sizes)]
            except BaseException:
                wait(pending)  # what was sent stays sent (ids are stable: a re-run overwrites it)
                raise
            for future in pending:
                future.result()
        return final_ids

    def _embedded(self, texts: list[str]) -> Iterator[tuple[list[int], list[list[float]]]]:
        """Chunks of `texts` to upsert, as (positions, vectors), about `embed_batch_size` each: in order, or,
        from embeddings that hand vectors over as they are computed (`PrefetchedEmbeddings.embed_as_ready`),
        in the order they come, so that little is left to upsert after the last answer."""
        size = self.embed_batch_size
        as_ready = getattr(self._embedding, "embed_as_ready", None)
        if as_ready is None:
            for start in range(0, len(texts), size):
                yield (
                    list(range(start, min(start + size, len(texts)))),
                    self._embedding.embed_documents(texts[start : start + size]),
                )
            return
        held: list[int] = []
        vectors: list[list[float]] = []
        awaited = len(texts)
        for positions, ready in as_ready(texts):
            held += positions
            vectors += ready
            awaited -= len(positions)
            # a full chunk, or, near the end, as many as are still to come: the last upsert carries little
            # more than the last call's vectors
            if len(held) >= min(size, awaited):
                yield held, vectors
                held, vectors = [], []

    def check_documents(self, documents: Sequence[Document], ids: Sequence[str]) -> None:
        """Raise what `add_documents(documents, ids=ids)` would for their ids and metadata, sending nothing:
        an ingest checks every document it will store before it embeds or stores any."""
        self._checked([d.page_content for d in documents], [dict(d.metadata) for d in documents], ids)

    def _checked(
        self, texts: Sequence[str], metadatas: Sequence[dict | None], ids: Sequence[str]
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Each record's metadata (text included) and its size without values, after checking ids and
        metadata against Pinecone's limits."""
        if self.sparse is not None:
            self._require_dotproduct()
        records_metadata = [self._metadata(meta, text) for meta, text in zip(metadatas, texts, strict=True)]
        sizes = [
            check_record({"id": vector_id, "metadata": metadata})
            for vector_id, metadata in zip(ids, records_metadata, strict=True)
        ]
        return records_metadata, sizes

    def _metadata(self, meta: dict | None, text: str) -> dict[str, Any]:
        metadata = {k: _plain(v) for k, v in (meta or {}).items() if v is not None}
        metadata[self.text_key] = text
        return metadata

    def _records(
        self,
        ids: list[str],
        metadatas: list[dict[str, Any]],
        base_sizes: list[int],
        vectors: list[list[float]],
    ) -> tuple[list[dict[str, Any]], list[int]]:
        """Pinecone records for one chunk (`metadatas` and `base_sizes` as `_checked` gave them), and a bound
        of each one's size for packing requests: the values are not serialised to be measured (that was
        ~11 us a record, a tenth of the client's work per document on a pooled endpoint)."""
        records: list[dict[str, Any]] = []
        sizes: list[int] = []
        for vector_id, metadata, base, values in zip(ids, metadatas, base_sizes, vectors, strict=True):
            text = metadata[self.text_key]
            record = {"id": vector_id, "values": _floats(values), "metadata": metadata}
            size = base + values_size_bound(len(values))
            if self.sparse is not None:  # measured exactly: its metadata grew, and sparse values are added
                metadata[VERSION_KEY] = self.sparse.version
                encoded = self.sparse.encode_document(text)
                if encoded.indices:  # Pinecone refuses empty sparse values
                    record["sparse_values"] = encoded.as_dict()
                size = record_size({**record, "values": []}) + values_size_bound(len(values))
            sizes.append(check_size(record, size))
            records.append(record)
        return records, sizes

    def add_documents(self, documents: list[Document], **kwargs: Any) -> list[str]:
        """Like the base class, but `Document.id` fills in per document where `ids` gives none."""
        ids = kwargs.pop("ids", None)
        doc_ids = [
            (ids[i] if ids is not None and i < len(ids) and ids[i] else None) or doc.id
            for i, doc in enumerate(documents)
        ]
        return self.add_texts(
            [d.page_content for d in documents], [dict(d.metadata) for d in documents], ids=doc_ids, **kwargs
        )

    def _send(self, batch: list[Any], namespace: str) -> None:
        self._call(lambda: self._index.upsert(vectors=batch, namespace=namespace))

    def delete(
        self,
        ids: list[str] | None = None,
        *,
        delete_all: bool | None = None,
        filter: dict[str, Any] | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> bool | None:
        """Delete by ids, by metadata filter, or everything in the namespace (`delete_all=True`)."""
        ns = self._ns(namespace)
        if delete_all:
            self._call(lambda: self._index.delete(delete_all=True, namespace=ns))
        elif ids is not None:
            for start in range(0, len(ids), _DELETE_CHUNK):
                chunk = list(ids[start : start + _DELETE_CHUNK])
                if chunk:
                    self._call(functools.partial(self._index.delete, ids=chunk, namespace=ns))
        elif filter is not None:
            self._call(lambda: self._index.delete(filter=filter, namespace=ns))
        else:
            raise ValueError("delete needs ids, filter or delete_all=True")
        return True

    # -- reading ----------------------------------------------------------------------------------------
    def get_by_ids(self, ids: Sequence[str], /, *, namespace: str | None = None) -> list[Document]:
        """Documents for the ids that exist, in the order asked; missing ids are skipped."""
        ns = self._ns(namespace)
        found: dict[str, Document] = {}
        for start in range(0, len(ids), _FETCH_CHUNK):
            chunk = list(ids[start : start + _FETCH_CHUNK])
            response = self._call(functools.partial(self._index.fetch, ids=chunk, namespace=ns))
            for vector_id, vector in response.vectors.items():
                found[vector_id] = self._document(vector_id, vector.metadata)
        return [found[i] for i in ids if i in found]

    def _document(self, vector_id: str, metadata: dict[str, Any] | None) -> Document:
        meta = dict(metadata or {})
        text = meta.pop(self.text_key, "")
        return Document(id=vector_id, page_content=str(text), metadata=meta)

    def _score(self, raw: float) -> float:
        if self.metric == "euclidean":
            return 1.0 / (1.0 + max(raw, 0.0))
        return raw

    def similarity_search_by_vector_with_score(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        """Top `k` with similarity scores (higher is better for every metric).

        With `text` (the query's words) and a hybrid store, the query adds its BM25 sparse part and the
        score is `alpha * dense + (1 - alpha) * sparse`."""
        ns = self._ns(namespace)
        text = kwargs.get("text")
        vector = [float(x) for x in embedding]
        sparse_vector: dict[str, Any] | None = None
        hybrid = self.hybrid and text is not None
        if hybrid:
            self._require_dotproduct()
            if self.sparse is not None:  # None: nothing ingested with sparse values yet (checked below)
                vector, sparse = hybrid_query(vector, self.sparse.encode_query(str(text)), self.alpha)
                sparse_vector = sparse.as_dict() if sparse is not None else None
        response = self._call(
            lambda: self._index.query(
                vector=vector,
                sparse_vector=sparse_vector,
                top_k=k,
                filter=filter or None,
                namespace=ns,
                include_metadata=True,
            )
        )
        if hybrid:
            self._check_versions(response.matches, ns)
        return [(self._document(m.id, m.metadata), self._score(float(m.score))) for m in response.matches]

    def _check_versions(self, matches: Sequence[Any], namespace: str) -> None:
        """Stop when a hit was encoded with other BM25 statistics than the query's (scores would mix)."""
        name = self.index_name or self._host()
        if self.sparse is None:
            # Statistics written by an ingest elsewhere (a remote Pinecone, another data directory): the
            # dense part alone is still a consistent ranking, so answer with it and say how to get hybrid.
            if not self._warned and any(VERSION_KEY in (m.metadata or {}) for m in matches):
                self._warned = True
                _log.warning(
                    "index %r (namespace %r) holds sparse vectors, but their BM25 statistics are not in this "
                    "data directory, so queries are dense-only; run `sagerag ingest` on the corpus here (it "
                    "refits them) or point SAGERAG_DATA_DIR at the ingesting one",
                    name,
                    namespace,
                )
            return
        expected = self.sparse.version
        for match in matches:
            found = (match.metadata or {}).get(VERSION_KEY)
            if found != expected:
                what = f"BM25 statistics version {found}" if found else "no sparse values"
                raise SparseStatsMismatchError(
                    f"index {name!r} (namespace {namespace!r}) holds vectors written with {what}, but the "
                    f"statistics in use are version {expected}: the corpus was re-ingested elsewhere or the "
                    "statistics file was replaced; re-run `sagerag ingest --prune` on the corpus to rewrite "
                    "them, or set SAGERAG_RETRIEVAL=dense"
                )

    def similarity_search_with_score(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> list[tuple[Document, float]]:
        return self.similarity_search_by_vector_with_score(
            self._embedding.embed_query(query), k, filter=filter, namespace=namespace, text=query
        )

    def similarity_search(
        self,
        query: str,
        k: int = 4,
        filter: dict[str, Any] | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return [d for d, _ in self.similarity_search_with_score(query, k, filter=filter, namespace=namespace)]

    def similarity_search_by_vector(
        self,
        embedding: list[float],
        k: int = 4,
        filter: dict[str, Any] | None = None,
        namespace: str | None = None,
        **kwargs: Any,
    ) -> list[Document]:
        return [
            d
            for d, _ in self.similarity_search_by_vector_with_score(
                embedding, k, filter=filter, namespace=namespace
            )
        ]

    def _select_relevance_score_fn(self) -> Callable[[float], float]:
        """Map our scores to [0, 1] for `similarity_score_threshold` retrievers."""
        if self.metric == "euclidean":
            return lambda score: score
        return lambda score: (score + 1.0) / 2.0

    @classmethod
    def from_texts(
        cls,
        texts: list[str],
        embedding: Embeddings,
        metadatas: list[dict] | None = None,
        *,
        ids: list[str] | None = None,
        index: Any = None,
        namespace: str = "",
        text_key: str = "text",
        **kwargs: Any,
    ) -> PineconeStore:
        """Build a store over `index` (a `pinecone` Index object) and add `texts` to it."""
        if index is None:
            raise ValueError("PineconeStore.from_texts needs index=<pinecone Index>")
        store = cls(index, embedding, namespace=namespace, text_key=text_key, **kwargs)
        store.add_texts(texts, metadatas, ids=ids)
        return store
