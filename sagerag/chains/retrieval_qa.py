"""The classic ``RetrievalQA`` ("stuff") chain, with our prompt, delimited passages and context budget.

The budget is applied twice, consistently: the retriever wrapper keeps only the documents that fit
(so ``source_documents`` are exactly the passages the model saw), and the stuff chain renders them with
:func:`build_context`, which neutralises their text and truncates the first one if it alone is too big.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from langchain_classic.chains import LLMChain, RetrievalQA, StuffDocumentsChain
from langchain_core.callbacks import AsyncCallbackManagerForRetrieverRun, CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.vectorstores import VectorStore

from sagerag.chains._retrieval import check_source
from sagerag.errors import ConfigurationError
from sagerag.prompts.context import DEFAULT_MAX_CHARS, build_context, select_context
from sagerag.prompts.sanitize import neutralize
from sagerag.prompts.templates import resolve_prompt


class BudgetedRetriever(BaseRetriever):
    """Top ``k`` documents of the wrapped retriever, cut to those that fit the context budget."""

    retriever: BaseRetriever
    """Where the documents come from."""
    k: int = 5
    """How many retrieved documents to consider."""
    max_chars: int | None = DEFAULT_MAX_CHARS
    """Context budget in characters, as :func:`sagerag.prompts.select_context` counts it."""
    max_tokens: int | None = None
    """Context budget in tokens, counted with ``count_tokens``."""
    count_tokens: Callable[[str], int] | None = None
    """Token counter; None means :func:`sagerag.prompts.approx_token_count`."""

    def _select(self, docs: list[Document]) -> list[Document]:
        return select_context(
            docs[: self.k], self.max_chars, max_tokens=self.max_tokens, count_tokens=self.count_tokens
        )[1]

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        docs = self.retriever.invoke(query, {"callbacks": run_manager.get_child()})
        return self._select(docs)

    async def _aget_relevant_documents(
        self, query: str, *, run_manager: AsyncCallbackManagerForRetrieverRun
    ) -> list[Document]:
        docs = await self.retriever.ainvoke(query, {"callbacks": run_manager.get_child()})
        return self._select(docs)


class BudgetedStuffDocumentsChain(StuffDocumentsChain):
    """Stuffs documents as delimited, neutralised blocks within the budget (instead of plain joining)."""

    max_chars: int | None = DEFAULT_MAX_CHARS
    """Context budget in characters."""
    max_tokens: int | None = None
    """Context budget in tokens."""
    count_tokens: Callable[[str], int] | None = None
    """Token counter; None means :func:`sagerag.prompts.approx_token_count`."""

    def _get_inputs(self, docs: list[Document], **kwargs: Any) -> dict[str, Any]:
        inputs = {k: v for k, v in kwargs.items() if k in self.llm_chain.prompt.input_variables}
        if isinstance(inputs.get("question"), str):
            inputs["question"] = neutralize(inputs["question"])
        inputs[self.document_variable_name] = build_context(
            docs, self.max_chars, max_tokens=self.max_tokens, count_tokens=self.count_tokens
        )
        return inputs


def build_retrieval_qa(
    llm: BaseLanguageModel[Any],
    store_or_retriever: VectorStore | BaseRetriever,
    prompt: str | Path | PromptTemplate | None = None,
    k: int = 5,
    max_context_chars: int | None = DEFAULT_MAX_CHARS,
    *,
    max_context_tokens: int | None = None,
    count_tokens: Callable[[str], int] | None = None,
) -> RetrievalQA:
    """A ``RetrievalQA`` chain: ``chain.invoke({"query": q})`` -> ``{"query", "result", "source_documents"}``.

    No score gate here (the classic API has none); use :func:`build_rag_chain` for abstention.
    """
    if k < 1:
        raise ConfigurationError(f"k must be at least 1, got {k}")
    source = check_source(store_or_retriever)
    retriever = source.as_retriever(search_kwargs={"k": k}) if isinstance(source, VectorStore) else source
    template = resolve_prompt(prompt)
    with warnings.catch_warnings():  # LLMChain and friends are deprecated; this module exists for them
        warnings.simplefilter("ignore", DeprecationWarning)
        combine = BudgetedStuffDocumentsChain(
            llm_chain=LLMChain(llm=llm, prompt=template),
            document_variable_name="context",
            max_chars=max_context_chars,
            max_tokens=max_context_tokens,
            count_tokens=count_tokens,
        )
        return RetrievalQA(
            combine_documents_chain=combine,
            retriever=BudgetedRetriever(
                retriever=retriever,
                k=k,
                max_chars=max_context_chars,
                max_tokens=max_context_tokens,
                count_tokens=count_tokens,
            ),
            return_source_documents=True,
        )
