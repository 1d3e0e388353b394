"""Content handlers and stream helpers, without any endpoint: payloads in, text and vectors out."""

from __future__ import annotations

import io
import json
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from sagerag.adapters import (
    Llama2ChatContentHandler,
    Llama2ContentHandler,
    MiniLMContentHandler,
    render_llama2_chat,
)
from sagerag.adapters._stream import StopWordFilter, cut_at_stop, iter_payload_lines
from sagerag.errors import EmbeddingOutputError
from sagerag.local.sagemaker.llama2_markup import parse_llama2_chat


def test_tgi_input_has_defaults_that_call_kwargs_override() -> None:
    body = json.loads(Llama2ContentHandler().transform_input("hi", {"max_new_tokens": 7, "temperature": 0.5}))
    assert body["inputs"] == "hi"
    assert body["parameters"]["max_new_tokens"] == 7
    assert body["parameters"]["temperature"] == 0.5
    assert body["parameters"]["return_full_text"] is False
    assert "stream" not in body
    streamed = json.loads(Llama2ContentHandler().transform_input("hi", {"stream": True}))
    assert streamed["stream"] is True and "stream" not in streamed["parameters"]


def test_tgi_output_reads_body_and_stream_lines() -> None:
    handler = Llama2ContentHandler()
    assert handler.transform_output(io.BytesIO(b'[{"generated_text": "Paris"}]')) == "Paris"
    line = b'data:{"token": {"id": 5, "text": " Par", "logprob": -0.1, "special": false}, "generated_text": null}'
    assert handler.transform_output(line) == " Par"
    special = b'data:{"token": {"id": 2, "text": "</s>", "logprob": 0.0, "special": true}, "generated_text": "Paris"}'
    assert handler.transform_output(special) == ""
    final = b'data:{"token": {"id": 9, "text": "is", "special": false}, "generated_text": "Parisis"}'
    assert handler.transform_output(final) == "is"  # the final line's whole text is not repeated


def test_stream_lines_end_without_trailing_newline() -> None:
    events = [{"PayloadPart": {"Bytes": b"data:a\n\nda"}}, {"PayloadPart": {"Bytes": b"ta:b"}}]
    assert list(iter_payload_lines(events)) == [b"data:a", b"data:b"]


class _EventStream:
    """botocore's EventStream as far as the reader sees it: iterable, closable."""

    def __init__(self, events: list[dict[str, Any]]):
        self.events = events
        self.closed = False

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.events)

    def close(self) -> None:
        self.closed = True


def test_stream_is_closed_when_the_reader_stops_early() -> None:
    stream = _EventStream([{"PayloadPart": {"Bytes": b"data:a\ndata:b\ndata:c\n"}}])
    lines = iter_payload_lines(stream)
    assert next(lines) == b"data:a"
    assert not stream.closed
    lines.close()  # what a stop word or the loop guard does to the generation
    assert stream.closed
    finished = _EventStream([{"PayloadPart": {"Bytes": b"data:a"}}])
    assert list(iter_payload_lines(finished)) == [b"data:a"] and finished.closed


def test_stop_words_are_literal_not_regex() -> None:
    assert cut_at_stop("Paris. It is big.", ["."]) == "Paris"
    assert cut_at_stop("a|b", ["|"]) == "a"
    assert cut_at_stop("no stop here", ["."]) == "no stop here"


def test_stop_filter_cuts_across_chunk_boundaries() -> None:
    stops = StopWordFilter(["END"])
    emitted = [stops.feed(piece) for piece in ["Hello E", "N", "D and more"]]
    assert "".join(emitted) == "Hello "
    assert stops.stopped and stops.flush() == ""
    open_stops = StopWordFilter(["END"])
    assert open_stops.feed("Hello E") + open_stops.flush() == "Hello E"


def test_llama2_chat_markup_round_trips_through_the_local_parser() -> None:
    messages = [
        SystemMessage("Be brief."),
        HumanMessage("Hi"),
        AIMessage("Hello!"),
        HumanMessage("Capital of France?"),
    ]
    rendered = render_llama2_chat(messages)
    assert rendered.startswith("<s>[INST] <<SYS>>\nBe brief.\n<</SYS>>\n\nHi [/INST]")
    assert rendered.endswith("[INST] Capital of France? [/INST]")
    assert parse_llama2_chat(rendered) == [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello!"},
        {"role": "user", "content": "Capital of France?"},
    ]
    assert parse_llama2_chat("plain text") == [{"role": "user", "content": "plain text"}]


