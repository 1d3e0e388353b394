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
from sagerag.deploy import scaling as _scaling
from sagerag.errors import InputError

if TYPE_CHECKING:
    from sagerag.deploy.aws import ManagedResource, ScalingState
    from sagerag.deploy.plan import DeployPlan, PlannedEndpoint

# Options that deploy, status and teardown share: one definition each.
Region = Annotated[
    str | None, typer.Option(help="AWS region (default: config file, AWS_REGION, else us-east-1).")
]
Deployment = Annotated[
    str, typer.Option(help="Deployment name: the sagerag:deployment tag on every resource it owns.")
]
JsonOutput = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MinInstances = Annotated[
    int | None,
    typer.Option(
        show_default="--min-instances, else its instance count, else 1",
        help="Autoscaling floor of this endpoint.",
    ),
]
MaxInstances = Annotated[
    int | None,
    typer.Option(
        show_default="--max-instances, else the floor: no autoscaling",
        help="Autoscaling ceiling of this endpoint.",
    ),
]
InstanceCount = Annotated[
    int | None,
    typer.Option(min=1, show_default="the autoscaling floor", help="Instances at creation."),
]


def _region(region: str | None) -> str:
    if region:
        return region
    from sagerag.config import load_settings

    return load_settings().region


def _usd_range(low: float | None, high: float | None) -> str:
    return "price unknown" if low is None or high is None else f"~${low:.3f}..{high:.3f}/hour"


def _scaling_lines(spec: PlannedEndpoint) -> list[str]:
    """What autoscaling the endpoint gets, for the plan and the dry run."""
    if spec.scaling is None:
        return [
            f"  autoscaling   none: fixed at {spec.instance_count} (--max-instances above the floor adds it)"
        ]
    low, high = spec.hourly_usd_range
    sc = spec.scaling
    return [
        f"  autoscaling   {sc.min_instances}..{sc.max_instances} instances ({_usd_range(low, high)}), "
        f"target {sc.target_invocations:g} {_scaling.METRIC} (invocations/instance/minute), "
        f"cooldowns: scale-out {sc.scale_out_cooldown_s} s, scale-in {sc.scale_in_cooldown_s} s",
        f"  registers     scalable target {spec.resource_id} ({_scaling.DIMENSION}), "
        f"target-tracking policy {_scaling.POLICY_NAME}",
    ]


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
        for line in _scaling_lines(spec):
            out(line)
    total, top = plan.hourly_usd, plan.hourly_usd_max
    if total is None or top is None:
        total_text = "unknown (an instance type is not in our price table)"
    elif top > total:
        total_text = (
            f"${total:.2f}/hour at the start, up to ${top:.2f}/hour with every endpoint at its maximum"
        )
    else:
        total_text = f"${total:.2f}/hour"
    out(f"Estimated cost while running: {total_text} ({pricing.estimate_note(plan.region)})")
    for warning in plan.warnings:
        _output.info(f"warning: {warning}")


def _resource_table(resources: list[ManagedResource], title: str) -> None:
    from rich.table import Table

    table = Table(title=title)
    for column in ("kind", "name", "deployment", "role", "status"):
        table.add_column(column, overflow="fold")  # names must stay whole, to be copied
    for r in resources:
        name = f"{r.name} on {r.parent}" if r.parent else r.name
        table.add_row(r.kind, name, r.deployment, r.role, r.status or "-")
    _output.console.print(table)


def _scaling_table(states: list[ScalingState]) -> None:
    from rich.table import Table

    table = Table(title="autoscaling (target: invocations per instance per minute)")
    for column in ("endpoint", "min", "max", "desired", "current", "policy", "target"):
        table.add_column(column, overflow="fold", no_wrap=column == "policy")  # the name is copied whole
    for st in states:
        policies = [p.name for p in st.policies]
        goals = [f"{p.target_value:g}" for p in st.policies if p.target_value is not None]
        counts = (st.desired_instances, st.current_instances)
        desired, current = ("-" if n is None else str(n) for n in counts)
        limits = (str(st.min_instances), str(st.max_instances))
        table.add_row(
            st.endpoint, *limits, desired, current, ", ".join(policies) or "-", ", ".join(goals) or "-"
        )
    _output.console.print(table)


