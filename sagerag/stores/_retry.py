"""Retries and error translation around pinecone SDK calls.

The SDK retries a few times itself; ingestion of a whole corpus needs a longer, jittered backoff on 429
and 5xx (the shared `sagerag.retry.RetryPolicy`) so that many concurrent batches do not retry in lockstep. A rejected API key is a configuration
problem, not a service error, so it becomes `ConfigurationError` with a message that names the host and
the environment variable and never the key itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from pinecone.errors.exceptions import (
    ApiError,
    ForbiddenError,
    PineconeConnectionError,
    PineconeTimeoutError,
    UnauthorizedError,
)

from sagerag.errors import ConfigurationError
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


def translate(exc: BaseException, host: str) -> BaseException:
    """Our own error for a rejected key; anything else is returned unchanged."""
    if isinstance(exc, UnauthorizedError):
        return ConfigurationError(
            f"Pinecone rejected the API key (401) for host {host}; check PINECONE_API_KEY"
        )
    if isinstance(exc, ForbiddenError):
        return ConfigurationError(
            f"Pinecone refused access (403) for host {host}; check that PINECONE_API_KEY belongs to "
            "the project that owns this index"
        )
    return exc


def call(
    fn: Callable[[], T],
    host: str,
    attempts: int = 5,
    base_delay: float = 0.5,
    max_delay: float = 20.0,
) -> T:
    """Run `fn` under the shared retry policy (429, 5xx, transport failures); translate what is left."""
    policy = RetryPolicy(is_retryable, attempts, base_delay, max_delay, sleep=lambda s: _sleep(s))
    try:
        return policy.call(fn)
    except Exception as exc:
        translated = translate(exc, host)
        if translated is exc:
            raise
        raise translated from None
