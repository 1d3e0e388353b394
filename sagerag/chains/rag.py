"""The LCEL RAG chain: retrieve, gate, stuff a budgeted context, generate, and say whether it abstained.

Input: a question string, or ``{"question": ...}`` (``{"query": ...}`` as RetrievalQA users write it).
Output of ``invoke``/``batch``: ``{"answer": str, "sources": [{"id", "score", "text", "metadata"}],
"abstained": bool}``. ``sources`` are the passages that went into the context (when the score gate
abstains, the ones that would have), in rank order, with the id their context block cites.

Streaming protocol (``stream``/``astream``), so a caller can print tokens as they arrive:

- zero or more ``{"answer": delta}`` chunks: text deltas whose concatenation is the final answer;
- one last chunk ``{"sources": [...], "abstained": bool}``.

Chunks are ``AddableDict``s, so adding them all up gives exactly the ``invoke`` result. Text that may
still turn out to be "I don't know" is held back until it is decided (a dozen characters at most), so a
streamed abstention shows as exactly "I don't know" and generation stops there.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseLanguageModel
from langchain_core.output_parsers import StrOutputParser
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableGenerator, RunnableLambda
from langchain_core.runnables.utils import AddableDict
from langchain_core.vectorstores import VectorStore

from sagerag.chains._retrieval import Scored, aretrieve, check_source, retrieve, source_record
from sagerag.chains.abstain import AnswerStream, default_min_score, gate
from sagerag.errors import ConfigurationError, InputError
from sagerag.prompts.context import DEFAULT_MAX_CHARS, TokenCounter, select_context
from sagerag.prompts.sanitize import neutralize
from sagerag.prompts.templates import IDK, resolve_prompt

RagResult = dict[str, Any]


def question_of(value: Any) -> str:
    """The question from a chain input: a string, or a mapping with ``question`` (or ``query``)."""
    if isinstance(value, dict):
        value = value.get("question", value.get("query"))
    if not isinstance(value, str):
        raise InputError('the RAG chain takes a question string or {"question": "..."}')
    if not value.strip():
        raise InputError("the question is empty")
    return value.strip()


def build_rag_chain(
    llm: BaseLanguageModel[Any],
    store_or_retriever: VectorStore | BaseRetriever,
    prompt: str | Path | PromptTemplate | None = None,
    k: int = 5,
    max_context_chars: int | None = DEFAULT_MAX_CHARS,
    min_score: float | Literal["auto"] | None = "auto",
    max_concurrency: int = 4,
    *,
    max_context_tokens: int | None = None,
    count_tokens: TokenCounter | None = None,
    best_last: bool = True,
) -> Runnable[Any, RagResult]:
    """The LCEL RAG chain over ``llm`` (a text LLM or a chat model) and a store or retriever.

    Retrieval from a vector store uses ``similarity_search_with_score`` (scores must be similarities,
    higher is better); from a retriever, ``doc.metadata["score"]`` when present. The model is not
    called when nothing is retrieved or the best score is below ``min_score`` (``"auto"``: the calibrated
    gate for the store's retrieval mode, see ``chains.abstain.DEFAULT_MIN_SCORES``). ``max_concurrency`` is
    the default for ``batch``/``abatch`` (override with ``config={"max_concurrency": n}``).
    ``max_context_tokens`` (see :func:`sagerag.prompts.token_budget`) bounds the context in tokens too.
    Passages scoring below ``min_score`` are left out of the context. ``best_last`` (default on) lays
    the chosen passages out best-last, next to the question: on the SageMaker FAQ the small local model
    answers from the wrong Managed Spot passage when the best one comes first.
    """
    if k < 1:
        raise ConfigurationError(f"k must be at least 1, got {k}")
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
    source = check_source(store_or_retriever)
    if min_score == "auto":
        min_score = default_min_score(store_or_retriever)
    generate: Runnable[dict[str, str], str] = resolve_prompt(prompt) | llm | StrOutputParser()

    def plan(question: str, scored: Scored) -> dict[str, Any]:
        gated = gate([score for _, score in scored], min_score)
        # Below the gate's threshold a passage is judged irrelevant: it stays out of the context (it only
        # distracts a small model), unless the gate fires, when the weak passages are reported as sources.
        relevant = (
            scored
            if gated or min_score is None
            else [(d, s) for d, s in scored if s is None or s >= min_score]
        )
        context, used = select_context(
            [doc for doc, _ in relevant],
            max_context_chars,
            max_tokens=max_context_tokens,
            count_tokens=count_tokens,
            best_last=best_last,
        )
        ranks = {id(doc): rank for rank, (doc, _) in enumerate(scored, start=1)}
        scores = {id(doc): score for doc, score in scored}
        return {
            "inputs": {"context": context, "question": neutralize(question)},
            "sources": [source_record(doc, scores[id(doc)], ranks[id(doc)]) for doc in used],
            "gated": gated,
        }

    def prepare(value: Any, config: RunnableConfig) -> dict[str, Any]:
        question = question_of(value)
        return plan(question, retrieve(source, question, k, config))

    async def aprepare(value: Any, config: RunnableConfig) -> dict[str, Any]:
        question = question_of(value)
        return plan(question, await aretrieve(source, question, k, config))

    def answer(
        states: Iterator[dict[str, Any]], config: RunnableConfig | None = None
    ) -> Iterator[AddableDict]:
        state = _last(states)
        if state["gated"]:
            yield AddableDict(answer=IDK, sources=state["sources"], abstained=True)
            return
        stream = AnswerStream()
        tokens = generate.stream(state["inputs"], config)
        try:
            for token in tokens:
                if delta := stream.feed(token):
                    yield AddableDict(answer=delta)
                if stream.done:
                    break
        finally:  # stop the model's generation when it has abstained
            close = getattr(tokens, "close", None)
            if close is not None:
                close()
        if delta := stream.finish():
            yield AddableDict(answer=delta)
        yield AddableDict(sources=state["sources"], abstained=stream.abstained)

    async def aanswer(
        states: AsyncIterator[dict[str, Any]], config: RunnableConfig | None = None
    ) -> AsyncIterator[AddableDict]:
        state: dict[str, Any] | None = None
        async for state in states:  # noqa: B007 - the step before yields one complete value
            pass
        assert state is not None
        if state["gated"]:
            yield AddableDict(answer=IDK, sources=state["sources"], abstained=True)
            return
        stream = AnswerStream()
        async with aclosing(generate.astream(state["inputs"], config)) as tokens:  # type: ignore[type-var]
            async for token in tokens:
                if delta := stream.feed(token):
                    yield AddableDict(answer=delta)
                if stream.done:
                    break
        if delta := stream.finish():
            yield AddableDict(answer=delta)
        yield AddableDict(sources=state["sources"], abstained=stream.abstained)

    chain = RunnableLambda(prepare, afunc=aprepare, name="retrieve") | RunnableGenerator(
        answer, aanswer, name="answer"
    )
    return chain.with_config(max_concurrency=max_concurrency, run_name="sagerag_rag")


def _last(states: Iterator[dict[str, Any]]) -> dict[str, Any]:
    state: dict[str, Any] | None = None
    for state in states:  # noqa: B007 - the step before yields one complete value
        pass
    assert state is not None
    return state


class StreamedAnswer:
    """Iterate for answer text as it is generated; ``result`` then holds the complete chain output."""

    def __init__(self, chain: Runnable[Any, RagResult], question: Any, config: RunnableConfig | None = None):
        self._chain, self._question, self._config = chain, question, config
        self._result: AddableDict | None = None

    def _take(self, chunk: dict[str, Any]) -> str:
        self._result = AddableDict(chunk) if self._result is None else self._result + AddableDict(chunk)
        return str(chunk.get("answer", ""))

    def __iter__(self) -> Iterator[str]:
        self._result = None
        for chunk in self._chain.stream(self._question, self._config):
            if text := self._take(chunk):
                yield text

    async def __aiter__(self) -> AsyncIterator[str]:
        self._result = None
        async for chunk in self._chain.astream(self._question, self._config):
            if text := self._take(chunk):
                yield text

    @property
    def result(self) -> RagResult:
        """``{"answer", "sources", "abstained"}``, available once iteration has finished."""
        if self._result is None or "abstained" not in self._result:
            raise RuntimeError("iterate over the StreamedAnswer to the end before reading its result")
        return {"answer": self._result.get("answer", ""), **self._result}


def stream_answer(
    chain: Runnable[Any, RagResult], question: Any, config: RunnableConfig | None = None
) -> StreamedAnswer:
    """Print-as-you-go helper: ``for text in (s := stream_answer(chain, q)): print(text, end="")``, then
    ``s.result``. Also iterable with ``async for``."""
    return StreamedAnswer(chain, question, config)
