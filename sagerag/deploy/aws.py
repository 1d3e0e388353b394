"""SageMaker control-plane calls: apply a plan, wait for endpoints, find and delete what sagerag made.

Plain boto3, because these are five stable API calls and boto3 already honours regions, profiles and
`AWS_ENDPOINT_URL_SAGEMAKER` (which is how tests point it at moto). Every resource gets the plan's tags at
creation, so `find_managed` can tell ours from anyone else's and teardown never touches the rest. A failed
apply deletes what that run created; whatever could not be deleted is named in the `DeployError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sagerag.aws_errors import error_code, error_message
from sagerag.deploy.plan import (
    POLL_INTERVAL_S,
    TAG_DEPLOYMENT,
    TAG_MANAGED,
    TAG_ROLE,
    WAIT_TIMEOUT_S,
    DeployPlan,
    PlannedEndpoint,
)
from sagerag.errors import DeployError, EndpointFailedError, WaitTimeoutError

ENDPOINT = "endpoint"
ENDPOINT_CONFIG = "endpoint-config"
MODEL = "model"
KINDS = (ENDPOINT, ENDPOINT_CONFIG, MODEL)
"""Also the deletion order: an endpoint first, so nothing is left serving from a deleted config."""
_PENDING = {"Creating", "Updating", "SystemUpdating", "RollingBack"}

StatusCallback = Callable[[str, str, float], None]


@dataclass(frozen=True)
class ManagedResource:
    """A SageMaker resource carrying sagerag's tags (or created by this run)."""

    kind: str
    name: str
    deployment: str = ""
    role: str = ""
    status: str | None = None
    arn: str = ""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `status --json` and `teardown --json`."""
        return {
            "kind": self.kind,
            "name": self.name,
            "deployment": self.deployment,
            "role": self.role,
            "status": self.status,
            "arn": self.arn,
        }


@dataclass
class DeployResult:
    """What `apply_plan` did: resources it created, endpoints it found InService and reused."""

    plan: DeployPlan
    created: list[ManagedResource] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (secrets masked via the plan)."""
        return {
            "plan": self.plan.to_dict(),
            "created": [r.to_dict() for r in self.created],
            "reused_endpoints": self.reused,
            "endpoint_status": self.statuses,
        }


def make_client(region: str, profile: str | None = None, endpoint_url: str | None = None) -> Any:
    """A SageMaker control-plane client (boto3 also reads AWS_ENDPOINT_URL_SAGEMAKER by itself)."""
    session = boto3.session.Session(profile_name=profile, region_name=region)
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, user_agent_extra="sagerag")
    return session.client("sagemaker", endpoint_url=endpoint_url, config=config)


def _is_not_found(exc: ClientError) -> bool:
    message = error_message(exc)
    return error_code(exc) in {"ValidationException", "ResourceNotFound"} and "not find" in message.lower()


def endpoint_status(client: Any, name: str) -> str | None:
    """EndpointStatus, or None when there is no such endpoint."""
    try:
        return str(client.describe_endpoint(EndpointName=name)["EndpointStatus"])
    except ClientError as exc:
        if _is_not_found(exc):
            return None
        raise


def _create(client: Any, plan: DeployPlan, spec: PlannedEndpoint, created: list[ManagedResource]) -> None:
    """Create the model and endpoint config of one endpoint, recording each as soon as it exists."""
    tags = plan.tags(spec.role)
    container: dict[str, Any] = {"Image": spec.model.image, "Environment": spec.model.container_environment()}
    if spec.model.model_data:
        if spec.model.model_data.endswith("/"):  # JumpStart's uncompressed weights: an S3 prefix
            container["ModelDataSource"] = {
                "S3DataSource": {
                    "S3Uri": spec.model.model_data,
                    "S3DataType": "S3Prefix",
                    "CompressionType": "None",
                }
            }
        else:
            container["ModelDataUrl"] = spec.model.model_data
    client.create_model(
        ModelName=spec.model.name, ExecutionRoleArn=plan.role_arn, PrimaryContainer=container, Tags=tags
    )
    created.append(ManagedResource(MODEL, spec.model.name, plan.deployment, spec.role))
    variant: dict[str, Any] = {
        "VariantName": "AllTraffic",
        "ModelName": spec.model.name,
        "InitialInstanceCount": spec.instance_count,
        "InstanceType": spec.instance_type,
    }
    if spec.startup_timeout_s:
        variant["ContainerStartupHealthCheckTimeoutInSeconds"] = spec.startup_timeout_s
    client.create_endpoint_config(
        EndpointConfigName=spec.config_name, ProductionVariants=[variant], Tags=tags
    )
    created.append(ManagedResource(ENDPOINT_CONFIG, spec.config_name, plan.deployment, spec.role))


