"""`sagerag eval`: compare chain configurations on labelled questions (retrieval, answers, abstention)."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal, get_args

import typer

from sagerag.cli import _output
from sagerag.cli._progress import progress_bar
from sagerag.cli.commands import DataDir, MinScoreOpt, Namespace, _pipeline
from sagerag.errors import InputError
from sagerag.kinds import Grounding, IndexText, Retrieval

if TYPE_CHECKING:
    from sagerag.pipeline import Pipeline
    from sagerag.questions import Question
    from sagerag.stores import PineconeStore


def cmd_eval(
    questions: Annotated[
        Path,
        typer.Option(
            "--questions",
            help="In-scope questions (.jsonl: question, optional answer_id, also_correct_ids, answer).",
        ),
    ],
    out_of_scope: Annotated[
        Path | None, typer.Option("--out-of-scope", help="Questions that must be refused (.jsonl).")
    ] = None,
    prompts: Annotated[
        list[str] | None,
        typer.Option("--prompt", "-p", help="Prompt name or template file; repeat to compare several."),
    ] = None,
    k: Annotated[int, typer.Option("--k", "-k", min=1, max=50, help="Passages in the context.")] = 5,
    min_score: MinScoreOpt = None,
    max_context_chars: Annotated[
        int, typer.Option("--max-context-chars", min=1, help="Context budget in characters.")
    ] = 1000,
    chain: Annotated[
        Literal["lcel", "retrievalqa"],
        typer.Option("--chain", help="lcel (the RAG chain with its gate) or retrievalqa (classic)."),
    ] = "lcel",
    generate: Annotated[
        bool,
        typer.Option("--generate/--no-generate", help="--no-generate: retrieval and the score gate only."),
    ] = True,
    loop_guard: Annotated[
        bool, typer.Option("--loop-guard/--no-loop-guard", help="Stop generations that repeat themselves.")
    ] = True,
    grounding: Annotated[
        list[str] | None,
        typer.Option(
            "--grounding",
            help="drop (unsupported sentences), flag (keep, score only) or off; repeat to compare.",
        ),
    ] = None,
    split: Annotated[
        str | None, typer.Option("--split", help="Only questions whose `split` field is this (tune, test).")
    ] = None,
    limit: Annotated[
        int | None, typer.Option("--limit", min=1, help="Only the first N questions of each file.")
    ] = None,
    results: Annotated[
        Path | None,
        typer.Option("--results", help="Per-question results (.jsonl); a re-run resumes from it."),
    ] = None,
    restart: Annotated[bool, typer.Option(help="Discard the results already in --results.")] = False,
    concurrency: Annotated[
        int, typer.Option(min=1, max=16, help="Questions at once (1 keeps latencies unqueued).")
    ] = 1,
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON on stdout (instead of the table).")
    ] = False,
    json_out: Annotated[Path | None, typer.Option("--json-file", help="Write the report as JSON.")] = None,
    csv_out: Annotated[
        Path | None, typer.Option("--csv", help="Write one CSV row per configuration.")
    ] = None,
    plot: Annotated[
        Path | None,
        typer.Option("--plot", help="Draw a comparison chart with the refusal trade-off curves (.png)."),
    ] = None,
    retrieval: Annotated[
        list[str] | None,
        typer.Option("--retrieval", help="dense or hybrid (default: as configured); repeat to compare."),
    ] = None,
    alpha: Annotated[
        list[float] | None,
        typer.Option("--alpha", min=0.0, max=1.0, help="Dense weight of hybrid queries; repeat to compare."),
    ] = None,
    index_text: Annotated[
        list[str] | None,
        typer.Option(
            "--index-text",
            help="question+answer or answer: index --corpus both ways (own namespaces) and compare.",
        ),
    ] = None,
    corpus: Annotated[
        Path | None,
        typer.Option("--corpus", help="FAQ .csv to index for --index-text (idempotent, namespace eval-*)."),
    ] = None,
    namespace: Namespace = None,
    data_dir: DataDir = None,
) -> None:
    """Evaluate configurations side by side: retrieval (dense or hybrid, alpha, what is indexed), recall@1/5,
    MRR, answer F1 and support, refusals in and out of scope with the refusal trade-off, latency.
    Resumable with --results."""
    from sagerag.evaluation import EvalConfig, label_questions, run_eval
    from sagerag.evaluation.report import build_report, rich_table, write_csv, write_json
    from sagerag.evaluation.runner import RunStats
    from sagerag.questions import read_questions
    from sagerag.resume import ResultLog

    for option, values, allowed in (
        ("--grounding", grounding, get_args(Grounding)),
        ("--retrieval", retrieval, get_args(Retrieval)),
        ("--index-text", index_text, get_args(IndexText)),
    ):
        for value in values or []:
            if value not in allowed:
                raise InputError(f"{option} must be one of {', '.join(allowed)}, not {value!r}")
    if chain not in ("lcel", "retrievalqa"):
        raise InputError(f"--chain must be 'lcel' or 'retrievalqa', not {chain!r}")
    if index_text and corpus is None:
        raise InputError("--index-text needs --corpus (the FAQ .csv to index each way)")
    texts: list[str | None] = list(dict.fromkeys(index_text or []))
    if not texts:
        texts = [None] if corpus is None else ["question+answer"]
    modes: list[str | None] = list(dict.fromkeys(retrieval or [])) or [None]
    alphas: list[float | None] = list(dict.fromkeys(alpha or [])) or [None]
    configs = [
        EvalConfig(
            prompt=p,
            k=k,
            min_score="auto" if min_score is None else min_score,
            max_context_chars=max_context_chars,
            chain=chain,
            generate=generate,
            retrieval=mode,  # type: ignore[arg-type]
            alpha=a,
            index_text=text,
            loop_guard=loop_guard,
            grounding=g,
        )
        for p in dict.fromkeys(prompts or ["default"])
        for text in texts
        for mode in modes
        for a in (alphas if mode != "dense" else [None])
        for g in dict.fromkeys(grounding or ["drop"])
    ]
    if len({c.name for c in configs}) != len(configs):
        raise InputError("two --prompt values share a name; rename one template file")
    in_scope = _split(read_questions(questions).questions, split)[:limit]
    out = _split(read_questions(out_of_scope).questions, split)[:limit] if out_of_scope else []
    items = label_questions(in_scope, out)
    scratch = ExitStack()  # without --results, per-question results live in a temp dir removed at the end
    if results:
        log_path = results
    else:
        log_path = (
            Path(scratch.enter_context(tempfile.TemporaryDirectory(prefix="sagerag-eval-"))) / "results.jsonl"
        )
    with (
        scratch,
        ResultLog.open(log_path, restart=restart) as log,
        _pipeline(data_dir, namespace, quiet=as_json) as pipeline,
    ):
        stores = {text: _indexed(pipeline, corpus, text) for text in texts}
        total = len(configs) * len(items)
        already = sum(1 for _ in log.done)
        if results and already and not restart:
            _output.info(f"resuming from {log_path} ({already} results there; done ones are skipped)")
        records: dict[str, list[dict[str, Any]]] = {}
        stats = RunStats()
        with progress_bar("evaluating", total, as_json) as advance:
            for indexed_as, store in stores.items():
                group = [c for c in configs if c.index_text == indexed_as]
                found, run = run_eval(group, items, store, pipeline.llm, log, concurrency, advance)
                records.update(found)
                stats.evaluated += run.evaluated
                stats.skipped += run.skipped
                stats.failures += run.failures
    for failure in stats.failures:
        _output.info(f"failed: {failure}")
    _output.info(
        f"{stats.evaluated} evaluated now, {stats.skipped} already done, {len(stats.failures)} failed"
        + ("" if results else " (pass --results FILE to keep per-question results)")
    )
    report = build_report(
        configs,
        records,
        questions=str(questions),
        out_of_scope=str(out_of_scope) if out_of_scope else None,
        limit=limit,
        results=str(results) if results else None,
    )
    if as_json:
        _output.print_json(report)
    else:
        _output.console.print(rich_table(report))
    if json_out:
        write_json(report, json_out)
        _output.info(f"JSON: {json_out}")
    if csv_out:
        write_csv(report, csv_out)
        _output.info(f"CSV: {csv_out}")
    if plot:
        from sagerag.evaluation.plot import plot_report

        plot_report(report, plot)
        _output.info(f"chart: {plot}")
    if stats.failures:
        raise typer.Exit(_output.EXIT_FAILURE)


def _split(questions: list[Question], split: str | None) -> list[Question]:
    """The questions of one half; questions without a `split` field belong to every half."""
    if split is None:
        return questions
    return [q for q in questions if q.extra.get("split") in (None, split)]


def _indexed(pipeline: Pipeline, corpus: Path | None, text: str | None) -> PineconeStore:
    """A store over `corpus` indexed as `text`, in its own namespace (idempotent: re-runs add nothing)."""
    import copy

    from sagerag.ingest import ingest_documents, load_path
    from sagerag.stores.sparse import stats_path

    if corpus is None or text is None:
        return pipeline.store
    store = copy.copy(pipeline.store)
    store.namespace = f"{pipeline.settings.pinecone_namespace}eval-{text.replace('+', '-')}"
    store.sparse = None
    records_namespace = f"{pipeline.records_namespace}#{store.namespace}"
    docs = load_path(corpus, mode=text)  # type: ignore[arg-type]
    result = ingest_documents(
        docs,
        store,
        pipeline.records_db,
        records_namespace,
        sparse_stats=stats_path(pipeline.settings.data_dir, records_namespace),
    )
    _output.info(f"{corpus.name} indexed as {text} in namespace {store.namespace!r}: {result.added} added")
    return store


def register(app: typer.Typer) -> None:
    app.command("eval")(cmd_eval)
