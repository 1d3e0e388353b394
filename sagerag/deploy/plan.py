"""What a deployment will create: options in, a `DeployPlan` out, with no AWS call and no credentials.

The plan is what `deploy --dry-run` prints and what `aws.apply_plan` executes, so the two never disagree.
Secrets (the Hugging Face token) are held apart from the plain container environment as `SecretStr`, so
printing, `repr` or `to_dict` of a plan can never show them.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from sagerag.deploy import images, pricing, scaling
from sagerag.deploy.scaling import ScalingSpec
from sagerag.errors import InputError
from sagerag.kinds import EmbeddingsKind, LLMKind

if TYPE_CHECKING:  # pydantic loads only when a token is read: the CLI imports this module to show defaults
    from pydantic import SecretStr

DEFAULT_DEPLOYMENT = "default"
DEFAULT_REGION = "us-east-1"
DEFAULT_LLM_MODEL_ID = "meta-llama/Llama-2-7b-chat-hf"
DEFAULT_JUMPSTART_MODEL_ID = "meta-textgeneration-llama-2-7b-f"
DEFAULT_EMBEDDINGS_MODEL_ID = "sentence-transformers/all-MiniLM-L6-v2"
DEFAULT_LLM_ENDPOINT = "sagerag-llm"
DEFAULT_EMBEDDINGS_ENDPOINT = "sagerag-minilm"
DEFAULT_LLM_INSTANCE_TYPE = "ml.g5.4xlarge"
DEFAULT_EMBEDDINGS_INSTANCE_TYPE = "ml.m5.xlarge"
"""MiniLM (22M parameters) is fast enough on CPU; a GPU instance would cost ~6x more per hour."""
MODEL_SERVER_WORKERS_ENV = "SAGEMAKER_MODEL_SERVER_WORKERS"
"""The SageMaker inference toolkit's setting for its model server's workers per model."""
EMBEDDINGS_CONTAINERS: dict[str, EmbeddingsKind] = {"huggingface": "feature-extraction", "tei": "tei"}
"""`--embeddings-container` choices and the `embeddings_kind` each gives the config file: the Hugging Face
inference toolkit (per-token output) or Text Embeddings Inference (pooled, ~100x smaller responses)."""
DEFAULT_EMBEDDINGS_CONTAINER = "huggingface"
WAIT_TIMEOUT_S = 3600.0
"""How long a deploy waits for InService before leaving the endpoints to come up on their own."""
POLL_INTERVAL_S = 15.0
"""Seconds between DescribeEndpoint calls while waiting."""
LLM_STARTUP_TIMEOUT_S = 900
"""TGI downloads and loads 13 GB of weights before its health check answers."""

ROLE_ENV = "SAGERAG_SAGEMAKER_ROLE"
HF_TOKEN_ENVS = ("HF_TOKEN", "HUGGING_FACE_HUB_TOKEN")
SECRET_MASK = "***"
TAG_MANAGED = "sagerag:managed"
TAG_DEPLOYMENT = "sagerag:deployment"
TAG_ROLE = "sagerag:role"

_NAME_RE = re.compile(r"^[a-zA-Z0-9](-*[a-zA-Z0-9]){0,62}$")
_ROLE_RE = re.compile(r"^arn:aws[a-z-]*:iam::\d{12}:role/[\w+=,.@/-]+$")


def token_from_env() -> SecretStr | None:
    """The Hugging Face token from HF_TOKEN or HUGGING_FACE_HUB_TOKEN, if set."""
    from pydantic import SecretStr

    for name in HF_TOKEN_ENVS:
        if os.environ.get(name):
            return SecretStr(os.environ[name])
    return None


@dataclass(frozen=True)
class DeployOptions:
    """Everything `sagerag deploy` can be told; the defaults follow the Pinecone RAG-on-SageMaker tutorial."""

    region: str = DEFAULT_REGION
    role_arn: str | None = None
    deployment: str = DEFAULT_DEPLOYMENT
    llm_model_id: str = DEFAULT_LLM_MODEL_ID
    jumpstart_model_id: str | None = None
    llm_endpoint: str = DEFAULT_LLM_ENDPOINT
    llm_instance_type: str = DEFAULT_LLM_INSTANCE_TYPE
    llm_instance_count: int | None = None
    """Instances at creation; None starts at the minimum."""
    llm_min_instances: int | None = None
    """Autoscaling floor; None takes the instance count, else 1."""
    llm_max_instances: int | None = None
    """Autoscaling ceiling; None or equal to the floor means a fixed count, nothing registered."""
    llm_target_invocations: float = scaling.DEFAULT_LLM_TARGET_INVOCATIONS
    embeddings_model_id: str = DEFAULT_EMBEDDINGS_MODEL_ID
    embeddings_endpoint: str = DEFAULT_EMBEDDINGS_ENDPOINT
    embeddings_instance_type: str = DEFAULT_EMBEDDINGS_INSTANCE_TYPE
    embeddings_instance_count: int | None = None
    embeddings_min_instances: int | None = None
    embeddings_max_instances: int | None = None
    embeddings_target_invocations: float = scaling.DEFAULT_EMBEDDINGS_TARGET_INVOCATIONS
    scale_in_cooldown_s: int = scaling.DEFAULT_SCALE_IN_COOLDOWN_S
    scale_out_cooldown_s: int = scaling.DEFAULT_SCALE_OUT_COOLDOWN_S
    embeddings_container: str = DEFAULT_EMBEDDINGS_CONTAINER
    """`huggingface` (inference toolkit, feature-extraction) or `tei` (Text Embeddings Inference)."""
    tei_version: str | None = None
    """TEI container version; None takes the newest the SDK knows."""
    embeddings_workers: int | None = None
    """Model-server workers of the inference toolkit container; None: the instance's vCPUs."""
    tgi_version: str | None = None
    hf_inference_version: str = images.DEFAULT_HF_TRANSFORMERS_VERSION
    hf_token: SecretStr | None = None
    name_suffix: str | None = None
    """Suffix that makes model and endpoint-config names unique; a UTC timestamp when None."""


