"""Vector stores: Pinecone on the current SDK, for Pinecone cloud and the local stand-in alike."""

from sagerag.stores._index import ensure_index
from sagerag.stores.pinecone_store import PineconeStore

__all__ = ["PineconeStore", "ensure_index"]