def test_jumpstart_chat_handler_payloads() -> None:
    handler = Llama2ChatContentHandler()
    body = json.loads(handler.transform_input([SystemMessage("S"), HumanMessage("Q")], {"max_new_tokens": 9}))
    assert body["inputs"] == [[{"role": "system", "content": "S"}, {"role": "user", "content": "Q"}]]
    assert body["parameters"]["max_new_tokens"] == 9
    out = handler.transform_output(io.BytesIO(b'[{"generation": {"role": "assistant", "content": "A"}}]'))
    assert out.content == "A"


def _tokens(n: int, dim: int = 4, value: float = 1.0) -> list[list[float]]:
    return [[value] * dim for _ in range(n)]


def test_minilm_pools_every_container_shape() -> None:
    handler = MiniLMContentHandler(normalize=False)
    ragged = [[_tokens(2, value=1.0)], [_tokens(3, value=3.0)]]  # (1, len_i, dim) per input
    assert np.allclose(handler.pool(ragged), [[1.0] * 4, [3.0] * 4])
    ragged_2d = [_tokens(2, value=1.0), _tokens(3, value=3.0)]  # (len_i, dim) per input
    assert np.allclose(handler.pool(ragged_2d), [[1.0] * 4, [3.0] * 4])
    pooled = [[1.0, 2.0, 3.0, 4.0], [4.0, 3.0, 2.0, 1.0]]
    assert np.allclose(handler.pool(pooled, ["a", "b"]), pooled)
    assert np.allclose(handler.pool({"embeddings": pooled}, ["a", "b"]), pooled)


def test_minilm_padded_output_pools_over_real_tokens_only() -> None:
    handler = MiniLMContentHandler(normalize=False)
    texts = ["hi", "a much longer input sentence here"]
    counts = handler.token_counts(texts)  # [CLS] hi [SEP] -> 3
    assert counts[0] == 3 and counts[1] > counts[0]
    width = counts[1]
    short = _tokens(counts[0], value=1.0) + _tokens(width - counts[0], value=100.0)  # padding holds junk
    padded = [short, _tokens(width, value=2.0)]
    assert np.allclose(handler.pool(padded, texts), [[1.0] * 4, [2.0] * 4])


def test_minilm_reads_json_bytes_like_parsed_data_and_reports_malformed_answers() -> None:
    handler = MiniLMContentHandler(normalize=False)
    ragged = [[_tokens(2, value=1.0)], [_tokens(3, value=3.0)]]
    body = io.BytesIO(json.dumps(ragged).encode())
    assert np.allclose(handler.transform_output(body), [[1.0] * 4, [3.0] * 4])
    wrapped = json.dumps({"embeddings": ragged}).encode()
    assert np.allclose(handler.pool_body(wrapped), [[1.0] * 4, [3.0] * 4])
    # rows of different widths inside one input, or a value that is no number: an error, not a vector
    uneven = [[[1.0, 2.0], [3.0]]]
    with pytest.raises(EmbeddingOutputError, match="equal-length lists of numbers"):
        handler.pool_body(json.dumps(uneven).encode())
    with pytest.raises(EmbeddingOutputError, match="equal-length lists of numbers"):
        handler.pool_body(json.dumps([[["a", "b"], ["c", "d"]]]).encode())
    with pytest.raises(EmbeddingOutputError, match="not JSON"):
        handler.pool_body(b"[[[1.0, 2.0]")


def _npy(array: Any) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array, dtype=np.float64))
    return buffer.getvalue()


