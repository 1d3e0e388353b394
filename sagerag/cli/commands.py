"""The everyday commands: serve, ingest, ask, batch, demo. Each is thin over `sagerag.pipeline`."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sagerag.cli import _output
from sagerag.cli._progress import progress_bar
from sagerag.errors import InputError
from sagerag.kinds import IndexText

if TYPE_CHECKING:
    from sagerag.chains import RagResult

DataDir = Annotated[
    Path | None,
    typer.Option(
        "--data-dir",
        help="Local data directory.",
        show_default="$SAGERAG_DATA_DIR or ~/.local/share/sagerag",
    ),
]
Namespace = Annotated[
    str | None,
    typer.Option("--namespace", "-n", help="Pinecone namespace.", show_default="from settings"),
]
JsonFlag = Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")]
PromptOpt = Annotated[
    str | None,
    typer.Option(
        "--prompt",
        "-p",
        help="Prompt name (default, llama2-chat, strict) or a template file.",
        show_default="default",
    ),
]
KOpt = Annotated[int, typer.Option("--k", "-k", min=1, max=50, help="Passages to retrieve.")]
MinScoreOpt = Annotated[
    float | None,
    typer.Option(
        "--min-score",
        help="Abstain without calling the LLM below this retrieval score.",
        show_default="0.40",
    ),
]
MAX_CONTEXT_CHARS = 1000
"""The context budget's default (sagerag.prompts.context.DEFAULT_MAX_CHARS, not imported: help stays fast)."""
MaxContextOpt = Annotated[
    int,
    typer.Option(
        "--max-context-chars",
        min=1,
        help="Context budget in characters: passages past it are left out, whatever -k says.",
    ),
]


def _pipeline(
    data_dir: Path | None = None, namespace: str | None = None, quiet: bool = False, reader: bool = False
) -> Any:
    """The wired pipeline; `reader=True` (ask) refuses a missing or empty index instead of creating it."""
    from sagerag.autoserve import start_soon
    from sagerag.config import load_settings

    settings = load_settings(data_dir=data_dir, pinecone_namespace=namespace)
    if settings.is_local:
        start_soon(settings.data_dir, settings.serve_idle_timeout)  # while the libraries below import
    from sagerag.ingest import namespace_vector_count
    from sagerag.pipeline import from_settings

    pipeline = from_settings(settings, create_index=not reader, autoserve=True)
    try:
        if reader and not namespace_vector_count(pipeline.store):
            ns = (
                repr(pipeline.settings.pinecone_namespace)
                if pipeline.settings.pinecone_namespace
                else "default"
            )
            raise InputError(
                f"the index {pipeline.settings.pinecone_index!r} has no documents in the {ns} namespace"
                f"{' under ' + str(pipeline.settings.data_dir) if pipeline.mode != 'remote' else ''}; "
                "run `sagerag ingest FILE` first (or check --namespace and --data-dir)"
            )
    except BaseException:
        pipeline.close()
        raise
    if not quiet:
        _output.info(pipeline.describe())
    return pipeline


def _chain_kwargs(
    prompt: str | None, k: int, min_score: float | None, max_context_chars: int = MAX_CONTEXT_CHARS
) -> dict[str, Any]:
    """Without --min-score the pipeline applies its gate (settings, else the retrieval mode's default)."""
    kwargs: dict[str, Any] = {"prompt": prompt, "k": k, "max_context_chars": max_context_chars}
    if min_score is not None:
        kwargs["min_score"] = min_score
    return kwargs


def _print_budget(result: RagResult, k: int, max_context_chars: int) -> None:
    """Say how much of -k the context budget let in: a hidden budget made `-k 5` look broken."""
    used = len(result["sources"])
    _output.info(
        f"context: {_output.plural(used, 'passage')} (of up to {k}) within the {max_context_chars:,}-character "
        "budget (--max-context-chars)"
    )


