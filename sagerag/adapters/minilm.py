"""Content handler for a MiniLM `feature-extraction` endpoint: token vectors in, sentence vectors out.

The Hugging Face inference toolkit returns one vector per token. Older containers pad the batch to its
longest input, and the padding positions hold real model outputs, so averaging every position (as the
Pinecone RAG-on-SageMaker tutorial does) drags short texts towards the padding. We average over each
input's real tokens only, counting them with the model's own tokenizer when the output is padded.

The toolkit writes its answer with Python's `json` (~20 bytes a value), which costs the endpoint ~45 times
its forward pass and the client most of its CPU. Asked for NPY (`binary=True`), the same container writes
`np.save`'s float64 (8 bytes a value) about ten times faster, and reading it costs the client next to
nothing; but the toolkit's `np.save` refuses a batch whose texts differ in token count, so such requests
only group texts of equal count (`batch_keys`).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
import orjson
from langchain_aws.utils import ContentHandlerBase

from sagerag.adapters.pooling_workers import PoolingProcesses
from sagerag.adapters.token_vectors import (
    NPY,
    NPY_MAGIC,
    TokenVectors,
    depth,
    mean_pool,
    npy_matrices,
    pool_tokens,
    token_counts,
    token_matrices,
)
from sagerag.errors import ConfigurationError, EmbeddingOutputError

DEFAULT_MAX_TOKENS = 512
"""The container's tokenizer limit for BERT-style models (its model_max_length)."""
DEFAULT_DIMENSION = 384
"""all-MiniLM-L6-v2's vector size."""
JSON_BYTES_PER_VALUE = 24
"""Response bytes per float as the Hugging Face inference toolkit writes them: its float32 outputs go
through Python's `json` as doubles (`-0.012345678359270096, `: 20-23 bytes with the separator)."""
NPY_BYTES_PER_VALUE = 8
"""Asked for NPY, the toolkit `np.save`s the same nested lists of Python floats: float64."""


