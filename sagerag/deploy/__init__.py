"""Create and remove the two SageMaker endpoints sagerag needs (an LLM and MiniLM).

The Pinecone RAG-on-SageMaker tutorial deployed them by hand and never deleted them, so GPU endpoints kept billing. Here
`plan.build_plan` turns options into a `DeployPlan` (no AWS calls, no credentials), `images` resolves the
container images with the SageMaker SDK, `scaling` describes the optional Application Auto Scaling target
and policy, and `aws` applies a plan, tags everything it creates, rolls back on failure and tears down by
tag (autoscaling first).
"""

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports
from sagerag.deploy.plan import (
    DEFAULT_DEPLOYMENT,
    DeployOptions,
    DeployPlan,
    ModelSpec,
    PlannedEndpoint,
    build_plan,
)
from sagerag.deploy.scaling import ScalingSpec
from sagerag.errors import DeployError

if TYPE_CHECKING:
    from sagerag.deploy.aws import (
        DeployResult,
        ManagedResource,
        ScalingState,
        apply_plan,
        find_managed,
        find_scaling,
        make_client,
        teardown,
    )

_LAZY = {
    name: "sagerag.deploy.aws"
    for name in (
        "DeployResult",
        "ManagedResource",
        "ScalingState",
        "apply_plan",
        "find_managed",
        "find_scaling",
        "make_client",
        "teardown",
    )
}
"""The boto3 half loads on first use, so reading the plan's defaults (the CLI does) stays quick."""


__all__ = [
    "DEFAULT_DEPLOYMENT",
    "DeployError",
    "DeployOptions",
    "DeployPlan",
    "DeployResult",
    "ManagedResource",
    "ModelSpec",
    "PlannedEndpoint",
    "ScalingSpec",
    "ScalingState",
    "apply_plan",
    "build_plan",
    "find_managed",
    "find_scaling",
    "make_client",
    "teardown",
]

__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
