"""The LCEL RAG chain: retrieve, gate, stuff a budgeted context, generate, guard, and say whether it abstained.

Input: a question string, or ``{"question": ...}`` (``{"query": ...}`` as RetrievalQA users write it).
Output of ``invoke``/``batch``: a :class:`RagResult`, ``{"answer", "sources", "abstained", "truncated",
"repeated", "dropped", "grounding_abstained", "sentences"}``. ``sources`` are the passages that went into
the context (when the score gate abstains, the ones that would have), in rank order, with the id their
context block cites.

Streaming protocol (``stream``/``astream``), so a caller can print the answer as it arrives:

- zero or more ``{"answer": delta}`` chunks: text deltas whose concatenation is the final answer;
- one last chunk with every other key of :class:`RagResult`.

Chunks are ``AddableDict``s, so adding them all up gives exactly the ``invoke`` result. The answer is
released a sentence at a time, once the guards (:mod:`sagerag.chains.guards`) and the grounding check
have passed it, so nothing shown is ever retracted; a streamed abstention shows as exactly "I don't know".
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import aclosing
from pathlib import Path
from typing import Any, Literal, TypedDict, cast

from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseLanguageModel
from langchain_core.prompts import PromptTemplate
from langchain_core.retrievers import BaseRetriever
from langchain_core.runnables import Runnable, RunnableConfig, RunnableGenerator, RunnableLambda
from langchain_core.runnables.utils import AddableDict
from langchain_core.vectorstores import VectorStore, VectorStoreRetriever

from sagerag.chains._retrieval import (
    Scored,
    SourceRecord,
    aretrieve,
    check_source,
    retrieve,
    source_record,
)
from sagerag.chains.abstain import default_min_score, gate
from sagerag.chains.grounding import (
    DEFAULT_METHOD,
    DEFAULT_MIN_SUPPORT,
    Grounder,
    GroundingMethod,
    SentenceSupport,
    check_grounding,
    context_units,
)
from sagerag.chains.guards import AnswerGuard, Pending
from sagerag.errors import ConfigurationError, InputError
from sagerag.kinds import Grounding
from sagerag.prompts.context import DEFAULT_MAX_CHARS, TokenCounter, select_context
from sagerag.prompts.sanitize import neutralize
from sagerag.prompts.templates import IDK, resolve_prompt


class RagResult(TypedDict):
    """What the RAG chain returns (and what its streamed chunks add up to)."""

    answer: str
    sources: list[SourceRecord]
    """The passages that went into the context, in rank order."""
    abstained: bool
    """The answer is "I don't know": the score gate, the model, or the grounding check said so."""
    truncated: bool
    """The generation used all of ``max_new_tokens``; the answer ends at its last complete sentence."""
    repeated: bool
    """The loop guard stopped the generation at a repeated sentence or run of words."""
    dropped: int
    """Answer sentences the grounding check removed as unsupported."""
    grounding_abstained: bool
    """The chain abstained because the grounding check left no sentence."""
    sentences: list[SentenceSupport]
    """Per-sentence support scores (empty with grounding off)."""


def _gated(state: dict[str, Any]) -> AddableDict:
    return AddableDict(
        answer=IDK,
        sources=state["sources"],
        abstained=True,
        truncated=False,
        repeated=False,
        dropped=0,
        grounding_abstained=False,
        sentences=[],
    )


def max_new_tokens_of(llm: object) -> int | None:
    """The model's generation budget when its settings tell it (``model_kwargs["max_new_tokens"]`` as
    SageMaker's LLM classes carry it, else a ``max_tokens`` or ``max_new_tokens`` attribute)."""
    kwargs = getattr(llm, "model_kwargs", None)
    candidates = [kwargs.get("max_new_tokens") if isinstance(kwargs, dict) else None]
    candidates += [getattr(llm, "max_new_tokens", None), getattr(llm, "max_tokens", None)]
    for value in candidates:
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def embeddings_of(source: VectorStore | BaseRetriever) -> Embeddings | None:
    """The embeddings behind a vector store or a vector-store retriever, if any."""
    store = source.vectorstore if isinstance(source, VectorStoreRetriever) else source
    return store.embeddings if isinstance(store, VectorStore) else None


