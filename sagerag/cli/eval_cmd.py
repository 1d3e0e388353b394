"""`sagerag eval`: compare chain configurations on labelled questions (retrieval, answers, abstention)."""

from __future__ import annotations

import tempfile
from contextlib import ExitStack
from pathlib import Path
from typing import Annotated, Literal

import typer

from sagerag.cli import _output
from sagerag.cli._progress import progress_bar
from sagerag.cli.commands import DataDir, MinScoreOpt, Namespace, _pipeline
from sagerag.errors import InputError


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
    plot: Annotated[Path | None, typer.Option("--plot", help="Draw a comparison chart (.png).")] = None,
    namespace: Namespace = None,
    data_dir: DataDir = None,
) -> None:
    """Evaluate one or more configurations side by side: recall@1/5, MRR, answer F1 and support,
    refusals in and out of scope, latency. Resumable with --results."""
    from sagerag.chains import DEFAULT_MIN_SCORE
    from sagerag.evaluation import EvalConfig, label_questions, run_eval
    from sagerag.evaluation.report import build_report, rich_table, write_csv, write_json
    from sagerag.questions import read_questions
    from sagerag.resume import ResultLog

    configs = [
        EvalConfig(
            prompt=p,
            k=k,
            min_score=DEFAULT_MIN_SCORE if min_score is None else min_score,
            max_context_chars=max_context_chars,
            chain=chain,
            generate=generate,
        )
        for p in dict.fromkeys(prompts or ["default"])
    ]
    if len({c.name for c in configs}) != len(configs):
        raise InputError("two --prompt values share a name; rename one template file")
    in_scope = read_questions(questions).questions[:limit]
    out = read_questions(out_of_scope).questions[:limit] if out_of_scope else []
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
        total = len(configs) * len(items)
        already = sum(1 for _ in log.done)
        if results and already and not restart:
            _output.info(f"resuming from {log_path} ({already} results there; done ones are skipped)")
        with progress_bar("evaluating", total, as_json) as advance:
            records, stats = run_eval(configs, items, pipeline.store, pipeline.llm, log, concurrency, advance)
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


def register(app: typer.Typer) -> None:
    app.command("eval")(cmd_eval)
