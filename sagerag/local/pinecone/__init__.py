"""The Pinecone API on loopback: control and data plane over a persistent SQLite store."""

from sagerag.local.pinecone.server import DEFAULT_API_KEY, LocalPinecone, default_api_key

__all__ = ["DEFAULT_API_KEY", "LocalPinecone", "default_api_key"]
