"""Property-based tests: MiniLM pooling against a numpy reference, and context selection invariants.

`tests/test_prompts.py` already checks budget, order and de-duplication of `select_context`; here we add
the layout option (`best_last`) and hostile source ids, which that test does not generate.
"""

from __future__ import annotations

import json
import re
from typing import Any

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from langchain_core.documents import Document

from sagerag.adapters.minilm import MiniLMContentHandler
from sagerag.prompts import select_context


def reference_pool(padded: np.ndarray, lengths: list[int], normalize: bool = True) -> np.ndarray:
    """Masked mean pooling as sentence-transformers does it: sum(mask * tokens) / sum(mask)."""
    mask = (np.arange(padded.shape[1])[None, :] < np.asarray(lengths)[:, None]).astype(np.float64)
    summed = (padded.astype(np.float64) * mask[:, :, None]).sum(axis=1)
    pooled = summed / mask.sum(axis=1, keepdims=True)
    if normalize:
        norms = np.linalg.norm(pooled, axis=1, keepdims=True)
        pooled = pooled / np.where(norms == 0.0, 1.0, norms)
    return pooled


@st.composite
def token_batches(draw: st.DrawFn) -> tuple[np.ndarray, list[int]]:
    """A padded (batch, max_len, dim) float32 array whose padding holds junk, and each input's length."""
    batch = draw(st.integers(1, 5))
    dim = draw(st.integers(1, 8))
    lengths = draw(st.lists(st.integers(1, 7), min_size=batch, max_size=batch))
    max_len = max(lengths) + draw(st.integers(0, 2))
    seed = draw(st.integers(0, 2**32 - 1))
    rng = np.random.default_rng(seed)
    scale = draw(st.sampled_from([1e-3, 1.0, 50.0]))
    tokens = (rng.standard_normal((batch, max_len, dim)) * scale).astype(np.float32)
    return tokens, lengths


class _CountingHandler(MiniLMContentHandler):
    """The handler with the tokenizer replaced by known lengths (the seam `pool` uses for padded output)."""

    def __init__(self, lengths: list[int], normalize: bool = True) -> None:
        super().__init__(normalize=normalize)
        self._lengths = lengths

    def token_counts(self, texts):  # type: ignore[no-untyped-def]
        return list(self._lengths)


def _pool(handler: MiniLMContentHandler, data: Any, texts: list[str] | None = None) -> np.ndarray:
    """`pool` of parsed data, checked against `pool_body` of its JSON bytes (the path ingest takes)."""
    pooled = handler.pool(data, texts)
    np.testing.assert_array_equal(handler.pool_body(json.dumps(data).encode(), texts), pooled)
    return pooled


@settings(max_examples=150, deadline=None)
@given(token_batches(), st.booleans())
def test_pooling_matches_masked_mean_for_every_container_shape(
    case: tuple[np.ndarray, list[int]], normalize: bool
) -> None:
    tokens, lengths = case
    batch = len(lengths)
    texts = [f"text {i}" for i in range(batch)]
    expected = reference_pool(tokens, lengths, normalize)
    handler = _CountingHandler(lengths, normalize)
    ragged = [tokens[i, : lengths[i]] for i in range(batch)]
    tol = {"rtol": 1e-5, "atol": 1e-6}

    # newer containers: one (1, len_i, dim) array per input (4-D), needs no tokenizer
    np.testing.assert_allclose(_pool(handler, [r[None].tolist() for r in ragged]), expected, **tol)
    np.testing.assert_allclose(
        _pool(handler, {"embeddings": [r[None].tolist() for r in ragged]}), expected, **tol
    )
    # ragged 3-D: (len_i, dim) per input
    np.testing.assert_allclose(_pool(handler, [r.tolist() for r in ragged], None), expected, **tol)
    # older containers: padded (batch, max_len, dim) with junk in the padding; lengths from the tokenizer
    padded = tokens.copy()
    if batch > 1:
        np.testing.assert_allclose(_pool(handler, padded.tolist(), texts), expected, **tol)
    else:  # a single input has no padding: its whole output is its tokens
        np.testing.assert_allclose(_pool(handler, ragged[0][None].tolist(), texts), expected, **tol)
        np.testing.assert_allclose(_pool(handler, ragged[0].tolist(), texts), expected, **tol)
    # already pooled (batch, dim): passed through (normalised when asked)
    pooled = _pool(handler, expected.tolist(), texts)
    if batch > 1 or expected.shape[0] == 1:
        reference = reference_pool(expected[:, None, :], [1] * batch, normalize)
        np.testing.assert_allclose(pooled, reference, **tol)
    assert _pool(handler, padded.tolist(), texts).shape == (batch, tokens.shape[2])


