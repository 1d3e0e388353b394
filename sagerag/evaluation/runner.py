"""Run configurations of the RAG chain over labelled questions, one durable result line per question.

Each question is embedded and searched once, `RETRIEVAL_DEPTH` deep (or `k` when larger): the retrieval
metrics read the ranked rows, and the chain reads the same documents through a retriever that hands them
back, so generation sees exactly what was scored and no question is searched twice. Results go to a
`ResultLog` keyed by configuration and question, so an interrupted run resumes where it stopped.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from langchain_core.callbacks import CallbackManagerForRetrieverRun
from langchain_core.documents import Document
from langchain_core.language_models import BaseLanguageModel
from langchain_core.retrievers import BaseRetriever
from pydantic import Field

from sagerag.batch import run_pool
from sagerag.chains import build_rag_chain, build_retrieval_qa, normalize_answer
from sagerag.chains.abstain import default_min_score, gate
from sagerag.evaluation import metrics
from sagerag.kinds import Retrieval
from sagerag.prompts.context import DEFAULT_MAX_CHARS
from sagerag.questions import Question
from sagerag.resume import ResultLog
from sagerag.stores import PineconeStore

RETRIEVAL_DEPTH = 5
"""Retrieve at least this deep, so recall@5 and MRR are measured whatever `k` the chain uses."""

ChainKind = Literal["lcel", "retrievalqa"]
Scope = Literal["in", "out"]


@dataclass(frozen=True)
class EvalConfig:
    """One configuration to evaluate; `key` names it in the result log, so changed options re-run."""

    prompt: str = "default"
    """Built-in prompt name or template file."""
    k: int = 5
    """Passages the chain puts in the context (at most)."""
    min_score: float | Literal["auto"] | None = "auto"
    """Retrieval-score gate; "auto" is the retrieval mode's calibrated default, None disables it. The
    classic RetrievalQA chain has no gate when generating."""
    max_context_chars: int | None = DEFAULT_MAX_CHARS
    """Context budget in characters."""
    chain: ChainKind = "lcel"
    """`lcel` (the RAG chain with its gate) or `retrievalqa` (the classic chain)."""
    generate: bool = True
    """False: retrieval and the score gate only, no LLM call (fast; for calibration)."""
    retrieval: Retrieval | None = None
    """`dense` or `hybrid`; None keeps the store's own mode."""
    alpha: float | None = None
    """Dense weight of hybrid queries; None keeps the store's."""
    index_text: str | None = None
    """Label of what the store indexes (`question+answer` or `answer`); the caller picks the store."""
    label: str | None = None
    """Column name; default: the prompt name plus whatever retrieval option was set."""
    loop_guard: bool = True
    """Stop generations at a repeated sentence or run of words."""
    grounding: str = "drop"
    """Grounding check: `drop` unsupported sentences, `flag` them only (scores still recorded), `off`."""

    @property
    def name(self) -> str:
        """Short label for tables and charts: the prompt name (or a template file's stem), the retrieval
        options that were set, and the guards when they are not the defaults."""
        if self.label:
            return self.label
        base = Path(self.prompt).stem if ("/" in self.prompt or "." in self.prompt) else self.prompt
        alpha = f"a={self.alpha:g}" if self.retrieval != "dense" and self.alpha is not None else ""
        text = {"question+answer": "q+a", "answer": "ans"}.get(self.index_text or "", self.index_text or "")
        name = " ".join(p for p in (base, self.retrieval or "", alpha, text) if p)
        guards = ([] if self.loop_guard else ["no loop guard"]) + (
            [] if self.grounding == "drop" else [f"grounding {self.grounding}"]
        )
        return f"{name} ({', '.join(guards)})" if guards else name

    @property
    def key(self) -> str:
        key = (
            f"{self.prompt}|k={self.k}|min={self.min_score}|ctx={self.max_context_chars}|{self.chain}"
            f"|{'gen' if self.generate else 'nogen'}|loop={self.loop_guard}|ground={self.grounding}"
        )
        if self.retrieval or self.alpha is not None or self.index_text:
            key += f"|{self.retrieval}|a={self.alpha}|{self.index_text}"
        return key

    def settings(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "k": self.k,
            "min_score": self.min_score,
            "max_context_chars": self.max_context_chars,
            "chain": self.chain,
            "generate": self.generate,
            "retrieval": self.retrieval,
            "alpha": self.alpha,
            "index_text": self.index_text,
            "loop_guard": self.loop_guard,
            "grounding": self.grounding,
        }

    def view(self, store: PineconeStore) -> PineconeStore:
        """The store as this configuration queries it (a shallow copy with its mode and alpha)."""
        if self.retrieval is None and self.alpha is None:
            return store
        view = copy.copy(store)
        if self.retrieval == "dense":
            view.alpha = 1.0
        elif self.alpha is not None:
            view.alpha = self.alpha
        return view