@dataclass(frozen=True)
class ModelSpec:
    """One SageMaker Model: the container image, its environment and (JumpStart) model data."""

    name: str
    source: str
    """The model id this serves (Hugging Face Hub id or JumpStart id)."""
    image: str | None
    """None when it can only be resolved at deploy time (JumpStart in a dry run)."""
    environment: dict[str, str] = field(default_factory=dict)
    secrets: dict[str, SecretStr] = field(default_factory=dict)
    model_data: str | None = None
    image_note: str = ""

    def container_environment(self) -> dict[str, str]:
        """The real environment for CreateModel, secrets included: never print this."""
        return {**self.environment, **{k: v.get_secret_value() for k, v in self.secrets.items()}}

    def shown_environment(self) -> dict[str, str]:
        """The environment with secrets masked, for people and logs."""
        return {**self.environment, **dict.fromkeys(self.secrets, SECRET_MASK)}


@dataclass(frozen=True)
class PlannedEndpoint:
    """One endpoint, its endpoint config and its model."""

    role: str
    """`llm` or `embeddings`: which half of the mission this endpoint serves."""
    endpoint_name: str
    config_name: str
    model: ModelSpec
    instance_type: str
    instance_count: int = 1
    startup_timeout_s: int | None = None
    scaling: ScalingSpec | None = None
    """Application Auto Scaling limits and policy; None for a fixed instance count."""

    @property
    def hourly_usd(self) -> float | None:
        """Estimated on-demand price per hour (None where the instance type is not in our table)."""
        return pricing.hourly_usd(self.instance_type, self.instance_count)

    @property
    def hourly_usd_range(self) -> tuple[float | None, float | None]:
        """Estimated price per hour at the fewest and the most instances autoscaling may run."""
        if self.scaling is None:
            return self.hourly_usd, self.hourly_usd
        return (
            pricing.hourly_usd(self.instance_type, self.scaling.min_instances),
            pricing.hourly_usd(self.instance_type, self.scaling.max_instances),
        )

    @property
    def resource_id(self) -> str:
        """The endpoint's production variant as Application Auto Scaling names it."""
        return scaling.resource_id(self.endpoint_name)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready description with secrets masked."""
        return {
            "role": self.role,
            "endpoint_name": self.endpoint_name,
            "endpoint_config_name": self.config_name,
            "model_name": self.model.name,
            "model_source": self.model.source,
            "image": self.model.image,
            "image_note": self.model.image_note or None,
            "model_data": self.model.model_data,
            "environment": self.model.shown_environment(),
            "instance_type": self.instance_type,
            "instance_count": self.instance_count,
            "estimated_hourly_usd": self.hourly_usd,
            "estimated_hourly_usd_range": list(self.hourly_usd_range),
            "autoscaling": (
                {"resource_id": self.resource_id, **self.scaling.to_dict()} if self.scaling else None
            ),
        }


@dataclass(frozen=True)
class DeployPlan:
    """The two endpoints of one deployment, and the tags every resource gets."""

    deployment: str
    region: str
    role_arn: str | None
    llm_kind: LLMKind
    endpoints: tuple[PlannedEndpoint, ...]
    embeddings_kind: EmbeddingsKind = "feature-extraction"
    """What the config file's `embeddings_kind` becomes: `feature-extraction` or `tei`."""
    warnings: tuple[str, ...] = ()

    def endpoint(self, role: str) -> PlannedEndpoint:
        """The endpoint serving `role` (`llm` or `embeddings`)."""
        return next(e for e in self.endpoints if e.role == role)

    def tags(self, role: str) -> list[dict[str, str]]:
        """SageMaker tags for a resource of `role`: how teardown later finds exactly what we made."""
        return [
            {"Key": TAG_MANAGED, "Value": "true"},
            {"Key": TAG_DEPLOYMENT, "Value": self.deployment},
            {"Key": TAG_ROLE, "Value": role},
        ]

    @property
    def hourly_usd(self) -> float | None:
        """Estimated total per hour, None when any instance type is missing from the table."""
        prices = [e.hourly_usd for e in self.endpoints]
        return None if any(p is None for p in prices) else round(sum(p or 0.0 for p in prices), 3)

    @property
    def hourly_usd_max(self) -> float | None:
        """Estimated total per hour with every endpoint at its autoscaling ceiling."""
        prices = [e.hourly_usd_range[1] for e in self.endpoints]
        return None if any(p is None for p in prices) else round(sum(p or 0.0 for p in prices), 3)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready plan with secrets masked (what `deploy --dry-run --json` prints)."""
        return {
            "deployment": self.deployment,
            "region": self.region,
            "role_arn": self.role_arn,
            "llm_kind": self.llm_kind,
            "embeddings_kind": self.embeddings_kind,
            "endpoints": [e.to_dict() for e in self.endpoints],
            "estimated_hourly_usd_total": self.hourly_usd,
            "estimated_hourly_usd_total_max": self.hourly_usd_max,
            "price_note": pricing.estimate_note(self.region),
            "tags": {t["Key"]: t["Value"] for t in self.tags("<role>") if t["Key"] != TAG_ROLE},
            "warnings": list(self.warnings),
        }


def _check_name(value: str, what: str) -> str:
    if not _NAME_RE.match(value):
        raise InputError(f"{what} {value!r} is not a valid SageMaker name (letters, digits, '-', max 63)")
    return value


def _resource_name(endpoint: str, suffix: str) -> str:
    """Model / endpoint-config name: the endpoint name plus a suffix, within SageMaker's 63 characters."""
    return f"{endpoint[: 62 - len(suffix)].rstrip('-')}-{suffix}"


