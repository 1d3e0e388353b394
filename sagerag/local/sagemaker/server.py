"""`LocalRuntime`: the SageMaker Runtime API served in-process on loopback by real small models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, NamedTuple

from sagerag.adapters.client import DEFAULT_TIMEOUT, make_runtime_client, runtime_config
from sagerag.local._server import LOOPBACK, BackgroundServer
from sagerag.local.sagemaker.app import MAX_RESPONSE_BYTES, LocalEndpoint, RuntimeApp
from sagerag.local.sagemaker.faults import FaultConfig, RuntimeCounters
from sagerag.local.sagemaker.models import ModelRegistry, shared_registry

if TYPE_CHECKING:
    from sagerag.local.sagemaker.simulated import RemoteTiming, SimulatedFeatureExtraction
    from sagerag.local.sagemaker.simulated_generation import GenerationTiming, SimulatedTextGeneration

LOCAL_REGION = "us-east-1"
LOCAL_CREDENTIALS = ("local", "local")
"""boto3 signs every request; the local server ignores the signature, so any key pair works."""


def local_runtime_client(endpoint_url: str, config: Any = None, timeout: float = DEFAULT_TIMEOUT) -> Any:
    """A `sagemaker-runtime` client for a local runtime at `endpoint_url` (this process's or a `serve`)."""
    return make_runtime_client(
        LOCAL_REGION, endpoint_url, timeout=timeout, config=config, static_credentials=LOCAL_CREDENTIALS
    )


class SimulatedEndpoints(NamedTuple):
    """The containers `LocalRuntime.simulate_remote` installed (their counters say how they were used)."""

    embeddings: SimulatedFeatureExtraction
    generation: SimulatedTextGeneration


class LocalRuntime:
    """Start with `with LocalRuntime() as rt:`; `rt.endpoint_url` and `rt.client()` point boto3 at it.

    Models load lazily on the first request and are shared by every LocalRuntime in the process.
    """

    def __init__(
        self,
        host: str = LOOPBACK,
        port: int | None = None,
        endpoints: dict[str, LocalEndpoint] | None = None,
        faults: FaultConfig | None = None,
        registry: ModelRegistry | None = None,
        allow_remote: bool = False,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ):
        self.app = RuntimeApp(registry or shared_registry(), endpoints, faults, max_response_bytes)
        self._server = BackgroundServer(self.app.app, host, port, allow_remote)

    @property
    def url(self) -> str:
        """The server's base URL, `http://127.0.0.1:PORT` (both emulators have `url`)."""
        return self._server.url

    @property
    def endpoint_url(self) -> str:
        """`url` under boto3's name for it: `boto3.client("sagemaker-runtime", endpoint_url=...)`."""
        return self.url

    @property
    def faults(self) -> FaultConfig:
        return self.app.faults

    @faults.setter
    def faults(self, value: FaultConfig) -> None:
        self.app.faults = value

    @property
    def counters(self) -> RuntimeCounters:
        """Faults served and requests refused (e.g. responses over the 6 MB limit) since start."""
        return self.app.counters

    def install(self, name: str, container: Any) -> None:
        """Serve endpoint `name` with a ready container (see `sagerag.local.sagemaker.simulated`)."""
        self.app.install(name, container)

    def simulate_remote(
        self,
        embeddings: RemoteTiming | None = None,
        generation: GenerationTiming | None = None,
        *,
        embeddings_endpoint: str = "minilm",
        llm_endpoint: str = "llama2",
    ) -> SimulatedEndpoints:
        """Serve the embeddings and TGI endpoints as remote GPU endpoints would: the local models' real
        answers, recorded once, with modelled timing (defaults: MiniLM and Llama-2-7b on g5 instances)."""
        from sagerag.local.sagemaker.containers import FeatureExtraction
        from sagerag.local.sagemaker.simulated import RemoteTiming, SimulatedFeatureExtraction
        from sagerag.local.sagemaker.simulated_generation import GenerationTiming, SimulatedTextGeneration

        registry = self.app.registry
        simulated = SimulatedEndpoints(
            SimulatedFeatureExtraction(
                FeatureExtraction(registry.get("minilm")), embeddings or RemoteTiming()
            ),
            SimulatedTextGeneration(registry.get("smollm2"), generation or GenerationTiming()),
        )
        self.install(embeddings_endpoint, simulated.embeddings)
        self.install(llm_endpoint, simulated.generation)
        return simulated

    def client(self, **config: Any) -> Any:
        """A boto3 `sagemaker-runtime` client for this server (timeouts and retries as sagerag sets them)."""
        return local_runtime_client(self.endpoint_url, runtime_config(**config) if config else None)

    def activity(self) -> tuple[int, int]:
        """(requests served, connections open): see `BackgroundServer.activity` (idle shutdown of serve)."""
        return self._server.activity()

    def start(self) -> LocalRuntime:
        self._server.start()
        return self

    def stop(self) -> None:
        self._server.stop()

    def __enter__(self) -> LocalRuntime:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
