"""SageMaker and Application Auto Scaling calls: apply a plan, wait, find and delete what sagerag made.

Plain boto3, because these are a few stable API calls and boto3 already honours regions, profiles and
`AWS_ENDPOINT_URL_SAGEMAKER` / `AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING` (which is how tests point it at
moto). Every resource gets the plan's tags at creation, so `find_managed` can tell ours from anyone else's
and teardown never touches the rest; scaling targets are found from the endpoints they scale (their resource
id names the endpoint), so teardown finds them whoever registered them. A failed apply deletes what that
run created; whatever could not be deleted is named in the `DeployError`.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from sagerag.aws_errors import error_code, error_message
from sagerag.deploy import scaling
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

Service = Literal["sagemaker", "application-autoscaling"]
"""The two botocore services a deployment uses."""
SAGEMAKER: Service = "sagemaker"
AUTOSCALING: Service = "application-autoscaling"
SCALING_POLICY = "scaling-policy"
SCALABLE_TARGET = "scalable-target"
ENDPOINT = "endpoint"
ENDPOINT_CONFIG = "endpoint-config"
MODEL = "model"
KINDS = (SCALING_POLICY, SCALABLE_TARGET, ENDPOINT, ENDPOINT_CONFIG, MODEL)
"""Also the deletion order: autoscaling first (it would otherwise act on an endpoint being deleted, and a
target outliving its endpoint can no longer be found by tag), then the endpoint, so nothing is left serving
from a deleted config."""
SCALING_KINDS = (SCALING_POLICY, SCALABLE_TARGET)
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
    parent: str = ""
    """For a scaling policy, the resource id of its scalable target."""

    @property
    def endpoint(self) -> str | None:
        """The endpoint this resource is, or scales (None for configs and models)."""
        if self.kind == ENDPOINT:
            return self.name
        parsed = scaling.parse_resource_id(self.parent or self.name) if self.kind in SCALING_KINDS else None
        return parsed[0] if parsed else None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `status --json` and `teardown --json`."""
        return {
            "kind": self.kind,
            "name": self.name,
            "deployment": self.deployment,
            "role": self.role,
            "status": self.status,
            "arn": self.arn,
            "scalable_target": self.parent or None,
        }


@dataclass(frozen=True)
class PolicyState:
    """A scaling policy on a scalable target."""

    name: str
    arn: str = ""
    target_value: float | None = None
    """TargetValue of a target-tracking policy (None for other policy types)."""


@dataclass(frozen=True)
class ScalingState:
    """An endpoint variant registered with Application Auto Scaling, as `status` shows it."""

    endpoint: str
    variant: str
    min_instances: int
    max_instances: int
    policies: tuple[PolicyState, ...] = ()
    deployment: str = ""
    role: str = ""
    arn: str = ""
    desired_instances: int | None = None
    current_instances: int | None = None

    @property
    def resource_id(self) -> str:
        return scaling.resource_id(self.endpoint, self.variant)

    def resources(self) -> list[ManagedResource]:
        """Its policies and the target itself, as teardown deletes them (policies first)."""
        policies = [
            ManagedResource(
                SCALING_POLICY, p.name, self.deployment, self.role, arn=p.arn, parent=self.resource_id
            )
            for p in self.policies
        ]
        target = ManagedResource(SCALABLE_TARGET, self.resource_id, self.deployment, self.role, arn=self.arn)
        return [*policies, target]

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `status --json`."""
        return {
            "endpoint": self.endpoint,
            "variant": self.variant,
            "resource_id": self.resource_id,
            "deployment": self.deployment,
            "role": self.role,
            "min_instances": self.min_instances,
            "max_instances": self.max_instances,
            "desired_instances": self.desired_instances,
            "current_instances": self.current_instances,
            "policies": [
                {"name": p.name, "target_value": p.target_value, "arn": p.arn} for p in self.policies
            ],
        }


@dataclass
class DeployResult:
    """What `apply_plan` did: resources it created, endpoints it found InService and reused."""

    plan: DeployPlan
    created: list[ManagedResource] = field(default_factory=list)
    reused: list[str] = field(default_factory=list)
    statuses: dict[str, str] = field(default_factory=dict)
    scaling: list[ManagedResource] = field(default_factory=list)
    """Scalable targets and policies registered (or updated) with Application Auto Scaling."""

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready summary (secrets masked via the plan)."""
        return {
            "plan": self.plan.to_dict(),
            "created": [r.to_dict() for r in self.created],
            "reused_endpoints": self.reused,
            "endpoint_status": self.statuses,
            "autoscaling": [r.to_dict() for r in self.scaling],
        }