def _validate(options: DeployOptions) -> None:
    _check_name(options.llm_endpoint, "LLM endpoint name")
    _check_name(options.embeddings_endpoint, "embeddings endpoint name")
    if options.llm_endpoint == options.embeddings_endpoint:
        raise InputError("the LLM and embeddings endpoints need different names")
    if not re.match(r"^[\w.:=+@-]{1,128}$", options.deployment):
        raise InputError(f"deployment name {options.deployment!r} is not a valid tag value")
    for flag, count in (
        ("llm", options.llm_instance_count),
        ("embeddings", options.embeddings_instance_count),
    ):
        if count is not None and count < 1:
            raise InputError(f"--{flag}-instance-count {count}: an endpoint needs at least 1 instance")
    for flag, seconds in (
        ("scale-in-cooldown", options.scale_in_cooldown_s),
        ("scale-out-cooldown", options.scale_out_cooldown_s),
    ):
        if seconds < 0:
            raise InputError(f"--{flag} {seconds}: a cooldown is 0 or more seconds")
    for instance_type in (options.llm_instance_type, options.embeddings_instance_type):
        if not instance_type.startswith("ml."):
            raise InputError(f"instance type {instance_type!r} should look like ml.g5.4xlarge")
    if options.embeddings_container not in EMBEDDINGS_CONTAINERS:
        raise InputError(
            f"embeddings container {options.embeddings_container!r} is not one of "
            f"{', '.join(EMBEDDINGS_CONTAINERS)}"
        )
    if options.embeddings_workers is not None:
        if options.embeddings_container == "tei":
            raise InputError(
                "--embeddings-workers applies to the huggingface container; TEI batches concurrent "
                "requests itself: leave it out"
            )
        if options.embeddings_workers < 1:
            raise InputError(f"--embeddings-workers {options.embeddings_workers}: give 1 or more")
    if options.role_arn and not _ROLE_RE.match(options.role_arn):
        raise InputError(
            f"IAM role {options.role_arn!r} is not a role ARN (arn:aws:iam::<account>:role/<name>)"
        )