@dataclass
class EvalQuestion:
    """A question with its scope: `in` (the corpus answers it) or `out` (it must be refused)."""

    question: Question
    scope: Scope

    @property
    def gold(self) -> list[int]:
        """Gold rows: `answer_id`, `answer_ids` and `also_correct_ids` (0-based data rows of the corpus)."""
        extra = self.question.extra
        rows = [
            extra.get("answer_id"),
            *(extra.get("answer_ids") or []),
            *(extra.get("also_correct_ids") or []),
        ]
        return [int(r) for r in rows if isinstance(r, int | float) and not isinstance(r, bool)]

    @property
    def reference(self) -> str | None:
        answer = self.question.extra.get("answer", self.question.extra.get("reference"))
        return answer if isinstance(answer, str) and answer.strip() else None


def label_questions(in_scope: Sequence[Question], out_of_scope: Sequence[Question]) -> list[EvalQuestion]:
    return [EvalQuestion(q, "in") for q in in_scope] + [EvalQuestion(q, "out") for q in out_of_scope]


def result_id(config: EvalConfig, item: EvalQuestion) -> str:
    return f"{config.key}#{item.scope}:{item.question.id}"


class _Handed(BaseRetriever):
    """Hands back documents the runner already retrieved (scores in metadata), keyed by question."""

    found: dict[str, list[Document]] = Field(default_factory=dict)
    """Question text -> scored documents, set just before the chain runs."""

    def _get_relevant_documents(
        self, query: str, *, run_manager: CallbackManagerForRetrieverRun
    ) -> list[Document]:
        return self.found[query]


def _row(metadata: dict[str, Any]) -> int | None:
    value = metadata.get("row")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