def _print_answer(result: RagResult, show_answer: bool = True, explain: bool = False) -> None:
    if show_answer:
        _output.console.print(result["answer"], markup=False)
    if result.get("truncated"):
        _output.console.print(
            "(truncated: the answer reached max_new_tokens and ends at its last complete sentence)",
            style="dim",
            markup=False,
        )
    if result.get("grounding_abstained"):
        _output.console.print(
            "(abstained: no sentence of the answer was supported by the sources)", style="dim"
        )
    elif result["abstained"]:
        _output.console.print("(abstained: the sources do not answer this)", style="dim", markup=False)
    if explain:
        _print_support(result)
    for i, source in enumerate(result["sources"], start=1):
        meta = source.get("metadata") or {}
        label = meta.get("question") or meta.get("source") or source["id"]
        score = f"{source['score']:.3f}" if source.get("score") is not None else "-"
        _output.console.print(f"  [{i}] {score}  {label}", markup=False, style="dim")


def _print_support(result: RagResult) -> None:
    """Each generated sentence with its support scores and what the grounding check did with it."""
    if result.get("repeated"):
        _output.console.print("  loop guard: stopped at a repeated sentence", style="dim", markup=False)
    sentences = result.get("sentences") or []
    if not sentences:
        _output.console.print("  grounding: no sentence was scored", style="dim", markup=False)
    for sentence in sentences:
        verdict = "kept" if sentence["kept"] else "dropped"
        flag = "" if sentence["supported"] else " unsupported"
        semantic = "-" if sentence["semantic"] is None else f"{sentence['semantic']:.2f}"
        _output.console.print(
            f"  support {sentence['support']:.2f} (lexical {sentence['lexical']:.2f}, semantic {semantic})"
            f" {verdict}{flag}: {sentence['text']}",
            style="dim",
            markup=False,
        )


