"""The local Pinecone against the pinecone 10.x SDK, sync (`Pinecone`) and asyncio (`PineconeAsyncio`).

Every data- and control-plane call a serverless user makes gets either Pinecone's documented result or a
clear "not supported" error (501 UNIMPLEMENTED, which the SDK neither reads as "missing" nor retries):
never a plausible wrong answer. `SDK_SURFACE` lists the calls; `test_the_sdk_surface_is_all_accounted_for`
fails when a new SDK version adds one nobody has decided about.

Each test runs once per client flavour through `Sdk`, which hides only the difference between calling
and awaiting.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from pinecone import Pinecone, PineconeAsyncio
from pinecone.async_client.async_index import AsyncIndex
from pinecone.errors.exceptions import ApiError, ConflictError, ForbiddenError, NotFoundError
from pinecone.index import Index

from sagerag.local.pinecone import LocalPinecone
from tests.support import unique_name

DENSE = {"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"}


def dense_schema(dimension: int, metric: str) -> dict[str, Any]:
    return {"fields": {"_values": {"type": "dense_vector", "dimension": dimension, "metric": metric}}}


class Sdk:
    """One SDK flavour behind one calling convention: `call` awaits what the asyncio client returns."""

    def __init__(self, flavour: str, server: LocalPinecone) -> None:
        self.flavour = flavour
        self._loop = asyncio.new_event_loop() if flavour == "asyncio" else None
        self.pc: Any = (
            Pinecone(api_key=server.api_key, host=server.host)
            if self._loop is None
            else PineconeAsyncio(api_key=server.api_key, host=server.host)
        )
        self._indexes: list[Any] = []

    def run(self, value: Any) -> Any:
        return self._loop.run_until_complete(value) if self._loop and inspect.isawaitable(value) else value

    def call(self, target: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        """`target.a.b(*args, **kwargs)` for path "a.b", awaited on the asyncio client."""
        *parents, name = path.split(".")
        for parent in parents:
            target = getattr(target, parent)
        return self.run(getattr(target, name)(*args, **kwargs))

    def items(self, target: Any, path: str, **kwargs: Any) -> list[Any]:
        """Everything a paginating call yields (a sync iterator or an async one)."""
        result = self.call(target, path, **kwargs)
        if hasattr(result, "__aiter__"):

            async def drain() -> list[Any]:
                return [item async for item in result]

            return list(self.run(drain()))
        return list(result)

    def create_index(self, dimension: int = 3, metric: str = "cosine", prefix: str = "conf") -> str:
        name = unique_name(prefix)
        self.call(
            self.pc, "indexes.create", name=name, schema=dense_schema(dimension, metric), deployment=DENSE
        )
        return name

    def index(self, name: str) -> Any:
        host = self.call(self.pc, "describe_index", name).host
        index = self.pc.Index(host=host) if self._loop is None else self.pc.IndexAsyncio(host=host)
        self._indexes.append(index)
        return index

    def close(self) -> None:
        for client in [*self._indexes, self.pc]:
            self.run(client.close())
        if self._loop is not None:
            self._loop.close()


@pytest.fixture(params=["sync", "asyncio"])
def sdk(request: pytest.FixtureRequest, local_pinecone: LocalPinecone) -> Iterator[Sdk]:
    client = Sdk(request.param, local_pinecone)
    yield client
    client.close()


@pytest.fixture
def cosine(sdk: Sdk) -> Any:
    """A 3-dimensional cosine index holding a, b, c in namespace "ns"."""
    index = sdk.index(sdk.create_index(3, "cosine"))
    sdk.call(
        index,
        "upsert",
        vectors=[
            {"id": "a", "values": [1.0, 0.0, 0.0], "metadata": {"year": 2019, "genre": "drama"}},
            {"id": "b", "values": [1.0, 1.0, 0.0], "metadata": {"year": 2021, "genre": ["comedy", "drama"]}},
            {
                "id": "c",
                "values": [0.0, 0.0, 1.0],
                "metadata": {"year": 2023.5, "genre": "news", "live": True},
            },
        ],
        namespace="ns",
    )
    return index


@pytest.fixture
def dotproduct_index(sdk: Sdk) -> Any:
    """An empty 4-dimensional dotproduct index: the metric Pinecone requires for sparse-dense vectors,
    so hybrid-search conformance tests (see the section at the end) can build on it too."""
    return sdk.index(sdk.create_index(4, "dotproduct"))


def refused_as_unsupported(call: Callable[[], Any]) -> ApiError:
    """The call fails with 501 UNIMPLEMENTED naming the local Pinecone, and not as a NotFoundError."""
    with pytest.raises(ApiError) as caught:
        call()
    error = caught.value
    assert not isinstance(error, NotFoundError)
    assert error.status_code == 501, error
    assert "local Pinecone does not support" in str(error)
    return error


def refused_as_invalid(call: Callable[[], Any], *words: str) -> ApiError:
    """The call fails with Pinecone's 400 INVALID_ARGUMENT, whose message has every one of `words`."""
    with pytest.raises(ApiError) as caught:
        call()
    error = caught.value
    assert error.status_code == 400, error
    for word in words:
        assert word in str(error)
    return error


