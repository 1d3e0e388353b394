"""Create and remove the two SageMaker endpoints sagerag needs (an LLM and MiniLM).

The Pinecone RAG-on-SageMaker tutorial deployed them by hand and never deleted them, so GPU endpoints kept billing. Here
`plan.build_plan` turns options into a `DeployPlan` (no AWS calls, no credentials), `images` resolves the
container images with the SageMaker SDK, and `aws` applies a plan, tags everything it creates, rolls back
on failure and tears down by tag.
"""

from sagerag.deploy.aws import (
    DeployError,
    DeployResult,
    ManagedResource,
    apply_plan,
    find_managed,
    make_client,
    teardown,
)
from sagerag.deploy.plan import (
    DEFAULT_DEPLOYMENT,
    DeployOptions,
    DeployPlan,
    EndpointSpec,
    ModelSpec,
    build_plan,
)

__all__ = [
    "DEFAULT_DEPLOYMENT",
    "DeployError",
    "DeployOptions",
    "DeployPlan",
    "DeployResult",
    "EndpointSpec",
    "ManagedResource",
    "ModelSpec",
    "apply_plan",
    "build_plan",
    "find_managed",
    "make_client",
    "teardown",
]
