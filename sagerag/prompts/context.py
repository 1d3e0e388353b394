"""Fit retrieved passages into the prompt's context budget.

Each passage becomes one delimited block, ``<context source="ID">`` ... ``</context>``, with its text
neutralised (see :mod:`sagerag.prompts.sanitize`), so the model can tell reference material from the
instruction and cite the source id. The budget covers the whole returned text (blocks, headers and
separators), so what goes into the prompt is never larger than asked for.

Policy, chosen so the best evidence is never lost and rank order is never changed:

- passages are taken in rank order; a passage whose whitespace-normalised text was already taken
  (or is empty) is skipped;
- the first passage that does not fit whole ends the selection, except when it is the very first
  one, which is truncated (at a word boundary when possible) rather than answering with no context.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any

from langchain_core.documents import Document
from langchain_core.prompts import BasePromptTemplate

from sagerag.errors import ConfigurationError, InputError
from sagerag.prompts.sanitize import CONTEXT_CLOSE, CONTEXT_OPEN, neutralize, neutralize_attribute

DEFAULT_MAX_CHARS = 1000
"""The context budget of the Pinecone RAG-on-SageMaker tutorial, in characters."""

DEFAULT_SEPARATOR = "\n\n"

TokenCounter = Callable[[str], int]


def approx_token_count(text: str) -> int:
    """A conservative token estimate (one token per 3 UTF-8 bytes) for when no tokenizer is at hand.

    Llama 2's tokenizer averages nearer 4 characters per token on English, so this overestimates and
    keeps prompts inside the window; pass a real tokenizer's counter for tight budgets.
    """
    return math.ceil(len(text.encode("utf-8")) / 3)


def source_id(document: Document, rank: int) -> str:
    """A short stable id to cite: metadata ``source`` (e.g. ``faq.csv#row42``), else ``id``, else the
    document's id (often a 64-hex hash, noise for a small model), else its rank."""
    for candidate in (document.metadata.get("source"), document.metadata.get("id"), document.id):
        if candidate not in (None, ""):
            return str(candidate)
    return f"passage-{rank}"


def format_passage(text: str, source: str) -> str:
    """One delimited, neutralised context block."""
    return f'{CONTEXT_OPEN} source="{neutralize_attribute(source)}">\n{neutralize(text)}\n{CONTEXT_CLOSE}'


def _dedup_key(text: str) -> str:
    """Whitespace-collapsed text: two passages with the same key are the same passage."""
    return " ".join(text.split())


def _truncate(text: str, source: str, fits: Callable[[str], bool]) -> str | None:
    """The longest prefix block of ``text`` that fits, cut at a word boundary when one is near."""
    lo, hi = 0, len(text)
    while lo < hi:  # largest n with fits(block(text[:n])); fits is monotone for chars, near enough for tokens
        mid = (lo + hi + 1) // 2
        if fits(format_passage(text[:mid], source)):
            lo = mid
        else:
            hi = mid - 1
    prefix = text[:lo]
    cut = prefix.rfind(" ")
    if cut >= int(lo * 0.8) and cut > 0:
        prefix = prefix[:cut]
    prefix = prefix.rstrip()
    if not prefix:
        return None
    block = format_passage(prefix, source)
    return block if fits(block) else None


def select_context(
    documents: Iterable[Document],
    max_chars: int | None = DEFAULT_MAX_CHARS,
    *,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
    separator: str = DEFAULT_SEPARATOR,
    best_last: bool = False,
) -> tuple[str, list[Document]]:
    """The context text and the documents it draws on (originals, in rank order).

    ``max_chars`` and ``max_tokens`` (counted with ``count_tokens``, default :func:`approx_token_count`)
    bound the returned text; ``None`` means no bound of that kind. Passages are chosen in rank order;
    ``best_last`` only lays the chosen blocks out in reverse, so the best one sits next to the question
    (small models lean on the nearest passage). The text is the same length either way.
    """
    if max_chars is not None and max_chars < 0:
        raise ConfigurationError(f"max_chars must be >= 0, got {max_chars}")
    if max_tokens is not None and max_tokens < 0:
        raise ConfigurationError(f"max_tokens must be >= 0, got {max_tokens}")
    counter = count_tokens or approx_token_count

    def fits(candidate: str) -> bool:
        if max_chars is not None and len(candidate) > max_chars:
            return False
        return max_tokens is None or counter(candidate) <= max_tokens

    text = ""
    used: list[Document] = []
    blocks: list[str] = []
    seen: set[str] = set()
    for rank, document in enumerate(documents, start=1):
        key = _dedup_key(document.page_content)
        if not key or key in seen:
            continue
        seen.add(key)
        source = source_id(document, rank)
        block = format_passage(document.page_content.strip(), source)
        candidate = text + separator + block if used else block
        if fits(candidate):
            text = candidate
            used.append(document)
            blocks.append(block)
            continue
        if not used:
            truncated = _truncate(document.page_content.strip(), source, fits)
            if truncated is not None:
                text = truncated
                used.append(document)
                blocks.append(truncated)
        break
    if best_last and len(blocks) > 1:
        text = separator.join(reversed(blocks))
    return text, used


def build_context(
    documents: Iterable[Document],
    max_chars: int | None = DEFAULT_MAX_CHARS,
    *,
    max_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
    separator: str = DEFAULT_SEPARATOR,
    best_last: bool = False,
) -> str:
    """The context text only; see :func:`select_context`."""
    text, _ = select_context(
        documents,
        max_chars,
        max_tokens=max_tokens,
        count_tokens=count_tokens,
        separator=separator,
        best_last=best_last,
    )
    return text


def token_budget(
    prompt_template: BasePromptTemplate[Any],
    question: str,
    context_window: int = 4096,
    max_new_tokens: int = 256,
    count_tokens: TokenCounter | None = None,
) -> int:
    """Tokens left for the context once the prompt (with an empty context) and the answer are paid for.

    4096 is Llama 2's window. Counting the pieces separately can be off by a token or two at the seams,
    so leave a little headroom in ``max_new_tokens`` if the window is tight.
    """
    counter = count_tokens or approx_token_count
    prompt_tokens = counter(prompt_template.format(context="", question=question))
    left = context_window - max_new_tokens - prompt_tokens
    if left <= 0:
        raise InputError(
            f"the prompt and question take {prompt_tokens} tokens; with max_new_tokens={max_new_tokens} "
            f"nothing is left of the {context_window}-token context window: shorten the question"
        )
    return left
