"""The SageMaker Runtime API on loopback: real MiniLM and SmolLM2 behind the real container formats.

Names load on first use: a client of a running serve needs only `server.local_runtime_client`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports

if TYPE_CHECKING:
    from sagerag.local.sagemaker.app import DEFAULT_ENDPOINTS, LocalEndpoint
    from sagerag.local.sagemaker.faults import FaultConfig
    from sagerag.local.sagemaker.server import LocalRuntime

_LAZY = {
    "DEFAULT_ENDPOINTS": "sagerag.local.sagemaker.app",
    "LocalEndpoint": "sagerag.local.sagemaker.app",
    "FaultConfig": "sagerag.local.sagemaker.faults",
    "LocalRuntime": "sagerag.local.sagemaker.server",
}

__all__ = [
    "DEFAULT_ENDPOINTS",
    "FaultConfig",
    "LocalEndpoint",
    "LocalRuntime",
]


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
