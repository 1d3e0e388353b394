"""The simulated remote endpoint used by the ingest benchmark: real answers, and its instances queue."""

from __future__ import annotations

import json
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import numpy as np
import pytest

from sagerag.adapters import SagemakerEmbeddings, TEIContentHandler
from sagerag.local import LocalRuntime
from sagerag.local.sagemaker.containers import FeatureExtraction
from sagerag.local.sagemaker.simulated import RemoteTiming, Schedule, SimulatedFeatureExtraction

TEXTS = ["Managed Spot Training saves money.", "Studio is a web IDE.", "Canvas needs no code."]


def test_answers_match_the_real_endpoint(runtime: LocalRuntime) -> None:
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    simulated = SimulatedFeatureExtraction(
        inner, RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0)
    )
    with LocalRuntime() as other:
        other.install("minilm-remote", simulated)
        client = other.client()
        remote = SagemakerEmbeddings(endpoint_name="minilm-remote", client=client).embed_documents(TEXTS)
        real = SagemakerEmbeddings(endpoint_name="minilm", client=client).embed_documents(TEXTS)
    assert np.allclose(remote, real, atol=1e-6)
    assert simulated.requests == 1


def test_pooled_answers_match_the_real_tei_endpoint(runtime: LocalRuntime) -> None:
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    simulated = SimulatedFeatureExtraction(
        inner, RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0), pooled=True
    )
    with LocalRuntime() as other:
        other.install("tei-remote", simulated)
        client = other.client()
        remote = SagemakerEmbeddings(
            endpoint_name="tei-remote", client=client, content_handler=TEIContentHandler()
        ).embed_documents(TEXTS)
        real = SagemakerEmbeddings(
            endpoint_name="minilm-tei", client=client, content_handler=TEIContentHandler()
        ).embed_documents(TEXTS)
    assert np.allclose(remote, real, atol=1e-6)


def test_token_answers_are_written_as_the_toolkit_writes_them(runtime: LocalRuntime) -> None:
    # The toolkit turns float32 outputs into Python floats and writes them with `json`: a client parses
    # those ~20-byte doubles, so the benchmark's client cost depends on answering with the same bytes.
    simulated = SimulatedFeatureExtraction(
        FeatureExtraction(runtime.app.registry.get("minilm")),
        RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0),
    )
    answer = simulated.invoke(json.dumps({"inputs": TEXTS[:1]}).encode())
    tokens = runtime.app.registry.get("minilm").token_embeddings(TEXTS[:1])[0]
    assert json.loads(answer) == [tokens[None].tolist()]
    assert len(answer) > 18 * tokens.size


def test_the_response_s_writing_time_counts_towards_service() -> None:
    timing = RemoteTiming(per_request_s=0.01, per_token_s=0.0, per_response_byte_s=1e-8)
    assert timing.service_s(tokens=100, response_bytes=1_000_000) == 0.01 + 0.01
    npy = RemoteTiming(per_request_s=0.01, per_token_s=0.0, per_response_byte_s=1e-8, per_npy_byte_s=2e-9)
    assert npy.service_s(tokens=100, npy_bytes=1_000_000) == pytest.approx(0.01 + 0.002)


def test_npy_answers_hold_the_json_answers_values_and_are_timed_as_npy(runtime: LocalRuntime) -> None:
    """Asked for NPY, the simulated toolkit answers what the local one does (float64, equal token counts
    only) from the same recordings, and books the NPY writing time, not the JSON one."""
    import io

    from sagerag.errors import ContainerError

    timing = RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0, per_response_byte_s=1e-7)
    simulated = SimulatedFeatureExtraction(
        FeatureExtraction(runtime.app.registry.get("minilm")), replace(timing, per_npy_byte_s=1e-9)
    )
    texts = ["hello there", "hello again"]  # one token count
    body = json.dumps({"inputs": texts}).encode()
    answer = simulated.invoke(body, accept="application/x-npy")
    array = np.load(io.BytesIO(answer), allow_pickle=False)
    assert array.dtype == np.float64 and array.shape[:2] == (2, 1)
    as_json = simulated.invoke(body)
    assert np.array_equal(array, json.loads(as_json))  # the same doubles as its JSON
    assert simulated.busy_s == pytest.approx(1e-9 * len(answer) + 1e-7 * len(as_json))
    simulated.reset()
    simulated.invoke(body, accept="application/x-npy")
    assert simulated.capacity() == pytest.approx(2 / (1e-9 * len(answer)))
    with pytest.raises(ContainerError, match="inhomogeneous shape"):
        simulated.invoke(json.dumps({"inputs": TEXTS[:2]}).encode(), accept="application/x-npy")