def cmd_serve(
    host: Annotated[
        str, typer.Option(help="Address to bind (loopback only unless --allow-remote).")
    ] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="SageMaker Runtime port (0: a free one).")] = 8080,
    pinecone_port: Annotated[int, typer.Option(help="Pinecone API port (0: a free one).")] = 5080,
    allow_remote: Annotated[bool, typer.Option(help="Allow binding a non-loopback address.")] = False,
    data_dir: DataDir = None,
    idle_timeout: Annotated[
        float, typer.Option(min=0, help="Exit after this many seconds without a request (0: never).")
    ] = 0.0,
    warm: Annotated[
        bool, typer.Option("--warm", help="Load the embedding model at once instead of on first use.")
    ] = False,
    status: Annotated[
        bool,
        typer.Option("--status", help="Show the serve of the data dir (started by you or by ask) and exit."),
    ] = False,
    stop_running: Annotated[
        bool,
        typer.Option(
            "--stop",
            help="Stop the serve of the data dir (e.g. the background one) and exit: SIGTERM, then SIGKILL "
            "if it is still there after 10s (a hung or stopped serve).",
        ),
    ] = False,
    as_json: JsonFlag = False,
    latency_ms: Annotated[
        float, typer.Option(help="Added latency per invocation (simulates a network hop).")
    ] = 0.0,
    throttle_rate: Annotated[
        float, typer.Option(help="Fraction of invocations answered with throttling.")
    ] = 0.0,
    not_ready_rate: Annotated[
        float, typer.Option(help="Fraction answered with ModelNotReadyException.")
    ] = 0.0,
    unavailable_rate: Annotated[
        float, typer.Option(help="Fraction answered with 503 ServiceUnavailable.")
    ] = 0.0,
    fault_seed: Annotated[int, typer.Option(help="Seed for the fault draw.")] = 0,
) -> None:
    """Serve the SageMaker Runtime and Pinecone APIs locally until Ctrl-C / SIGTERM.

    Point boto3 at it with endpoint_url="http://127.0.0.1:8080" (or AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME) and the
    pinecone SDK with Pinecone(host="http://127.0.0.1:5080"). Other sagerag commands on this machine use it
    automatically, so models stay warm between them; without one, ask/batch/ingest start one in the
    background that exits when idle (SAGERAG_SERVE_IDLE_TIMEOUT, 0 turns that off). A serve that stops
    answering (stopped, stuck) is replaced by the next command if it has an --idle-timeout; one without
    is left alone and the command loads the models itself.
    """
    from sagerag.config import load_settings
    from sagerag.serve_state import record_urls, serving

    settings = load_settings(data_dir=data_dir)
    if status or stop_running:
        _serve_control(settings.data_dir, stop_running, as_json)
        return
    from sagerag.local._server import check_bind_host

    check_bind_host(host, allow_remote)  # refuses non-loopback addresses before anything binds
    _check_port_free(host, port, "--port")
    _check_port_free(host, pinecone_port, "--pinecone-port")
    stop = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: stop.set())
    # Claim the data dir before binding ports (and before the slower imports, so that a command starting
    # a background serve waits for as little as possible), so a second serve on it names the first
    # instead of failing on a port, or (on other ports) sharing the store and later deleting its state.
    with serving(settings.data_dir, idle_timeout) as held:
        from sagerag.local import FaultConfig, LocalPinecone, LocalRuntime

        faults = FaultConfig(throttle_rate, not_ready_rate, unavailable_rate, latency_ms / 1000.0, fault_seed)
        runtime = LocalRuntime(host, port, faults=faults, allow_remote=allow_remote)
        pinecone = LocalPinecone(
            settings.data_dir / "pinecone", host, pinecone_port, allow_remote=allow_remote
        )
        with runtime, pinecone:
            record_urls(
                held,
                settings.data_dir,
                runtime.endpoint_url,
                pinecone.host,
                idle_timeout=idle_timeout,
            )
            _output.info(
                f"SageMaker Runtime API: {runtime.endpoint_url}  (endpoints: {', '.join(runtime.app.endpoints)})"
            )
            _output.info(f"Pinecone API:          {pinecone.host}  (data in {pinecone.data_dir})")
            if faults.active:
                _output.info(f"fault injection: {faults}")
            if warm:
                threading.Thread(target=_warm_up, args=(runtime,), daemon=True).start()
            if idle_timeout:
                _output.info(f"exits after {idle_timeout:g}s without a request; Ctrl-C to stop")
                if _wait_until_idle(stop, idle_timeout, runtime, pinecone):
                    # Unlist the URLs first, so no new command picks this serve, then serve for a
                    # moment longer any command that found it just before (its requests follow).
                    held.record({"data_dir": str(settings.data_dir.resolve()), "stopping": True})
                    _wait_until_idle(stop, STOPPING_GRACE_S, runtime, pinecone)
            else:
                _output.info("Ctrl-C to stop")
                # Wake up each second: Python runs signal handlers only in the main thread, and after a
                # SIGSTOP/SIGCONT the kernel may hand SIGTERM to a server thread, leaving an untimed
                # wait here asleep for good (`serve --stop` then had to SIGKILL it).
                while not stop.wait(1.0):
                    pass
    _output.info("stopped")


def _warm_up(runtime: Any) -> None:
    """Load the embedding model every command needs; the generator loads on the first answer."""
    try:
        runtime.app.registry.get("minilm")
    except Exception as exc:  # the first request will report it to its caller
        _output.info(f"warning: could not preload MiniLM: {exc}")


STOPPING_GRACE_S = 5.0
"""How long an idle serve keeps answering after it unlisted itself: a command that found it just before
sends its first request within this (it imports its libraries first)."""


