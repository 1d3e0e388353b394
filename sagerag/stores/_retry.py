"""Retries around pinecone SDK calls.

The SDK retries a few times itself; ingestion of a whole corpus needs a longer, jittered backoff on 429
and 5xx (the shared `sagerag.retry.RetryPolicy`) so that many concurrent batches do not retry in
lockstep. What is left is raised as the SDK raised it (see `sagerag.errors` for the policy).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pinecone.errors.exceptions import (
    ApiError,
    PineconeConnectionError,
    PineconeTimeoutError,
)

from sagerag.retry import RetryPolicy

T = TypeVar("T")
_sleep: Callable[[float], None] = time.sleep  # a seam, so tests can skip the waiting


def is_retryable(exc: BaseException) -> bool:
    """429 and 5xx answers and transport failures; 4xx other than 429 will not get better."""
    if isinstance(exc, PineconeConnectionError | PineconeTimeoutError):
        return True
    if isinstance(exc, ApiError):
        status = getattr(exc, "status_code", None) or 0
        return status == 429 or status >= 500
    return False


def call(
    fn: Callable[[], T],
    host: str,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
) -> T:
    """Run `fn` under the shared retry policy (429, 5xx, transport failures)."""
    policy = RetryPolicy(is_retryable, attempts, base_delay, max_delay, sleep=lambda s: _sleep(s))
    return policy.call(fn)
