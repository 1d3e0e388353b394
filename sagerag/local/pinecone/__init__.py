"""The Pinecone API on loopback: control and data plane over a persistent SQLite store.

Names load on first use (the server module imports the store).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from sagerag.local.pinecone.server import DEFAULT_API_KEY, LocalPinecone, default_api_key

_LAZY = {
    "DEFAULT_API_KEY": "sagerag.local.pinecone.server",
    "LocalPinecone": "sagerag.local.pinecone.server",
    "default_api_key": "sagerag.local.pinecone.server",
}

__all__ = [
    "DEFAULT_API_KEY",
    "LocalPinecone",
    "default_api_key",
]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        value = getattr(importlib.import_module(_LAZY[name]), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(__all__)
