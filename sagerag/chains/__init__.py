"""Chains: the classic RetrievalQA, the LCEL RAG chain with its abstention gate, and the chain as a tool.

Chains take the LLM and the vector store (or retriever) as arguments and never build them, so any
LangChain objects work; ``sagerag.pipeline`` wires the project's own. Names load on first use: `ask`
needs the LCEL chain, not langchain-classic's RetrievalQA or LangChain's agent middleware (the tool).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports

if TYPE_CHECKING:
    from sagerag.chains.abstain import (
        DEFAULT_MIN_SCORE,
        DEFAULT_MIN_SCORES,
        default_min_score,
        normalize_answer,
        says_idk,
    )
    from sagerag.chains.rag import RagResult, StreamedAnswer, build_rag_chain, stream_answer
    from sagerag.chains.retrieval_qa import BudgetedRetriever, build_retrieval_qa
    from sagerag.chains.tool import as_tool, consult_first, format_tool_answer

_LAZY = {
    "DEFAULT_MIN_SCORE": "sagerag.chains.abstain",
    "DEFAULT_MIN_SCORES": "sagerag.chains.abstain",
    "default_min_score": "sagerag.chains.abstain",
    "normalize_answer": "sagerag.chains.abstain",
    "says_idk": "sagerag.chains.abstain",
    "RagResult": "sagerag.chains.rag",
    "StreamedAnswer": "sagerag.chains.rag",
    "build_rag_chain": "sagerag.chains.rag",
    "stream_answer": "sagerag.chains.rag",
    "BudgetedRetriever": "sagerag.chains.retrieval_qa",
    "build_retrieval_qa": "sagerag.chains.retrieval_qa",
    "as_tool": "sagerag.chains.tool",
    "consult_first": "sagerag.chains.tool",
    "format_tool_answer": "sagerag.chains.tool",
}

__all__ = [
    "DEFAULT_MIN_SCORE",
    "DEFAULT_MIN_SCORES",
    "BudgetedRetriever",
    "RagResult",
    "StreamedAnswer",
    "as_tool",
    "build_rag_chain",
    "build_retrieval_qa",
    "consult_first",
    "default_min_score",
    "format_tool_answer",
    "normalize_answer",
    "says_idk",
    "stream_answer",
]

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
