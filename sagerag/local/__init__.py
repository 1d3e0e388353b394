"""The embedded default: SageMaker Runtime and Pinecone APIs served on loopback, offline.

Two emulators, one per service: `sagemaker/` (the Runtime API backed by real small models) and
`pinecone/` (the Pinecone API backed by SQLite). Nothing outside `sagerag.local` depends on it except
`pipeline.py`, which chooses local or remote. Names load on first use, so a command that talks to a
running serve (or one that only needs `default_api_key`) does not import both servers.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports

if TYPE_CHECKING:
    from sagerag.local.pinecone import LocalPinecone
    from sagerag.local.sagemaker import DEFAULT_ENDPOINTS, FaultConfig, LocalEndpoint, LocalRuntime

_LAZY = {
    "LocalPinecone": "sagerag.local.pinecone",
    "DEFAULT_ENDPOINTS": "sagerag.local.sagemaker",
    "FaultConfig": "sagerag.local.sagemaker",
    "LocalEndpoint": "sagerag.local.sagemaker",
    "LocalRuntime": "sagerag.local.sagemaker",
}

__all__ = [
    "DEFAULT_ENDPOINTS",
    "FaultConfig",
    "LocalEndpoint",
    "LocalPinecone",
    "LocalRuntime",
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