# -- control plane ---------------------------------------------------------------------------------------


def test_index_lifecycle(sdk: Sdk) -> None:
    name = sdk.create_index(3, "euclidean")
    assert sdk.call(sdk.pc, "has_index", name)
    description = sdk.call(sdk.pc, "describe_index", name)
    assert description.status.ready and description.host.endswith(f"/data/{name}")
    assert name in [i.name for i in sdk.call(sdk.pc, "list_indexes")]
    assert name in [i.name for i in sdk.items(sdk.pc, "indexes.list")]
    with pytest.raises(ConflictError):
        sdk.call(sdk.pc, "indexes.create", name=name, schema=dense_schema(3, "cosine"), deployment=DENSE)

    configured = sdk.call(sdk.pc, "configure_index", name, deletion_protection="enabled", tags={"team": "qa"})
    assert configured.deletion_protection == "enabled" and configured.tags == {"team": "qa"}
    with pytest.raises(ForbiddenError):
        sdk.call(sdk.pc, "delete_index", name)
    sdk.call(sdk.pc, "configure_index", name, deletion_protection="disabled", tags={"team": ""})
    assert not sdk.call(sdk.pc, "describe_index", name).tags
    sdk.call(sdk.pc, "delete_index", name)
    assert not sdk.call(sdk.pc, "has_index", name)
    with pytest.raises(NotFoundError):
        sdk.call(sdk.pc, "describe_index", name)


def test_configure_refuses_what_a_serverless_index_cannot_change(sdk: Sdk) -> None:
    name = sdk.create_index()
    refused_as_invalid(
        lambda: sdk.call(sdk.pc, "configure_index", name, replicas=2), "serverless", "replicas"
    )
    refused_as_invalid(lambda: sdk.call(sdk.pc, "configure_index", name, pod_type="p1.x2"), "pod_type")
    refused_as_invalid(
        lambda: sdk.call(sdk.pc, "indexes.configure", name, schema=dense_schema(3, "cosine")), "schema"
    )
    refused_as_unsupported(
        lambda: sdk.call(
            sdk.pc,
            "indexes.configure",
            name,
            read_capacity={"mode": "Dedicated", "dedicated": {"node_type": "b1", "scaling": "Manual"}},
        )
    )
    assert sdk.call(sdk.pc, "describe_index", name).deletion_protection == "disabled"  # nothing applied


def test_document_schemas_are_refused_not_half_created(sdk: Sdk) -> None:
    name = unique_name("docs")
    schema = dense_schema(3, "cosine")
    schema["fields"]["title"] = {"type": "string", "full_text_search": {}}
    refused_as_unsupported(
        lambda: sdk.call(sdk.pc, "indexes.create", name=name, schema=schema, deployment=DENSE)
    )
    assert not sdk.call(sdk.pc, "has_index", name)


