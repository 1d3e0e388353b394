"""`sagerag deploy | teardown | status`: the SageMaker endpoints in one command each way.

The Pinecone RAG-on-SageMaker tutorial created GPU endpoints by hand and never deleted them. `deploy` creates both endpoints
with sagerag's tags and records their names in the config file; `teardown` deletes exactly what carries
those tags; `status` shows it. The deploy library (and with it the SageMaker SDK) is imported inside the
commands, so the CLI loads without the `deploy` extra; the options' defaults are the plan's own constants
(`sagerag.deploy.plan`, which imports nothing heavy), so the CLI and the library never disagree.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from sagerag.cli import _output
from sagerag.cli._app import fail_with as _fail
from sagerag.cli._redact import redact as _redact
from sagerag.deploy import images as _images
from sagerag.deploy import plan as _plan
from sagerag.errors import InputError

if TYPE_CHECKING:
    from sagerag.deploy.aws import ManagedResource
    from sagerag.deploy.plan import DeployPlan


def _region(region: str | None) -> str:
    if region:
        return region
    from sagerag.config import load_settings

    return load_settings().region


def _plan_text(plan: DeployPlan) -> None:
    """The plan as `key  value` blocks: long image URIs stay on one line, ready to copy."""
    from sagerag.deploy import pricing

    out = _output.console.print
    out(
        f"Deployment {plan.deployment!r} in {plan.region}: llm_kind {plan.llm_kind}, "
        f"embeddings_kind {plan.embeddings_kind}"
    )
    out(f"  IAM role      {plan.role_arn or '(not set)'}")
    for spec in plan.endpoints:
        price = spec.hourly_usd
        env = ", ".join(f"{k}={v}" for k, v in spec.model.shown_environment().items())
        out(f"{spec.role}: endpoint {spec.endpoint_name}")
        out(f"  model         {spec.model.source}")
        out(f"  image         {spec.model.image or f'(not resolved: {spec.model.image_note})'}")
        if env:
            out(f"  environment   {env}")
        if spec.model.model_data:
            out(f"  model data    {spec.model.model_data}")
        cost = "price unknown" if price is None else f"~${price:.3f}/hour"
        out(f"  instances     {spec.instance_count} x {spec.instance_type} ({cost})")
        out(f"  creates       model {spec.model.name}, endpoint config {spec.config_name}, endpoint")
    total = plan.hourly_usd
    total_text = (
        "unknown (an instance type is not in our price table)" if total is None else f"${total:.2f}/hour"
    )
    out(f"Estimated cost while running: {total_text} ({pricing.estimate_note(plan.region)})")
    for warning in plan.warnings:
        _output.info(f"warning: {warning}")


def _resource_table(resources: list[ManagedResource], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("kind", "name", "deployment", "role", "status"):
        table.add_column(column, overflow="fold")  # names must stay whole, to be copied
    for r in resources:
        table.add_row(r.kind, r.name, r.deployment, r.role, r.status or "-")
    _output.console.print(table)


def deploy(
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: config file, AWS_REGION, else us-east-1).")
    ] = None,
    role: Annotated[
        str | None, typer.Option("--role", envvar="SAGERAG_SAGEMAKER_ROLE", help="IAM execution role ARN.")
    ] = None,
    deployment: Annotated[
        str, typer.Option(help="Deployment name, stored in each resource's tags.")
    ] = _plan.DEFAULT_DEPLOYMENT,
    llm_model_id: Annotated[
        str, typer.Option(help="Hugging Face Hub id served by the TGI container.")
    ] = _plan.DEFAULT_LLM_MODEL_ID,
    jumpstart_model_id: Annotated[
        str | None,
        typer.Option(help="Deploy this JumpStart model instead (e.g. meta-textgeneration-llama-2-7b-f)."),
    ] = None,
    llm_endpoint: Annotated[str, typer.Option(help="LLM endpoint name.")] = _plan.DEFAULT_LLM_ENDPOINT,
    llm_instance_type: Annotated[
        str, typer.Option(help="LLM instance type.")
    ] = _plan.DEFAULT_LLM_INSTANCE_TYPE,
    llm_instance_count: Annotated[
        int, typer.Option(min=1, help="LLM instance count.")
    ] = _plan.DEFAULT_LLM_INSTANCE_COUNT,
    embeddings_model_id: Annotated[
        str, typer.Option(help="Embedding model (Hugging Face Hub id).")
    ] = _plan.DEFAULT_EMBEDDINGS_MODEL_ID,
    embeddings_container: Annotated[
        str,
        typer.Option(
            help="huggingface: inference toolkit, one vector per token (pooled by sagerag); "
            "tei: Text Embeddings Inference, pooled on the server, ~100x smaller responses "
            "(recommended for ingestion at scale).",
        ),
    ] = _plan.DEFAULT_EMBEDDINGS_CONTAINER,
    embeddings_endpoint: Annotated[
        str, typer.Option(help="Embeddings endpoint name.")
    ] = _plan.DEFAULT_EMBEDDINGS_ENDPOINT,
    embeddings_instance_type: Annotated[
        str, typer.Option(help="Embeddings instance type (a GPU type gets TEI's GPU image).")
    ] = _plan.DEFAULT_EMBEDDINGS_INSTANCE_TYPE,
    embeddings_instance_count: Annotated[
        int, typer.Option(min=1, help="Embeddings instance count.")
    ] = _plan.DEFAULT_EMBEDDINGS_INSTANCE_COUNT,
    tgi_version: Annotated[
        str | None, typer.Option(help="TGI container version (default: the newest the SDK knows).")
    ] = None,
    hf_inference_version: Annotated[
        str, typer.Option(help="Transformers version of the Hugging Face inference container.")
    ] = _images.DEFAULT_HF_TRANSFORMERS_VERSION,
    tei_version: Annotated[
        str | None, typer.Option(help="TEI container version (default: the newest the SDK knows).")
    ] = None,
    timeout: Annotated[
        float, typer.Option(min=1, help="Seconds to wait for InService.")
    ] = _plan.WAIT_TIMEOUT_S,
    poll_interval: Annotated[
        float, typer.Option(min=0, help="Seconds between status checks.")
    ] = _plan.POLL_INTERVAL_S,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Print the plan; call nothing in AWS.")] = False,
    config: Annotated[Path | None, typer.Option(help="Config file to record the endpoints in.")] = None,
    write_config: Annotated[
        bool, typer.Option(help="Record endpoint names, region and llm_kind in the config file.")
    ] = True,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Create (or reuse) the LLM and MiniLM SageMaker endpoints; HF token from HF_TOKEN, never shown."""
    try:
        plan_mod = _plan
        token = plan_mod.token_from_env()  # HF_TOKEN: masked by _redact like every secret variable
        options = plan_mod.DeployOptions(
            region=_region(region),
            role_arn=role,
            deployment=deployment,
            llm_model_id=llm_model_id,
            jumpstart_model_id=jumpstart_model_id,
            llm_endpoint=llm_endpoint,
            llm_instance_type=llm_instance_type,
            llm_instance_count=llm_instance_count,
            embeddings_model_id=embeddings_model_id,
            embeddings_endpoint=embeddings_endpoint,
            embeddings_instance_type=embeddings_instance_type,
            embeddings_instance_count=embeddings_instance_count,
            embeddings_container=embeddings_container,
            tei_version=tei_version,
            tgi_version=tgi_version,
            hf_inference_version=hf_inference_version,
            hf_token=token,
        )
        plan = plan_mod.build_plan(options, resolve_jumpstart=not dry_run)
        if dry_run:
            if json_output:
                _output.print_json({"dry_run": True, **plan.to_dict()})
            else:
                _plan_text(plan)
            return
        if not json_output:
            _plan_text(plan)
        result = _apply_with_progress(plan, timeout, poll_interval, quiet=json_output)
        written = None
        if write_config:
            from sagerag.config import update_config_file

            written = update_config_file(
                {
                    ("sagemaker", "region"): plan.region,
                    ("sagemaker", "llm_endpoint"): plan.endpoint("llm").endpoint_name,
                    ("sagemaker", "llm_kind"): plan.llm_kind,
                    ("sagemaker", "embeddings_endpoint"): plan.endpoint("embeddings").endpoint_name,
                    ("sagemaker", "embeddings_kind"): plan.embeddings_kind,
                },
                config,
            )
    except Exception as exc:
        _fail(exc)
    if json_output:
        _output.print_json({**result.to_dict(), "config_file": str(written) if written else None})
        return
    for spec in plan.endpoints:
        how = "reused" if spec.endpoint_name in result.reused else "created"
        _output.console.print(f"{spec.role}: endpoint {spec.endpoint_name} InService ({how})")
    if written:
        _output.info(
            f"recorded the endpoints in {written}; use them with `remote = true` or SAGERAG_REMOTE=1"
        )
    _output.info(f"endpoints bill while they exist: `sagerag teardown --deployment {plan.deployment}`")