def make_client(
    region: str, profile: str | None = None, endpoint_url: str | None = None, service: Service = SAGEMAKER
) -> Any:
    """A SageMaker (or, with `service=AUTOSCALING`, Application Auto Scaling) control-plane client.

    boto3 reads AWS_ENDPOINT_URL_SAGEMAKER / AWS_ENDPOINT_URL_APPLICATION_AUTO_SCALING by itself."""
    session = boto3.session.Session(profile_name=profile, region_name=region)
    config = Config(retries={"max_attempts": 5, "mode": "standard"}, user_agent_extra="sagerag")
    return session.client(service, endpoint_url=endpoint_url, config=config)


def _is_not_found(exc: ClientError) -> bool:
    message = error_message(exc)
    return error_code(exc) in {"ValidationException", "ResourceNotFound"} and "not find" in message.lower()


def _is_scaling_not_found(exc: ClientError) -> bool:
    """No such scalable target or policy: AWS says ObjectNotFoundException, moto a ValidationException."""
    code, message = error_code(exc), error_message(exc).lower()
    return code == "ObjectNotFoundException" or (
        code == "ValidationException" and message.startswith(("no scalable target", "no scaling policy"))
    )


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
        "VariantName": scaling.VARIANT,
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


def rollback(
    client: Any, created: list[ManagedResource], scaling_client: Any | None = None
) -> list[tuple[ManagedResource, str]]:
    """Delete what this run created, newest first; return what could not be deleted and why."""
    failed: list[tuple[ManagedResource, str]] = []
    for resource in sorted(reversed(created), key=lambda r: KINDS.index(r.kind)):
        try:
            _delete(client, resource, scaling_client)
        except Exception as exc:  # keep going: report each leftover rather than stop at the first
            failed.append((resource, f"{type(exc).__name__}: {exc}"))
    return failed


def register_scaling(
    scaling_client: Any, plan: DeployPlan, spec: PlannedEndpoint, done: list[ManagedResource]
) -> None:
    """Register an InService endpoint's variant and put its target-tracking policy (both upserts).

    Appends the target, then the policy, to `done` as each call succeeds (so a failure between the two
    leaves the target on record to undo); the target's status says whether it was `registered` or
    `updated`. Tags go on a new target only: RegisterScalableTarget on an existing one changes its limits.
    """
    if spec.scaling is None:
        return
    rid = spec.resource_id
    found = scaling_client.describe_scalable_targets(
        ServiceNamespace=scaling.NAMESPACE, ResourceIds=[rid], ScalableDimension=scaling.DIMENSION
    ).get("ScalableTargets", [])
    exists = any(t.get("ResourceId") == rid for t in found)
    tags = {} if exists else {"Tags": {t["Key"]: t["Value"] for t in plan.tags(spec.role)}}
    response = scaling_client.register_scalable_target(
        ServiceNamespace=scaling.NAMESPACE,
        ResourceId=rid,
        ScalableDimension=scaling.DIMENSION,
        MinCapacity=spec.scaling.min_instances,
        MaxCapacity=spec.scaling.max_instances,
        **tags,
    )
    done.append(
        ManagedResource(
            SCALABLE_TARGET,
            rid,
            plan.deployment,
            spec.role,
            "updated" if exists else "registered",
            str(response.get("ScalableTargetARN", "")),
        )
    )
    policy = scaling_client.put_scaling_policy(
        PolicyName=scaling.POLICY_NAME,
        ServiceNamespace=scaling.NAMESPACE,
        ResourceId=rid,
        ScalableDimension=scaling.DIMENSION,
        PolicyType="TargetTrackingScaling",
        TargetTrackingScalingPolicyConfiguration=spec.scaling.policy_configuration(),
    )
    done.append(
        ManagedResource(
            SCALING_POLICY,
            scaling.POLICY_NAME,
            plan.deployment,
            spec.role,
            arn=str(policy.get("PolicyARN", "")),
            parent=rid,
        )
    )