class _Run:
    """One generation's guard, grounder and verdicts: the state the sync and async shells share."""

    def __init__(self, state: dict[str, Any], guard: AnswerGuard, grounder: Grounder | None) -> None:
        self.state, self.guard, self.grounder = state, guard, grounder
        self.sentences: list[SentenceSupport] = []

    def judge(self, pending: Pending) -> list[SentenceSupport] | None:
        if self.grounder is None or not pending:
            return None
        return self.grounder.judge([sentence for _, sentence in pending])

    async def ajudge(self, pending: Pending) -> list[SentenceSupport] | None:
        if self.grounder is None or not pending:
            return None
        return await self.grounder.ajudge([sentence for _, sentence in pending])

    def settle(self, pending: Pending, verdicts: list[SentenceSupport] | None) -> str:
        """The answer delta for judged sentences (unsupported ones dropped, per the verdicts)."""
        delta = ""
        for i, (separator, sentence) in enumerate(pending):
            keep = True
            if verdicts is not None:
                self.sentences.append(verdicts[i])
                keep = verdicts[i]["kept"]
            delta += self.guard.accept(separator, sentence, keep)
        return delta

    def outcome(self) -> AddableDict:
        guard = self.guard
        for verdict in self.sentences:  # supported lines can still fall to a clean end (an unfinished list)
            verdict["kept"] = verdict["kept"] and verdict["text"] in guard.answer
        return AddableDict(
            sources=self.state["sources"],
            abstained=guard.abstained,
            truncated=guard.truncated,
            repeated=guard.repeated,
            dropped=guard.dropped,
            grounding_abstained=guard.abstained and guard.dropped > 0 and not guard.model_abstained,
            sentences=self.sentences,
        )


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
    loop_guard: bool = True,
    grounding: Grounding = "drop",
    grounding_method: GroundingMethod = DEFAULT_METHOD,
    min_support: float = DEFAULT_MIN_SUPPORT,
    embeddings: Embeddings | None = None,
    max_new_tokens: int | None = None,
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

    The answer guards (:mod:`sagerag.chains.guards`): ``loop_guard`` stops the generation at a repeated
    sentence or run of words; an answer that used all of ``max_new_tokens`` (default: read from the
    LLM's settings) ends at its last complete sentence and says ``truncated``. ``grounding`` scores each
    sentence against the context passages (:mod:`sagerag.chains.grounding`, with ``embeddings``, default
    the store's) and ``drop``s the unsupported ones, abstaining when none is left, or only ``flag``s them.
    Without embeddings (a retriever that has none), ``both`` scores with the lexical measure alone.
    """
    if k < 1:
        raise ConfigurationError(f"k must be at least 1, got {k}")
    if max_concurrency < 1:
        raise ConfigurationError(f"max_concurrency must be at least 1, got {max_concurrency}")
    source = check_source(store_or_retriever)
    if min_score == "auto":
        min_score = default_min_score(store_or_retriever)
    check_grounding(grounding, grounding_method, min_support)
    template = resolve_prompt(prompt)
    budget = max_new_tokens if max_new_tokens is not None else max_new_tokens_of(llm)
    vectors = embeddings if embeddings is not None else embeddings_of(source)
    if grounding != "off" and grounding_method == "semantic" and vectors is None:
        raise ConfigurationError(
            "grounding method 'semantic' needs embeddings: pass embeddings=, or "
            "grounding_method='lexical' or 'both', or grounding='off'"
        )

    def new_run(state: dict[str, Any]) -> _Run:
        guard = AnswerGuard(loop_guard=loop_guard, max_new_tokens=budget)
        if grounding == "off":
            return _Run(state, guard, None)
        passages = [source["text"] for source in state["sources"]]
        embedder = vectors
        if vectors is not None and passages and grounding_method != "lexical":
            embedder = _PrefetchedEmbeddings(vectors, context_units(passages))
        grounder = Grounder(
            passages,
            embedder,
            question=state["inputs"]["question"],
            method=grounding_method,
            min_support=min_support,
            drop=grounding == "drop",
        )
        return _Run(state, guard, grounder)

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
            yield _gated(state)
            return
        run = new_run(state)
        # The model's own stream, not a RunnableSequence's: closing a sequence's stream drains the model.
        tokens = llm.stream(template.invoke(state["inputs"]), config)
        try:
            for chunk in tokens:
                token = _text(chunk)
                pending = run.guard.feed(token)
                if delta := run.settle(pending, run.judge(pending)):
                    yield AddableDict(answer=delta)
                if run.guard.stopped:
                    break
        finally:  # stop the model's generation once the guards have what they need
            close = getattr(tokens, "close", None)
            if close is not None:
                close()
        pending = run.guard.finish()
        if delta := run.settle(pending, run.judge(pending)) + run.guard.close():
            yield AddableDict(answer=delta)
        yield run.outcome()

    async def aanswer(
        states: AsyncIterator[dict[str, Any]], config: RunnableConfig | None = None
    ) -> AsyncIterator[AddableDict]:
        state: dict[str, Any] | None = None
        async for state in states:  # noqa: B007 - the step before yields one complete value
            pass
        assert state is not None
        if state["gated"]:
            yield _gated(state)
            return
        run = new_run(state)
        prompt_value = await template.ainvoke(state["inputs"])
        async with aclosing(llm.astream(prompt_value, config)) as tokens:  # type: ignore[type-var]
            async for chunk in tokens:
                token = _text(chunk)
                pending = run.guard.feed(token)
                if delta := run.settle(pending, await run.ajudge(pending)):
                    yield AddableDict(answer=delta)
                if run.guard.stopped:
                    break
        pending = run.guard.finish()
        if delta := run.settle(pending, await run.ajudge(pending)) + run.guard.close():
            yield AddableDict(answer=delta)
        yield run.outcome()

    chain = RunnableLambda(prepare, afunc=aprepare, name="retrieve") | RunnableGenerator(
        answer, aanswer, name="answer"
    )
    configured = chain.with_config(max_concurrency=max_concurrency, run_name="sagerag_rag")
    return cast(Runnable[Any, RagResult], configured)


_PREFETCH: ThreadPoolExecutor | None = None


def _prefetcher() -> ThreadPoolExecutor:
    global _PREFETCH
    if _PREFETCH is None:
        _PREFETCH = ThreadPoolExecutor(max_workers=4, thread_name_prefix="sagerag-prefetch")
    return _PREFETCH


class _PrefetchedEmbeddings(Embeddings):
    """One answer's context units (passages and their sentences), embedded while the model prefills.

    The grounding check needs the units' vectors with the answer's first sentence, which against a remote
    endpoint meant one more round trip after it (for a one-sentence answer, after the last token: 5.6%
    of `ask` in scripts/bench_query.py). Started with the generation request, it is hidden behind the
    time to first token. Any other call goes to the wrapped embeddings."""

    def __init__(self, inner: Embeddings, units: list[str]) -> None:
        self._inner, self._units = inner, units
        self._future: Future[list[list[float]]] | None = _prefetcher().submit(inner.embed_documents, units)

    def _take(self, texts: list[str]) -> Future[list[list[float]]] | None:
        future = self._future
        if future is None or list(texts) != self._units:
            return None
        self._future = None
        return future

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        future = self._take(texts)
        return future.result() if future is not None else self._inner.embed_documents(texts)

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        future = self._take(texts)
        if future is not None:
            return await asyncio.wrap_future(future)
        return await self._inner.aembed_documents(texts)

    def embed_query(self, text: str) -> list[float]:
        return self._inner.embed_query(text)

    async def aembed_query(self, text: str) -> list[float]:
        return await self._inner.aembed_query(text)


def _text(chunk: object) -> str:
    """A streamed chunk's text: LLMs stream strings, chat models message chunks."""
    return chunk if isinstance(chunk, str) else str(getattr(chunk, "text", "") or "")


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

    def _take(self, chunk: Mapping[str, Any]) -> str:
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
        return cast(RagResult, {"answer": self._result.get("answer", ""), **self._result})


def stream_answer(
    chain: Runnable[Any, RagResult], question: Any, config: RunnableConfig | None = None
) -> StreamedAnswer:
    """Print-as-you-go helper: ``for text in (s := stream_answer(chain, q)): print(text, end="")``, then
    ``s.result``. Also iterable with ``async for``."""
    return StreamedAnswer(chain, question, config)
