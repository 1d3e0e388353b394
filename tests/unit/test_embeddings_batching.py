"""SagemakerEmbeddings' batching and retries against a stand-in endpoint (no model, no server).

The stand-in answers like a TEI endpoint (one vector per text, the vector naming the text) and refuses,
as SageMaker does, any response holding more than `refuse_over` texts.
"""

from __future__ import annotations

import io
import json
from typing import Any

import pytest
from botocore.exceptions import ClientError
from langchain_tests.unit_tests import EmbeddingsUnitTests

from sagerag.adapters import MiniLMContentHandler, SagemakerEmbeddings, TEIContentHandler
from sagerag.errors import DocumentTooLargeError, EmbeddingOutputError
from sagerag.retry import RetryPolicy

TOO_LARGE = (
    "Received server error (500) from primary and could not load the entire response body. "
    "See the log group /aws/sagemaker/Endpoints/fake in account 000000000000 for more information."
)


def _client_error(code: str, message: str) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "InvokeEndpoint")


class FakeEndpoint:
    """Texts `t<i> ...` in, `[[i, 1.0], ...]` out; refuses responses of more than `refuse_over` texts."""

    def __init__(self, refuse_over: int = 10_000, failures: list[ClientError] | None = None) -> None:
        self.refuse_over = refuse_over
        self.failures = list(failures or [])
        self.calls: list[list[str]] = []
        self.served: list[list[str]] = []

    def invoke_endpoint(self, **kwargs: Any) -> dict[str, Any]:
        texts = json.loads(kwargs["Body"])["inputs"]
        self.calls.append(texts)
        if self.failures:
            raise self.failures.pop(0)
        if len(texts) > self.refuse_over:
            raise _client_error("ModelError", TOO_LARGE)
        self.served.append(texts)
        body = json.dumps([[float(text.split()[0][1:]), 1.0] for text in texts]).encode()
        return {"Body": io.BytesIO(body), "ContentType": "application/json"}


def _texts(n: int) -> list[str]:
    # lengths vary, so the length sort inside SagemakerEmbeddings reorders them
    return [f"t{i} " + "word " * ((i * 7) % 5) for i in range(n)]


def _embeddings(endpoint: FakeEndpoint, **fields: Any) -> SagemakerEmbeddings:
    handler = TEIContentHandler(normalize=False, dimension=2, bytes_per_value=100)  # 204 bytes per text
    return SagemakerEmbeddings(endpoint_name="fake", client=endpoint, content_handler=handler, **fields)


def _ids(vectors: list[list[float]]) -> list[int]:
    return [int(v[0]) for v in vectors]


def test_batches_are_cut_by_the_expected_response_size() -> None:
    endpoint = FakeEndpoint()
    vectors = _embeddings(endpoint, max_response_bytes=5 * 204).embed_documents(_texts(23))
    assert _ids(vectors) == list(range(23))
    assert max(len(call) for call in endpoint.calls) == 5 and len(endpoint.calls) == 5


def test_embedding_ahead_sends_whole_requests_across_the_batch_size() -> None:
    """`PrefetchedEmbeddings` groups texts as the requests would carry them: 64 texts at 5 a response
    are 13 requests, not 14 (two groups of `batch_size` 32 each cut into 5+5+5+5+5+5+2)."""
    from sagerag.stores.prefetch import PrefetchedEmbeddings

    endpoint = FakeEndpoint()
    embeddings = _embeddings(endpoint, max_response_bytes=5 * 204)
    texts = _texts(64)
    with PrefetchedEmbeddings.for_embeddings(embeddings, texts, ahead=64) as ahead:
        assert _ids(ahead.embed_documents(texts)) == list(range(64))
    assert len(endpoint.calls) == 13 and max(len(call) for call in endpoint.calls) == 5