def test_minilm_asks_for_npy_when_binary_and_pools_it_as_its_json() -> None:
    """The toolkit's NPY answers (float64, one token count a request, or padded) pool to the rows their
    JSON would; JSON still reads; a pickled (object) array is refused with what to do."""
    handler = MiniLMContentHandler(normalize=False, binary=True)
    assert handler.accepts == "application/x-npy" and MiniLMContentHandler().accepts == "application/json"
    same = [[_tokens(3, value=1.0)], [_tokens(3, value=3.0)]]  # (2, 1, 3, 4)
    assert np.allclose(handler.transform_output(io.BytesIO(_npy(same))), [[1.0] * 4, [3.0] * 4])
    assert np.allclose(handler.pool_body(_npy(same[0])), [[1.0] * 4])  # one string: (1, tokens, dim)
    texts = ["short", "a longer text with more tokens"]
    counts = handler.token_counts(texts)
    padded = [
        _tokens(counts[0], value=1.0) + _tokens(counts[1] - counts[0], value=100.0),
        _tokens(counts[1], value=2.0),
    ]
    assert np.allclose(
        handler.pool_body(_npy(padded), texts), handler.pool_body(json.dumps(padded).encode(), texts)
    )
    assert np.allclose(handler.pool_body(json.dumps(same).encode()), [[1.0] * 4, [3.0] * 4])
    ragged = np.empty(2, dtype=object)  # what numpy < 1.24 made of texts of two token counts
    ragged[0], ragged[1] = np.zeros((1, 2, 4)), np.zeros((1, 3, 4))
    pickled = io.BytesIO()
    np.save(pickled, ragged, allow_pickle=True)
    with pytest.raises(EmbeddingOutputError, match="binary=False"):
        handler.pool_body(pickled.getvalue())


def test_minilm_reads_npy_in_place_whatever_its_order_and_refuses_one_cut_short() -> None:
    """The answer is viewed, not loaded: a Fortran-ordered or float32 array pools as `np.load` would read
    it, and a body shorter than its header says (a dropped connection) is an error, not garbage rows."""
    handler = MiniLMContentHandler(normalize=False, binary=True)
    tokens = np.arange(2 * 1 * 3 * 4, dtype=np.float64).reshape(2, 1, 3, 4)
    expected = tokens[:, 0].mean(axis=1)
    fortran = io.BytesIO()
    np.save(fortran, np.asfortranarray(tokens))
    assert np.allclose(handler.pool_body(fortran.getvalue()), expected)
    single = io.BytesIO()
    np.save(single, tokens.astype(np.float32))
    assert np.allclose(handler.pool_body(single.getvalue()), expected)
    with pytest.raises(EmbeddingOutputError, match="NPY answer"):
        handler.pool_body(_npy(tokens)[:-8])


def test_minilm_groups_npy_requests_by_token_count_or_sends_one_text_each_without_a_tokenizer() -> None:
    texts = ["hello there", "a longer sentence here", "hello again"]
    assert MiniLMContentHandler().batch_keys(texts) is None  # JSON: any texts may share a request
    binary = MiniLMContentHandler(binary=True)
    assert binary.batch_keys(texts) == binary.token_counts(texts)
    missing = MiniLMContentHandler(binary=True, tokenizer_path="/nonexistent/tokenizer.json")
    assert missing.batch_keys(texts) == [0, 1, 2]


def test_minilm_parses_answers_from_many_threads_with_its_shared_parser() -> None:
    from concurrent.futures import ThreadPoolExecutor

    import simdjson

    from sagerag.adapters import token_vectors

    handler = MiniLMContentHandler(normalize=False)
    bodies = [json.dumps([[_tokens(2 + i % 3, value=float(i))]]).encode() for i in range(40)]
    with ThreadPoolExecutor(8) as pool:
        pooled = list(pool.map(handler.pool_body, bodies))
    assert [float(p[0][0]) for p in pooled] == [float(i) for i in range(40)]
    # a part of the parser's last document still referenced elsewhere: the next answer still parses
    held = token_vectors._PARSER.parse(bodies[0])[0]
    assert isinstance(held, simdjson.Array)
    assert np.allclose(handler.pool_body(bodies[5]), [[5.0] * 4])


def test_minilm_normalises_by_default_and_rejects_unknown_shapes() -> None:
    vectors = MiniLMContentHandler().pool([[3.0, 4.0]], ["x"])
    assert np.allclose(vectors, [[0.6, 0.8]])
    with pytest.raises(Exception, match="cannot pool"):
        MiniLMContentHandler().pool(5.0, ["x"])
