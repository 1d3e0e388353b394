"""The Pinecone API on loopback: control and data plane over a persistent SQLite store.

Names load on first use (the server module imports the store).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from sagerag._lazy import lazy_exports

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


__getattr__, __dir__ = lazy_exports(globals(), _LAZY)
