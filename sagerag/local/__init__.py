"""The embedded default: SageMaker Runtime and Pinecone APIs served on loopback, offline.

Nothing outside `sagerag.local` depends on it except `pipeline.py`, which chooses local or remote.
"""

from sagerag.local.faults import FaultConfig
from sagerag.local.runtime import LocalRuntime
from sagerag.local.runtime_app import DEFAULT_ENDPOINTS, EndpointSpec

__all__ = ["DEFAULT_ENDPOINTS", "EndpointSpec", "FaultConfig", "LocalRuntime"]
