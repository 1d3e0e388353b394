"""LocalPinecone through the real pinecone SDK (and raw HTTP where the SDK validates client-side)."""

from __future__ import annotations

import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from pinecone import Pinecone
from pinecone.errors.exceptions import ApiError, NotFoundError, PayloadTooLargeError, UnauthorizedError

from sagerag.local._server import free_port
from sagerag.local.pinecone import DEFAULT_API_KEY, LocalPinecone
from tests.support import API_KEY, make_index

HEADERS = {"Api-Key": API_KEY, "X-Pinecone-Api-Version": "2026-07"}


def _post(host: str, path: str, body: Any, headers: dict[str, str] | None = None) -> httpx.Response:
    return httpx.post(f"{host}{path}", json=body, headers=HEADERS if headers is None else headers)


def test_health_needs_no_key(local_pinecone: LocalPinecone) -> None:
    assert httpx.get(f"{local_pinecone.host}/health").json() == {"status": "ok"}


def test_missing_or_wrong_key_is_401_with_pinecone_body(local_pinecone: LocalPinecone) -> None:
    for headers in ({}, {"Api-Key": "wrong"}):
        response = httpx.get(f"{local_pinecone.host}/indexes", headers=headers)
        assert response.status_code == 401
        body = response.json()
        assert body["status"] == 401 and body["error"]["code"] == "UNAUTHENTICATED"
    with pytest.raises(UnauthorizedError):
        Pinecone(api_key="wrong", host=local_pinecone.host).list_indexes()


