"""One retry policy for every service call: exponential backoff with full jitter, configured per caller.

botocore and the pinecone SDK retry a few times themselves; a whole-corpus ingest needs longer, jittered
waits on throttling and "not ready" answers, so that many concurrent batches do not retry in lockstep.
Each caller says which failures are worth another try (`retryable`); the waiting is the same everywhere.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class RetryPolicy:
    """Try `fn` up to `attempts` times; wait `uniform(0, min(max_delay, base_delay * 2**n))` after try n."""

    retryable: Callable[[BaseException], bool]
    """True for failures that may pass on another try (throttling, 5xx, model not ready)."""
    attempts: int = 5
    """Total tries, the first included."""
    base_delay: float = 0.5
    """Seconds of the first backoff window."""
    max_delay: float = 20.0
    """Cap of the backoff window."""
    sleep: Callable[[float], None] = time.sleep
    """How to wait; a seam, so tests can skip the waiting."""

    def delay(self, attempt: int) -> float:
        """Full-jitter backoff after the zero-based `attempt`."""
        return random.uniform(0, min(self.max_delay, self.base_delay * 2**attempt))

    def call(self, fn: Callable[[], T]) -> T:
        """`fn()`, retried while it fails retryably; the last failure is raised unchanged."""
        for attempt in range(self.attempts):
            try:
                return fn()
            except Exception as exc:
                if attempt + 1 < self.attempts and self.retryable(exc):
                    self.sleep(self.delay(attempt))
                    continue
                raise
        raise AssertionError("unreachable")  # attempts >= 1 returns or raises above