def test_planned_requests_sort_by_length_only_for_a_container_that_pads() -> None:
    """A padded response costs count x longest, so texts planned sorted by length fill more of each
    request; a container that does not pad gets its texts in the given order (vectors come back in it)."""
    texts = [("alpha beta gamma delta " * (60 if i % 2 else 1)) + str(i) for i in range(40)]
    padding = SagemakerEmbeddings(
        endpoint_name="fake", client=FakeEndpoint(), content_handler=MiniLMContentHandler()
    )
    order, requests = padding.plan_requests(texts)
    assert [len(texts[i]) for i in order] == sorted(len(t) for t in texts)
    assert len(requests) < len(list(padding._batches(texts)))  # the given order: a long text in each
    pooled = _embeddings(FakeEndpoint(), max_response_bytes=5 * 204)
    order, requests = pooled.plan_requests(texts)
    assert order == list(range(40)) and [t for r in requests for t in r] == texts and len(requests) == 8


class KeyedHandler(TEIContentHandler):
    """A pooled handler whose texts may share a request only with texts of the same key (`t<i>`: i % 3),
    like NPY answers, which need one token count a request."""

    def batch_keys(self, texts: list[str]) -> list[int]:
        return [int(text.split()[0][1:]) % 3 for text in texts]


def test_texts_share_a_request_only_with_texts_of_the_same_batch_key() -> None:
    endpoint = FakeEndpoint()
    handler = KeyedHandler(normalize=False, dimension=2, bytes_per_value=100)
    embeddings = SagemakerEmbeddings(endpoint_name="fake", client=endpoint, content_handler=handler)
    texts = _texts(20)
    assert _ids(embeddings.embed_documents(texts)) == list(range(20))
    assert all(len({int(t.split()[0][1:]) % 3 for t in call}) == 1 for call in endpoint.calls)
    assert len(endpoint.calls) == 3  # one request per key: 7, 7 and 6 texts under the default caps
    order, requests = embeddings.plan_requests(texts)
    assert sorted(order) == list(range(20)) and len(requests) == 3


def test_texts_grouped_by_key_are_planned_a_whole_ahead_at_a_time() -> None:
    """Equal keys are rarer in a small window (NPY: one token count a request), so a handler that groups
    by key has the embedding-ahead plan over `ahead` texts instead of 256, and embeds up to two such windows
    ahead (the next one goes out while the store waits for the last texts of this one)."""
    from sagerag.stores.prefetch import PrefetchedEmbeddings

    class Grouping(KeyedHandler):
        groups_by_key = True

    texts = _texts(600)
    for handler, window, most in ((KeyedHandler(), 256, 512), (Grouping(), 512, 1024)):
        embeddings = SagemakerEmbeddings(endpoint_name="fake", client=FakeEndpoint(), content_handler=handler)
        with PrefetchedEmbeddings.for_embeddings(embeddings, texts, ahead=512) as ahead:
            assert ahead._window == window and ahead._ahead == most
            assert len(ahead.embed_documents(texts)) == 600


def test_an_npy_batch_the_endpoint_cannot_write_is_sent_one_text_at_a_time() -> None:
    """A toolkit asked for NPY refuses texts of different token counts (numpy's ragged-array error): the
    handler's tokenizer was not the endpoint's. The texts go again one by one, in order."""
    uneven = (
        'Received client error (400) from primary with message "{"code": 400, "message": "setting an '
        "array element with a sequence. The requested array has an inhomogeneous shape after 2 "
        'dimensions."}"'
    )
    endpoint = FakeEndpoint(failures=[_client_error("ModelError", uneven)])
    vectors = _embeddings(endpoint, batch_size=8).embed_documents(_texts(5))
    assert _ids(vectors) == list(range(5))
    assert [len(call) for call in endpoint.calls] == [5, 1, 1, 1, 1, 1]


