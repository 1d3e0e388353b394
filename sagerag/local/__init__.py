"""The embedded default: SageMaker Runtime and Pinecone APIs served on loopback, offline.

Two emulators, one per service: `sagemaker/` (the Runtime API backed by real small models) and
`pinecone/` (the Pinecone API backed by SQLite). Nothing outside `sagerag.local` depends on it except
`pipeline.py`, which chooses local or remote.
"""

from sagerag.local.pinecone import LocalPinecone
from sagerag.local.sagemaker import DEFAULT_ENDPOINTS, FaultConfig, LocalEndpoint, LocalRuntime

__all__ = ["DEFAULT_ENDPOINTS", "FaultConfig", "LocalEndpoint", "LocalPinecone", "LocalRuntime"]