def _llm_model(options: DeployOptions, name: str, resolve_jumpstart: bool) -> tuple[ModelSpec, LLMKind]:
    """The LLM's model spec and its `llm_kind` for the config file."""
    if options.jumpstart_model_id:
        if not resolve_jumpstart:
            note = "resolved at deploy time from JumpStart's specs in S3 (needs network and credentials)"
            return ModelSpec(name, options.jumpstart_model_id, None, image_note=note), "jumpstart-chat"
        art = images.resolve_jumpstart(options.jumpstart_model_id, options.region, options.llm_instance_type)
        model = ModelSpec(
            name, options.jumpstart_model_id, art.image, art.environment, model_data=art.model_data
        )
        return model, "jumpstart-chat"
    gpus = images.gpu_count(options.region, options.llm_instance_type) or 1
    env = {
        "HF_MODEL_ID": options.llm_model_id,
        "SM_NUM_GPUS": str(gpus),
        "MAX_INPUT_LENGTH": "3072",
        "MAX_TOTAL_TOKENS": "4096",
    }
    secrets = (
        dict.fromkeys(("HUGGING_FACE_HUB_TOKEN", "HF_TOKEN"), options.hf_token) if options.hf_token else {}
    )
    image = images.resolve_tgi_image(options.region, options.llm_instance_type, options.tgi_version)
    return ModelSpec(name, options.llm_model_id, image, env, secrets), "tgi"


def _embeddings_container(options: DeployOptions) -> tuple[str, dict[str, str]]:
    """Image and environment of the embeddings model for the chosen container."""
    if options.embeddings_container == "tei":
        from sagerag.adapters.tei import TEI_MAX_CLIENT_BATCH_SIZE  # here: the adapters load LangChain

        image = images.resolve_tei_image(
            options.region, options.embeddings_instance_type, options.tei_version
        )
        # TEI on SageMaker reads the model from HF_MODEL_ID; the batch cap is stated so that it is the
        # one TEIContentHandler batches for.
        return image, {
            "HF_MODEL_ID": options.embeddings_model_id,
            "MAX_CLIENT_BATCH_SIZE": str(TEI_MAX_CLIENT_BATCH_SIZE),
        }
    image = images.resolve_hf_inference_image(
        options.region, options.embeddings_instance_type, options.hf_inference_version
    )
    env = {"HF_MODEL_ID": options.embeddings_model_id, "HF_TASK": "feature-extraction"}
    # The toolkit's model server starts one worker per GPU (one on ml.g5.xlarge), and a worker spends ~45x
    # its forward pass writing the token-level JSON on one CPU (docs/benchmarks.md): one worker per vCPU
    # lets every vCPU write. On CPU instances that is the server's own default.
    workers = options.embeddings_workers or images.vcpu_count(options.embeddings_instance_type)
    if workers:
        env[MODEL_SERVER_WORKERS_ENV] = str(workers)
    return image, env


