"""sagerag's own exceptions.

Errors raised by the services themselves stay as the client library raised them (botocore's
``ModelError``/``ValidationError``, the pinecone SDK's exceptions), so callers keep catching what the
SDK documents; we only add context such as the endpoint name. What is sagerag's own:

    SageRagError                  base class; the CLI prints its message without a traceback
    ├── ConfigurationError        bad settings: unknown prompt, unreachable URL, refused bind address
    ├── InputError                bad user input: a file that cannot be read or parsed, an empty question
    ├── DocumentTooLargeError     one document cannot fit a single request or Pinecone's metadata limit
    ├── IndexMismatchError        an existing index has another dimension or metric than asked for
    ├── ModelUnavailableError     a local model package is not installed or cannot be loaded
    └── EndpointOutputError       an endpoint answered with a body the adapter cannot read
"""

from __future__ import annotations


class SageRagError(Exception):
    """Base class for errors whose message is meant for the user as is."""


class ConfigurationError(SageRagError):
    """Settings that cannot work: name the setting and how to fix it."""


class InputError(SageRagError):
    """User input that cannot be used: name the input (file, line) and what to do."""


class DocumentTooLargeError(InputError):
    """A single document exceeds a hard service limit and cannot be split by us."""


class IndexMismatchError(ConfigurationError):
    """An existing vector index does not match the embedding model."""


class ModelUnavailableError(ConfigurationError):
    """A local model cannot be loaded (package missing, or it would need a download)."""


class EndpointOutputError(SageRagError):
    """An endpoint answered with a body (or tool call) the adapter cannot read: name the endpoint."""
