"""LangChain's standard vector-store suite (sync and async) for PineconeStore against LocalPinecone."""

from __future__ import annotations

import itertools
from collections.abc import Iterator
from typing import Any

import pytest
from langchain_core.vectorstores import VectorStore
from langchain_tests.integration_tests import VectorStoreIntegrationTests

from sagerag.stores import PineconeStore
from tests.support import make_index

_namespaces = itertools.count()


@pytest.fixture(scope="module")
def standard_index(pc: Any) -> Any:
    return make_index(pc, dimension=6, prefix="standard")


class TestPineconeStoreStandard(VectorStoreIntegrationTests):
    @pytest.fixture
    def vectorstore(self, standard_index: Any) -> Iterator[VectorStore]:
        store = PineconeStore(
            standard_index, self.get_embeddings(), namespace=f"ns-{next(_namespaces)}", metric="cosine"
        )
        try:
            yield store
        finally:
            store.delete(delete_all=True)
