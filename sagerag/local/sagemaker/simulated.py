"""A simulated remote GPU endpoint, for benchmarks: real answers, modelled timing.

On a small shared machine the local MiniLM competes with the client for the same cores, so an ingest
benchmark against it measures the emulator's compute, not the client pipeline users run against a GPU
endpoint on another machine. This container answers with real MiniLM output, recorded once per text, and
spends the time a remote endpoint would: half a network round trip each way, and a service time per
request and per input token on one of `instances` model servers. Requests beyond `instances` queue, as
they do on a real endpoint's instances.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import orjson

from sagerag.local.sagemaker.containers import ContainerError, FeatureExtraction, _json_body, _np_json


@dataclass(frozen=True)
class RemoteTiming:
    """Service-time model of a remote embeddings endpoint (see docs/benchmarks.md for the defaults)."""

    round_trip_s: float = 0.030
    """Network round trip between client and endpoint (same-region HTTPS with SigV4: tens of ms)."""
    per_request_s: float = 0.008
    """Fixed cost of one request on the instance: HTTP handling, tokenisation, kernel launches."""
    per_token_s: float = 0.000_005
    """Cost of one input token: the forward pass plus writing its 384 floats as JSON."""
    instances: int = 1
    """Model servers behind the endpoint; each serves one request at a time."""

    def service_s(self, tokens: int) -> float:
        """Seconds one request of `tokens` input tokens holds an instance."""
        return self.per_request_s + self.per_token_s * tokens

    def capacity(self, tokens_per_text: float, texts_per_request: int) -> float:
        """Texts per second the endpoint can serve at most, with every instance busy."""
        per_request = self.service_s(round(tokens_per_text * texts_per_request))
        return self.instances * texts_per_request / per_request


class SimulatedFeatureExtraction:
    """The ragged `feature-extraction` format, answered from recordings, timed by a `RemoteTiming`.

    `record(texts)` computes and keeps each text's output ahead of a run; a text first seen in a request
    is recorded then, outside the modelled time. Counters say how the endpoint was used.
    """

    def __init__(self, inner: FeatureExtraction, timing: RemoteTiming):
        self.inner = inner
        self.timing = timing
        self._answers: dict[str, tuple[bytes, int]] = {}
        self._instances = threading.BoundedSemaphore(timing.instances)
        self._lock = threading.Lock()
        self.requests = 0
        self.busy_s = 0.0

    def retimed(self, timing: RemoteTiming) -> SimulatedFeatureExtraction:
        """The same recordings behind another timing model (fresh counters)."""
        other = SimulatedFeatureExtraction(self.inner, timing)
        other._answers = self._answers
        return other

    def record(self, texts: list[str], batch_size: int = 32) -> None:
        """Compute the answers for `texts` now (one forward pass per batch), so runs time only the model."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._answers]
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            for text, tokens in zip(batch, self.inner.model.token_embeddings(batch), strict=True):
                self._answers[text] = (_np_json(tokens[None, :, :]), int(tokens.shape[0]))

    def invoke(self, body: bytes, custom_attributes: str = "") -> bytes:
        data = _json_body(body)
        texts = data.get("inputs") if isinstance(data, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ContainerError(400, "'inputs' must be a string or a non-empty list of strings")
        self.record(texts)
        answers = [self._answers[t] for t in texts]
        service = self.timing.service_s(sum(tokens for _, tokens in answers))
        time.sleep(self.timing.round_trip_s / 2)
        with self._instances:
            time.sleep(service)
        time.sleep(self.timing.round_trip_s / 2)
        with self._lock:
            self.requests += 1
            self.busy_s += service
        return b"[" + b",".join(fragment for fragment, _ in answers) + b"]"

    def tokens(self, text: str) -> int:
        """Input tokens of a recorded text (what the endpoint bills time for)."""
        self.record([text])
        return self._answers[text][1]


def decode(body: bytes) -> list[list[list[float]]]:
    """The answer's per-text token vectors (for checks; clients use the content handler)."""
    return [item[0] for item in orjson.loads(body)]
