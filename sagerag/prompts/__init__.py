"""Prompts: the "answer from CONTEXT or say I don't know" templates and the context-budget builder."""

from sagerag.prompts.context import (
    DEFAULT_MAX_CHARS,
    approx_token_count,
    build_context,
    format_passage,
    select_context,
    source_id,
    token_budget,
)
from sagerag.prompts.sanitize import STRUCTURAL_MARKERS, neutralize
from sagerag.prompts.templates import (
    IDK,
    get_prompt,
    list_prompts,
    load_prompt_file,
    resolve_prompt,
)

__all__ = [
    "DEFAULT_MAX_CHARS",
    "IDK",
    "STRUCTURAL_MARKERS",
    "approx_token_count",
    "build_context",
    "format_passage",
    "get_prompt",
    "list_prompts",
    "load_prompt_file",
    "neutralize",
    "resolve_prompt",
    "select_context",
    "source_id",
    "token_budget",
]