def test_refused_batches_are_halved_until_they_fit_in_order_and_once() -> None:
    endpoint = FakeEndpoint(refuse_over=3)
    texts = _texts(16)
    vectors = _embeddings(endpoint, batch_size=16, max_concurrency=1).embed_documents(texts)
    assert _ids(vectors) == list(range(16))
    assert [len(call) for call in endpoint.calls[:3]] == [16, 8, 4]  # refused, refused, refused, then 2s
    assert sorted(t for batch in endpoint.served for t in batch) == sorted(texts)
    refused = len(endpoint.calls) - len(endpoint.served)
    assert refused == 1 + 2 + 4  # the 16, both 8s, all four 4s


def test_async_path_splits_the_same_way() -> None:
    import asyncio

    endpoint = FakeEndpoint(refuse_over=2)
    vectors = asyncio.run(_embeddings(endpoint, batch_size=8).aembed_documents(_texts(11)))
    assert _ids(vectors) == list(range(11))
    assert sorted(t for batch in endpoint.served for t in batch) == sorted(_texts(11))


def test_a_text_refused_alone_is_named_by_its_position_in_the_callers_list() -> None:
    endpoint = FakeEndpoint(refuse_over=0)
    with pytest.raises(DocumentTooLargeError, match=r"^text #1 alone .*endpoint 'fake'.*TEI") as info:
        _embeddings(endpoint).embed_documents(["t0 a much longer text than the other", "t1 x"])
    assert "\n" not in str(info.value)


def test_throttling_is_retried_and_other_errors_are_not() -> None:
    endpoint = FakeEndpoint(failures=[_client_error("ModelNotReadyException", "warming up")] * 2)
    assert _ids(_embeddings(endpoint).embed_documents(["t4 a"])) == [4]
    assert len(endpoint.calls) == 3
    broken = FakeEndpoint(failures=[_client_error("ValidationError", "no such endpoint")])
    with pytest.raises(ClientError, match=r"no such endpoint.*\[endpoint 'fake'\]"):
        _embeddings(broken).embed_documents(["t0"])
    assert len(broken.calls) == 1


def test_tei_handler_rejects_token_level_output() -> None:
    with pytest.raises(EmbeddingOutputError, match="is this a TEI endpoint"):
        TEIContentHandler().transform_output(json.dumps([[[0.1, 0.2]]]).encode())


def test_minilm_estimate_keeps_two_512_token_texts_apart() -> None:
    """A 512-token response is ~4.7 MB as the inference toolkit writes it: one such text per request."""
    handler = MiniLMContentHandler()
    long = "alpha beta gamma delta " * 200  # truncated at 512 tokens
    short = "a short text"
    sizes = handler.estimate_response_bytes([long, short])
    assert 4_500_000 < sizes[0] < 5 * 1024 * 1024 and sizes[1] < 60_000
    endpoint = FakeEndpoint()
    embeddings = SagemakerEmbeddings(endpoint_name="fake", client=endpoint, content_handler=handler)
    assert [len(batch) for _, batch in embeddings._batches([f"t{i} {long}" for i in range(3)])] == [1, 1, 1]
    assert [len(batch) for _, batch in embeddings._batches([f"t{i} {short}" for i in range(40)])] == [32, 8]


def test_retry_policy_waits_with_full_jitter_and_gives_up() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        raise TimeoutError("slow")

    policy = RetryPolicy(lambda exc: isinstance(exc, TimeoutError), 4, 0.5, 1.0, sleep=waits.append)
    with pytest.raises(TimeoutError):
        policy.call(flaky)
    assert len(calls) == 4 and len(waits) == 3
    assert all(0 <= w <= bound for w, bound in zip(waits, [0.5, 1.0, 1.0], strict=True))
    with pytest.raises(KeyError):
        policy.call(lambda: {}["missing"])  # not retryable: raised at once
    assert len(waits) == 3