@dataclass
class Evaluator:
    """Evaluates one configuration's questions against a store (and an LLM when generating)."""

    config: EvalConfig
    store: PineconeStore
    llm: BaseLanguageModel[Any] | None = None
    _handed: _Handed = field(init=False, default_factory=_Handed)
    _chain: Any = field(init=False, default=None)
    min_score: float | None = field(init=False, default=None)

    def __post_init__(self) -> None:
        self.store = self.config.view(self.store)
        self.min_score = (
            default_min_score(self.store) if self.config.min_score == "auto" else self.config.min_score
        )
        if not self.config.generate:
            return
        if self.llm is None:
            raise ValueError("generation needs an LLM")
        c = self.config
        if c.chain == "retrievalqa":
            self._chain = build_retrieval_qa(
                self.llm, self._handed, prompt=c.prompt, k=c.k, max_context_chars=c.max_context_chars
            )
        else:
            self._chain = build_rag_chain(
                self.llm,
                self._handed,
                prompt=c.prompt,
                k=c.k,
                max_context_chars=c.max_context_chars,
                min_score=self.min_score,
                loop_guard=c.loop_guard,
                grounding=c.grounding,  # type: ignore[arg-type]
                embeddings=self.store.embeddings,
            )

    def _generate(self, question: str, scored: list[tuple[Document, float]]) -> dict[str, Any]:
        """The chain's result (for the classic chain: its answer and abstention only)."""
        docs = [
            Document(page_content=d.page_content, metadata={**d.metadata, "score": s}, id=d.id)
            for d, s in scored[: self.config.k]
        ]
        self._handed.found[question] = docs
        try:
            if self.config.chain == "retrievalqa":
                answer, abstained = normalize_answer(str(self._chain.invoke({"query": question})["result"]))
                return {"answer": answer, "abstained": abstained}
            return dict(self._chain.invoke(question))
        finally:
            self._handed.found.pop(question, None)

    def _gold_texts(
        self, gold: list[int], scored: list[tuple[Document, float]], vector: list[float]
    ) -> list[str]:
        texts = {row: d.page_content for d, _ in scored if (row := _row(d.metadata)) in gold}
        for row in gold:
            if row not in texts:  # not retrieved: look the gold passage up by its row
                hit = self.store.similarity_search_by_vector_with_score(
                    vector, k=1, filter={"row": {"$eq": row}}
                )
                if hit:
                    texts[row] = hit[0][0].page_content
        return list(texts.values())

    def evaluate(self, item: EvalQuestion) -> dict[str, Any]:
        """One result line: retrieved rows and scores, the answer, its quality, abstention, latency."""
        question = item.question.question
        started = time.perf_counter()
        vector = self.store.embeddings.embed_query(question)
        embedded = time.perf_counter()
        depth = max(RETRIEVAL_DEPTH, self.config.k)
        scored = [
            (d, float(s))
            for d, s in self.store.similarity_search_by_vector_with_score(vector, k=depth, text=question)
        ]
        searched = time.perf_counter()
        answer: str | None = None
        result: dict[str, Any] = {}
        gated = gate([s for _, s in scored[: self.config.k]], self.min_score)
        if self.config.generate:
            result = self._generate(question, scored)
            answer, abstained = str(result["answer"]), bool(result["abstained"])
        else:
            abstained = gated
        finished = time.perf_counter()
        record: dict[str, Any] = {
            "id": result_id(self.config, item),
            "config": self.config.key,
            "scope": item.scope,
            "question_id": item.question.id,
            "question": question,
            "gold": item.gold,
            "retrieved": [_row(d.metadata) for d, _ in scored],
            "scores": [round(s, 4) for _, s in scored],
            "abstained": abstained,
            "min_score": self.min_score,
            "gated": gated,
            "answer": answer,
            "latency_s": round(finished - started, 4),
            "embed_s": round(embedded - started, 4),
            "search_s": round(searched - embedded, 4),
        }
        for key in ("truncated", "repeated", "dropped", "grounding_abstained", "sentences"):
            if key in result:
                record[key] = result[key]
        if result.get("sentences"):
            # The passages the sentences were scored against: lets the grounding check be re-tuned
            # offline from a `--grounding flag` run, without generating again.
            record["passages"] = [source["text"] for source in result.get("sources", [])]
        if answer is not None and item.scope == "in":
            if item.reference is not None:
                record["f1"] = round(metrics.token_f1(answer, item.reference), 4)
            if item.gold and not abstained:
                gold_texts = self._gold_texts(item.gold, scored, vector)
                record["gold_precision"] = round(
                    max((metrics.token_precision(answer, t) for t in gold_texts), default=0.0), 4
                )
        return record


@dataclass
class RunStats:
    evaluated: int = 0
    skipped: int = 0
    """Already in the result log from an earlier run."""
    failures: list[str] = field(default_factory=list)


