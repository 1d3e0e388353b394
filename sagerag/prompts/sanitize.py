"""Neutralise prompt markup inside retrieved text.

Retrieved passages are untrusted: a document that contains ``</context>``, ``QUESTION:`` or ``[/INST]``
could otherwise close the context block and speak to the model as the instruction. We do not delete
such text (it may be legitimate, e.g. a FAQ about Llama 2 markup); we swap the ASCII brackets and colons
that make it markup for Unicode look-alikes, which a reader still understands but which neither our
templates nor the Llama 2 tokenizer treat as structure.
"""

from __future__ import annotations

import re

CONTEXT_OPEN = "<context"
"""Start of a passage block: ``<context source="...">``."""

CONTEXT_CLOSE = "</context>"
"""End of a passage block."""

STRUCTURAL_MARKERS: tuple[str, ...] = (
    CONTEXT_OPEN,
    CONTEXT_CLOSE,
    "CONTEXT:",
    "QUESTION:",
    "ANSWER:",
    "[INST]",
    "[/INST]",
    "<<SYS>>",
    "<</SYS>>",
    "<s>",
    "</s>",
)
"""Markup our templates use for structure; none of it may survive inside a passage (case-insensitively)."""

_LT, _GT = "\u2039", "\u203a"  # ‹ ›
_LBR, _RBR = "\uff3b", "\uff3d"  # fullwidth [ ]
_COLON = "\ua789"  # modifier letter colon ꞉

_RULES: tuple[tuple[re.Pattern[str], str], ...] = (
    # <<SYS>> / <</SYS>> (before the single-bracket rule so both brackets are swapped)
    (re.compile(r"<\s*<\s*(/?)\s*SYS\s*>\s*>", re.IGNORECASE), _LT + _LT + r"\1SYS" + _GT + _GT),
    # <context ...>, </context>, <s>, </s> (an opening tag may carry attributes or be left unclosed)
    (re.compile(r"<(\s*/?\s*)(context)", re.IGNORECASE), _LT + r"\1\2"),
    (re.compile(r"<(\s*/?\s*)(s)(\s*)>", re.IGNORECASE), _LT + r"\1\2\3" + _GT),
    # [INST] / [/INST]
    (re.compile(r"\[(\s*/?\s*)(INST)(\s*)\]", re.IGNORECASE), _LBR + r"\1\2\3" + _RBR),
    # CONTEXT: / QUESTION: / ANSWER: labels
    (re.compile(r"(CONTEXT|QUESTION|ANSWER)(\s*):", re.IGNORECASE), r"\1\2" + _COLON),
)


def neutralize(text: str) -> str:
    """Return ``text`` with every structural marker defused; plain text is left unchanged.

    Rules are applied until nothing changes, so markers that a first pass would assemble from pieces
    (``<</s>/s>``) are caught too. Each pass removes ASCII brackets or colons, so this terminates.
    """
    previous = None
    while previous != text:
        previous = text
        for pattern, replacement in _RULES:
            text = pattern.sub(replacement, text)
    return text


def neutralize_attribute(value: str) -> str:
    """A value safe inside a double-quoted tag attribute on one line (source ids come from metadata)."""
    cleaned = " ".join(neutralize(value).split())
    return cleaned.replace('"', "'").replace("<", _LT).replace(">", _GT)