class TestSagemakerEmbeddingsUnit(EmbeddingsUnitTests):
    """LangChain's standard unit suite: construction from parameters and from the AWS environment."""

    @property
    def embeddings_class(self) -> type[SagemakerEmbeddings]:
        return SagemakerEmbeddings

    @property
    def embedding_model_params(self) -> dict[str, Any]:
        return {"endpoint_name": "minilm", "region_name": "us-east-1"}

    @property
    def init_from_env_params(self) -> tuple[dict[str, str], dict[str, Any], dict[str, Any]]:
        env = {"AWS_DEFAULT_REGION": "eu-west-1", "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "y"}
        return env, {"endpoint_name": "minilm"}, {"endpoint_name": "minilm", "region_name": None}


def test_client_built_from_the_environment_uses_its_region(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    assert SagemakerEmbeddings(endpoint_name="minilm").client.meta.region_name == "eu-west-1"


def test_embeddings_kind_setting_picks_the_handler(tmp_path: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    from sagerag.adapters import make_embeddings
    from sagerag.config import load_settings
    from sagerag.errors import ConfigurationError

    config = tmp_path / "sagerag.toml"
    config.write_text('[sagemaker]\nembeddings_kind = "tei"\n')
    monkeypatch.delenv("SAGERAG_EMBEDDINGS_KIND", raising=False)
    settings = load_settings(config)
    assert settings.embeddings_kind == "tei"
    embeddings = make_embeddings("e", kind="tei", client=FakeEndpoint(), batch_size=64)
    assert isinstance(embeddings.content_handler, TEIContentHandler) and embeddings.batch_size == 32
    monkeypatch.setenv("SAGERAG_EMBEDDINGS_KIND", "onnx")
    with pytest.raises(ConfigurationError, match=r"SAGERAG_EMBEDDINGS_KIND.*'feature-extraction' or 'tei'"):
        load_settings(config)


def test_embeddings_format_setting_asks_the_toolkit_for_npy(
    tmp_path: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from sagerag.adapters import make_embeddings
    from sagerag.config import load_settings
    from sagerag.errors import ConfigurationError

    config = tmp_path / "sagerag.toml"
    config.write_text('[sagemaker]\nembeddings_format = "npy"\n')
    monkeypatch.delenv("SAGERAG_EMBEDDINGS_FORMAT", raising=False)
    assert load_settings(config).embeddings_format == "npy"
    (tmp_path / "plain.toml").write_text("[sagemaker]\n")
    assert load_settings(tmp_path / "plain.toml").embeddings_format == "json"
    handler = make_embeddings("e", client=FakeEndpoint(), binary=True).content_handler
    assert isinstance(handler, MiniLMContentHandler) and handler.accepts == "application/x-npy"
    monkeypatch.setenv("SAGERAG_EMBEDDINGS_FORMAT", "msgpack")
    with pytest.raises(ConfigurationError, match=r"SAGERAG_EMBEDDINGS_FORMAT.*'json' or 'npy'"):
        load_settings(config)


def test_a_plan_counts_each_text_s_tokens_once(monkeypatch: pytest.MonkeyPatch) -> None:
    """Counting tokens costs ~0.25 ms a text; an NPY plan needs the counts twice (batch keys, then the
    response estimates) and must pay for them once."""
    from sagerag.adapters import minilm

    counted: list[str] = []
    real = minilm.token_counts

    def counting(texts: list[str], *args: Any) -> list[int]:
        counted.extend(texts)
        return real(texts, *args)

    monkeypatch.setattr(minilm, "token_counts", counting)
    texts = [f"passage {i} " + "word " * (i % 7) for i in range(50)]
    embeddings = SagemakerEmbeddings(
        endpoint_name="fake", client=FakeEndpoint(), content_handler=MiniLMContentHandler(binary=True)
    )
    order, requests = embeddings.plan_requests(texts)
    assert sorted(counted) == sorted(texts) and sorted(order) == list(range(50))
    assert len(requests) == len(set(embeddings.content_handler.token_counts(texts)))
