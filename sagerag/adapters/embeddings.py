"""`SagemakerEmbeddings`: a LangChain `Embeddings` over a SageMaker feature-extraction endpoint.

Why not langchain-community's `SagemakerEndpointEmbeddings`: it crashes on an empty list, sends chunks one
at a time, ignores SageMaker's 6 MB request limit and turns every error into `ValueError`. Here batches are
cut by count and by request bytes, sent with bounded concurrency (threads, or asyncio tasks for the async
API), retried on throttling and "model not ready", and botocore's exceptions keep their types.
"""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, model_validator

from sagerag.adapters._client import RETRYABLE_CODES, error_code, make_runtime_client, name_endpoint
from sagerag.adapters.minilm import MiniLMContentHandler
from sagerag.errors import DocumentTooLargeError

SAGEMAKER_MAX_REQUEST_BYTES = 6 * 1024 * 1024
"""SageMaker Runtime rejects request bodies over 6 MB."""


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
    max_request_bytes: int = Field(default=5 * 1024 * 1024, gt=0, le=SAGEMAKER_MAX_REQUEST_BYTES)
    """Most bytes per request body; below SageMaker's 6 MB limit."""
    max_concurrency: int = Field(default=4, gt=0)
    """Requests in flight at once."""
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
    def _batches(
        self, texts: list[str], positions: list[int] | None = None
    ) -> Iterator[tuple[int, list[str]]]:
        """(start, texts) per request; `positions` maps indices back to the caller's order for errors."""
        start, size = 0, 2
        batch: list[str] = []
        for i, text in enumerate(texts):
            cost = len(json.dumps(text).encode("utf-8")) + 1
            if cost + 16 > self.max_request_bytes:
                raise DocumentTooLargeError(
                    f"text #{positions[i] if positions else i} ({cost:,} bytes as JSON) exceeds the {self.max_request_bytes:,}-byte request "
                    f"limit of endpoint {self.endpoint_name!r}; split it into smaller chunks"
                )
            if batch and (len(batch) >= self.batch_size or size + cost > self.max_request_bytes - 16):
                yield start, batch
                start, batch, size = i, [], 2
            batch.append(text)
            size += cost
        if batch:
            yield start, batch

    # one request, with retries
    def _invoke(self, texts: list[str]) -> list[list[float]]:
        handler = self.content_handler
        for attempt in range(self.max_retries + 1):
            try:
                response = self.client.invoke_endpoint(
                    EndpointName=self.endpoint_name,
                    Body=handler.transform_input(texts, self.model_kwargs),
                    ContentType=handler.content_type,
                    Accept=handler.accepts,
                    **self.endpoint_kwargs,
                )
                vectors: list[list[float]] = handler.transform_output(response["Body"])
            except Exception as exc:
                if error_code(exc) in RETRYABLE_CODES and attempt < self.max_retries:
                    time.sleep(_backoff(attempt))
                    continue
                raise name_endpoint(exc, self.endpoint_name)  # noqa: B904 (same exception, with the endpoint named)
            if len(vectors) != len(texts):
                raise ValueError(
                    f"endpoint {self.endpoint_name!r} returned {len(vectors)} vectors for {len(texts)} texts"
                )
            return vectors
        raise AssertionError("unreachable")

    def _run(self, texts: list[str], call: Callable[[list[str]], list[list[float]]]) -> list[list[float]]:
        # Containers pad a batch to its longest text, so batching texts of similar length (sorted by
        # length, results put back in the caller's order) saves the model the padding's compute.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        batches = list(self._batches([texts[i] for i in order], order))
        out: list[list[float]] = [[] for _ in texts]
        if len(batches) == 1 or self.max_concurrency == 1:
            results = [call(batch) for _, batch in batches]
        else:
            with ThreadPoolExecutor(min(self.max_concurrency, len(batches))) as pool:
                results = list(pool.map(call, [batch for _, batch in batches]))
        for (start, _), vectors in zip(batches, results, strict=True):
            for offset, vector in enumerate(vectors):
                out[order[start + offset]] = vector
        return out

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
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))  # as in _run
        batches = list(self._batches([texts[i] for i in order], order))

        async def one(batch: list[str]) -> list[list[float]]:
            async with gate:
                return await asyncio.to_thread(self._invoke, batch)

        results = await asyncio.gather(*(one(batch) for _, batch in batches))
        out: list[list[float]] = [[] for _ in texts]
        for (start, _), vectors in zip(batches, results, strict=True):
            for offset, vector in enumerate(vectors):
                out[order[start + offset]] = vector
        return out

    async def aembed_query(self, text: str) -> list[float]:
        return (await self.aembed_documents([text]))[0]


def _backoff(attempt: int, base: float = 0.1, cap: float = 5.0) -> float:
    """Full-jitter exponential backoff."""
    return random.uniform(0, min(cap, base * 2**attempt))