def _wait_until_idle(stop: threading.Event, idle_timeout: float, *servers: Any) -> bool:
    """True once no server has had a request or an open connection for `idle_timeout` seconds (a long
    answer keeps its connection open, so it is not idle); False on a stop signal."""
    last = [server.activity() for server in servers]
    idle_since = time.monotonic()
    while not stop.wait(min(1.0, idle_timeout / 4)):
        now = [server.activity() for server in servers]
        if now != last or any(connections for _, connections in now):
            last, idle_since = now, time.monotonic()
        elif time.monotonic() - idle_since >= idle_timeout:
            _output.info(f"idle for {idle_timeout:g}s: stopping")
            return True
    return False


def _serve_control(data_dir: Path, stop_it: bool, as_json: bool) -> None:
    """`serve --status` / `serve --stop`: the serve of `data_dir`, whoever started it."""
    from sagerag.autoserve import log_path
    from sagerag.serve_state import server_status, stop_server

    info = server_status(data_dir)
    if stop_it:
        pid = stop_server(data_dir) if info else None
        if as_json:
            _output.print_json({"stopped": pid is not None, "pid": pid, "data_dir": str(data_dir)})
        else:
            _output.console.print(
                f"stopped the sagerag serve of {data_dir} (pid {pid})"
                if pid
                else f"no sagerag serve runs for {data_dir}",
                markup=False,
            )
        return
    if as_json:
        _output.print_json({"running": info is not None, **(info or {}), "log": str(log_path(data_dir))})
        return
    if info is None:
        _output.console.print(f"no sagerag serve runs for {data_dir}", markup=False)
        return
    idle = float(info.get("idle_timeout") or 0)
    how = f"exits after {idle:g}s without a request" if idle else "runs until stopped"
    if log_path(data_dir).exists():
        how += f"; background log: {log_path(data_dir)}"
    models = ", ".join(sorted(info.get("models_loaded", {}))) or "none yet"
    _output.console.print(
        f"sagerag serve pid {info.get('pid')} for {data_dir} ({how})\n"
        f"  SageMaker Runtime API: {info.get('runtime_url', 'starting')}\n"
        f"  Pinecone API:          {info.get('pinecone_host', 'starting')}\n"
        f"  models loaded: {models}{'' if info.get('healthy') else ' (not answering its health check)'}",
        markup=False,
    )


def _check_port_free(host: str, port: int, option: str) -> None:
    """A busy port is one line naming the option to change (not uvicorn's log line and then ours)."""
    import socket

    if not port:
        return
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as uvicorn binds
        try:
            sock.bind((host, port))
        except OSError as exc:
            raise InputError(
                f"cannot listen on {host}:{port} ({exc.strerror}); is another `sagerag serve` running? "
                f"Choose another port with {option}"
            ) from None


