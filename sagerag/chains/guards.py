"""The answer guards: stop a looping generation, end at a complete sentence, release judged sentences.

Small generators loop (a paragraph four times over), run into ``max_new_tokens`` mid-sentence, and
append junk. These guards sit in the chain, not in a model adapter, so they protect the answers of any
LangChain LLM, the local SmolLM2 and a real Llama 2 endpoint alike.

:class:`AnswerGuard` is the pure core (no I/O, no LangChain): the chain feeds it model tokens, it hands
back complete sentences to be judged (grounding needs an embeddings call, made by the sync or async
shell), and it turns accepted sentences into answer deltas. Text is released a sentence at a time, so
what a stream has shown never needs retracting, and the streamed answer equals the non-streamed one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

from sagerag.chains.abstain import AnswerStream
from sagerag.chains.sentences import is_terminated, sentence_key, split_complete, tokens
from sagerag.prompts.templates import IDK

DEFAULT_REPEAT_WORDS = 12
"""A run of this many words seen earlier in the answer counts as a loop (a loop within one sentence)."""

_LEAD_IN = (":", ",", ";", "-", "{", "[", "(")
"""Line endings that announce more to come."""

_FENCE_OPENER = re.compile(r"(```|~~~)[\w+#.-]*")
"""A Markdown code-fence line (with its language, if any): held last, it opens a block that never came."""

Pending = list[tuple[str, str]]
"""Complete sentences awaiting judgement: ``(separator before it, sentence)``."""


def repeats_run(words: Sequence[str], n: int) -> bool:
    """True when some run of ``n`` consecutive words occurs twice in ``words`` (overlaps count)."""
    seen: set[tuple[str, ...]] = set()
    for end in range(n, len(words) + 1):
        gram = tuple(words[end - n : end])
        if gram in seen:
            return True
        seen.add(gram)
    return False


class AnswerGuard:
    """Token stream in, judged sentences out; see the module docstring for the protocol.

    Protocol: ``feed(token)`` for each token until ``stopped`` (then close the model's stream), then
    ``finish()``; pass every returned sentence to ``accept`` with its verdict (kept or not) in order;
    ``close()`` gives the last delta. ``max_new_tokens`` (the model's budget, when known) tells a cut-off
    generation from a finished one: a generation that used the whole budget is ``truncated``. Either
    way an unfinished last sentence after complete ones is dropped, so answers end at a sentence end.
    """

    def __init__(
        self,
        *,
        loop_guard: bool = True,
        max_new_tokens: int | None = None,
        repeat_words: int = DEFAULT_REPEAT_WORDS,
    ) -> None:
        self._idk = AnswerStream()
        self._loop_guard = loop_guard
        self._max_new_tokens = max_new_tokens
        self._repeat_words = repeat_words
        self._pending = ""
        self._words: list[str] = []
        self._keys: set[str] = set()
        self.tokens = 0
        """Non-empty chunks received (one per token for a TGI-style token stream)."""
        self.stopped = False
        """True once the rest of the generation is not needed: a loop, or the model's own abstention."""
        self.repeated = False
        """The loop guard cut the generation at a repeated sentence or run of words."""
        self.truncated = False
        """The generation used all of ``max_new_tokens``."""
        self.answer = ""
        self._unterminated = ""
        """Kept lines without closing punctuation (list items, a trailing clause), held until a
        punctuated sentence follows: an answer never ends on one unless it is nothing else."""
        self.dropped = 0
        """Complete sentences that a verdict rejected."""

    @property
    def model_abstained(self) -> bool:
        """The model itself said "I don't know"."""
        return self._idk.abstained

    def _loops(self, words: list[str], key: str | None) -> bool:
        if not self._loop_guard:
            return False
        if key is not None and key and key in self._keys:
            return True
        return repeats_run(self._words + words, self._repeat_words)

    def _take(self, final: bool) -> Pending:
        complete, rest = split_complete(self._pending)
        out: Pending = []
        for separator, sentence in complete:
            key = sentence_key(sentence)
            words = tokens(sentence)
            if self._loops(words, key):
                self.repeated = self.stopped = True
                self._pending = ""
                return out
            self._keys.add(key)
            self._words += words
            out.append((separator, sentence))
        self._pending = rest
        if self.stopped or not rest.strip():
            return out
        if final:
            ended = rest.rstrip()[-1:] in (".", "!", "?")
            if not ended and (self.truncated or self._keys):
                # Cut off by the token budget, or trailing off after complete sentences (small models
                # stop inside a list or a clause): the answer ends at its last complete sentence. A
                # lone unpunctuated answer ("Yes") is kept.
                return out
            if self._loops(tokens(rest), sentence_key(rest)):
                self.repeated = True
                return out
            return [*out, (rest[: len(rest) - len(rest.lstrip())], rest.strip())]
        settled = rest[: len(rest) - len(rest.split()[-1])] if not rest[-1:].isspace() else rest
        if self._loops(tokens(settled), None):  # a loop inside the unfinished sentence
            self.repeated = self.stopped = True
            self._pending = ""
        return out

    def feed(self, token: str) -> Pending:
        """Sentences completed by ``token``, to be judged and passed to :meth:`accept`."""
        if self.stopped or not token:
            return []
        self.tokens += 1
        delta = self._idk.feed(token)
        if self._idk.done:
            self.stopped = True
            return []
        self._pending += delta
        return self._take(final=False)

    def finish(self) -> Pending:
        """The last sentences once the generation has ended (or was stopped)."""
        if self.stopped:
            return []
        self.truncated = self._max_new_tokens is not None and self.tokens >= self._max_new_tokens
        self._pending += self._idk.finish()
        if self._idk.abstained:
            return []
        return self._take(final=True)

    def accept(self, separator: str, sentence: str, keep: bool) -> str:
        """The delta for a judged sentence: the sentence (with its separator) or '' when dropped."""
        if not keep:
            self.dropped += 1
            return ""
        started = self.answer or self._unterminated
        piece = (("\n" if "\n" in separator else " ") if started else "") + sentence
        if not is_terminated(sentence):
            self._unterminated += piece
            return ""
        delta, self._unterminated = self._unterminated + piece, ""
        self.answer += delta
        return delta

    def close(self) -> str:
        """The final delta: held unpunctuated lines when they are the whole answer, "I don't know" when
        nothing was kept (or the model abstained), else ''.

        Held lines that end in a lead-in mark ("..., including:", '"model": {') announce a list or block
        that the loop guard cut or the grounding check dropped: alone they say nothing and end
        mid-sentence, so the answer is "I don't know" instead. A code fence held last ("... the following
        code:" then "```python", its code lines dropped) opens a block that never came: it goes first."""
        if self.answer:
            return ""
        lines = self._unterminated.strip().splitlines()
        while lines and _FENCE_OPENER.fullmatch(lines[-1].strip()):
            lines.pop()
        held = "\n".join(lines).strip()
        self.answer = IDK if not held or held.endswith(_LEAD_IN) else held
        return self.answer

    @property
    def abstained(self) -> bool:
        """The final answer is "I don't know" (the model's, or nothing left after the guards)."""
        return self.answer == IDK
