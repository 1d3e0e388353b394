"""When to answer "I don't know": the retrieval-score gate and the model's own abstentions.

Small generators do not reliably abstain when the context lacks the answer, so the chain does not rest
on the prompt alone: it refuses before calling the model when retrieval found nothing close enough, and
it recognises the model's own "I don't know" (in its usual spellings) and reports it as an abstention.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagerag.prompts.templates import IDK

DEFAULT_MIN_SCORES: dict[str, float] = {"dense": 0.335, "hybrid": 0.30}
"""Lowest top-1 retrieval score at which the chain still asks the model, per retrieval mode.

A hybrid score (`alpha * cosine + (1 - alpha) * BM25`) is not a cosine, so each mode has its own gate.
Both were chosen on the tuning half of the hand-written paraphrase set (evals/dev_*.jsonl) with FAQ rows
indexed as question + answer and alpha 0.7: the highest threshold that refuses at most 3% of the tuning
half's in-scope questions (a margin under the 5% target, which a ~100-question half measures only to a
few points). `scripts/calibrate_threshold.py` re-measures them for another embedding model, corpus or
alpha; docs/benchmarks.md has the numbers. Pass ``min_score=None`` to disable the gate.
"""
DEFAULT_MIN_SCORE = DEFAULT_MIN_SCORES["dense"]
"""The dense-only gate: the default for stores and retrievers that do not say they are hybrid."""


def default_min_score(source: object) -> float:
    """The calibrated gate for a store or retriever: the hybrid one when it queries hybrid scores."""
    store = getattr(source, "vectorstore", source)  # a VectorStoreRetriever wraps its store
    return DEFAULT_MIN_SCORES["hybrid" if getattr(store, "hybrid", False) is True else "dense"]


_IDK_PHRASES = ("i don't know", "i do not know", "i dont know")
_LEAD = " \t\r\n\"'*`_>-:"  # markup a model may put before its answer
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'"})


def _canonical(text: str) -> str:
    return text.translate(_APOSTROPHES).lstrip(_LEAD).lower()


def says_idk(answer: str) -> bool:
    """True when ``answer`` is, or starts with, "I don't know" (any case, curly quotes, punctuation)."""
    text = _canonical(answer)
    for phrase in _IDK_PHRASES:
        if text.startswith(phrase):
            rest = text[len(phrase) :]
            if not rest or not (rest[0].isalnum() or rest[0] == "'"):
                return True
    return False


def normalize_answer(answer: str) -> tuple[str, bool]:
    """The answer as returned to the caller, and whether it is an abstention (empty answers are)."""
    stripped = answer.strip()
    if not stripped or says_idk(stripped):
        return IDK, True
    return stripped, False


def gate(scores: Sequence[float | None], min_score: float | None) -> bool:
    """True when the chain should abstain without asking the model.

    Nothing retrieved always abstains. Documents without scores (a retriever that reports none) cannot
    be judged, so they pass; so does everything when ``min_score`` is None.
    """
    if not scores:
        return True
    known = [score for score in scores if score is not None]
    if min_score is None or not known:
        return False
    return max(known) < min_score


class AnswerStream:
    """Turns streamed model tokens into answer deltas, holding back just enough to catch an abstention.

    While the text so far could still become "I don't know", nothing is emitted; once it cannot, the
    held text is released and later tokens pass straight through. Leading and trailing whitespace is
    dropped, so the concatenated deltas equal the non-streaming answer exactly.
    """

    def __init__(self) -> None:
        self._held = ""
        self._deciding = True
        self._pending_space = ""
        self.emitted = ""
        self.abstained = False

    def _could_be_idk(self, text: str) -> bool:
        canonical = _canonical(text)
        return any(
            phrase.startswith(canonical) or (canonical.startswith(phrase) and len(canonical) == len(phrase))
            for phrase in _IDK_PHRASES
        )

    def _release(self, text: str) -> str:
        body = text.rstrip()
        out = self._pending_space + body if body else ""
        if body:
            self._pending_space = text[len(body) :]
        else:
            self._pending_space += text
        if not self.emitted:
            out = out.lstrip()
        self.emitted += out
        return out

    def feed(self, token: str) -> str:
        """The delta to show for ``token`` ('' while undecided); stop feeding once ``done``."""
        if self.abstained:
            return ""
        if not self._deciding:
            return self._release(token)
        self._held += token
        if not self._held.strip() or self._could_be_idk(self._held):
            return ""
        if says_idk(self._held):
            self.abstained = True
            return IDK
        self._deciding = False
        return self._release(self._held)

    @property
    def done(self) -> bool:
        """True once the answer is known to be an abstention: the rest of the generation is not needed."""
        return self.abstained

    def finish(self) -> str:
        """The last delta at the end of the generation."""
        if self.abstained:
            return ""
        if self._deciding:
            answer, abstained = normalize_answer(self._held)
            self.abstained = abstained
            self.emitted = answer
            return answer
        return ""