def cmd_ingest(
    paths: Annotated[
        list[Path], typer.Argument(help=".csv files (FAQ: question,answer), .txt/.md files or folders.")
    ],
    namespace: Namespace = None,
    prune: Annotated[
        bool, typer.Option(help="Remove stored vectors of documents no longer in these sources.")
    ] = False,
    mode: Annotated[
        IndexText | None,
        typer.Option(
            help="CSV text to index: 'question+answer' or 'answer' (answers only). Default: the "
            "index_text setting (SAGERAG_INDEX_TEXT), question+answer."
        ),
    ] = None,
    parse_processes: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="Worker processes that parse a feature-extraction endpoint's per-token answers (the "
            "client's main work against a scaled-out endpoint); 0: parse in the requesting threads. "
            "Default: one a CPU, up to 4, when 2,000 or more documents are to be embedded.",
        ),
    ] = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Load documents and store them idempotently: a re-run adds nothing, changed rows replace old ones."""
    from sagerag.ingest import LoadReport, load_path, namespace_vector_count

    report = LoadReport()

    def waiting(holder: dict[str, Any]) -> None:
        _output.info(f"waiting for another ingest (pid {holder.get('pid', '?')}) into this ledger to finish")

    with _pipeline(data_dir, namespace, quiet=as_json) as pipeline:
        text_mode = mode or pipeline.settings.index_text
        docs = [doc for path in paths for doc in load_path(path, mode=text_mode, report=report)]
        for warning in report.warnings:
            _output.info(f"warning: {warning}")
        with progress_bar("ingesting", len(docs), as_json) as advance:
            result = pipeline.ingest(
                docs, prune=prune, progress=advance, on_wait=waiting, parse_processes=parse_processes
            )
        stored = namespace_vector_count(pipeline.store) or 0
    for warning in result.warnings:
        _output.info(f"warning: {warning}")
    counts = {
        "added": result.added,
        "updated": result.updated,
        "unchanged": result.skipped,
        "deleted": result.deleted,
        "restored": result.restored,
    }
    warnings = report.warnings + result.warnings
    if as_json:
        _output.print_json(
            {**counts, "documents": len(docs), "vectors_in_namespace": stored, "warnings": warnings}
        )
    else:
        _output.console.print(
            f"{_output.plural(len(docs), 'document')}: {result.added} added, {result.updated} updated, "
            f"{result.skipped} unchanged, {result.deleted} deleted; "
            f"{_output.plural(stored, 'vector')} in the namespace",
            markup=False,
        )


def cmd_ask(
    question: Annotated[str, typer.Argument(help="The question.")],
    stream: Annotated[
        bool,
        typer.Option(
            "--stream", help="Print the answer as it is generated (with --json: JSON lines of deltas)."
        ),
    ] = False,
    explain: Annotated[
        bool, typer.Option("--explain", help="Show each sentence's support scores (grounding check).")
    ] = False,
    as_json: JsonFlag = False,
    k: KOpt = 5,
    prompt: PromptOpt = None,
    min_score: MinScoreOpt = None,
    max_context_chars: MaxContextOpt = MAX_CONTEXT_CHARS,
    namespace: Namespace = None,
    data_dir: DataDir = None,
) -> None:
    """Answer a question from the stored documents, with sources; says "I don't know" when they don't cover it."""
    from sagerag.chains import stream_answer
    from sagerag.questions import clean_question

    text = clean_question(question)
    with _pipeline(data_dir, namespace, quiet=as_json, reader=True) as pipeline:
        chain = pipeline.rag_chain(**_chain_kwargs(prompt, k, min_score, max_context_chars))
        if stream:
            streamed = stream_answer(chain, text)
            for piece in streamed:
                if as_json:  # JSON lines: {"delta": ...} as generated, then the whole result
                    _output.print_json({"delta": piece})
                else:
                    _output.console.print(piece, end="", markup=False)
            if not as_json:
                _output.console.print()
            result = streamed.result
        else:
            result = chain.invoke(text)
    if as_json:
        _output.print_json({"question": text, **result, "max_context_chars": max_context_chars})
    else:
        _print_answer(result, show_answer=not stream, explain=explain)
        _print_budget(result, k, max_context_chars)