def test_control_plane_calls_not_supported(sdk: Sdk) -> None:
    pc, name = sdk.pc, sdk.create_index()
    unsupported: list[Callable[[], Any]] = [
        lambda: sdk.call(
            pc,
            "create_index_for_model",
            name=unique_name("model"),
            cloud="aws",
            region="us-east-1",
            embed={"model": "multilingual-e5-large", "field_map": {"text": "chunk_text"}},
        ),
        lambda: sdk.call(pc, "create_collection", name="snap", source=name),
        lambda: sdk.call(pc, "list_collections"),
        lambda: sdk.call(pc, "describe_collection", "snap"),
        lambda: sdk.call(pc, "delete_collection", "snap"),
        lambda: sdk.call(pc, "create_backup", index_name=name, backup_name="b1"),
        lambda: sdk.call(pc, "list_backups"),
        lambda: sdk.call(pc, "describe_backup", backup_id="b1"),
        lambda: sdk.call(pc, "delete_backup", backup_id="b1"),
        lambda: sdk.call(pc, "create_index_from_backup", name=unique_name("restored"), backup_id="b1"),
        lambda: sdk.call(pc, "list_restore_jobs"),
        lambda: sdk.call(pc, "describe_restore_job", job_id="j1"),
        lambda: sdk.call(pc, "inference.embed", model="multilingual-e5-large", inputs=["hello"]),
        lambda: sdk.call(pc, "inference.rerank", model="bge-reranker-v2-m3", query="q", documents=["d"]),
        lambda: sdk.call(pc, "inference.list_models"),
        lambda: sdk.call(pc, "inference.get_model", model="multilingual-e5-large"),
        lambda: sdk.call(pc, "backup_schedules.list", index_name=name),
        lambda: sdk.items(pc, "assistants.list"),
    ]
    messages = [str(refused_as_unsupported(call)) for call in unsupported]
    assert "create_index_for_model" in messages[0] and "collections" in messages[1]
    assert "backups" in messages[5] and "inference.embed" in messages[12]
    assert "backup schedules" in messages[16] and "Pinecone Assistant" in messages[17]


# -- data plane: vectors -----------------------------------------------------------------------------------


def test_upsert_fetch_and_query_return_what_pinecone_returns(sdk: Sdk, cosine: Any) -> None:
    fetched = sdk.call(cosine, "fetch", ids=["a", "missing"], namespace="ns").vectors
    assert list(fetched) == ["a"] and fetched["a"].values == [1.0, 0.0, 0.0]
    year = fetched["a"].metadata["year"]
    assert year == 2019.0 and isinstance(year, float)  # numbers are stored as 64-bit floats

    result = sdk.call(cosine, "query", vector=[1.0, 0.0, 0.0], top_k=2, namespace="ns", include_metadata=True)
    assert [m.id for m in result.matches] == ["a", "b"]
    assert result.matches[0].score == pytest.approx(1.0, abs=1e-6)
    assert result.matches[1].score == pytest.approx(2**-0.5, abs=1e-6)
    assert result.matches[1].metadata == {"year": 2021.0, "genre": ["comedy", "drama"]}
    assert not result.matches[0].values  # values only when asked for

    by_id = sdk.call(cosine, "query", id="c", top_k=1, namespace="ns", include_values=True)
    assert by_id.matches[0].id == "c" and by_id.matches[0].values == [0.0, 0.0, 1.0]
    filtered = sdk.call(
        cosine, "query", vector=[1.0, 0.0, 0.0], top_k=3, namespace="ns", filter={"genre": {"$eq": "drama"}}
    )
    assert [m.id for m in filtered.matches] == ["a", "b"]  # a list matches when any element does
    assert not sdk.call(cosine, "query", vector=[1.0, 0.0, 0.0], top_k=3, namespace="other").matches


def test_dotproduct_scores_are_exact(sdk: Sdk, dotproduct_index: Any) -> None:
    sdk.call(dotproduct_index, "upsert", vectors=[("x", [1.0, 2.0, 3.0, 4.0]), ("y", [0.5, 0.0, 0.0, 0.0])])
    result = sdk.call(dotproduct_index, "query", vector=[1.0, 1.0, 1.0, 1.0], top_k=2)
    assert [(m.id, m.score) for m in result.matches] == [("x", 10.0), ("y", 0.5)]


def test_query_namespaces_merges_per_namespace_results(sdk: Sdk, cosine: Any) -> None:
    sdk.call(cosine, "upsert", vectors=[("d", [0.9, 0.1, 0.0])], namespace="ns2")
    merged = sdk.call(
        cosine, "query_namespaces", vector=[1.0, 0.0, 0.0], namespaces=["ns", "ns2"], metric="cosine", top_k=2
    )
    assert [m.id for m in merged.matches] == ["a", "d"]


def test_list_ids_pages_in_id_order(sdk: Sdk, cosine: Any) -> None:
    page = sdk.call(cosine, "list_paginated", namespace="ns", limit=2)
    assert [v.id for v in page.vectors] == ["a", "b"] and page.pagination and page.pagination.next
    rest = sdk.call(cosine, "list_paginated", namespace="ns", limit=2, pagination_token=page.pagination.next)
    assert [v.id for v in rest.vectors] == ["c"] and rest.pagination is None
    assert [v.id for page in sdk.items(cosine, "list", namespace="ns", prefix="b") for v in page] == ["b"]


