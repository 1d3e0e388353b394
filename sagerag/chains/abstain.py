"""When to answer "I don't know": the retrieval-score gate and the model's own abstentions.

Small generators do not reliably abstain when the context lacks the answer, so the chain does not rest
on the prompt alone: it refuses before calling the model when retrieval found nothing close enough, and
it recognises the model's own "I don't know" (in its usual spellings) and reports it as an abstention.
"""

from __future__ import annotations

from collections.abc import Sequence

from sagerag.prompts.templates import IDK

DEFAULT_MIN_SCORE = 0.40
"""Lowest top-1 retrieval similarity at which the chain still asks the model.

Calibrated for MiniLM (all-MiniLM-L6-v2) cosine similarity on the SageMaker FAQ: the 5th percentile of
in-scope questions' top-1 cosine is about 0.55 and out-of-scope questions reach at most about 0.30, so
0.40 sits in the gap. Re-measure it (README, "Calibrating the abstention threshold") for another
embedding model, metric or corpus; pass ``min_score=None`` to disable the gate.
"""

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