def cmd_batch(
    questions_file: Annotated[
        Path,
        typer.Argument(
            help='Questions: .txt (one per line), .jsonl ({"question": ...} per line), .json (an array), or .csv.'
        ),
    ],
    output: Annotated[Path, typer.Option("--output", "-o", help="Answers as JSONL, one line per question.")],
    concurrency: Annotated[int, typer.Option(min=1, max=32, help="Questions answered at once.")] = 4,
    k: KOpt = 5,
    prompt: PromptOpt = None,
    min_score: MinScoreOpt = None,
    max_context_chars: MaxContextOpt = MAX_CONTEXT_CHARS,
    skip_bad_lines: Annotated[
        bool, typer.Option(help="Report unreadable lines and continue with the rest.")
    ] = False,
    restart: Annotated[bool, typer.Option(help="Discard answers already in OUTPUT and start over.")] = False,
    namespace: Namespace = None,
    data_dir: DataDir = None,
    as_json: JsonFlag = False,
) -> None:
    """Answer every question in a file. Resumable: re-running skips questions already in OUTPUT."""
    from sagerag.batch import answer_all, pending
    from sagerag.errors import Interrupted
    from sagerag.questions import read_questions
    from sagerag.resume import ResultLog

    parsed = read_questions(questions_file, skip_bad_lines=skip_bad_lines)
    for error in parsed.errors:
        _output.info(f"skipped: {error}")
    total = len(parsed.questions)
    with ResultLog.open(output, restart=restart) as log:
        todo, foreign = pending(parsed.questions, log, questions_file)
        if foreign:
            _output.info(
                f"note: {foreign} answers in {output} are to questions no longer in {questions_file}; kept as they are"
            )
        if len(todo) < total:
            _output.info(f"resuming: {total - len(todo)} of {total} already answered in {output}")
        with (
            _pipeline(data_dir, namespace, quiet=as_json) as pipeline,
            progress_bar("answering", len(todo), as_json) as advance,
        ):
            chain = pipeline.rag_chain(**_chain_kwargs(prompt, k, min_score, max_context_chars))
            stats = answer_all(chain, todo, log, concurrency, advance)
        remaining = total - (total - len(todo)) - stats.answered
    if stats.interrupted:
        raise Interrupted(
            f"interrupted: {stats.answered} answers written by this run are kept in {output} "
            f"({total - remaining} of {total} answered); run the same command again to answer the other {remaining}"
        )
    for failure in stats.failures:
        _output.info(f"failed: question {failure}")
    summary = {
        "questions": total,
        "answered_now": stats.answered,
        "failed": stats.failed,
        "abstained_now": stats.abstained,
        "skipped_lines": len(parsed.errors),
        "output": str(output),
        "max_context_chars": max_context_chars,
    }
    if as_json:
        _output.print_json(summary)
    else:
        _output.console.print(
            f"{stats.answered} answered now ({stats.abstained} abstained), {total - len(todo)} "
            f"already done, {stats.failed} failed -> {output} (context budget {max_context_chars:,} characters)",
            markup=False,
        )
    if stats.failed:
        raise typer.Exit(_output.EXIT_FAILURE)


def cmd_demo(
    data_dir: DataDir = None,
) -> None:
    """Offline demo: ingest the bundled sample FAQ locally, answer two questions and refuse an off-topic one."""
    from dataclasses import replace
    from importlib import resources

    from sagerag.config import load_settings
    from sagerag.ingest import load_csv
    from sagerag.pipeline import from_settings

    # The demo is offline whatever is configured: local services, its own index.
    settings = replace(
        load_settings(data_dir=data_dir, pinecone_index="sagerag-demo"),
        remote=False,
        endpoint_url=None,
        pinecone_host=None,
    )
    corpus = resources.files("sagerag") / "data" / "sample_faq.csv"
    with resources.as_file(corpus) as corpus_path:
        docs = load_csv(corpus_path)
    _output.info("sagerag demo: everything runs on this machine (local SageMaker Runtime + local Pinecone).")
    with from_settings(settings) as pipeline:
        _output.info(pipeline.describe())
        with progress_bar("ingesting the sample FAQ", len(docs), False) as advance:
            result = pipeline.ingest(docs, progress=advance)
        _output.info(
            f"{_output.plural(len(docs), 'document')}: {result.added} added, {result.skipped} already stored"
        )
        chain = pipeline.rag_chain()
        for question in DEMO_QUESTIONS:
            _output.console.print(f"\nQ: {question}", style="bold", markup=False)
            answer = chain.invoke(question)
            _output.console.print("A: ", end="", markup=False)
            _print_answer(answer)


DEMO_QUESTIONS = (
    "Where does the local Pinecone keep its data?",
    "Does re-running an ingest duplicate vectors?",
    "What is the capital of France?",
)


def register(app: typer.Typer) -> None:
    app.command("serve")(cmd_serve)
    app.command("ingest")(cmd_ingest)
    app.command("ask")(cmd_ask)
    app.command("batch")(cmd_batch)
    app.command("demo")(cmd_demo)
