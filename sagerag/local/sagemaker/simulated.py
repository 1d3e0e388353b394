"""A simulated remote GPU endpoint, for benchmarks: real answers, modelled timing.

On a small shared machine the local MiniLM competes with the client for the same cores, so an ingest
benchmark against it measures the emulator's compute, not the client pipeline users run against a GPU
endpoint on another machine. This container answers with real MiniLM output, recorded once per text, and
spends the time a remote endpoint would: half a network round trip each way, and a service time per
request, per input token and per response byte (the container writing its JSON) on one of the `workers`
model-server processes of one of `instances` instances; the forward passes of an instance's workers share
its one GPU. Requests beyond that queue, as they do on a real endpoint's instances.

Two answer formats, both recorded from the same forward pass:
- token level (`pooled=False`), as the Hugging Face inference toolkit answers `feature-extraction`: one
  `(1, tokens, 384)` array per text, its float32 values written as Python's `json` writes them (doubles,
  shortest repr: ~20 bytes a value), so a client parses the bytes it would really get;
- pooled (`pooled=True`), as TEI answers: one L2-normalised mean vector per text, float32 repr.

Asked for NPY (`Accept: application/x-npy`), the token-level endpoint answers as the toolkit's `np.save`
does (`containers.npy_bytes`: float64; texts of different token counts refused), from token matrices kept
by `record_npy`.
"""

from __future__ import annotations

import pickle
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import numpy as np
import orjson

from sagerag.adapters.token_vectors import NPY
from sagerag.local.sagemaker.containers import (
    JSON,
    ContainerError,
    FeatureExtraction,
    _json_body,
    _np_json,
    npy_bytes,
)

TOOLKIT_JSON_S_PER_BYTE = 27e-9
"""The inference toolkit writes token vectors with Python's `json` (`.tolist()` then `json.dumps`): measured
here at 21 ms for one 100-token answer (38,400 values, 0.79 MB), i.e. ~27 ns a byte. The toolkit does this on
the instance's CPU, after the GPU's forward pass, for every token of every text."""
TOOLKIT_NPY_S_PER_BYTE = 8e-9
"""Asked for NPY, the toolkit `np.save`s the pipeline's nested lists (`.tolist()` still runs): measured here
at 2.7 ms for one 107-token answer (0.33 MB of float64), ~8 ns a byte, against 28 ms for its JSON."""
TEI_JSON_S_PER_BYTE = 2.6e-9
"""TEI writes pooled vectors from Rust (serde); orjson (also Rust) writes 38,400 float32 values, 0.42 MB, in
1.1 ms here: ~2.6 ns a byte. One vector per text, so it hardly matters."""
TEI_MAX_CLIENT_BATCH = 32
"""TEI's default `MAX_CLIENT_BATCH_SIZE`: more inputs in one request are refused (413)."""


@dataclass(frozen=True)
class RemoteTiming:
    """Service-time model of a remote embeddings endpoint (docs/benchmarks.md derives the defaults)."""

    round_trip_s: float = 0.030
    """Network round trip between client and endpoint (same-region HTTPS with SigV4: tens of ms)."""
    per_request_s: float = 0.008
    """Fixed cost of one request on the instance: SageMaker's front end, HTTP handling, tokenisation."""
    per_token_s: float = 0.000_005
    """GPU forward pass per input token (all-MiniLM-L6-v2 on an A10G-class GPU)."""
    instances: int = 1
    """Instances behind the endpoint, one GPU each."""
    per_response_byte_s: float = 0.0
    """Container time per response byte (writing its JSON): `TOOLKIT_JSON_S_PER_BYTE`, `TEI_JSON_S_PER_BYTE`."""
    per_npy_byte_s: float = 0.0
    """Container time per byte of an NPY answer (`TOOLKIT_NPY_S_PER_BYTE`), for clients that ask for one."""
    workers: int = 1
    """Model-server processes per instance, each serving one request at a time. The inference toolkit
    starts one per GPU (one on ml.g5.xlarge) unless `SAGEMAKER_MODEL_SERVER_WORKERS` says otherwise;
    `sagerag deploy` sets it to the instance's vCPUs, so that the toolkit's CPU-bound part, writing JSON,
    runs on all of them. Their forward passes take turns on the instance's GPU."""

    def service_s(self, tokens: int, response_bytes: int = 0, npy_bytes: int = 0) -> float:
        """Seconds one request of `tokens` input tokens and `response_bytes` of JSON answer (or `npy_bytes`
        of NPY answer) holds a worker."""
        writing = self.per_response_byte_s * response_bytes + self.per_npy_byte_s * npy_bytes
        return self.per_request_s + self.gpu_s(tokens) + writing

    def gpu_s(self, tokens: int) -> float:
        """Seconds of that on the instance's GPU (the forward pass)."""
        return self.per_token_s * tokens

    def capacity(
        self,
        tokens_per_text: float,
        texts_per_request: float,
        bytes_per_text: float = 0.0,
        npy_bytes_per_text: float = 0.0,
    ) -> float:
        """Texts per second the endpoint can serve at most, with every worker busy (or every GPU)."""
        tokens = round(tokens_per_text * texts_per_request)
        per_request = self.service_s(
            tokens, round(bytes_per_text * texts_per_request), round(npy_bytes_per_text * texts_per_request)
        )
        per_instance = self.workers / per_request
        if self.gpu_s(tokens) > 0:
            per_instance = min(per_instance, 1 / self.gpu_s(tokens))
        return self.instances * texts_per_request * per_instance