def test_delete_by_ids_filter_and_all(sdk: Sdk, cosine: Any) -> None:
    sdk.call(cosine, "delete", ids=["a"], namespace="ns")
    sdk.call(cosine, "delete", filter={"year": {"$gt": 2022}}, namespace="ns")
    assert list(sdk.call(cosine, "fetch", ids=["a", "b", "c"], namespace="ns").vectors) == ["b"]
    sdk.call(cosine, "delete", delete_all=True, namespace="ns")
    assert sdk.call(cosine, "describe_index_stats").total_vector_count == 0


def test_update_by_id(sdk: Sdk, cosine: Any) -> None:
    response = sdk.call(
        cosine, "update", id="a", values=[0.0, 1.0, 0.0], set_metadata={"year": 2020}, namespace="ns"
    )
    assert response.matched_records is None  # a by-id update reports no count
    a = sdk.call(cosine, "fetch", ids=["a"], namespace="ns").vectors["a"]
    assert a.values == [0.0, 1.0, 0.0] and a.metadata == {"year": 2020.0, "genre": "drama"}
    sdk.call(
        cosine, "update", id="nobody", set_metadata={"x": "y"}, namespace="ns"
    )  # no error, nothing stored
    assert not sdk.call(cosine, "fetch", ids=["nobody"], namespace="ns").vectors


def test_update_with_nothing_to_change_is_refused(sdk: Sdk, cosine: Any) -> None:
    refused_as_invalid(lambda: sdk.call(cosine, "update", id="a", namespace="ns"), "changes nothing")


def test_update_by_filter_sets_metadata_and_dry_run_only_counts(sdk: Sdk, cosine: Any) -> None:
    dry = sdk.call(
        cosine, "update", filter={"genre": "drama"}, set_metadata={"seen": True}, namespace="ns", dry_run=True
    )
    assert dry.matched_records == 2
    assert "seen" not in sdk.call(cosine, "fetch", ids=["a"], namespace="ns").vectors["a"].metadata
    done = sdk.call(cosine, "update", filter={"genre": "drama"}, set_metadata={"seen": True}, namespace="ns")
    assert done.matched_records == 2
    vectors = sdk.call(cosine, "fetch", ids=["a", "b", "c"], namespace="ns").vectors
    assert {i: v.metadata.get("seen") for i, v in vectors.items()} == {"a": True, "b": True, "c": None}


def test_describe_index_stats(sdk: Sdk, cosine: Any) -> None:
    stats = sdk.call(cosine, "describe_index_stats")
    assert stats.total_vector_count == 3 and stats.dimension == 3 and stats.metric == "cosine"
    assert stats.namespaces["ns"].vector_count == 3
    assert sdk.call(cosine, "describe_index_stats", filter={}).total_vector_count == 3  # empty = no filter


def test_filtered_stats_are_refused_as_serverless_pinecone_refuses_them(sdk: Sdk, cosine: Any) -> None:
    refused_as_invalid(
        lambda: sdk.call(cosine, "describe_index_stats", filter={"genre": "drama"}),
        "do not support describing index stats with metadata filtering",
    )


def test_fetch_by_metadata_pages_through_matches(sdk: Sdk, cosine: Any) -> None:
    first = sdk.call(cosine, "fetch_by_metadata", filter={"year": {"$gte": 2020}}, namespace="ns", limit=1)
    assert list(first.vectors) == ["b"] and first.pagination and first.pagination.next
    assert first.vectors["b"].metadata["year"] == 2021.0
    second = sdk.call(
        cosine,
        "fetch_by_metadata",
        filter={"year": {"$gte": 2020}},
        namespace="ns",
        limit=1,
        pagination_token=first.pagination.next,
    )
    assert list(second.vectors) == ["c"] and second.pagination is None
    everything = sdk.call(cosine, "fetch_by_metadata", filter={"live": {"$exists": False}}, namespace="ns")
    assert sorted(everything.vectors) == ["a", "b"] and everything.namespace == "ns"


# -- data plane: metadata rules ----------------------------------------------------------------------------


