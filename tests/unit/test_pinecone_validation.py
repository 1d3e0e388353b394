"""Pinecone's metadata rules as the local Pinecone applies them, without a server."""

from __future__ import annotations

import orjson
import pytest

from sagerag.local.pinecone.validation import ApiProblem, check_metadata, decode_metadata


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
