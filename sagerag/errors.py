"""sagerag's own exceptions, and the policy for everyone else's.

Policy: errors raised by the services stay as their client library raised them, everywhere in the
library (botocore's ``ModelError``/``ValidationError``, the pinecone SDK's ``UnauthorizedError``, ...), so
callers keep catching what the SDKs document; the library only adds context such as the endpoint name.
The CLI (``sagerag.cli._errors``) is the one place that turns the known configuration mistakes among them
(a rejected Pinecone key, a missing endpoint, no AWS credentials) into one line naming the setting.
What is sagerag's own:

    SageRagError                  base class; the CLI prints its message without a traceback
    ├── ConfigurationError        bad settings: unknown prompt, unreachable URL, refused bind address
    │   ├── IndexMismatchError    an existing index has another dimension or metric than asked for
    │   ├── SparseStatsMismatchError  stored sparse vectors were encoded with other BM25 statistics
    │   ├── ModelUnavailableError a local model package is not installed or cannot be loaded
    │   ├── DataDirBusyError      another `sagerag serve` already serves this data directory
    │   └── DataFileError         a local data file (store, ledger) is corrupt or not writable
    ├── InputError                bad user input: a file that cannot be read or parsed, an empty question
    │   ├── DocumentTooLargeError one document cannot fit a single request or response, or Pinecone's
    │   │                         metadata limit
    │   └── OutputInUseError      another run is writing the same output file
    ├── EndpointOutputError       an endpoint answered with a body its content handler cannot read
    │   └── EmbeddingOutputError  an embedding output has a shape the handler cannot pool
    ├── DeployError               a deploy failed; `.left` names what still exists
    │   ├── EndpointFailedError   an endpoint reached `Failed` (SageMaker's FailureReason in the message)
    │   └── WaitTimeoutError      endpoints still not InService when the wait ran out
    ├── DiskFullError             a local data file could not be written for lack of space (exit 1)
    └── Interrupted               the user stopped a command (Ctrl-C); says what was kept (exit 130)

Signals caught inside sagerag, never raised to callers (the local servers and the lock files):

    LockBusy                      a lock file is held by another live process (turned into DataDirBusyError,
                                  OutputInUseError or a wait)
    ContainerError                a local model container answered an error status (served as ModelError)
    ApiProblem                    a local Pinecone request refused as Pinecone refuses it (served as its body)
    FilterError (ValueError)      a metadata filter Pinecone would reject (served as 400 INVALID_ARGUMENT)
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any


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


class SparseStatsMismatchError(ConfigurationError):
    """A hybrid query would mix BM25 statistics: the stored vectors were encoded with others."""


class ModelUnavailableError(ConfigurationError):
    """A local model cannot be loaded (package missing, or it would need a download)."""


class DataDirBusyError(ConfigurationError):
    """One process owns a data directory at a time (one serve per dir); name the holder."""


class DataFileError(ConfigurationError):
    """A local store or ledger file that cannot be used as it is: name the file and the remedy."""


class OutputInUseError(InputError):
    """Two runs appending to one output file would answer everything twice."""


class DiskFullError(SageRagError):
    """No space left for a local data file; what was stored before is intact."""


class Interrupted(SageRagError):
    """Ctrl-C: the message says what was kept and how to resume."""


class EndpointOutputError(SageRagError):
    """An endpoint answered with a body (or tool call) the adapter cannot read: name the endpoint."""


class EmbeddingOutputError(EndpointOutputError):
    """The endpoint's embedding output has a shape the handler cannot pool."""


class DeployError(SageRagError):
    """A deploy that failed; `left` lists resources that still exist (empty after a clean rollback)."""

    def __init__(self, message: str, left: Iterable[Any] = ()) -> None:
        super().__init__(message)
        self.left = list(left)


class EndpointFailedError(DeployError):
    """An endpoint reached `Failed` (SageMaker's FailureReason is in the message)."""


class WaitTimeoutError(DeployError):
    """Endpoints still not InService when the timeout ran out."""


class LockBusy(Exception):
    """The lock is held by another live process; `holder` is what that process wrote (may be empty)."""

    def __init__(self, path: Path, holder: dict[str, Any]) -> None:
        super().__init__(f"{path} is held by pid {holder.get('pid', '?')}")
        self.path = path
        self.holder = holder


class ContainerError(Exception):
    """What the model container answered with an error status (SageMaker reports it as ModelError)."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


class ApiProblem(Exception):
    """An error answered as Pinecone answers it: HTTP status, gRPC-style code and a message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message


class FilterError(ValueError):
    """A filter that Pinecone would reject with 400 INVALID_ARGUMENT."""