def test_metadata_numbers_come_back_as_floats(sdk: Sdk, cosine: Any) -> None:
    sdk.call(cosine, "upsert", vectors=[{"id": "n", "values": [0.1, 0.2, 0.3], "metadata": {"row": 3}}])
    row = sdk.call(cosine, "fetch", ids=["n"]).vectors["n"].metadata["row"]
    assert row == 3.0 and isinstance(row, float)
    hit = sdk.call(cosine, "query", vector=[0.1, 0.2, 0.3], top_k=1, filter={"row": 3}, include_metadata=True)
    assert isinstance(hit.matches[0].metadata["row"], float)


def test_null_metadata_values_are_refused(sdk: Sdk, cosine: Any) -> None:
    refused_as_invalid(
        lambda: sdk.call(
            cosine, "upsert", vectors=[{"id": "z", "values": [1.0, 0.0, 0.0], "metadata": {"k": None}}]
        ),
        "'k'",
        "null",
    )
    refused_as_invalid(
        lambda: sdk.call(cosine, "update", id="a", set_metadata={"genre": None}, namespace="ns"),
        "'genre'",
        "null",
    )
    assert sdk.call(cosine, "fetch", ids=["a"], namespace="ns").vectors["a"].metadata["genre"] == "drama"
    assert not sdk.call(cosine, "fetch", ids=["z"]).vectors


def test_dollar_prefixed_metadata_keys_are_refused(sdk: Sdk, cosine: Any) -> None:
    refused_as_invalid(
        lambda: sdk.call(
            cosine, "upsert", vectors=[{"id": "z", "values": [1.0, 0.0, 0.0], "metadata": {"$x": 1}}]
        ),
        "'$x'",
    )
    refused_as_invalid(
        lambda: sdk.call(cosine, "update", id="a", set_metadata={"$x": 1}, namespace="ns"), "'$x'"
    )


def test_in_and_nin_accept_at_most_10000_values(sdk: Sdk, cosine: Any) -> None:
    allowed = [f"g{i}" for i in range(9_999)] + ["drama"]
    hits = sdk.call(
        cosine, "query", vector=[1.0, 0.0, 0.0], top_k=3, namespace="ns", filter={"genre": {"$in": allowed}}
    )
    assert [m.id for m in hits.matches] == ["a", "b"]
    for op in ("$in", "$nin"):
        refused_as_invalid(
            lambda op=op: sdk.call(
                cosine,
                "query",
                vector=[1.0, 0.0, 0.0],
                top_k=3,
                filter={"genre": {op: [*allowed, "one more"]}},
            ),
            op,
            "10000",
        )


# -- data plane: namespaces --------------------------------------------------------------------------------


def test_namespace_lifecycle(sdk: Sdk, cosine: Any) -> None:
    created = sdk.call(cosine, "create_namespace", name="empty")
    assert created.name == "empty" and created.record_count == 0
    with pytest.raises(ConflictError):
        sdk.call(cosine, "create_namespace", name="empty")
    assert sdk.call(cosine, "describe_namespace", name="ns").record_count == 3
    assert sdk.call(cosine, "describe_namespace", name="__default__").record_count == 0

    listed = {
        ns.name: ns.record_count for page in sdk.items(cosine, "list_namespaces") for ns in page.namespaces
    }
    assert listed == {"empty": 0, "ns": 3}
    page = sdk.call(cosine, "list_namespaces_paginated", limit=1)
    assert [ns.name for ns in page.namespaces] == ["empty"] and page.total_count == 2 and page.pagination
    assert [ns.name for ns in sdk.call(cosine, "list_namespaces_paginated", prefix="n").namespaces] == ["ns"]

    sdk.call(cosine, "delete", delete_all=True, namespace="ns")  # emptied, not deleted
    assert sdk.call(cosine, "describe_namespace", name="ns").record_count == 0
    sdk.call(cosine, "delete_namespace", name="ns")
    with pytest.raises(NotFoundError):
        sdk.call(cosine, "describe_namespace", name="ns")
    with pytest.raises(NotFoundError):
        sdk.call(cosine, "delete_namespace", name="ns")  # a real "missing": it was deleted


def test_delete_namespace_deletes_its_vectors(sdk: Sdk, cosine: Any) -> None:
    sdk.call(cosine, "delete_namespace", name="ns")
    assert sdk.call(cosine, "describe_index_stats").total_vector_count == 0
    assert not sdk.call(cosine, "fetch", ids=["a"], namespace="ns").vectors


def test_namespace_schemas_are_not_supported(sdk: Sdk, cosine: Any) -> None:
    refused_as_unsupported(
        lambda: sdk.call(
            cosine, "create_namespace", name="s", schema={"fields": {"genre": {"filterable": True}}}
        )
    )