def test_requests_beyond_the_instances_queue(runtime: LocalRuntime) -> None:
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    timing = RemoteTiming(round_trip_s=0, per_request_s=0.05, per_token_s=0, instances=1)
    simulated = SimulatedFeatureExtraction(inner, timing)
    simulated.record(TEXTS)
    body = json.dumps({"inputs": TEXTS[:1]}).encode()

    def call(_: Any) -> bytes:
        return simulated.invoke(body)

    started = time.perf_counter()
    with ThreadPoolExecutor(4) as pool:
        list(pool.map(call, range(4)))
    # One instance serves one request at a time: four requests cannot finish before four service times.
    assert time.perf_counter() - started >= 4 * 0.05
    assert simulated.requests == 4 and abs(simulated.busy_s - 0.2) < 1e-9


def test_workers_share_an_instance_s_gpu(runtime: LocalRuntime) -> None:
    """Two workers serve two requests at once; their forward passes still take turns on the one GPU."""
    inner = FeatureExtraction(runtime.app.registry.get("minilm"))
    simulated = SimulatedFeatureExtraction(inner, RemoteTiming(round_trip_s=0, per_token_s=0, workers=2))
    simulated.record(TEXTS)
    n_tokens = simulated.tokens(TEXTS[0])
    body = json.dumps({"inputs": TEXTS[:1]}).encode()

    def wall(timing: RemoteTiming) -> float:
        endpoint = simulated.retimed(timing)
        started = time.perf_counter()
        with ThreadPoolExecutor(4) as pool:
            list(pool.map(lambda _: endpoint.invoke(body), range(4)))
        assert endpoint.requests == 4 and endpoint.capacity() > 0
        return time.perf_counter() - started

    cpu_bound = RemoteTiming(round_trip_s=0, per_request_s=0.05, per_token_s=0, workers=2)
    assert wall(cpu_bound) >= 2 * 0.05  # four requests on two workers: two rounds
    gpu_bound = RemoteTiming(round_trip_s=0, per_request_s=0, per_token_s=0.05 / n_tokens, workers=4)
    assert wall(gpu_bound) >= 4 * 0.05 * 0.999  # four workers, one GPU: the forward passes in turn


def test_service_is_booked_on_the_clock_so_a_late_thread_never_delays_the_next_request() -> None:
    """Ends follow arrivals and service times only, whenever `book` runs: the emulator's threads can wake
    late (its process shares the GIL with the local Pinecone), the modelled instances cannot."""
    one = Schedule(instances=1, workers=1)
    assert one.book(arrival=0.0, service_s=0.05, gpu_s=0.0) == 0.05
    assert one.book(arrival=0.01, service_s=0.05, gpu_s=0.0) == pytest.approx(0.10)  # queued behind it
    assert one.book(arrival=0.5, service_s=0.05, gpu_s=0.0) == pytest.approx(0.55)  # idle until it came
    two = Schedule(instances=2, workers=1)
    assert [two.book(0.0, 0.05, 0.0) for _ in range(3)] == pytest.approx([0.05, 0.05, 0.10])
    # Two workers of one instance: their non-GPU parts overlap, their forward passes take turns.
    shared = Schedule(instances=1, workers=2)
    assert [shared.book(0.0, 0.05, 0.04) for _ in range(2)] == pytest.approx([0.05, 0.09])


def test_capacity_is_instances_times_batch_throughput() -> None:
    timing = RemoteTiming(per_request_s=0.01, per_token_s=0.0001, instances=4)
    assert timing.capacity(tokens_per_text=50, texts_per_request=32) == 4 * 32 / (0.01 + 0.0001 * 1600)
    # workers multiply it until the GPU is the limit
    service = 0.01 + 0.00001 * 1600 + 1e-8 * 32 * 800_000
    toolkit = RemoteTiming(per_request_s=0.01, per_token_s=0.00001, per_response_byte_s=1e-8, workers=4)
    assert toolkit.capacity(50, 32, 800_000) == pytest.approx(4 * 32 / service)
    many = RemoteTiming(per_request_s=0.01, per_token_s=0.00001, per_response_byte_s=1e-8, workers=64)
    assert many.capacity(50, 32, 800_000) == pytest.approx(32 / (0.00001 * 1600))