def deploy(
    region: Region = None,
    role: Annotated[
        str | None, typer.Option("--role", envvar="SAGERAG_SAGEMAKER_ROLE", help="IAM execution role ARN.")
    ] = None,
    deployment: Deployment = _plan.DEFAULT_DEPLOYMENT,
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
    llm_instance_count: InstanceCount = None,
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
    embeddings_instance_count: InstanceCount = None,
    min_instances: Annotated[
        int | None,
        typer.Option(
            show_default="the instance count, else 1",
            help="Autoscaling floor of both endpoints (SageMaker cannot scale these endpoints to 0).",
        ),
    ] = None,
    max_instances: Annotated[
        int | None,
        typer.Option(
            show_default="the floor, a fixed count",
            help="Autoscaling ceiling of both endpoints; above the floor registers Application Auto Scaling.",
        ),
    ] = None,
    llm_min_instances: MinInstances = None,
    llm_max_instances: MaxInstances = None,
    embeddings_min_instances: MinInstances = None,
    embeddings_max_instances: MaxInstances = None,
    llm_target_invocations: Annotated[
        float,
        typer.Option(
            help="LLM target of SageMakerVariantInvocationsPerInstance (per instance per minute); "
            "replace the assumed default with a load test."
        ),
    ] = _scaling.DEFAULT_LLM_TARGET_INVOCATIONS,
    embeddings_target_invocations: Annotated[
        float,
        typer.Option(
            help="Embeddings target of SageMakerVariantInvocationsPerInstance (per instance per minute)."
        ),
    ] = _scaling.DEFAULT_EMBEDDINGS_TARGET_INVOCATIONS,
    scale_out_cooldown: Annotated[
        int, typer.Option(help="Seconds after a scale-out before the next one counts.")
    ] = _scaling.DEFAULT_SCALE_OUT_COOLDOWN_S,
    scale_in_cooldown: Annotated[
        int, typer.Option(help="Seconds after a scale-in before the next one.")
    ] = _scaling.DEFAULT_SCALE_IN_COOLDOWN_S,
    tgi_version: Annotated[
        str | None, typer.Option(help="TGI container version (default: the newest the SDK knows).")
    ] = None,
    hf_inference_version: Annotated[
        str, typer.Option(help="Transformers version of the Hugging Face inference container.")
    ] = _images.DEFAULT_HF_TRANSFORMERS_VERSION,
    tei_version: Annotated[
        str | None, typer.Option(help="TEI container version (default: the newest the SDK knows).")
    ] = None,
    embeddings_workers: Annotated[
        int | None,
        typer.Option(
            help="Model-server workers of the huggingface container (SAGEMAKER_MODEL_SERVER_WORKERS); "
            "default: the instance's vCPUs, so that writing token-level JSON uses all of them "
            "(the container alone starts one per GPU).",
        ),
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
    json_output: JsonOutput = False,
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
            llm_min_instances=_first(llm_min_instances, min_instances),
            llm_max_instances=_first(llm_max_instances, max_instances),
            llm_target_invocations=llm_target_invocations,
            embeddings_model_id=embeddings_model_id,
            embeddings_endpoint=embeddings_endpoint,
            embeddings_instance_type=embeddings_instance_type,
            embeddings_instance_count=embeddings_instance_count,
            embeddings_min_instances=_first(embeddings_min_instances, min_instances),
            embeddings_max_instances=_first(embeddings_max_instances, max_instances),
            embeddings_target_invocations=embeddings_target_invocations,
            scale_in_cooldown_s=scale_in_cooldown,
            scale_out_cooldown_s=scale_out_cooldown,
            embeddings_container=embeddings_container,
            tei_version=tei_version,
            embeddings_workers=embeddings_workers,
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
    from sagerag.deploy import aws  # loaded by the deploy above

    targets = {r.name: r for r in result.scaling if r.kind == aws.SCALABLE_TARGET}
    for spec in plan.endpoints:
        how = "reused" if spec.endpoint_name in result.reused else "created"
        line = f"{spec.role}: endpoint {spec.endpoint_name} InService ({how})"
        target = targets.get(spec.resource_id)
        if spec.scaling and target:
            line += (
                f"; autoscaling {spec.scaling.min_instances}..{spec.scaling.max_instances} instances "
                f"({target.status}), policy {_scaling.POLICY_NAME}"
            )
        _output.console.print(line)
    if written:
        _output.info(
            f"recorded the endpoints in {written}; use them with `remote = true` or SAGERAG_REMOTE=1"
        )
    _output.info(f"endpoints bill while they exist: `sagerag teardown --deployment {plan.deployment}`")


def _first(value: int | None, fallback: int | None) -> int | None:
    """A per-endpoint option if given, else the option that sets both endpoints."""
    return fallback if value is None else value


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

    scaling_client = (
        aws.make_client(plan.region, service=aws.AUTOSCALING)
        if any(e.scaling for e in plan.endpoints)
        else None
    )
    with progress:
        return aws.apply_plan(
            client,
            plan,
            timeout=timeout,
            poll_interval=poll_interval,
            on_status=on_status,
            scaling_client=scaling_client,
        )


def _confirm(question: str) -> bool:
    """Ask on the terminal; with none to answer (a script, CI, stdin at EOF) say that --yes is needed."""
    try:
        return bool(typer.confirm(question, default=False))
    except typer.Abort:
        raise InputError(
            f"{question.rstrip('?')}: no terminal to confirm on; pass --yes to delete without asking"
        ) from None


def _scaling_before_teardown(aws: Any, scaling_client: Any, endpoints: list[ManagedResource]) -> Any:
    """The endpoints' autoscaling; if it cannot be read, stop before deleting anything."""
    from botocore.exceptions import ClientError

    from sagerag.aws_errors import error_code, error_message
    from sagerag.errors import DeployError

    try:
        return aws.find_scaling(scaling_client, endpoints)
    except ClientError as exc:
        raise DeployError(
            f"cannot read the endpoints' autoscaling ({error_code(exc)}: {error_message(exc)}); teardown removes "
            "it before the endpoints, so it needs application-autoscaling:DescribeScalableTargets and "
            "DescribeScalingPolicies (see the README's IAM note). Nothing was deleted."
        ) from None


def teardown(
    region: Region = None,
    deployment: Deployment = _plan.DEFAULT_DEPLOYMENT,
    all_deployments: Annotated[
        bool, typer.Option("--all", help="Delete every sagerag-tagged resource in the region.")
    ] = False,
    yes: Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")] = False,
    json_output: JsonOutput = False,
) -> None:
    """Remove the autoscaling of sagerag's endpoints, then the endpoints, configs and models (by tag)."""
    try:
        from sagerag.deploy import aws

        where = _region(region)
        client = aws.make_client(where)
        scaling_client = aws.make_client(where, service=aws.AUTOSCALING)
        endpoints = aws.find_managed(client, None if all_deployments else deployment)
        states = _scaling_before_teardown(aws, scaling_client, endpoints)
        resources = [r for st in states for r in st.resources()] + endpoints
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
        failed = aws.teardown(client, resources, scaling_client)
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
    region: Region = None,
    deployment: Annotated[str | None, typer.Option(help="Only this deployment (default: all).")] = None,
    json_output: JsonOutput = False,
) -> None:
    """List the sagerag-tagged endpoints, configs and models, and each endpoint's autoscaling."""
    try:
        from botocore.exceptions import ClientError

        from sagerag.deploy import aws

        where = _region(region)
        client = aws.make_client(where)
        resources = aws.find_managed(client, deployment)
        states: list[ScalingState] | None = None
        try:
            states = aws.find_scaling(aws.make_client(where, service=aws.AUTOSCALING), resources, client)
        except ClientError as exc:  # e.g. no application-autoscaling:Describe* permission: show the rest
            _output.info(_redact(f"warning: autoscaling not shown: {exc}"))
    except Exception as exc:
        _fail(exc)
    if json_output:
        scaling = None if states is None else [st.to_dict() for st in states]
        _output.print_json({"resources": [r.to_dict() for r in resources], "autoscaling": scaling})
    elif not resources:
        _output.info("no sagerag-tagged SageMaker resources found")
    else:
        _resource_table(resources, "sagerag resources")
        if states:
            _scaling_table(states)
        elif states is not None:
            _output.info("autoscaling: none registered (fixed instance counts)")


def register(app: typer.Typer) -> None:
    """Add `deploy`, `teardown` and `status` to the app (idempotent: main may call it more than once)."""
    existing = {c.name for c in app.registered_commands}
    for name, func in (("deploy", deploy), ("teardown", teardown), ("status", status)):
        if name not in existing:
            app.command(name)(func)