class Schedule:
    """When each request ends on the endpoint's workers and GPUs, booked in arrival order on a clock.

    The emulator books every request's service ahead (the worker that frees first, then the GPU that
    frees first for its forward pass) and sleeps until the booked end, instead of holding a semaphore for
    a sleep: a thread that wakes late (the emulator's process also serves the local Pinecone and shares
    the GIL) then delays only its own answer, never the next request's start. With semaphores, instances
    were held 6-11% longer than modelled in a 4-instance TEI ingest, and idled between requests while
    the next thread woke: the endpoint served less than its stated capacity.
    """

    def __init__(self, instances: int, workers: int) -> None:
        self._workers = [0.0] * (instances * workers)
        self._gpus = [0.0] * instances
        self._lock = threading.Lock()

    def book(self, arrival: float, service_s: float, gpu_s: float) -> float:
        """The end of a request reaching the endpoint at `arrival` (clock seconds)."""
        with self._lock:
            worker = min(range(len(self._workers)), key=self._workers.__getitem__)
            gpu = min(range(len(self._gpus)), key=self._gpus.__getitem__)
            start = max(arrival, self._workers[worker])
            gpu_end = max(start, self._gpus[gpu]) + gpu_s
            self._gpus[gpu] = gpu_end
            self._workers[worker] = end = gpu_end + service_s - gpu_s
        return end


def _sleep_until(deadline: float) -> None:
    remaining = deadline - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)


class _Answer(NamedTuple):
    tokens: bytes
    """The toolkit's `(1, tokens, dim)` JSON for the text."""
    pooled: bytes
    """TEI's normalised mean vector, JSON."""
    n_tokens: int
    """Input tokens (special tokens included)."""