def test_default_api_key(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("PINECONE_API_KEY", raising=False)
    assert LocalPinecone(tmp_path).api_key == DEFAULT_API_KEY
    monkeypatch.setenv("PINECONE_API_KEY", "from-env")
    assert LocalPinecone(tmp_path).api_key == "from-env"


def test_control_plane(pc: Any) -> None:
    index = make_index(pc, dimension=4, metric="dotproduct", prefix="control")
    name = index.host.rsplit("/", 1)[-1]
    description = pc.indexes.describe(name)
    assert description.status.ready and description.host == index.host
    assert description.schema.fields["_values"].dimension == 4
    assert name in [i.name for i in pc.indexes.list()]
    with pytest.raises(ApiError) as conflict:
        pc.indexes.create(
            name=name,
            schema={"fields": {"_values": {"type": "dense_vector", "dimension": 4, "metric": "cosine"}}},
            deployment={"deployment_type": "managed", "cloud": "aws", "region": "us-east-1"},
        )
    assert conflict.value.status_code == 409
    pc.indexes.delete(name)
    assert not pc.indexes.exists(name)
    with pytest.raises(NotFoundError):
        index.describe_index_stats()


def test_upsert_fetch_stats_namespaces_update(pc: Any) -> None:
    index = make_index(pc, dimension=3, prefix="crud")
    index.upsert(vectors=[("a", [1.0, 0.0, 0.0], {"k": "x"}), ("b", [0.0, 1.0, 0.0])])
    index.upsert(vectors=[("a", [0.0, 0.0, 1.0])], namespace="other")
    fetched = index.fetch(ids=["a", "b", "zzz"])
    assert set(fetched.vectors) == {"a", "b"}
    assert fetched.vectors["a"].metadata == {"k": "x"} and fetched.vectors["a"].values == [1.0, 0.0, 0.0]
    stats = index.describe_index_stats()
    assert stats.total_vector_count == 3 and stats.dimension == 3
    assert stats.namespaces["__default__"].vector_count == 2 and stats.namespaces["other"].vector_count == 1
    index.update(id="b", set_metadata={"k": "y"})
    assert index.fetch(ids=["b"]).vectors["b"].metadata == {"k": "y"}
    index.delete(filter={"k": "y"})
    index.delete(delete_all=True, namespace="other")
    stats = index.describe_index_stats()
    assert stats.total_vector_count == 1


@pytest.mark.parametrize("metric", ["cosine", "dotproduct", "euclidean"])
def test_scores_follow_pinecone_semantics(pc: Any, metric: str) -> None:
    index = make_index(pc, dimension=2, metric=metric, prefix=metric[:3])
    vectors = {"near": [1.0, 0.1], "mid": [1.0, 1.0], "far": [-1.0, 0.2], "long": [3.0, 0.0]}
    index.upsert(vectors=list(vectors.items()))
    query = [1.0, 0.0]
    matches = index.query(vector=query, top_k=4).matches
    q = np.array(query)
    for match in matches:
        v = np.array(vectors[match.id])
        expected = {
            "cosine": v @ q / np.linalg.norm(v) / np.linalg.norm(q),
            "dotproduct": v @ q,
            "euclidean": np.sum((v - q) ** 2),
        }[metric]
        assert match.score == pytest.approx(expected, abs=1e-5)
    scores = [m.score for m in matches]
    assert scores == sorted(scores, reverse=metric != "euclidean")


def test_query_filter_values_and_by_id(pc: Any) -> None:
    index = make_index(pc, dimension=2, prefix="query")
    index.upsert(
        vectors=[
            {"id": f"v{i}", "values": [1.0, i / 10], "metadata": {"n": i, "even": i % 2 == 0}}
            for i in range(10)
        ]
    )
    result = index.query(
        vector=[1.0, 0.0], top_k=3, filter={"even": True, "n": {"$gte": 4}}, include_metadata=True
    )
    assert [m.id for m in result.matches] == ["v4", "v6", "v8"]
    assert result.matches[0].metadata == {"n": 4, "even": True}
    with_values = index.query(vector=[1.0, 0.0], top_k=1, include_values=True)
    assert with_values.matches[0].values == pytest.approx([1.0, 0.0])
    assert index.query(id="v9", top_k=1).matches[0].id == "v9"


def test_list_pagination_with_prefix(pc: Any) -> None:
    index = make_index(pc, dimension=2, prefix="list")
    index.upsert(vectors=[(f"doc#{i:03d}", [1.0, float(i)]) for i in range(25)] + [("other", [1.0, 0.0])])
    page = index.list_paginated(prefix="doc#", limit=10)
    assert [v.id for v in page.vectors] == [f"doc#{i:03d}" for i in range(10)]
    seen: list[str] = []
    token = None
    while True:
        page = index.list_paginated(prefix="doc#", limit=10, pagination_token=token)
        seen.extend(v.id for v in page.vectors)
        token = page.pagination.next if page.pagination else None
        if not token:
            break
    assert seen == [f"doc#{i:03d}" for i in range(25)]
    assert sum(len(ids) for ids in index.list(prefix="doc#")) == 25


def test_limits_are_enforced_like_pinecone(pc: Any) -> None:
    index = make_index(pc, dimension=2, prefix="limits")
    with pytest.raises(ApiError) as too_many:
        index.upsert(vectors=[(f"v{i}", [1.0, 0.0]) for i in range(1001)])
    assert too_many.value.status_code == 400 and "1000" in str(too_many.value)
    with pytest.raises(ApiError) as wrong_dim:
        index.upsert(vectors=[("v", [1.0, 0.0, 0.0])])
    assert "dimension" in str(wrong_dim.value)
    with pytest.raises(ApiError) as big_meta:
        index.upsert(vectors=[("v", [1.0, 0.0], {"text": "x" * 41_000})])
    assert "40960" in str(big_meta.value)
    with pytest.raises(PayloadTooLargeError):
        index.upsert(vectors=[(f"v{i}", [1.0, 0.0], {"text": "y" * 30_000}) for i in range(80)])
    # Checks the SDK also makes client-side, verified on the wire.
    long_id = _post(index.host, "/vectors/upsert", {"vectors": [{"id": "é" * 300, "values": [1.0, 0.0]}]})
    assert long_id.status_code == 400 and "512" in long_id.json()["error"]["message"]
    big_k = _post(index.host, "/query", {"vector": [1.0, 0.0], "topK": 10_001})
    assert big_k.status_code == 400 and big_k.json()["error"]["code"] == "INVALID_ARGUMENT"
    bad_filter = _post(
        index.host, "/query", {"vector": [1.0, 0.0], "topK": 1, "filter": {"a": {"$regex": "x"}}}
    )
    assert bad_filter.status_code == 400
    assert index.describe_index_stats().total_vector_count == 0  # nothing half-written


def test_persistence_after_restart(tmp_path: Path) -> None:
    with LocalPinecone(tmp_path, api_key=API_KEY) as server:
        index = make_index(server.client(), dimension=2, prefix="persist")
        name = index.host.rsplit("/", 1)[-1]
        index.upsert(vectors=[("a", [1.0, 0.0], {"k": "v"}), ("b", [0.0, 1.0])], namespace="ns")
        index.query(vector=[1.0, 0.0], top_k=1, namespace="ns")  # warm the cache before the restart
    with LocalPinecone(tmp_path, api_key=API_KEY) as server:
        pc2 = server.client()
        index = pc2.Index(host=pc2.indexes.describe(name).host)
        assert index.describe_index_stats().namespaces["ns"].vector_count == 2
        top = index.query(vector=[1.0, 0.0], top_k=1, namespace="ns", include_metadata=True).matches[0]
        assert (top.id, top.metadata) == ("a", {"k": "v"})


def test_configure_deletion_protection(pc: Any) -> None:
    index = make_index(pc, dimension=2, prefix="protect")
    name = index.host.rsplit("/", 1)[-1]
    pc.indexes.configure(name, deletion_protection="enabled", tags={"team": "rag"})
    assert pc.indexes.describe(name).deletion_protection == "enabled"
    with pytest.raises(ApiError) as refused:
        pc.indexes.delete(name)
    assert refused.value.status_code == 403
    pc.indexes.configure(name, deletion_protection="disabled")
    pc.indexes.delete(name)
    assert not pc.indexes.exists(name)


def test_concurrent_writers_and_readers(pc: Any) -> None:
    index = make_index(pc, dimension=4, prefix="threads")

    def work(worker: int) -> int:
        for step in range(5):
            index.upsert(vectors=[(f"w{worker}-{step}-{j}", [1.0, worker, step, j]) for j in range(20)])
            index.query(vector=[1.0, 0.0, 0.0, 0.0], top_k=5, filter={"missing": {"$exists": False}})
        return worker

    with ThreadPoolExecutor(max_workers=6) as pool:
        assert sorted(pool.map(work, range(6))) == list(range(6))
    assert index.describe_index_stats().total_vector_count == 6 * 5 * 20


_CRASHY_SERVER = """
import sys, time
from sagerag.local import LocalPinecone
server = LocalPinecone(sys.argv[1], port=int(sys.argv[2]), api_key=sys.argv[3]).start()
print("ready", flush=True)
time.sleep(600)
"""


def test_acknowledged_upsert_survives_a_killed_server(tmp_path: Path) -> None:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHY_SERVER, str(tmp_path), str(port), API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        client = Pinecone(api_key=API_KEY, host=f"http://127.0.0.1:{port}")
        index = make_index(client, dimension=2, prefix="crash")
        name = index.host.rsplit("/", 1)[-1]
        index.upsert(vectors=[(f"v{i}", [1.0, float(i)]) for i in range(50)])
    finally:
        proc.kill()  # SIGKILL: no shutdown hooks, no checkpoint
        proc.wait(timeout=10)
    with LocalPinecone(tmp_path, api_key=API_KEY) as server:
        client = server.client()
        index = client.Index(host=client.indexes.describe(name).host)
        assert index.describe_index_stats().total_vector_count == 50


def test_sigkill_during_upsert_batches_loses_no_acknowledged_vector(tmp_path: Path) -> None:
    """Clients stream upsert batches over HTTP into a server (its namespace loaded, so writes take the
    in-place path) that is SIGKILLed while batches are in flight. After a restart every vector whose
    upsert got a 200 is there with its values, every batch is there whole or not at all, and queries
    (memory) agree with storage."""
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, "-c", _CRASHY_SERVER, str(tmp_path), str(port), API_KEY],
        stdout=subprocess.PIPE,
        text=True,
    )
    dim, batch = 8, 200
    acknowledged: list[int] = []
    sent: list[int] = []
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        index = make_index(Pinecone(api_key=API_KEY, host=f"http://127.0.0.1:{port}"), dimension=dim)
        name = index.host.rsplit("/", 1)[-1]
        _post(index.host, "/query", {"vector": [1.0] * dim, "topK": 1}).raise_for_status()

        def stream(worker: int) -> None:
            with httpx.Client(headers=HEADERS, timeout=30) as client:
                for number in range(worker, 10_000, 2):
                    vectors = [
                        {"id": f"b{number}-{j}", "values": [float(number), float(j)] + [1.0] * (dim - 2)}
                        for j in range(batch)
                    ]
                    sent.append(number)
                    try:
                        response = client.post(f"{index.host}/vectors/upsert", json={"vectors": vectors})
                    except httpx.HTTPError:
                        return  # the server died with this batch in flight
                    if response.status_code != 200:
                        return
                    acknowledged.append(number)

        with ThreadPoolExecutor(max_workers=2) as pool:
            futures = [pool.submit(stream, worker) for worker in range(2)]
            while len(acknowledged) < 12 and not any(f.done() for f in futures):
                time.sleep(0.01)
            proc.kill()  # SIGKILL with batches in flight: no shutdown hooks, no checkpoint
            for future in futures:
                future.result()
    finally:
        proc.kill()
        proc.wait(timeout=10)
    assert len(acknowledged) >= 12 and set(sent) - set(acknowledged)  # killed mid-stream
    with LocalPinecone(tmp_path, api_key=API_KEY) as server:
        client = server.client()
        index = client.Index(host=client.indexes.describe(name).host)
        for number in acknowledged:
            ids = [f"b{number}-{j}" for j in range(batch)]
            fetched = index.fetch(ids=ids).vectors
            assert set(fetched) == set(ids), f"acknowledged batch {number} lost vectors"
            assert fetched[ids[7]].values[:2] == [float(number), 7.0]
        stored: list[str] = []
        token = None
        while True:
            page = index.list_paginated(limit=100, pagination_token=token)
            stored += [v.id for v in page.vectors]
            token = page.pagination.next if page.pagination else None
            if not token:
                break
        batches = {vector_id.split("-")[0] for vector_id in stored}
        assert len(stored) == batch * len(batches)  # whole batches only
        assert index.describe_index_stats().total_vector_count == len(stored)
        everything = index.query(vector=[1.0] * dim, top_k=len(stored))
        assert sorted(m.id for m in everything.matches) == sorted(stored)
