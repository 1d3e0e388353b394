"""Sentences and word tokens of generated answers: the unit the answer guards cut, compare and ground.

Kept free of LangChain and I/O: the chain's guards and the evaluation metrics share these definitions,
so "a repeated sentence" or "ends mid-sentence" means the same thing in the chain and in its report.
"""

from __future__ import annotations

import re
import string

_ARTICLES = re.compile(r"\b(a|an|the)\b")
_PUNCT = str.maketrans(dict.fromkeys(string.punctuation + "\u2018\u2019\u201c\u201d", " "))

# A sentence ends at . ! or ? (plus closing quotes or brackets) followed by whitespace, or at a line
# break. Not after a bare number or a single letter ("1. Open...", "e.g. this", "U.S. regions").
_END = re.compile(r"[.!?]+[\"')\]\u201d\u2019]*(?=\s)|\n")
_NOT_AN_END = re.compile(r"(?:^|[\s(])(?:\d+|[A-Za-z]|e\.g|i\.e|etc|vs|approx|incl)\.$", re.IGNORECASE)
_TERMINAL = frozenset(".!?)]\"'\u201d\u2019")


def tokens(text: str) -> list[str]:
    """SQuAD normalisation: lower case, no punctuation, no articles, split on whitespace."""
    return _ARTICLES.sub(" ", text.lower().translate(_PUNCT)).split()


def sentence_key(sentence: str) -> str:
    """What two sentences must share to count as the same sentence (case, punctuation, articles aside)."""
    return " ".join(tokens(sentence))


def split_complete(text: str) -> tuple[list[tuple[str, str]], str]:
    """``([(separator, sentence), ...], rest)``: the complete sentences of ``text`` and the unfinished tail.

    ``separator`` is the whitespace that preceded the sentence, so joining separators and sentences
    gives back ``text`` minus ``rest`` (up to trailing whitespace). A sentence is complete once the
    whitespace after its final punctuation (or a line break) has arrived, which is what lets a stream be
    cut at sentences without waiting for its end.
    """
    out: list[tuple[str, str]] = []
    start = 0
    after_break = False  # a line break ended the previous piece: it separates the next one
    for match in _END.finditer(text):
        end = match.end()
        piece = text[start:end]
        body = piece.strip()
        if not body:
            after_break = after_break or "\n" in piece
            start = end
            continue
        if match.group() != "\n" and _NOT_AN_END.search(piece.rstrip()):
            continue
        separator = ("\n" if after_break else "") + piece[: len(piece) - len(piece.lstrip())]
        out.append((separator, body))
        after_break = match.group() == "\n"
        start = end
    rest = text[start:]
    return out, ("\n" + rest if after_break and rest.strip() else rest)


def split_sentences(text: str) -> list[str]:
    """All sentences of a finished text, the unterminated tail included."""
    complete, rest = split_complete(text)
    sentences = [body for _, body in complete]
    if rest.strip():
        sentences.append(rest.strip())
    return sentences


def has_repeated_sentence(text: str) -> bool:
    """True when two sentences of ``text`` are the same sentence (see :func:`sentence_key`)."""
    keys = [key for key in map(sentence_key, split_sentences(text)) if key]
    return len(keys) != len(set(keys))


def is_terminated(sentence: str) -> bool:
    """True when ``sentence`` ends with closing punctuation (see :func:`ends_mid_sentence`)."""
    stripped = sentence.rstrip()
    return bool(stripped) and stripped[-1] in _TERMINAL


def ends_mid_sentence(text: str) -> bool:
    """True when ``text`` stops without closing punctuation (a cut-off answer)."""
    return bool(text.strip()) and not is_terminated(text)