def run_eval(
    configs: Sequence[EvalConfig],
    questions: Sequence[EvalQuestion],
    store: PineconeStore,
    llm: BaseLanguageModel[Any] | None,
    log: ResultLog,
    concurrency: int = 1,
    progress: Callable[[int], None] | None = None,
) -> tuple[dict[str, list[dict[str, Any]]], RunStats]:
    """Evaluate every (configuration, question) not yet in `log`; returns each configuration's records.

    A failed question is reported in the stats and left out of the log, so a re-run retries it.
    Concurrency 1 (the default) keeps latencies free of queueing behind other questions.
    """
    stats = RunStats()
    evaluators = {c.key: Evaluator(c, store, llm) for c in configs}
    work = [(c, q) for c in configs for q in questions]
    todo = [(c, q) for c, q in work if result_id(c, q) not in log.done]
    stats.skipped = len(work) - len(todo)

    def evaluate(pair: tuple[EvalConfig, EvalQuestion]) -> dict[str, Any]:
        return evaluators[pair[0].key].evaluate(pair[1])

    def written(pair: tuple[EvalConfig, EvalQuestion], record: dict[str, Any]) -> None:
        log.append(record)
        stats.evaluated += 1

    def failed(pair: tuple[EvalConfig, EvalQuestion], exc: Exception) -> None:
        config, item = pair
        stats.failures.append(f"{config.name} {item.scope}:{item.question.id}: {type(exc).__name__}: {exc}")

    run_pool(todo, evaluate, written, failed, concurrency, progress)
    records = {
        c.key: [log.done[rid] for q in questions if (rid := result_id(c, q)) in log.done] for c in configs
    }
    return records, stats


def summarize(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The metrics of one configuration's records (None where there is nothing to measure)."""
    inside = [r for r in records if r["scope"] == "in"]
    outside = [r for r in records if r["scope"] == "out"]
    labelled = [r for r in inside if r["gold"]]
    retrieved = [r["retrieved"] for r in labelled]
    gold = [set(r["gold"]) for r in labelled]
    judged = [r for r in inside if "gold_precision" in r]
    latencies = [float(r["latency_s"]) for r in records]
    answers = [r for r in inside if r.get("answer") is not None and not r["abstained"]]
    guarded = [r for r in inside if "truncated" in r]
    passed_gate = [r for r in inside if r.get("answer") is not None and not r.get("gated", False)]
    return {
        "recall@1": metrics.recall_at_k(retrieved, gold, 1),
        "recall@5": metrics.recall_at_k(retrieved, gold, 5),
        "mrr": metrics.mean_reciprocal_rank(retrieved, gold),
        "token_f1": metrics.mean([float(r["f1"]) for r in inside if "f1" in r]),
        "supported": metrics.rate([r["gold_precision"] >= metrics.SUPPORT_THRESHOLD for r in judged]),
        "oos_refused": metrics.rate([bool(r["abstained"]) for r in outside]),
        "in_scope_refused": metrics.rate([bool(r["abstained"]) for r in inside]),
        "repeated_sentence": metrics.rate([metrics.has_repeated_sentence(r["answer"]) for r in answers]),
        "ends_mid_sentence": metrics.rate([metrics.ends_mid_sentence(r["answer"]) for r in answers]),
        "truncated": metrics.rate([bool(r["truncated"]) for r in guarded]),
        "grounding_refused": metrics.rate([bool(r.get("grounding_abstained")) for r in passed_gate])
        if guarded
        else None,
        "latency_p50_s": metrics.percentile(latencies, 50),
        "latency_p95_s": metrics.percentile(latencies, 95),
        "counts": {
            "in_scope": len(inside),
            "out_of_scope": len(outside),
            "with_gold": len(labelled),
            "with_reference": sum("f1" in r for r in inside),
            "answered_in_scope": sum(not r["abstained"] for r in inside),
            "out_of_scope_refused": sum(bool(r["abstained"]) for r in outside),
            "in_scope_refused": sum(bool(r["abstained"]) for r in inside),
            "sentences_dropped": sum(int(r.get("dropped", 0)) for r in inside),
            "grounding_abstained": sum(bool(r.get("grounding_abstained")) for r in inside),
        },
    }