def _float_array(value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise EmbeddingOutputError(
            "the embedding endpoint's token vectors are not equal-length lists of numbers"
        ) from None


class MiniLMContentHandler(ContentHandlerBase[list[str], list[list[float]]]):
    """Texts in, pooled (and by default L2-normalised) embeddings out, for any output shape.

    Shapes read: padded `(batch, max_len, dim)`, ragged per input `(1, len_i, dim)` or `(len_i, dim)`,
    and already pooled `(batch, dim)`; also `{"embeddings"|"embedding"|"vectors": ...}` wrappers.
    `transform_input` remembers the texts (per thread) so `transform_output` can count real tokens when
    the handler is plugged into the stock LangChain classes; `pool(output, texts)` is the explicit form.

    The response is one vector per *token*, so it is the large side of SageMaker's 6 MB limit:
    `estimate_response_bytes` sizes it from token counts so that `SagemakerEmbeddings` can cut batches
    the endpoint will accept. For langchain-community's `SagemakerEndpointEmbeddings`, which checks its
    handler's class, mix in its base: `class Handler(MiniLMContentHandler, EmbeddingsContentHandler): ...`.
    """

    content_type = "application/json"
    accepts = "application/json"

    def __init__(
        self,
        tokenizer_path: str | Path | None = None,
        normalize: bool = True,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        dimension: int = DEFAULT_DIMENSION,
        bytes_per_value: float | None = None,
        binary: bool = False,
    ):
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else None
        self.normalize = normalize
        self.max_tokens = max_tokens
        self.dimension = dimension
        self.binary = binary
        """Ask for NPY answers (`Accept: application/x-npy`); JSON answers are still read."""
        if binary:
            self.accepts = NPY
        default_width = NPY_BYTES_PER_VALUE if binary else JSON_BYTES_PER_VALUE
        self.bytes_per_value = default_width if bytes_per_value is None else bytes_per_value
        self._last_texts = threading.local()
        self._processes: PoolingProcesses | None = None
        self._counted: dict[str, int] = {}
        """The last `token_counts` call's texts and counts: a plan asks for the same texts twice (batch
        keys, then response estimates), and a text takes ~20 us to count (`SegmentCounts`)."""

    # LangChain's ContentHandlerBase protocol
    def transform_input(self, prompt: list[str], model_kwargs: dict[str, Any]) -> bytes:
        texts = [prompt] if isinstance(prompt, str) else list(prompt)
        self._last_texts.value = texts
        return json.dumps({"inputs": texts, **model_kwargs}).encode("utf-8")

    def transform_output(self, output: Any) -> list[list[float]]:
        raw = output.read() if hasattr(output, "read") else output
        texts = getattr(self._last_texts, "value", None)
        return self.pool_body(raw, texts).tolist()

    # response size
    pads_batches = True
    """Older containers pad every input to the batch's longest: size a batch as count x longest."""

    def estimate_response_bytes(self, texts: Sequence[str]) -> list[int]:
        """Expected response bytes of each text alone: its tokens x dimension x bytes per value.

        Token counts come from the model's tokenizer; without it (no `local` extra, no tokenizer_path)
        they are bounded from the text's length, and a refused batch is still split by the caller.
        """
        try:
            counts = self.token_counts(texts)
        except ConfigurationError:
            counts = [min(self.max_tokens, len(t.encode("utf-8")) // 2 + 2) for t in texts]
        per_token = self.dimension * self.bytes_per_value + 4  # the values, then "[", "]" and ", "
        return [int(count * per_token) + 8 for count in counts]

    @property
    def groups_by_key(self) -> bool:
        """Whether `batch_keys` restricts which texts share a request (asking for NPY)."""
        return self.binary

    def batch_keys(self, texts: Sequence[str]) -> list[int] | None:
        """Texts may share a request only where their keys are equal; None: any may. Asking for NPY, the
        key is the token count, or without the tokenizer each text's position (one text a request)."""
        if not self.binary:
            return None
        try:
            return self.token_counts(texts)
        except ConfigurationError:
            return list(range(len(texts)))

    # pooling
    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Real token count of each text (special tokens included, as the model saw them)."""
        known = self._counted  # replaced, never changed in place: threads may count at once
        missing = [t for t in dict.fromkeys(texts) if t not in known]
        if missing:
            fresh = token_counts(missing, self.tokenizer_path, self.max_tokens)
            known = {**known, **dict(zip(missing, fresh, strict=True))}
        counts = [known[t] for t in texts]
        self._counted = dict(zip(texts, counts, strict=True))
        return counts

    @contextmanager
    def pooling_processes(self, processes: int) -> Iterator[None]:
        """While open, token-level answers are parsed and pooled in `processes` worker processes
        (`pooling_workers`) for whichever thread reads them; 0: in that thread, as outside.

        A subclass that overrides `token_counts` keeps its parsing in the caller's thread: a worker counts
        tokens with the tokenizer file, and would pool a padded answer over other lengths. So does a
        `binary` handler: reading NPY costs less than handing it to a worker.
        """
        counts_overridden = type(self).token_counts is not MiniLMContentHandler.token_counts
        if processes <= 0 or self._processes is not None or counts_overridden or self.binary:
            yield
            return
        self._processes = PoolingProcesses(
            processes, normalize=self.normalize, tokenizer=self.tokenizer_path, max_tokens=self.max_tokens
        )
        try:
            yield
        finally:
            workers, self._processes = self._processes, None
            workers.close()

    def pool_body(self, raw: bytes, texts: Sequence[str] | None = None) -> np.ndarray:
        """Pool an endpoint's answer (JSON, or NPY) into one row per input: `pool` after parsing it."""
        if raw[: len(NPY_MAGIC)] == NPY_MAGIC:
            found = npy_matrices(raw)
            if found is None:
                raise EmbeddingOutputError(
                    "the embedding endpoint's NPY answer is not a float array of token vectors (a "
                    "container with numpy older than 1.24 pickles texts of different token counts): "
                    "ask for JSON answers instead (binary=False)"
                )
            return self._pool_tokens(*found, texts)
        workers = self._processes
        pooled = workers.pool(raw, texts) if workers is not None else None
        if pooled is not None:
            return pooled
        parsed = token_matrices(raw)
        if parsed is None:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise EmbeddingOutputError(f"the embedding endpoint's answer is not JSON: {exc}") from None
            return self.pool(data, texts)
        levels, matrices = parsed
        return self._pool_tokens(levels, matrices, texts)

    def pool(self, data: Any, texts: Sequence[str] | None = None) -> np.ndarray:
        """Pool a parsed endpoint output into one row per input."""
        if isinstance(data, dict):
            for key in ("embeddings", "embedding", "vectors", "outputs"):
                if key in data:
                    return self.pool(data[key], texts)
            raise EmbeddingOutputError(f"unexpected embedding output keys: {sorted(data)}")
        levels = depth(data)
        n_inputs = len(texts) if texts is not None else None
        if levels == 4:  # one (1, len_i, dim) array per input
            items = [_float_array(item) for item in data]
            if any(item.ndim != 3 or item.shape[0] != 1 for item in items):
                raise EmbeddingOutputError("expected one (1, tokens, dim) array per input")
            return self._pool_tokens(4, [item[0] for item in items], texts)
        if levels == 3:
            return self._pool_tokens(3, [_float_array(item) for item in data], texts)
        if levels == 2:
            matrix = np.asarray(data, dtype=np.float64)
            if n_inputs == 1 and matrix.shape[0] != 1:
                # one input's (tokens, dim) matrix without its batch axis
                return mean_pool([matrix], None, self.normalize)
            # already pooled: one row per input
            return mean_pool([row[None, :] for row in matrix], None, self.normalize)
        raise EmbeddingOutputError(f"cannot pool an embedding output nested {levels} deep")

    def _pool_tokens(self, levels: int, items: TokenVectors, texts: Sequence[str] | None) -> np.ndarray:
        return pool_tokens(levels, items, texts, self.normalize, self.token_counts)