class SimulatedFeatureExtraction:
    """The `feature-extraction` (or, `pooled`, TEI) format, answered from recordings, timed by a `RemoteTiming`.

    `record(texts)` computes and keeps each text's output ahead of a run; a text first seen in a request
    is recorded then, outside the modelled time. Counters say how the endpoint was used.
    """

    def __init__(self, inner: FeatureExtraction, timing: RemoteTiming, pooled: bool = False):
        self.inner = inner
        self.timing = timing
        self.pooled = pooled
        self._answers: dict[str, _Answer] = {}
        self._matrices: dict[str, np.ndarray] = {}
        """Token matrices (float64, as the toolkit's `.tolist()` makes them) for NPY answers: `record_npy`."""
        self._schedule = Schedule(timing.instances, timing.workers)
        self._lock = threading.Lock()
        self.requests = 0
        self.texts = 0
        self.busy_s = 0.0
        """Worker-seconds of service."""
        self.tokens_served = 0
        self.bytes_served = 0
        self.npy_bytes_served = 0

    @property
    def reads_accept(self) -> bool:
        """The server passes a token-level endpoint the request's `Accept` (TEI answers JSON only)."""
        return not self.pooled

    def retimed(self, timing: RemoteTiming, pooled: bool | None = None) -> SimulatedFeatureExtraction:
        """The same recordings behind another timing model (and format), with fresh counters."""
        other = SimulatedFeatureExtraction(self.inner, timing, self.pooled if pooled is None else pooled)
        other._answers = self._answers
        other._matrices = self._matrices
        return other

    def record(self, texts: list[str], batch_size: int = 32) -> None:
        """Compute the answers for `texts` now (one forward pass per batch), so runs time only the model."""
        missing = [t for t in dict.fromkeys(texts) if t not in self._answers]
        for start in range(0, len(missing), batch_size):
            batch = missing[start : start + batch_size]
            for text, tokens in zip(batch, self.inner.model.token_embeddings(batch), strict=True):
                mean = tokens.mean(axis=0)
                mean = mean / max(float(np.linalg.norm(mean)), 1e-12)
                self._answers[text] = _Answer(
                    # float32 values as Python floats: the toolkit's `.tolist()` + `json.dumps` bytes
                    bytes(orjson.dumps(tokens[None].astype(np.float64), option=orjson.OPT_SERIALIZE_NUMPY)),
                    _np_json(mean),
                    int(tokens.shape[0]),
                )

    def record_npy(self, texts: list[str]) -> None:
        """Keep the token matrices NPY answers are written from (0.33 MB a FAQ answer: only when asked)."""
        self.record(texts)
        for text in dict.fromkeys(texts):
            if text not in self._matrices:
                self._matrices[text] = np.asarray(
                    orjson.loads(self._answers[text].tokens)[0], dtype=np.float64
                )

    def save(self, path: Path) -> None:
        """Keep the recordings in a file (a benchmark re-run then skips the forward passes)."""
        path.write_bytes(pickle.dumps(dict(self._answers), protocol=pickle.HIGHEST_PROTOCOL))

    def load(self, path: Path) -> None:
        """Recordings from `save` (a trusted local file: it is a pickle)."""
        self._answers.update(pickle.loads(path.read_bytes()))

    def invoke(self, body: bytes, custom_attributes: str = "", accept: str = JSON) -> bytes:
        data = _json_body(body)
        texts = data.get("inputs") if isinstance(data, dict) else None
        if isinstance(texts, str):
            texts = [texts]
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ContainerError(400, "'inputs' must be a string or a non-empty list of strings")
        if self.pooled and len(texts) > TEI_MAX_CLIENT_BATCH:
            raise ContainerError(
                413, f"batch size {len(texts)} > maximum allowed batch size {TEI_MAX_CLIENT_BATCH}"
            )
        npy = accept == NPY and not self.pooled
        (self.record_npy if npy else self.record)(texts)
        answers = [self._answers[t] for t in texts]
        if npy:
            output = npy_bytes([self._matrices[t][None] for t in texts])
            json_bytes, binary_bytes = 0, len(output)
        else:
            output = b"[" + b",".join(a.pooled if self.pooled else a.tokens for a in answers) + b"]"
            json_bytes, binary_bytes = len(output), 0
        n_tokens = sum(a.n_tokens for a in answers)
        service = self.timing.service_s(n_tokens, json_bytes, binary_bytes)
        gpu = self.timing.gpu_s(n_tokens)
        half_trip = self.timing.round_trip_s / 2
        end = self._schedule.book(time.perf_counter() + half_trip, service, gpu)
        _sleep_until(end + half_trip)
        with self._lock:
            self.requests += 1
            self.texts += len(texts)
            self.busy_s += service
            self.tokens_served += n_tokens
            self.bytes_served += json_bytes
            self.npy_bytes_served += binary_bytes
        return output

    def capacity(self) -> float:
        """Texts/s the endpoint could serve at the batches it was sent since the counters were reset."""
        if not self.requests:
            return 0.0
        return self.timing.capacity(
            self.tokens_served / self.texts,
            self.texts / self.requests,
            self.bytes_served / self.texts,
            self.npy_bytes_served / self.texts,
        )

    def reset(self) -> None:
        """Zero the counters (between benchmark runs)."""
        with self._lock:
            self.requests = self.texts = self.tokens_served = self.bytes_served = self.npy_bytes_served = 0
            self.busy_s = 0.0

    def tokens(self, text: str) -> int:
        """Input tokens of a recorded text (what the endpoint bills time for)."""
        self.record([text])
        return self._answers[text].n_tokens

    def response_bytes(self, text: str) -> int:
        """Bytes of the text's part of an answer in this endpoint's format."""
        self.record([text])
        answer = self._answers[text]
        return len(answer.pooled if self.pooled else answer.tokens) + 1


def decode(body: bytes) -> list[list[list[float]]]:
    """The answer's per-text token vectors (for checks; clients use the content handler)."""
    return [item[0] for item in orjson.loads(body)]
