"""Container image URIs, resolved by the SageMaker SDK (`sagemaker-core`, the v3 line) for a region.

Image URIs differ by region (registry account) and by processor (cpu/gpu), and their tags change with
every container release; the SDK ships the table AWS maintains, so we ask it rather than hard-code URIs.
The Hugging Face images resolve offline from that table. JumpStart models do not: their specs live in an
S3 bucket, so `resolve_jumpstart` needs network access and credentials, and a dry run says so instead of
guessing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from types import ModuleType
from typing import Any

from sagerag.errors import ConfigurationError, SageRagError

TGI_FRAMEWORK = "huggingface-llm"
HF_INFERENCE_FRAMEWORK = "huggingface"
TEI_FRAMEWORKS = {"gpu": "huggingface-tei", "cpu": "huggingface-tei-cpu"}
"""Text Embeddings Inference ships one image per processor; the SDK keeps them as two frameworks."""
DEFAULT_HF_TRANSFORMERS_VERSION = "4.51.3"
"""Transformers version of the Hugging Face inference (pytorch) container used for MiniLM."""
INSTALL_HINT = "the deploy commands need the SageMaker SDK: pip install 'sagerag[deploy]'"


def _sdk_module(name: str) -> ModuleType:
    """Import a `sagemaker.core` module lazily, so the core install works without the deploy extra."""
    import importlib

    try:
        return importlib.import_module(f"sagemaker.core.{name}")
    except ImportError as exc:
        raise ConfigurationError(f"{INSTALL_HINT} ({exc})") from None


def _retrieve(framework: str, region: str, **kwargs: Any) -> str:
    image_uris = _sdk_module("image_uris")
    try:
        uri = image_uris.retrieve(framework, region, image_scope="inference", **kwargs)
    except (ValueError, KeyError, NotImplementedError) as exc:
        raise ConfigurationError(f"cannot resolve the {framework} image for {region}: {exc}") from None
    return str(uri)


def tgi_versions() -> list[str]:
    """TGI container versions the installed SDK knows."""
    return [str(v) for v in _sdk_module("image_uris").list_versions(TGI_FRAMEWORK, "inference")]


def resolve_tgi_image(region: str, instance_type: str, version: str | None = None) -> str:
    """The Hugging Face LLM (TGI) container; `version=None` takes the newest the SDK knows."""
    return _retrieve(TGI_FRAMEWORK, region, version=version, instance_type=instance_type)


def _hf_base_framework(version: str) -> tuple[str, str]:
    """(base framework, python version) of a Hugging Face inference container version."""
    config = _sdk_module("image_uris").config_for_framework(HF_INFERENCE_FRAMEWORK)["inference"]
    concrete = config.get("version_aliases", {}).get(version, version)
    version_config = config["versions"].get(concrete)
    if version_config is None:
        known = ", ".join(config["versions"])
        raise ConfigurationError(
            f"unknown Hugging Face inference container version {version}; known: {known}"
        )
    bases = sorted(k for k in version_config if k.startswith("pytorch"))
    if not bases:
        raise ConfigurationError(f"Hugging Face inference container {version} has no PyTorch image")
    return bases[-1], str(version_config[bases[-1]]["py_versions"][-1])


def resolve_hf_inference_image(
    region: str, instance_type: str, version: str = DEFAULT_HF_TRANSFORMERS_VERSION
) -> str:
    """The Hugging Face inference toolkit container (PyTorch) for `version` of transformers."""
    base, py_version = _hf_base_framework(version)
    return _retrieve(
        HF_INFERENCE_FRAMEWORK,
        region,
        version=version,
        base_framework_version=base,
        py_version=py_version,
        instance_type=instance_type,
    )


def resolve_tei_image(region: str, instance_type: str, version: str | None = None) -> str:
    """The Text Embeddings Inference container: the GPU image on GPU instances, else the CPU one.

    The SDK tells the processor from the instance type and refuses the image that does not match it.
    """
    try:
        return _retrieve(TEI_FRAMEWORKS["gpu"], region, version=version, instance_type=instance_type)
    except ConfigurationError:
        return _retrieve(TEI_FRAMEWORKS["cpu"], region, version=version, instance_type=instance_type)


def gpu_count(region: str, instance_type: str) -> int | None:
    """GPUs on an instance type per the SDK's table (None for CPU types or unknown ones)."""
    try:
        info = _sdk_module("instance_types_gpu_info").retrieve(region)
    except (ValueError, OSError):
        return None
    count = info.get(instance_type, {}).get("Count")
    return int(count) if count else None


_SIZE_RE = re.compile(r"^ml\.[a-z0-9-]+\.(?:(?P<n>\d+)?xlarge|(?P<large>large))$")


def vcpu_count(instance_type: str) -> int | None:
    """vCPUs of an instance type from its size, EC2's naming rule: large 2, xlarge 4, Nxlarge 4N.

    None for sizes the rule does not cover (medium, metal). The SageMaker SDK has GPU counts but no vCPU
    table; the rule holds for the families SageMaker hosts (m, c, r, g, p, inf, trn)."""
    match = _SIZE_RE.match(instance_type)
    if not match:
        return None
    if match["large"]:
        return 2
    return 4 * int(match["n"] or 1)


@dataclass(frozen=True)
class JumpStartArtifacts:
    """What a JumpStart model needs in CreateModel: image, model data and default environment."""

    image: str
    model_data: str
    environment: dict[str, str]


def resolve_jumpstart(
    model_id: str, region: str, instance_type: str, version: str = "*"
) -> JumpStartArtifacts:
    """Resolve a JumpStart model through the SDK; this downloads its specs from S3 (network, credentials)."""
    image_uris = _sdk_module("image_uris")
    model_uris = _sdk_module("model_uris")
    env_vars = _sdk_module("environment_variables")
    common = {"model_id": model_id, "model_version": version, "region": region}
    try:
        image = image_uris.retrieve(
            None,
            region,
            instance_type=instance_type,
            image_scope="inference",
            model_id=model_id,
            model_version=version,
        )
        data = model_uris.retrieve(model_scope="inference", instance_type=instance_type, **common)
        env = env_vars.retrieve_default(instance_type=instance_type, **common)
    except Exception as exc:  # the SDK raises many types here (botocore, its own, ValueError)
        raise SageRagError(  # the network or S3 failed, not a setting: exit 1
            f"cannot resolve JumpStart model {model_id} in {region}: its specs are fetched from S3, "
            f"which needs network access and AWS credentials ({type(exc).__name__}: {exc})"
        ) from None
    return JumpStartArtifacts(str(image), str(data), {str(k): str(v) for k, v in (env or {}).items()})
