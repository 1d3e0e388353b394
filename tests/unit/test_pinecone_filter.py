"""Pinecone's metadata filter grammar, evaluated directly on columns (no server)."""

from __future__ import annotations

from typing import Any

import orjson
import pytest

from sagerag.local.pinecone.filter import FilterError, MetadataTable, evaluate_filter, validate_filter

ROWS: list[dict[str, Any] | None] = [
    {"genre": "drama", "year": 2019, "tags": ["a", "b"], "ok": True},
    {"genre": "comedy", "year": 2021, "tags": ["b"], "ok": False},
    {"genre": "drama", "year": 2021.5, "ok": True},
    {"year": 1999, "tags": ["c"]},
    None,
]


def matches(filter_: Any) -> list[int]:
    table = MetadataTable([orjson.dumps(r).decode() if r else None for r in ROWS], orjson.loads)
    return [int(i) for i, hit in enumerate(evaluate_filter(filter_, table)) if hit]


@pytest.mark.parametrize(
    ("filter_", "expected"),
    [
        ({"genre": "drama"}, [0, 2]),
        ({"genre": {"$eq": "drama"}}, [0, 2]),
        ({"genre": {"$ne": "drama"}}, [1, 3, 4]),
        ({"year": {"$gt": 2019}}, [1, 2]),
        ({"year": {"$gte": 2019}}, [0, 1, 2]),
        ({"year": {"$lt": 2019}}, [3]),
        ({"year": {"$lte": 2019}}, [0, 3]),
        ({"year": 2021}, [1]),
        ({"genre": {"$in": ["comedy", "horror"]}}, [1]),
        ({"genre": {"$nin": ["comedy"]}}, [0, 2, 3, 4]),
        ({"genre": {"$exists": True}}, [0, 1, 2]),
        ({"genre": {"$exists": False}}, [3, 4]),
        ({"ok": True}, [0, 2]),
        ({"ok": {"$ne": True}}, [1, 3, 4]),
        ({"year": {"$in": [1999, 2019]}}, [0, 3]),
        ({"year": {"$gte": 2000, "$lt": 2021}}, [0]),
    ],
)
def test_each_operator(filter_: Any, expected: list[int]) -> None:
    assert matches(filter_) == expected


def test_lists_match_any_element() -> None:
    assert matches({"tags": "b"}) == [0, 1]
    assert matches({"tags": {"$in": ["a", "c"]}}) == [0, 3]
    assert matches({"tags": {"$nin": ["b"]}}) == [2, 3, 4]
    assert matches({"tags": {"$ne": "b"}}) == [2, 3, 4]


def test_and_or_nesting_and_implicit_and() -> None:
    assert matches({"genre": "drama", "year": {"$gt": 2020}}) == [2]
    assert matches({"$and": [{"genre": "drama"}, {"year": {"$gt": 2020}}]}) == [2]
    assert matches({"$or": [{"genre": "comedy"}, {"year": {"$lt": 2000}}]}) == [1, 3]
    nested = {"$or": [{"$and": [{"genre": "drama"}, {"tags": "a"}]}, {"tags": {"$in": ["c"]}}]}
    assert matches(nested) == [0, 3]


def test_unknown_values_match_nothing() -> None:
    assert matches({"genre": "western"}) == []
    assert matches({"missing": {"$exists": True}}) == []


@pytest.mark.parametrize(
    "bad",
    [
        {"genre": {"$regex": "d.*"}},
        {"$not": {"genre": "drama"}},
        {"year": {"$gt": "2019"}},
        {"genre": {"$in": "drama"}},
        {"genre": {"$exists": "yes"}},
        {"$and": []},
        {"$or": {"genre": "drama"}},
        {"genre": {"$eq": {"nested": 1}}},
        {"genre": {}},
        ["genre"],
    ],
)
def test_invalid_filters_are_rejected(bad: Any) -> None:
    with pytest.raises(FilterError):
        validate_filter(bad)