def _apply_with_progress(plan: DeployPlan, timeout: float, poll_interval: float, quiet: bool) -> Any:
    """Run `apply_plan` under a rich progress display on stderr (one spinner per endpoint)."""
    from rich.progress import Progress, SpinnerColumn, TextColumn, TimeElapsedColumn

    from sagerag.deploy import aws

    client = aws.make_client(plan.region)
    progress = Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        TimeElapsedColumn(),
        console=_output.err_console,
        disable=quiet,
    )
    tasks: dict[str, Any] = {}

    def on_status(name: str, status: str, elapsed: float) -> None:
        if name not in tasks:
            tasks[name] = progress.add_task(name)
        progress.update(tasks[name], description=f"{name}: {status}")

    with progress:
        return aws.apply_plan(client, plan, timeout=timeout, poll_interval=poll_interval, on_status=on_status)


def _confirm(question: str) -> bool:
    """Ask on the terminal; with none to answer (a script, CI, stdin at EOF) say that --yes is needed."""
    try:
        return bool(typer.confirm(question, default=False))
    except typer.Abort:
        raise InputError(
            f"{question.rstrip('?')}: no terminal to confirm on; pass --yes to delete without asking"
        ) from None


def teardown(
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: config file, AWS_REGION, else us-east-1).")
    ] = None,
    deployment: Annotated[
        str, typer.Option(help="Deployment whose resources to delete.")
    ] = _plan.DEFAULT_DEPLOYMENT,
    all_deployments: Annotated[
        bool, typer.Option("--all", help="Delete every sagerag-tagged resource in the region.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Delete the endpoints, endpoint configs and models sagerag created (found by tag); nothing else."""
    try:
        from sagerag.deploy import aws

        client = aws.make_client(_region(region))
        resources = aws.find_managed(client, None if all_deployments else deployment)
        if not resources:
            if json_output:
                _output.print_json({"deleted": [], "failed": []})
            else:
                _output.info("nothing to delete: no sagerag-tagged resources found")
            return
        if not json_output:
            _resource_table(resources, "to delete")
        these = "this resource" if len(resources) == 1 else f"these {len(resources)} resources"
        if not yes and not _confirm(f"Delete {these}?"):
            _output.fail("aborted: nothing was deleted", _output.EXIT_FAILURE)
        failed = aws.teardown(client, resources)
    except Exception as exc:
        _fail(exc)
    failed_names = {(r.kind, r.name) for r, _ in failed}
    deleted = [r for r in resources if (r.kind, r.name) not in failed_names]
    if json_output:
        _output.print_json(
            {
                "deleted": [r.to_dict() for r in deleted],
                "failed": [{**r.to_dict(), "error": _redact(why)} for r, why in failed],
            }
        )
    else:
        _output.info(f"deleted {_output.plural(len(deleted), 'resource')}")
    if failed:
        detail = "; ".join(f"{r.kind} {r.name}: {why}" for r, why in failed)
        _output.fail(_redact(f"could not delete: {detail}"), _output.EXIT_FAILURE)


def status(
    region: Annotated[
        str | None, typer.Option(help="AWS region (default: config file, AWS_REGION, else us-east-1).")
    ] = None,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment (default: all).")] = None,
    json_output: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """List the sagerag-tagged endpoints, endpoint configs and models, with endpoint states."""
    try:
        from sagerag.deploy import aws

        resources = aws.find_managed(aws.make_client(_region(region)), deployment)
    except Exception as exc:
        _fail(exc)
    if json_output:
        _output.print_json({"resources": [r.to_dict() for r in resources]})
    elif not resources:
        _output.info("no sagerag-tagged SageMaker resources found")
    else:
        _resource_table(resources, "sagerag resources")


def register(app: typer.Typer) -> None:
    """Add `deploy`, `teardown` and `status` to the app (idempotent: main may call it more than once)."""
    existing = {c.name for c in app.registered_commands}
    for name, func in (("deploy", deploy), ("teardown", teardown), ("status", status)):
        if name not in existing:
            app.command(name)(func)
