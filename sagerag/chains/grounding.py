"""The grounding check: score every answer sentence against the passages that went into the context.

Two measures, both cheap and both available wherever the chain runs: ``lexical``, the share of the
sentence's words that its best passage also holds (the answer-side half of token F1), and ``semantic``,
the best cosine similarity between the sentence's embedding and a context *unit*, a passage or one of
its sentences, from the embeddings the chain already uses for retrieval. Units, not only whole passages,
because a long passage dilutes a short sentence's cosine. ``support`` is the measure the chosen
``method`` reads; a sentence is supported when it reaches ``min_support``.

A polarity answer ("No, you do not pay five times.", "The answer is yes.") takes its content from the
question it answers, so it is scored together with the question: the question's words count as
support and the question plus the sentence is embedded too (the better cosine counts). The chain only
generates after the score gate found passages close to the question, so this scores the claim the
answer makes. The defaults were chosen on the tuning half of the development set (docs/benchmarks.md,
"Answer quality").
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Literal, TypedDict, get_args

from langchain_core.embeddings import Embeddings

from sagerag.chains.sentences import split_sentences, tokens
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


POLAR_WORDS = frozenset({"yes", "no"})
POLAR_REACH = 7
"""A sentence is a polarity answer when "yes" or "no" is among its first this many words ("The answer to
the question is: no." has it sixth)."""


def is_polar(sentence: str) -> bool:
    """True for a yes/no answer sentence, which :class:`Grounder` scores together with the question."""
    return not POLAR_WORDS.isdisjoint(tokens(sentence)[:POLAR_REACH])


def context_units(passages: Sequence[str]) -> list[str]:
    """The passages and their sentences, once each: what a sentence's cosine is taken against."""
    units = dict.fromkeys(passages)
    for passage in passages:
        units.update(dict.fromkeys(s for s in split_sentences(passage) if tokens(s)))
    return list(units)


def _cosine(a: Sequence[float], b: Sequence[float]) -> float:
    dot = math.fsum(x * y for x, y in zip(a, b, strict=True))
    norm = math.sqrt(math.fsum(x * x for x in a)) * math.sqrt(math.fsum(y * y for y in b))
    return dot / norm if norm else 0.0


class Grounder:
    """Scores sentences against one answer's passages; embeds the context units once, on first use."""

    def __init__(
        self,
        passages: Sequence[str],
        embeddings: Embeddings | None,
        *,
        question: str | None = None,
        method: GroundingMethod = DEFAULT_METHOD,
        min_support: float = DEFAULT_MIN_SUPPORT,
        drop: bool = True,
    ) -> None:
        if method == "semantic" and embeddings is None:
            raise ConfigurationError("grounding method 'semantic' needs embeddings")
        self._passages = list(passages)
        self._question = question.strip() if question and question.strip() else None
        self._embeddings = embeddings
        self._method = method
        self._min_support = min_support
        self._drop = drop
        self._units = context_units(self._passages)
        self._unit_vectors: list[list[float]] | None = None

    @property
    def needs_vectors(self) -> bool:
        return self._method != "lexical" and self._embeddings is not None and bool(self._passages)

    def _with_question(self, sentence: str) -> str | None:
        """The text a polarity answer is scored as (question, then sentence); None for other sentences."""
        if self._question is None or not is_polar(sentence):
            return None
        return f"{self._question} {sentence}"

    def _texts(self, sentences: Sequence[str]) -> list[str]:
        """What to embed for ``sentences``: each sentence, then the polarity answers with their question."""
        extra = [t for t in map(self._with_question, sentences) if t is not None]
        return [*sentences, *extra]

    def _verdicts(
        self, sentences: Sequence[str], vectors: Sequence[list[float]] | None
    ) -> list[SentenceSupport]:
        by_text = dict(zip(self._texts(sentences), vectors, strict=True)) if vectors is not None else {}
        return [self._verdict(s, by_text) for s in sentences]

    def _best_cosine(self, vector: list[float]) -> float:
        assert self._unit_vectors is not None
        return max(_cosine(vector, u) for u in self._unit_vectors)

    def _verdict(self, sentence: str, vectors: dict[str, list[float]]) -> SentenceSupport:
        combined = self._with_question(sentence)
        passages = self._passages
        if combined is not None:  # the question's words support a polarity answer too
            passages = [f"{p} {self._question}" for p in passages]
        lexical = lexical_support(sentence, passages)
        semantic = None
        if sentence in vectors and self._unit_vectors:
            semantic = self._best_cosine(vectors[sentence])
            if combined is not None:
                semantic = max(semantic, self._best_cosine(vectors[combined]))
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
        vectors = None
        if self.needs_vectors:
            assert self._embeddings is not None
            if self._unit_vectors is None:
                self._unit_vectors = self._embeddings.embed_documents(self._units)
            vectors = self._embeddings.embed_documents(self._texts(sentences))
        return self._verdicts(sentences, vectors)

    async def ajudge(self, sentences: Sequence[str]) -> list[SentenceSupport]:
        """Async :meth:`judge`."""
        if not sentences:
            return []
        vectors = None
        if self.needs_vectors:
            assert self._embeddings is not None
            if self._unit_vectors is None:
                self._unit_vectors = await self._embeddings.aembed_documents(self._units)
            vectors = await self._embeddings.aembed_documents(self._texts(sentences))
        return self._verdicts(sentences, vectors)
