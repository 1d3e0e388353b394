"""Content handler for Hugging Face's Text Embeddings Inference (TEI) container on SageMaker.

TEI pools on the server (mean pooling for MiniLM, read from the model's sentence-transformers config) and
answers one vector per text, so its response is about a hundred times smaller than the inference
toolkit's per-token output: batches are then bounded by count (TEI's `MAX_CLIENT_BATCH_SIZE`, 32 by
default) and request bytes, not by SageMaker's 6 MB response limit.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import numpy as np
import orjson
from langchain_aws.utils import ContentHandlerBase

from sagerag.adapters.minilm import DEFAULT_DIMENSION, JSON_BYTES_PER_VALUE
from sagerag.errors import EmbeddingOutputError

TEI_MAX_CLIENT_BATCH_SIZE = 32
"""TEI's default `MAX_CLIENT_BATCH_SIZE`: it refuses requests with more inputs."""


class TEIContentHandler(ContentHandlerBase[list[str], list[list[float]]]):
    """Texts in, the server's pooled vectors out: `{"inputs": [...], "normalize", "truncate"}` -> `[[...]]`.

    `truncate=True` asks TEI to cut texts at the model's limit, as the inference toolkit does, instead
    of refusing them (TEI's default).
    """

    content_type = "application/json"
    accepts = "application/json"
    pads_batches = False
    """One vector per text, whatever the batch: a batch costs the sum of its texts."""

    def __init__(
        self,
        normalize: bool = True,
        truncate: bool = True,
        dimension: int = DEFAULT_DIMENSION,
        bytes_per_value: float = JSON_BYTES_PER_VALUE,
    ):
        self.normalize = normalize
        self.truncate = truncate
        self.dimension = dimension
        self.bytes_per_value = bytes_per_value

    def transform_input(self, prompt: list[str], model_kwargs: dict[str, Any]) -> bytes:
        texts = [prompt] if isinstance(prompt, str) else list(prompt)
        body = {"inputs": texts, "normalize": self.normalize, "truncate": self.truncate, **model_kwargs}
        return json.dumps(body).encode("utf-8")

    def transform_output(self, output: Any) -> list[list[float]]:
        raw = output.read() if hasattr(output, "read") else output
        data = orjson.loads(raw)
        try:
            matrix = np.asarray(data, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise EmbeddingOutputError(f"TEI output is not a (texts, dimension) matrix: {exc}") from None
        if matrix.ndim != 2:
            raise EmbeddingOutputError(
                f"TEI output has shape {matrix.shape}; expected (texts, dimension): is this a TEI endpoint?"
            )
        return matrix.tolist()

    def estimate_response_bytes(self, texts: Sequence[str]) -> list[int]:
        """Each text costs one vector in the response."""
        return [int(self.dimension * self.bytes_per_value) + 4 for _ in texts]