def _limits(
    flag: str, count: int | None, low: int | None, high: int | None, target: float, options: DeployOptions
) -> tuple[int, ScalingSpec | None]:
    """The starting instance count and the autoscaling spec (None when fixed) of one endpoint.

    `flag` is the CLI's option prefix (`llm`, `embeddings`), so each message names the option to change.
    """
    floor = low if low is not None else (count if count is not None else scaling.DEFAULT_MIN_INSTANCES)
    ceiling = high if high is not None else max(floor, count or floor)
    if floor < 1:
        raise InputError(
            f"--{flag}-min-instances {floor}: an endpoint of plain production variants (what sagerag deploys) "
            "cannot scale to zero, SageMaker allows that only for endpoints hosting inference components; "
            "use 1 or more"
        )
    if ceiling < floor:
        raise InputError(
            f"--{flag}-max-instances {ceiling} is below the minimum {floor} (--{flag}-min-instances, else "
            f"--{flag}-instance-count; --min-instances/--max-instances set both endpoints): "
            "raise the maximum or lower the minimum"
        )
    start = count if count is not None else floor
    if not floor <= start <= ceiling:
        raise InputError(
            f"--{flag}-instance-count {start} is outside the autoscaling range {floor}..{ceiling} "
            f"(--{flag}-min-instances..--{flag}-max-instances); start within it or omit it"
        )
    if ceiling == floor:
        return start, None
    if not target > 0:
        raise InputError(
            f"--{flag}-target-invocations {target}: the target is invocations per instance per minute, above 0"
        )
    spec = ScalingSpec(floor, ceiling, target, options.scale_in_cooldown_s, options.scale_out_cooldown_s)
    return start, spec


def build_plan(options: DeployOptions, *, resolve_jumpstart: bool = False) -> DeployPlan:
    """Turn options into a plan; Hugging Face images resolve offline, JumpStart only if asked."""
    _validate(options)
    llm_count, llm_scaling = _limits(
        "llm",
        options.llm_instance_count,
        options.llm_min_instances,
        options.llm_max_instances,
        options.llm_target_invocations,
        options,
    )
    emb_count, emb_scaling = _limits(
        "embeddings",
        options.embeddings_instance_count,
        options.embeddings_min_instances,
        options.embeddings_max_instances,
        options.embeddings_target_invocations,
        options,
    )
    suffix = options.name_suffix or time.strftime("%Y%m%d-%H%M%S", time.gmtime())
    llm_name = _resource_name(options.llm_endpoint, suffix)
    llm_model, llm_kind = _llm_model(options, llm_name, resolve_jumpstart)
    emb_name = _resource_name(options.embeddings_endpoint, suffix)
    emb_image, emb_env = _embeddings_container(options)
    warnings: list[str] = []
    if not options.role_arn:
        warnings.append(f"no IAM role: pass --role or set {ROLE_ENV} (required to deploy)")
    if (
        not options.jumpstart_model_id
        and options.llm_model_id.startswith("meta-llama/")
        and not options.hf_token
    ):
        warnings.append(
            f"{options.llm_model_id} is gated on the Hugging Face Hub: set HF_TOKEN, or the container cannot "
            "download it"
        )
    return DeployPlan(
        deployment=options.deployment,
        region=options.region,
        role_arn=options.role_arn,
        llm_kind=llm_kind,
        embeddings_kind=EMBEDDINGS_CONTAINERS[options.embeddings_container],
        endpoints=(
            PlannedEndpoint(
                "llm",
                options.llm_endpoint,
                llm_name,
                llm_model,
                options.llm_instance_type,
                llm_count,
                LLM_STARTUP_TIMEOUT_S,
                llm_scaling,
            ),
            PlannedEndpoint(
                "embeddings",
                options.embeddings_endpoint,
                emb_name,
                ModelSpec(emb_name, options.embeddings_model_id, emb_image, emb_env),
                options.embeddings_instance_type,
                emb_count,
                scaling=emb_scaling,
            ),
        ),
        warnings=tuple(warnings),
    )