# -- data plane: calls the local Pinecone does not serve ---------------------------------------------------


def test_data_plane_calls_not_supported(sdk: Sdk, cosine: Any) -> None:
    record = {"_id": "r1", "chunk_text": "hello"}
    unsupported: list[Callable[[], Any]] = [
        lambda: sdk.call(cosine, "upsert_records", namespace="ns", records=[record]),
        lambda: sdk.call(cosine, "search", namespace="ns", top_k=1, inputs={"text": "hello"}),
        lambda: sdk.call(cosine, "search_records", namespace="ns", top_k=1, inputs={"text": "hello"}),
        lambda: sdk.call(cosine, "start_import", "s3://bucket/path/"),
        lambda: sdk.call(cosine, "describe_import", "1"),
        lambda: sdk.call(cosine, "cancel_import", "1"),
        lambda: sdk.call(cosine, "list_imports_paginated"),
        lambda: sdk.items(cosine, "list_imports"),
        lambda: sdk.call(cosine, "documents.upsert", namespace="ns", documents=[{"_id": "d1", "title": "t"}]),
        lambda: sdk.call(cosine, "documents.fetch", namespace="ns", ids=["d1"]),
        lambda: sdk.call(cosine, "documents.delete", namespace="ns", ids=["d1"]),
    ]
    messages = [str(refused_as_unsupported(call)) for call in unsupported]
    assert "upsert_records" in messages[0] and "search" in messages[1] and "bulk imports" in messages[3]
    assert "document indexes" in messages[-1]
    assert sdk.call(cosine, "describe_index_stats").total_vector_count == 3  # nothing was written


# -- sparse-dense vectors (hybrid search) --------------------------------------------------------------
# Conformance for `sparse_values` on upsert/update/fetch and `sparse_vector` on query belongs here, built
# on the `dotproduct_index` fixture (Pinecone scores sparse-dense only on dotproduct indexes).


# -- the SDK surface -----------------------------------------------------------------------------------

SDK_SURFACE: dict[str, set[str]] = {
    # Index data-plane calls, as `pinecone.Index` and the asyncio index client name them.
    "index": {
        "upsert",
        "upsert_from_dataframe",
        "query",
        "query_namespaces",
        "fetch",
        "fetch_by_metadata",
        "delete",
        "update",
        "describe_index_stats",
        "list",
        "list_paginated",
        "create_namespace",
        "describe_namespace",
        "delete_namespace",
        "list_namespaces",
        "list_namespaces_paginated",
        "upsert_records",
        "search",
        "search_records",
        "start_import",
        "describe_import",
        "cancel_import",
        "list_imports",
        "list_imports_paginated",
        "documents",
        "close",
        "host",
    },
    # Control-plane calls on the client itself (namespaces such as `indexes` and `inference` included).
    "client": {
        "indexes",
        "collections",
        "backups",
        "backup_schedules",
        "restore_jobs",
        "inference",
        "assistants",
        "assistant",
        "index",
        "Index",
        "IndexAsyncio",
        "create_index",
        "create_index_for_model",
        "create_index_from_backup",
        "describe_index",
        "list_indexes",
        "has_index",
        "configure_index",
        "delete_index",
        "create_collection",
        "list_collections",
        "describe_collection",
        "delete_collection",
        "create_backup",
        "list_backups",
        "describe_backup",
        "delete_backup",
        "list_restore_jobs",
        "describe_restore_job",
        "config",
        "close",
    },
}
"""Every public call of pinecone 10.x a serverless user reaches. Served ones are tested above; the rest
answer 501 (`upsert_from_dataframe` is `upsert` in batches, and needs pandas; `assistant` is
`assistants` by another name)."""


def _public(cls: type) -> set[str]:
    return {name for name in dir(cls) if not name.startswith("_")}


@pytest.mark.parametrize(
    ("surface", "classes"),
    [
        ("index", lambda: [Index, AsyncIndex]),
        ("client", lambda: [Pinecone, PineconeAsyncio]),
    ],
)
def test_the_sdk_surface_is_all_accounted_for(surface: str, classes: Callable[[], list[type]]) -> None:
    found: set[str] = set()
    for cls in classes():
        found |= _public(cls)
    assert found - SDK_SURFACE[surface] == set(), "a pinecone SDK call nobody has decided about"
