"""The grounding check: score every answer sentence against the passages that went into the context.

Two measures, both cheap and both available wherever the chain runs: ``lexical``, the share of the
sentence's words that its best passage also holds (the answer-side half of token F1), and ``semantic``,
the best cosine similarity between the sentence's embedding and a passage's, from the embeddings the
chain already uses for retrieval. ``support`` is the measure the chosen ``method`` reads; a sentence is
supported when it reaches ``min_support``. The defaults were chosen on the tuning half of the
development set (docs/benchmarks.md, "Answer quality").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal, TypedDict, get_args

from langchain_core.embeddings import Embeddings

from sagerag.chains.sentences import tokens
from sagerag.errors import ConfigurationError
from sagerag.kinds import Grounding

GroundingMethod = Literal["lexical", "semantic", "both"]
"""Which measure decides support; ``both`` takes the mean of the two and needs each above a floor."""

GROUNDING_MODES: tuple[Grounding, ...] = get_args(Grounding)
GROUNDING_METHODS: tuple[GroundingMethod, ...] = get_args(GroundingMethod)
DEFAULT_METHOD: GroundingMethod = "both"
DEFAULT_MIN_SUPPORT = 0.5
"""Support below which a sentence counts as unsupported (see the module docstring for how it was set)."""
BOTH_FLOOR = 0.25
"""With ``both``, each measure must reach this too: on the tuning answers, lead-ins such as "You can
find it here:" share words with the passage but not meaning (semantic 0.20), and invented URLs the
reverse (lexical 0.21); a mean alone kept the first."""


class SentenceSupport(TypedDict):
    """One answer sentence and how well the context supports it."""

    text: str
    lexical: float
    """Share of the sentence's tokens found in its best passage."""
    semantic: float | None
    """Best cosine similarity to a passage; None when the method does not need embeddings."""
    support: float
    """The score ``method`` reads."""
    supported: bool
    kept: bool
    """Whether the sentence is in the answer (unsupported ones are dropped in ``drop`` mode)."""


def check_grounding(mode: str, method: str, min_support: float) -> None:
    """Fail early and clearly on an unknown mode or method or a support threshold outside 0..1."""
    if mode not in GROUNDING_MODES:
        raise ConfigurationError(f"grounding must be one of {', '.join(GROUNDING_MODES)}, not {mode!r}")
    if method not in GROUNDING_METHODS:
        raise ConfigurationError(
            f"grounding method must be one of {', '.join(GROUNDING_METHODS)}, not {method!r}"
        )
    if not 0.0 <= min_support <= 1.0:
        raise ConfigurationError(f"min_support must be within 0..1, got {min_support}")


def lexical_support(sentence: str, passages: Sequence[str]) -> float:
    """Best share of the sentence's tokens (with multiplicity) found in one passage; 0.0 for no tokens."""
    words = Counter(tokens(sentence))
    total = sum(words.values())
    if not total:
        return 0.0
    return max((sum((words & Counter(tokens(p))).values()) / total for p in passages), default=0.0)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0


class Grounder:
    """Scores sentences against one answer's passages; embeds the passages once, on first use."""

    def __init__(
        self,
        passages: Sequence[str],
        embeddings: Embeddings | None,
        *,
        method: GroundingMethod = DEFAULT_METHOD,
        min_support: float = DEFAULT_MIN_SUPPORT,
        drop: bool = True,
    ) -> None:
        if method == "semantic" and embeddings is None:
            raise ConfigurationError("grounding method 'semantic' needs embeddings")
        self._passages = list(passages)
        self._embeddings = embeddings
        self._method = method
        self._min_support = min_support
        self._drop = drop
        self._passage_vectors: list[list[float]] | None = None

    @property
    def needs_vectors(self) -> bool:
        return self._method != "lexical" and self._embeddings is not None and bool(self._passages)

    def _verdict(self, sentence: str, vector: list[float] | None) -> SentenceSupport:
        lexical = lexical_support(sentence, self._passages)
        semantic = None
        if vector is not None and self._passage_vectors:
            semantic = max(_cosine(vector, p) for p in self._passage_vectors)
        if self._method == "lexical" or semantic is None:
            support = lexical
        elif self._method == "semantic":
            support = semantic
        else:
            support = (lexical + semantic) / 2
        supported = support >= self._min_support
        if self._method == "both" and semantic is not None:
            supported = supported and min(lexical, semantic) >= BOTH_FLOOR
        return {
            "text": sentence,
            "lexical": round(lexical, 4),
            "semantic": None if semantic is None else round(semantic, 4),
            "support": round(support, 4),
            "supported": supported,
            "kept": supported or not self._drop,
        }

    def judge(self, sentences: Sequence[str]) -> list[SentenceSupport]:
        """A verdict per sentence (sync shell: embeds with ``embed_documents``)."""
        if not sentences:
            return []
        vectors: Sequence[list[float] | None] = [None] * len(sentences)
        if self.needs_vectors:
            assert self._embeddings is not None
            if self._passage_vectors is None:
                self._passage_vectors = self._embeddings.embed_documents(self._passages)
            vectors = self._embeddings.embed_documents(list(sentences))
        return [self._verdict(s, v) for s, v in zip(sentences, vectors, strict=True)]

    async def ajudge(self, sentences: Sequence[str]) -> list[SentenceSupport]:
        """Async :meth:`judge`."""
        if not sentences:
            return []
        vectors: Sequence[list[float] | None] = [None] * len(sentences)
        if self.needs_vectors:
            assert self._embeddings is not None
            if self._passage_vectors is None:
                self._passage_vectors = await self._embeddings.aembed_documents(self._passages)
            vectors = await self._embeddings.aembed_documents(list(sentences))
        return [self._verdict(s, v) for s, v in zip(sentences, vectors, strict=True)]