def _register_all(scaling_client: Any, plan: DeployPlan, result: DeployResult) -> None:
    """Register autoscaling for every endpoint that asks for it; on failure undo this run's new targets.

    The endpoints stay: they are InService (after a wait of many minutes) and serve at their minimum
    count, and re-running the same deploy reuses them and registers again.
    """
    try:
        for spec in plan.endpoints:
            register_scaling(scaling_client, plan, spec, result.scaling)
    except BaseException as exc:
        fresh = {r.name for r in result.scaling if r.kind == SCALABLE_TARGET and r.status == "registered"}
        new = [r for r in result.scaling if (r.parent or r.name) in fresh]  # their policies too
        kept = {r.parent or r.name for r, _ in rollback(None, new, scaling_client)}
        result.scaling = [r for r in result.scaling if (r.parent or r.name) not in fresh - kept]
        cause = "interrupted" if isinstance(exc, KeyboardInterrupt) else str(exc)
        if isinstance(exc, ClientError):
            cause = f"{error_code(exc)}: {error_message(exc) or exc}"
        names = ", ".join(spec.endpoint_name for spec in plan.endpoints)
        raise DeployError(
            f"autoscaling was not registered: {cause}. The endpoints ({names}) are InService at their "
            "starting instance count and bill while they exist; fix the cause (the deploying identity needs "
            "application-autoscaling and iam:CreateServiceLinkedRole permissions, see the README) and run "
            f"the same deploy again (it reuses them), or remove them with "
            f"`sagerag teardown --deployment {plan.deployment}`.",
            left=result.created,
        ) from None


def find_scaling(
    scaling_client: Any, endpoints: list[ManagedResource], client: Any | None = None
) -> list[ScalingState]:
    """The scalable targets (and their policies) of the given endpoints, whoever registered them.

    Found by resource id (`endpoint/<name>/variant/<variant>`) from the endpoint names, so teardown finds
    targets registered by an earlier run, the console or another tool. With a SageMaker `client`, each
    state carries the variant's desired and current instance counts.
    """
    wanted = {r.name: r for r in endpoints if r.kind == ENDPOINT}
    if not wanted:
        return []
    states: list[ScalingState] = []
    pages = scaling_client.get_paginator("describe_scalable_targets").paginate(
        ServiceNamespace=scaling.NAMESPACE, ScalableDimension=scaling.DIMENSION
    )
    for page in pages:
        for target in page.get("ScalableTargets", []):
            rid = str(target["ResourceId"])
            parsed = scaling.parse_resource_id(rid)
            if parsed is None or parsed[0] not in wanted:
                continue
            endpoint, variant = parsed
            policies = tuple(
                PolicyState(
                    str(p["PolicyName"]),
                    str(p.get("PolicyARN", "")),
                    p.get("TargetTrackingScalingPolicyConfiguration", {}).get("TargetValue"),
                )
                for policy_page in scaling_client.get_paginator("describe_scaling_policies").paginate(
                    ServiceNamespace=scaling.NAMESPACE, ResourceId=rid, ScalableDimension=scaling.DIMENSION
                )
                for p in policy_page.get("ScalingPolicies", [])
                if p.get("ResourceId") == rid
            )
            desired, current = _variant_counts(client, endpoint, variant) if client else (None, None)
            states.append(
                ScalingState(
                    endpoint,
                    variant,
                    int(target["MinCapacity"]),
                    int(target["MaxCapacity"]),
                    policies,
                    wanted[endpoint].deployment,
                    wanted[endpoint].role,
                    str(target.get("ScalableTargetARN", "")),
                    desired,
                    current,
                )
            )
    return states


