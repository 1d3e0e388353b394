"""sagerag: retrieval-augmented QA over Amazon SageMaker endpoints and Pinecone, with LangChain."""

__version__ = "0.1.0"
