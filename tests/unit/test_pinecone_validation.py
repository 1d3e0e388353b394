"""Pinecone's metadata and dense-value rules as the local Pinecone applies them, without a server."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sagerag.local.pinecone.service import PineconeService
from sagerag.local.pinecone.storage import PineconeStorage
from sagerag.local.pinecone.validation import (
    METRICS,
    ApiProblem,
    check_metadata,
    check_vector,
    decode_metadata,
    dense_matrix,
)


def test_numbers_are_stored_as_floats_and_other_types_kept() -> None:
    stored = check_metadata("v", {"year": 2019, "score": 0.5, "live": True, "tags": ["a", "b"], "s": "x"})
    assert stored is not None
    assert orjson.loads(stored) == {"year": 2019.0, "score": 0.5, "live": True, "tags": ["a", "b"], "s": "x"}
    assert isinstance(orjson.loads(stored)["year"], float)
    assert check_metadata("v", None) is None and check_metadata("v", {}) is None


def test_rows_stored_before_the_float_rule_read_back_as_floats() -> None:
    legacy = '{"row": 3, "live": true, "name": "x"}'  # written by an older local Pinecone
    decoded = decode_metadata(legacy)
    assert decoded == {"row": 3.0, "live": True, "name": "x"}
    assert isinstance(decoded["row"], float) and decoded["live"] is True
    assert decode_metadata(None) == {}


@pytest.mark.parametrize(
    ("metadata", "words"),
    [
        ({"k": None}, ("'k'", "null")),
        ({"$k": "v"}, ("'$k'", "'$'")),
        ({"k": {"nested": 1}}, ("'k'", "string, number, boolean or list of strings")),
        ({"k": [1, 2]}, ("'k'",)),
        ({"k": float("nan")}, ("'k'", "finite")),
        ({"": "v"}, ("non-empty",)),
    ],
)
def test_what_pinecone_refuses_is_refused_naming_the_key(
    metadata: dict[str, object], words: tuple[str]
) -> None:
    with pytest.raises(ApiProblem) as caught:
        check_metadata("vec-1", metadata)
    assert caught.value.status == 400 and "vec-1" in caught.value.message
    for word in words:
        assert word in caught.value.message


# -- dense values: a whole request at once, refused as vector by vector -------------------------------------

DIM = 3
_element = st.one_of(
    st.floats(-2, 2),
    st.floats(allow_nan=True, allow_infinity=True),
    st.integers(-2, 2),
    st.booleans(),
    st.sampled_from(["1.5", "x", ""]),
    st.none(),
    st.lists(st.floats(-2, 2), max_size=2),
)
_values = st.one_of(
    st.lists(st.floats(-2, 2), min_size=DIM, max_size=DIM),
    st.lists(_element, min_size=DIM - 1, max_size=DIM + 1),
    st.just([0.0] * DIM),
    st.lists(st.just([1.0]), min_size=DIM, max_size=DIM),
    st.sampled_from([None, [], "1,2,3", {"values": [1.0, 2.0, 3.0]}]),
)


@settings(max_examples=300, deadline=None)
@given(requests=st.lists(_values, min_size=1, max_size=4), metric=st.sampled_from(METRICS))
def test_a_request_checked_at_once_accepts_exactly_what_each_vector_passes(
    requests: list[object], metric: str
) -> None:
    """`dense_matrix` is a shortcut of `check_vector` over every vector: it must never accept a request
    that one vector would fail (nor differ in a value), or a bad vector would be stored."""
    try:
        one_by_one: list[bytes] | None = [
            check_vector(v, DIM, metric, f"Vector {i}").tobytes() for i, v in enumerate(requests)
        ]
    except ApiProblem:
        one_by_one = None
    matrix = dense_matrix(requests, DIM, metric)
    if one_by_one is None:
        assert matrix is None
    else:
        assert matrix is not None and [row.tobytes() for row in matrix] == one_by_one


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ([1.0, float("nan"), 0.0], ("'v2'", "finite")),
        ([1.0, 2.0], ("'v2'", "dimension 2", "index 3")),
        ([0.0, 0.0, 0.0], ("'v2'", "non-zero", "cosine")),
        ([1.0, "x", 0.0], ("'v2'", "must be numbers")),
        ([[1.0], [2.0], [3.0]], ("'v2'", "dimension ?")),
        (None, ("'v2'", "dense 'values'")),
    ],
)
def test_a_bad_vector_among_good_ones_is_refused_by_name_and_nothing_is_stored(
    tmp_path: Path, values: object, words: tuple[str, ...]
) -> None:
    service = PineconeService(PineconeStorage(tmp_path))
    try:
        service.create_index({"name": "ix", "dimension": DIM, "metric": "cosine"})
        vectors = [{"id": f"v{i}", "values": [1.0, float(i), 0.0]} for i in range(5)]
        vectors[2]["values"] = values
        with pytest.raises(ApiProblem) as caught:
            service.upsert("ix", {"vectors": vectors})
        assert caught.value.status == 400
        for word in words:
            assert word in caught.value.message
        assert service.stats("ix")["totalVectorCount"] == 0
        assert service.upsert("ix", {"vectors": vectors[:2] + vectors[3:]}) == 4
        assert service.fetch("ix", ["v3"], None)["vectors"]["v3"]["values"] == [1.0, 3.0, 0.0]
    finally:
        service.close()
