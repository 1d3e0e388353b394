"""Scale-out of a deployed endpoint: the Application Auto Scaling target and policy, as plain data.

A SageMaker endpoint scales through Application Auto Scaling: its production variant is registered as a
scalable target (`endpoint/<name>/variant/<variant>`, dimension `sagemaker:variant:DesiredInstanceCount`)
and a target-tracking policy keeps `SageMakerVariantInvocationsPerInstance` (invocations per instance per
minute) near a target value. This module only describes that (no AWS call, nothing heavy imported), so
`deploy --dry-run` can print it; `aws` registers, finds and removes it.

The default target values follow the method of AWS's guide "Load testing your auto scaling configuration"
(SageMaker developer guide, endpoint-scaling-loadtest): target = MAX_RPS x SAFETY_FACTOR x 60, where
MAX_RPS is the peak requests per second one instance sustains before latency climbs, and SAFETY_FACTOR
starts at the recommended 0.5. MAX_RPS is not measured here (it needs the real instance under load), so the
defaults assume one and say which; load-test and pass `--llm-target-invocations` /
`--embeddings-target-invocations`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

NAMESPACE = "sagemaker"
DIMENSION = "sagemaker:variant:DesiredInstanceCount"
METRIC = "SageMakerVariantInvocationsPerInstance"
VARIANT = "AllTraffic"
"""The one production variant sagerag's endpoint configs have."""
POLICY_NAME = "sagerag-invocations"
"""One per scalable target; the resource id already names the endpoint."""

SAFETY_FACTOR = 0.5
"""AWS's recommended starting safety factor (endpoint-scaling-loadtest)."""
LLM_ASSUMED_MAX_RPS = 1.0
"""Assumed peak for Llama-2-7B on TGI on one ml.g5.4xlarge (one A10G): about one RAG answer (~250 new
tokens) completed per second with continuous batching. An assumption to replace with a load test."""
EMBEDDINGS_ASSUMED_MAX_RPS = 2.0
"""Assumed peak for MiniLM on ml.m5.xlarge (4 vCPU), for sagerag's ingest requests of 32 passages each:
about 0.5 s of CPU per request. Single-question requests are much cheaper, so this errs towards scaling out."""
DEFAULT_LLM_TARGET_INVOCATIONS = LLM_ASSUMED_MAX_RPS * SAFETY_FACTOR * 60  # 30 per instance per minute
DEFAULT_EMBEDDINGS_TARGET_INVOCATIONS = EMBEDDINGS_ASSUMED_MAX_RPS * SAFETY_FACTOR * 60  # 60
DEFAULT_SCALE_OUT_COOLDOWN_S = 300
"""Application Auto Scaling's own default for SageMaker variants."""
DEFAULT_SCALE_IN_COOLDOWN_S = 600
"""Longer than the default 300 s: a new LLM instance takes ~10 minutes to load 13 GB of weights, so
removing one on a short lull and adding it back costs more than it saves."""
DEFAULT_MIN_INSTANCES = 1
DEFAULT_MAX_INSTANCES = 1
"""max == min: a fixed instance count, nothing registered with Application Auto Scaling."""

_RESOURCE_RE = re.compile(r"^endpoint/(?P<endpoint>[^/]+)/variant/(?P<variant>[^/]+)$")


def resource_id(endpoint: str, variant: str = VARIANT) -> str:
    """Application Auto Scaling's id of an endpoint's production variant."""
    return f"endpoint/{endpoint}/variant/{variant}"


def parse_resource_id(value: str) -> tuple[str, str] | None:
    """(endpoint, variant) of a SageMaker variant's resource id, None for anything else."""
    match = _RESOURCE_RE.match(value)
    return (match["endpoint"], match["variant"]) if match else None


@dataclass(frozen=True)
class ScalingSpec:
    """Instance limits and the target-tracking policy of one endpoint."""

    min_instances: int
    max_instances: int
    target_invocations: float
    """SageMakerVariantInvocationsPerInstance to hold: invocations per instance per minute."""
    scale_in_cooldown_s: int = DEFAULT_SCALE_IN_COOLDOWN_S
    scale_out_cooldown_s: int = DEFAULT_SCALE_OUT_COOLDOWN_S

    def policy_configuration(self) -> dict[str, Any]:
        """PutScalingPolicy's TargetTrackingScalingPolicyConfiguration."""
        return {
            "TargetValue": float(self.target_invocations),
            "PredefinedMetricSpecification": {"PredefinedMetricType": METRIC},
            "ScaleInCooldown": self.scale_in_cooldown_s,
            "ScaleOutCooldown": self.scale_out_cooldown_s,
        }

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form for `deploy --dry-run --json`."""
        return {
            "min_instances": self.min_instances,
            "max_instances": self.max_instances,
            "policy_name": POLICY_NAME,
            "metric": METRIC,
            "target_invocations_per_instance_per_minute": self.target_invocations,
            "scale_in_cooldown_s": self.scale_in_cooldown_s,
            "scale_out_cooldown_s": self.scale_out_cooldown_s,
        }
