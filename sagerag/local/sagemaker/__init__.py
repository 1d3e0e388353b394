"""The SageMaker Runtime API on loopback: real MiniLM and SmolLM2 behind the real container formats."""

from sagerag.local.sagemaker.app import DEFAULT_ENDPOINTS, LocalEndpoint
from sagerag.local.sagemaker.faults import FaultConfig
from sagerag.local.sagemaker.server import LocalRuntime

__all__ = ["DEFAULT_ENDPOINTS", "FaultConfig", "LocalEndpoint", "LocalRuntime"]