def _variant_counts(client: Any, endpoint: str, variant: str) -> tuple[int | None, int | None]:
    """(desired, current) instance count of an endpoint's variant; (None, None) if it is gone."""
    try:
        described = client.describe_endpoint(EndpointName=endpoint)
    except ClientError as exc:
        if _is_not_found(exc):
            return None, None
        raise
    for v in described.get("ProductionVariants", []):
        if v.get("VariantName") == variant:
            return v.get("DesiredInstanceCount"), v.get("CurrentInstanceCount")
    return None, None


def apply_plan(
    client: Any,
    plan: DeployPlan,
    *,
    timeout: float = WAIT_TIMEOUT_S,
    poll_interval: float = POLL_INTERVAL_S,
    on_status: StatusCallback | None = None,
    sleep: Callable[[float], None] = time.sleep,
    scaling_client: Any | None = None,
) -> DeployResult:
    """Create (or reuse, when InService) the plan's endpoints, wait for them, then register autoscaling.

    Models and endpoint configs are all created before any endpoint, so a rejected instance type fails
    before an instance starts billing. On any failure the resources this run created are deleted; on a
    timeout they are left (they may still come up) and the error names them. Autoscaling is registered
    only once every endpoint is InService (Application Auto Scaling refuses a variant that is not); if that
    fails the endpoints stay and the error says how to retry. `scaling_client` defaults to an Application
    Auto Scaling client for the plan's region, made only when the plan asks for autoscaling.
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
    if any(spec.scaling for spec in plan.endpoints):
        _register_all(scaling_client or make_client(plan.region, service=AUTOSCALING), plan, result)
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


def _delete(client: Any, resource: ManagedResource, scaling_client: Any | None = None) -> None:
    """Delete one resource; one that is already gone is not an error."""
    if resource.kind in SCALING_KINDS:
        if scaling_client is None:
            raise DeployError(
                f"removing {resource.kind} {resource.name} needs an Application Auto Scaling client"
            )
        ids = {
            "ServiceNamespace": scaling.NAMESPACE,
            "ScalableDimension": scaling.DIMENSION,
            "ResourceId": resource.parent or resource.name,
        }
        try:
            if resource.kind == SCALING_POLICY:
                scaling_client.delete_scaling_policy(PolicyName=resource.name, **ids)
            else:
                scaling_client.deregister_scalable_target(**ids)
        except ClientError as exc:
            if not _is_scaling_not_found(exc):
                raise
        return
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


def teardown(
    client: Any, resources: list[ManagedResource], scaling_client: Any | None = None
) -> list[tuple[ManagedResource, str]]:
    """Delete the given resources: scaling policies and targets, then endpoints, configs, models.

    Returns failures with reasons. An endpoint whose autoscaling could not be removed is kept (and
    reported), so no scalable target outlives its endpoint where no later teardown could find it.
    """
    failed: list[tuple[ManagedResource, str]] = []
    kept: set[str] = set()
    for resource in sorted(resources, key=lambda r: KINDS.index(r.kind)):
        if resource.kind == ENDPOINT and resource.name in kept:
            failed.append((resource, "kept: its autoscaling could not be removed first"))
            continue
        try:
            _delete(client, resource, scaling_client)
        except (ClientError, DeployError) as exc:
            failed.append((resource, f"{error_code(exc)}: {exc}" if error_code(exc) else str(exc)))
            if resource.kind in SCALING_KINDS and resource.endpoint:
                kept.add(resource.endpoint)
    return failed