def wait_for_endpoints(
    client: Any,
    names: list[str],
    *,
    timeout: float,
    poll_interval: float = POLL_INTERVAL_S,
    on_status: StatusCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Poll until every endpoint is InService; raise on Failed or when `timeout` seconds pass."""
    start = time.monotonic()
    statuses: dict[str, str] = {}
    pending = list(names)
    while True:
        elapsed = time.monotonic() - start
        for name in list(pending):
            described = client.describe_endpoint(EndpointName=name)
            status = str(described["EndpointStatus"])
            statuses[name] = status
            if on_status:
                on_status(name, status, elapsed)
            if status == "InService":
                pending.remove(name)
            elif status not in _PENDING:
                reason = described.get("FailureReason") or "no reason given"
                raise EndpointFailedError(f"endpoint {name} is {status}: {reason}")
        if not pending:
            return statuses
        if elapsed >= timeout:
            raise WaitTimeoutError(f"{', '.join(pending)} not InService after {timeout:.0f} s")
        sleep(poll_interval)


def rollback(client: Any, created: list[ManagedResource]) -> list[tuple[ManagedResource, str]]:
    """Delete what this run created, newest first; return what could not be deleted and why."""
    failed: list[tuple[ManagedResource, str]] = []
    for resource in sorted(reversed(created), key=lambda r: KINDS.index(r.kind)):
        try:
            _delete(client, resource)
        except Exception as exc:  # keep going: report each leftover rather than stop at the first
            failed.append((resource, f"{type(exc).__name__}: {exc}"))
    return failed


def apply_plan(
    client: Any,
    plan: DeployPlan,
    *,
    timeout: float = WAIT_TIMEOUT_S,
    poll_interval: float = POLL_INTERVAL_S,
    on_status: StatusCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> DeployResult:
    """Create (or reuse, when InService) the plan's endpoints and wait for them.

    Models and endpoint configs are all created before any endpoint, so a rejected instance type fails
    before an instance starts billing. On any failure the resources this run created are deleted; on a
    timeout they are left (they may still come up) and the error names them.
    """
    if not plan.role_arn:
        raise DeployError("an IAM execution role is required: pass --role or set SAGERAG_SAGEMAKER_ROLE")
    if any(spec.model.image is None for spec in plan.endpoints):
        raise DeployError(
            "the plan has unresolved images (a dry-run plan); build it with resolve_jumpstart=True"
        )
    result = DeployResult(plan)
    created = result.created
    to_wait: list[str] = []
    try:
        to_create: list[PlannedEndpoint] = []
        for spec in plan.endpoints:
            status = endpoint_status(client, spec.endpoint_name)
            if status is None:
                to_create.append(spec)
            elif status == "InService" or status in _PENDING:
                result.reused.append(spec.endpoint_name)
                to_wait.append(spec.endpoint_name)
            else:
                raise DeployError(
                    f"endpoint {spec.endpoint_name} already exists and is {status}; remove it first "
                    f"(`sagerag teardown` removes it if sagerag created it), or choose another name"
                )
        for spec in to_create:
            _create(client, plan, spec, created)
        for spec in to_create:
            client.create_endpoint(
                EndpointName=spec.endpoint_name,
                EndpointConfigName=spec.config_name,
                Tags=plan.tags(spec.role),
            )
            created.append(ManagedResource(ENDPOINT, spec.endpoint_name, plan.deployment, spec.role))
            to_wait.append(spec.endpoint_name)
        result.statuses = wait_for_endpoints(
            client, to_wait, timeout=timeout, poll_interval=poll_interval, on_status=on_status, sleep=sleep
        )
    except WaitTimeoutError as exc:
        left = ", ".join(f"{r.kind} {r.name}" for r in created) or "nothing new"
        raise DeployError(
            f"{exc}. Left in place (they may still come up and they bill while they exist): {left}. "
            f"Watch with `sagerag status`; remove with `sagerag teardown --deployment {plan.deployment}`.",
            left=created,
        ) from None
    except BaseException as exc:
        failed = rollback(client, created)
        cause = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        if isinstance(exc, ClientError):
            cause = f"{error_code(exc)}: {error_message(exc) or exc}"
        if not created:
            message = f"deploy failed: {cause}. Nothing was created."
        elif not failed:
            removed = ", ".join(f"{r.kind} {r.name}" for r in created)
            message = f"deploy failed: {cause}. Rolled back what this run created: {removed}."
        else:
            left = "; ".join(f"{r.kind} {r.name} ({why})" for r, why in failed)
            message = (
                f"deploy failed: {cause}. Could not delete: {left}. "
                f"`sagerag teardown --deployment {plan.deployment}` removes them."
            )
        raise DeployError(message, left=[r for r, _ in failed]) from None
    return result


def _tags(client: Any, arn: str) -> dict[str, str]:
    tags: dict[str, str] = {}
    for page in client.get_paginator("list_tags").paginate(ResourceArn=arn):
        tags.update({t["Key"]: t["Value"] for t in page.get("Tags", [])})
    return tags


_LISTS = (
    (ENDPOINT, "list_endpoints", "Endpoints", "EndpointName", "EndpointArn"),
    (ENDPOINT_CONFIG, "list_endpoint_configs", "EndpointConfigs", "EndpointConfigName", "EndpointConfigArn"),
    (MODEL, "list_models", "Models", "ModelName", "ModelArn"),
)


def find_managed(client: Any, deployment: str | None = None) -> list[ManagedResource]:
    """Endpoints, endpoint configs and models tagged `sagerag:managed=true` (of one deployment if given)."""
    found: list[ManagedResource] = []
    for kind, operation, key, name_key, arn_key in _LISTS:
        for page in client.get_paginator(operation).paginate():
            for item in page.get(key, []):
                try:
                    tags = _tags(client, item[arn_key])
                except ClientError as exc:
                    if _is_not_found(exc):  # deleted between list and list_tags
                        continue
                    raise
                if tags.get(TAG_MANAGED) != "true":
                    continue
                if deployment is not None and tags.get(TAG_DEPLOYMENT) != deployment:
                    continue
                found.append(
                    ManagedResource(
                        kind,
                        str(item[name_key]),
                        tags.get(TAG_DEPLOYMENT, ""),
                        tags.get(TAG_ROLE, ""),
                        item.get("EndpointStatus"),
                        str(item[arn_key]),
                    )
                )
    return found


def _delete(client: Any, resource: ManagedResource) -> None:
    try:
        if resource.kind == ENDPOINT:
            client.delete_endpoint(EndpointName=resource.name)
        elif resource.kind == ENDPOINT_CONFIG:
            client.delete_endpoint_config(EndpointConfigName=resource.name)
        else:
            client.delete_model(ModelName=resource.name)
    except ClientError as exc:
        if not _is_not_found(exc):
            raise


def teardown(client: Any, resources: list[ManagedResource]) -> list[tuple[ManagedResource, str]]:
    """Delete the given (sagerag-tagged) resources, endpoints first; return failures with reasons."""
    failed: list[tuple[ManagedResource, str]] = []
    for resource in sorted(resources, key=lambda r: KINDS.index(r.kind)):
        try:
            _delete(client, resource)
        except ClientError as exc:
            failed.append((resource, f"{error_code(exc)}: {exc}"))
    return failed
