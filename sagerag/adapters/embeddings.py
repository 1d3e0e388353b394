"""`SagemakerEmbeddings`: a LangChain `Embeddings` over a SageMaker feature-extraction endpoint.

Why not langchain-community's `SagemakerEndpointEmbeddings`: it crashes on an empty list, sends chunks one
at a time, ignores SageMaker's 6 MB payload limits and turns every error into `ValueError`. Here batches
are cut by count, by request bytes and by the *expected response* bytes (a token-level endpoint answers
one vector per token, so the response is the large side: the handler estimates it from token counts),
sent with bounded concurrency (threads, or asyncio tasks for the async API), retried on throttling and
"model not ready", and botocore's exceptions keep their types. A batch the endpoint still refuses as too
large is split in halves and each half sent again, down to one text.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagerag.adapters.client import (
    RETRYABLE_CODES,
    SAGEMAKER_MAX_PAYLOAD_BYTES,
    error_code,
    is_response_too_large,
    is_uneven_npy,
    make_runtime_client,
    name_endpoint,
)
from sagerag.adapters.minilm import MiniLMContentHandler
from sagerag.errors import DocumentTooLargeError
from sagerag.retry import RetryPolicy

logger = logging.getLogger(__name__)


class SagemakerEmbeddings(BaseModel, Embeddings):
    """Embeddings from a SageMaker endpoint, pooled by a content handler (MiniLM by default)."""

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    endpoint_name: str
    """Name of the SageMaker endpoint."""
    client: Any = None
    """A boto3 `sagemaker-runtime` client; built from the fields below when not given."""
    region_name: str | None = None
    """AWS region, e.g. `us-east-1`."""
    credentials_profile_name: str | None = None
    """Named AWS profile for credentials."""
    endpoint_url: str | None = None
    """SageMaker Runtime URL override (a local server or VPC endpoint)."""
    timeout: float = 60.0
    """Seconds per request before giving up (connect and read)."""
    content_handler: Any = Field(default_factory=MiniLMContentHandler)
    """Turns texts into a request body and the response into vectors (`MiniLMContentHandler`)."""
    batch_size: int = Field(default=32, gt=0)
    """Most texts per request."""
    max_request_bytes: int = Field(default=5 * 1024 * 1024, gt=0, le=SAGEMAKER_MAX_PAYLOAD_BYTES)
    """Most bytes per request body; below SageMaker's 6 MB limit."""
    max_response_bytes: int = Field(default=5 * 1024 * 1024, gt=0, le=SAGEMAKER_MAX_PAYLOAD_BYTES)
    """Most *expected* response bytes per request (the handler's estimate); a margin below the 6 MB limit."""
    max_concurrency: int = Field(default=32, gt=0)
    """Requests in flight at once. An endpoint of N model servers (instances x workers) stays busy only
    with about N x (round trip + service time) / service time requests in flight: ~20 for 4 instances,
    100 ms away, serving 25 ms TEI batches; ~21 for 4 toolkit instances of 4 workers 30 ms away
    (docs/benchmarks.md, "Parsing on several cores"). Waiting threads are cheap; requests beyond what the
    endpoint serves at once queue there."""
    max_retries: int = Field(default=6, ge=0)
    """Extra tries for throttling / model-not-ready answers, with exponential backoff."""
    model_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra fields for the request body."""
    endpoint_kwargs: dict[str, Any] = Field(default_factory=dict)
    """Extra arguments for `invoke_endpoint` (e.g. `CustomAttributes`)."""

    @model_validator(mode="after")
    def _build_client(self) -> SagemakerEmbeddings:
        if self.client is None:
            self.client = make_runtime_client(
                self.region_name, self.endpoint_url, self.credentials_profile_name, self.timeout
            )
        return self

    # batching
    def _response_costs(self, texts: list[str]) -> list[int] | None:
        """The handler's expected response bytes per text, or None for a handler that cannot tell."""
        estimate = getattr(self.content_handler, "estimate_response_bytes", None)
        return None if estimate is None else list(estimate(texts))

    @property
    def groups_by_key(self) -> bool:
        """True when texts share a request only with texts of equal key (the handler's `batch_keys`: NPY
        answers): a planner then looks at more texts at once to fill each request."""
        return bool(getattr(self.content_handler, "groups_by_key", False))

    def _batch_keys(self, texts: list[str]) -> list[int] | None:
        """The handler's `batch_keys`: texts share a request only where equal (None: any may)."""
        keys = getattr(self.content_handler, "batch_keys", None)
        return None if keys is None else keys(texts)

    def _batches(
        self, texts: list[str], positions: list[int] | None = None, keys: list[int] | None = None
    ) -> Iterator[tuple[int, list[str]]]:
        """(start, texts) per request; `positions` maps indices back to the caller's order for errors.

        A batch ends at `batch_size` texts, at `max_request_bytes` of request, where its expected
        response would pass `max_response_bytes` (count x longest text for a container that pads), or
        where the handler's batch key changes (`keys`, in `texts`' order).
        """
        costs = self._response_costs(texts)
        pads = bool(getattr(self.content_handler, "pads_batches", False))
        start, size, answer, widest = 0, 2, 0, 0
        batch: list[str] = []
        for i, text in enumerate(texts):
            cost = len(json.dumps(text).encode("utf-8")) + 1
            if cost + 16 > self.max_request_bytes:
                raise DocumentTooLargeError(
                    f"text #{positions[i] if positions else i} ({cost:,} bytes as JSON) exceeds the {self.max_request_bytes:,}-byte request "
                    f"limit of endpoint {self.endpoint_name!r}; split it into smaller chunks"
                )
            reply = costs[i] if costs else 0
            grown = (len(batch) + 1) * max(widest, reply) if pads else answer + reply
            if batch and (
                len(batch) >= self.batch_size
                or size + cost > self.max_request_bytes - 16
                or grown > self.max_response_bytes
                or (keys is not None and keys[i] != keys[start])
            ):
                yield start, batch
                start, batch, size, answer, widest = i, [], 2, 0, 0
            batch.append(text)
            size += cost
            answer += reply
            widest = max(widest, reply)
        if batch:
            yield start, batch

    def plan_requests(self, texts: list[str]) -> tuple[list[int], list[list[str]]]:
        """An order for `texts` and the texts of each request in it, for a caller scheduling the requests
        itself (`stores.prefetch`): sorted by length for a container that pads (a padded request then
        carries more texts: toolkit 4.3 a request over 256 texts, against 3.1 in the given order) or a
        handler with batch keys (equal keys side by side), else in the given order (the same requests, and
        vectors come back in the order they are asked for)."""
        texts = list(texts)
        handler = self.content_handler
        if getattr(handler, "pads_batches", False) or hasattr(handler, "batch_keys"):
            order, batches = self._plan(texts)
        else:
            order, batches = list(range(len(texts))), list(self._batches(texts))
        return order, [batch for _, batch in batches]

    def embed_request(self, texts: list[str]) -> list[list[float]]:
        """The vectors of one request of `texts`, as `plan_requests` cut them (not planned again: that costs
        each text's JSON size and, for MiniLM, its tokenisation); split if the endpoint refuses the answer."""
        return self._invoke(list(texts))

    # one request, with retries; split when the response is refused as too large
    def _retry_policy(self) -> RetryPolicy:
        return RetryPolicy(
            lambda exc: error_code(exc) in RETRYABLE_CODES,
            attempts=self.max_retries + 1,
            base_delay=0.1,
            max_delay=5.0,
        )

    def _invoke_once(self, texts: list[str]) -> list[list[float]]:
        handler = self.content_handler
        response = self.client.invoke_endpoint(
            EndpointName=self.endpoint_name,
            Body=handler.transform_input(texts, self.model_kwargs),
            ContentType=handler.content_type,
            Accept=handler.accepts,
            **self.endpoint_kwargs,
        )
        vectors: list[list[float]] = handler.transform_output(response["Body"])
        return vectors

    def _invoke(self, texts: list[str], positions: Sequence[int] | None = None) -> list[list[float]]:
        """Vectors for `texts` in order; halves a batch whose response the endpoint refuses as too large."""
        positions = list(range(len(texts))) if positions is None else list(positions)
        try:
            vectors = self._retry_policy().call(lambda: self._invoke_once(texts))
        except Exception as exc:
            if is_uneven_npy(exc) and len(texts) > 1:
                logger.warning(
                    "endpoint %r could not write %d texts as one NPY array (their token counts differ: "
                    "the handler's tokenizer is not the endpoint's model's); sending them one at a time",
                    self.endpoint_name,
                    len(texts),
                )
                return [v for i, text in enumerate(texts) for v in self._invoke([text], [positions[i]])]
            if not is_response_too_large(exc):
                raise name_endpoint(exc, self.endpoint_name)  # noqa: B904 (same exception, with the endpoint named)
            if len(texts) == 1:
                raise DocumentTooLargeError(
                    f"text #{positions[0]} alone gets a response over SageMaker's 6 MB limit from endpoint "
                    f"{self.endpoint_name!r}; split it into smaller chunks, or use a pooled-output (TEI) "
                    "endpoint, which answers one vector per text"
                ) from None
            half = len(texts) // 2
            logger.warning(
                "endpoint %r refused a %d-text response as too large; splitting it in two",
                self.endpoint_name,
                len(texts),
            )
            return self._invoke(texts[:half], positions[:half]) + self._invoke(texts[half:], positions[half:])
        if len(vectors) != len(texts):
            raise ValueError(
                f"endpoint {self.endpoint_name!r} returned {len(vectors)} vectors for {len(texts)} texts"
            )
        return vectors

    def _plan(self, texts: list[str]) -> tuple[list[int], list[tuple[int, list[str]]]]:
        # Containers pad a batch to its longest text, so batching texts of similar length (sorted by
        # length, results put back in the caller's order) saves the model the padding's compute and
        # keeps a padded response close to its estimate. Texts of equal batch key (an NPY answer's
        # token count) are put side by side, as they alone may share a request.
        keys = self._batch_keys(texts)
        order = sorted(range(len(texts)), key=lambda i: (keys[i] if keys else 0, len(texts[i])))
        ordered_keys = None if keys is None else [keys[i] for i in order]
        return order, list(self._batches([texts[i] for i in order], order, ordered_keys))

    def _run(self, texts: list[str], call: Callable[..., list[list[float]]]) -> list[list[float]]:
        order, batches = self._plan(texts)
        jobs = [(batch, order[start : start + len(batch)]) for start, batch in batches]
        if len(batches) == 1 or self.max_concurrency == 1:
            results = [call(batch, where) for batch, where in jobs]
        else:
            with ThreadPoolExecutor(min(self.max_concurrency, len(batches))) as pool:
                results = list(pool.map(lambda job: call(*job), jobs))
        return _reorder(len(texts), order, batches, results)

    # the Embeddings API
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """One vector per text, in order; `[]` for `[]`."""
        if not texts:
            return []
        return self._run(list(texts), self._invoke)

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async: batches run as tasks, at most `max_concurrency` in flight."""
        if not texts:
            return []
        gate = asyncio.Semaphore(self.max_concurrency)
        order, batches = self._plan(list(texts))

        async def one(start: int, batch: list[str]) -> list[list[float]]:
            async with gate:
                return await asyncio.to_thread(self._invoke, batch, order[start : start + len(batch)])

        results = await asyncio.gather(*(one(start, batch) for start, batch in batches))
        return _reorder(len(texts), order, batches, list(results))

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _reorder(
    n: int, order: list[int], batches: list[tuple[int, list[str]]], results: list[list[list[float]]]
) -> list[list[float]]:
    """Put each batch's vectors back at their texts' places in the caller's order."""
    out: list[list[float]] = [[] for _ in range(n)]
    for (start, _), vectors in zip(batches, results, strict=True):
        for offset, vector in enumerate(vectors):
            out[order[start + offset]] = vector
    return out
