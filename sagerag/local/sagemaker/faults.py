"""Fault injection for reliability tests and benchmarks (off by default), and the counters that prove it ran.

A seeded random draw per request picks throttling (400 `ThrottlingException`), model-not-ready (429
`ModelNotReadyException`) or unavailable (503 `ServiceUnavailable`), in the configured fractions, and every
request can be delayed by a fixed latency to stand in for the network round trip to a real endpoint.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field


@dataclass
class FaultConfig:
    throttle_rate: float = 0.0
    """Fraction of requests answered with `ThrottlingException` (botocore retries these itself)."""
    not_ready_rate: float = 0.0
    """Fraction answered with `ModelNotReadyException` (429)."""
    unavailable_rate: float = 0.0
    """Fraction answered with `ServiceUnavailable` (503)."""
    latency_s: float = 0.0
    """Seconds added to every invocation."""
    seed: int = 0
    """Seed of the draw, so a run's fault sequence can be replayed."""
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(init=False, repr=False, default_factory=threading.Lock)

    def __post_init__(self) -> None:
        total = self.throttle_rate + self.not_ready_rate + self.unavailable_rate
        if (
            min(self.throttle_rate, self.not_ready_rate, self.unavailable_rate, self.latency_s) < 0
            or total > 1
        ):
            raise ValueError("fault rates must be >= 0 and sum to at most 1; latency must be >= 0")
        self._rng = random.Random(self.seed)

    @property
    def active(self) -> bool:
        return bool(self.throttle_rate or self.not_ready_rate or self.unavailable_rate or self.latency_s)

    def draw(self) -> tuple[int, str, str] | None:
        """An error to answer with (status, code, message), or None to serve the request."""
        with self._lock:
            roll = self._rng.random()
        if roll < self.throttle_rate:
            return 400, "ThrottlingException", "Rate exceeded (injected by sagerag's local runtime)"
        roll -= self.throttle_rate
        if roll < self.not_ready_rate:
            return (
                429,
                "ModelNotReadyException",
                "Model is not ready yet (injected by sagerag's local runtime)",
            )
        roll -= self.not_ready_rate
        if roll < self.unavailable_rate:
            return 503, "ServiceUnavailable", "Service is unavailable (injected by sagerag's local runtime)"
        return None


@dataclass
class RuntimeCounters:
    """What the local runtime did besides serving: faults it injected, requests it refused.

    Tests and benchmarks read these to prove a fault path ran (so many throttles served, so many oversized
    responses refused), rather than trusting that a configured rate took effect.
    """

    invocations: int = 0
    """Invocation requests received (streaming included), refused or not."""
    faults: dict[str, int] = field(default_factory=dict)
    """Injected faults served, by error code (`ThrottlingException`, ...)."""
    refused: dict[str, int] = field(default_factory=dict)
    """Requests refused at a service limit, by reason: `request-too-large`, `response-too-large`."""
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    def count(self, kind: str, key: str = "") -> None:
        """Add one `invocation`, one fault of code `key`, or one refusal for reason `key`."""
        with self._lock:
            if kind == "invocation":
                self.invocations += 1
            else:
                table = self.faults if kind == "fault" else self.refused
                table[key] = table.get(key, 0) + 1

    @property
    def faults_served(self) -> int:
        return sum(self.faults.values())

    @property
    def refused_requests(self) -> int:
        return sum(self.refused.values())

    def snapshot(self) -> dict[str, object]:
        """A copy, JSON-ready (also served at `GET /ping`)."""
        with self._lock:
            return {
                "invocations": self.invocations,
                "faults": dict(self.faults),
                "refused": dict(self.refused),
            }