_BLOCK = re.compile(r'<context source="[^"\n]*">\n.*?\n</context>', re.DOTALL)
_text = st.text(alphabet=st.sampled_from(list("ab c\n<>/[]:SINTX\"'")), max_size=40)
_source = st.text(alphabet=st.sampled_from(list('ab"<>/[]: context=INST\n')), max_size=20)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(_text, _source), max_size=8),
    st.one_of(st.none(), st.integers(0, 400)),
)
def test_best_last_and_hostile_sources_keep_the_block_structure(
    items: list[tuple[str, str]], max_chars: int | None
) -> None:
    documents = [Document(text, id=f"d{i}", metadata={"source": src}) for i, (text, src) in enumerate(items)]
    text, used = select_context(documents, max_chars)
    flipped, flipped_used = select_context(documents, max_chars, best_last=True)
    assert flipped_used == used  # the same passages are chosen either way
    assert len(flipped) == len(text)
    if max_chars is not None:
        assert len(text) <= max_chars and len(flipped) <= max_chars
    # every block opens and closes exactly once, whatever the text or source id contained
    for out in (text, flipped):
        assert out.count('<context source="') == len(used) == out.count("</context>")
        headers = [line for line in out.splitlines() if line.startswith("<context source=")]
        assert len(headers) == len(used)
        assert all(h.count('"') == 2 and h.endswith('">') and "\n" not in h for h in headers)
    blocks = _BLOCK.findall(text)
    assert len(blocks) == len(used)
    assert _BLOCK.findall(flipped) == list(reversed(blocks))  # best_last only lays them out in reverse


@settings(max_examples=200)
@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), min_size=1, max_size=64))
def test_a_records_values_never_serialise_past_their_size_bound(values: list[float]) -> None:
    """Upserts are packed by `values_size_bound` instead of serialising each record's values: the bound
    must hold for every double (the SDK writes the request with orjson)."""
    import orjson

    from sagerag.stores._batching import values_size_bound

    worst = [-1.2345678901234567e-308, -2.2250738585072014e-308, -1.7976931348623157e308, *values]
    assert len(orjson.dumps({"values": worst})) - len("{}") + len(",") <= values_size_bound(len(worst))


_JSON_SCALARS = st.none() | st.booleans() | st.integers(-(2**53), 2**53) | st.text(max_size=40)


@settings(max_examples=200)
@given(
    st.text(min_size=1, max_size=40),
    st.dictionaries(
        st.text(max_size=12), _JSON_SCALARS | st.lists(st.text(max_size=8), max_size=4), max_size=6
    ),
)
def test_a_checked_records_size_is_its_serialised_size(vector_id: str, metadata: dict[str, Any]) -> None:
    """`check_record` sizes a record from its metadata's JSON (serialised once, for the metadata limit)
    instead of serialising the whole record again: the sum must be the record's own size, which packs
    upserts under Pinecone's 2 MB."""
    from sagerag.stores._batching import check_record, record_size

    for record in ({"id": vector_id, "metadata": metadata}, {"metadata": metadata, "id": vector_id}):
        assert check_record(record) == record_size(record)
