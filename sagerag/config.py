"""Settings from environment variables and an optional `sagerag.toml`.

Precedence: explicit arguments > environment (`SAGERAG_*`) > config file > defaults. With no remote
endpoint or Pinecone host configured, `Settings.is_local` is true and the pipeline starts the embedded
local services. Secrets (the Pinecone API key) are held as `SecretStr` and never rendered.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal, get_args

import tomli_w
from pydantic import SecretStr

from sagerag.errors import ConfigurationError

LLMKind = Literal["tgi", "jumpstart-chat", "messages"]
"""What an LLM endpoint speaks: `tgi` (Hugging Face LLM container, text in and out), `jumpstart-chat`
(JumpStart Llama-2-chat dialogs) or `messages` (the Messages API of TGI >= 1.4 and LMI: OpenAI-style
chat completions with tool calling). The one definition; adapters and the CLI use it."""
LLM_KINDS: tuple[LLMKind, ...] = get_args(LLMKind)

CONFIG_ENV = "SAGERAG_CONFIG"
LOCAL_DEFAULT_PROMPT = "local-brief"
"""The prompt measured best for SmolLM2-135M on the tuning half of the dev set (docs/benchmarks.md)."""
GROUNDING_MODES = ("drop", "flag", "off")
DEFAULT_CONFIG_FILE = "sagerag.toml"


def default_data_dir() -> Path:
    """Where the embedded default keeps its Pinecone data and ingestion records."""
    env = os.environ.get("SAGERAG_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sagerag"


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to wire LLM, embeddings, store and chain."""

    region: str = "us-east-1"
    """AWS region of the SageMaker endpoints."""
    endpoint_url: str | None = None
    """SageMaker Runtime URL override (a local server, a VPC endpoint); None means AWS's own."""
    llm_endpoint: str = "llama2"
    """Name of the text-generation endpoint."""
    llm_kind: LLMKind = "tgi"
    """What the LLM endpoint speaks (see `LLMKind`)."""
    max_new_tokens: int = 256
    """Most tokens the LLM may generate per answer."""
    embeddings_endpoint: str = "minilm"
    """Name of the MiniLM feature-extraction endpoint."""
    embeddings_kind: str = "feature-extraction"
    """`feature-extraction` (per-token vectors, pooled here) or `tei` (pooled by the container)."""
    aws_profile: str | None = None
    """Named AWS profile for credentials, if not the default chain."""
    pinecone_index: str = "sagerag"
    """Pinecone index name."""
    pinecone_namespace: str = ""
    """Pinecone namespace ('' is the default namespace)."""
    pinecone_host: str | None = None
    """Pinecone control-plane host override (a local server); None means Pinecone's cloud."""
    pinecone_api_key: SecretStr | None = None
    """Pinecone API key; read from PINECONE_API_KEY, never printed."""
    data_dir: Path = field(default_factory=default_data_dir)
    """Embedded default's data directory."""
    timeout: float = 60.0
    """Seconds for each network call before giving up."""
    remote: bool = False
    """Set when the user configured remote endpoints explicitly (`SAGERAG_REMOTE=1` / `remote = true`)."""
    retrieval: str = "hybrid"
    """`hybrid` (dense + BM25 sparse in one dotproduct index) or `dense` (MiniLM only)."""
    alpha: float = 0.7
    """Dense weight of a hybrid query (Pinecone's convex combination); chosen on the dev set's tuning half."""
    index_text: str = "question+answer"
    """What a FAQ row's vector encodes: `question+answer` or `answer` (the seed tutorial's choice)."""
    min_score: float | None = None
    """Score gate; None means the calibrated default for the retrieval mode (`chains.abstain`)."""
    loop_guard: bool = True
    """Stop a generation that repeats a sentence or a run of words (`sagerag.chains.guards`)."""
    grounding: str = "drop"
    """Answer sentences the passages do not support: `drop` them, `flag` them only, or `off`."""
    local_prompt: str = LOCAL_DEFAULT_PROMPT
    """Prompt used with the embedded local generator when none is given (real endpoints use `default`)."""

    @property
    def is_local(self) -> bool:
        """True when nothing remote is configured: use the embedded local services."""
        return not (self.remote or self.endpoint_url or self.pinecone_host)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pinecone_api_key"}
        key = "'**********'" if self.pinecone_api_key else "None"
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())}, pinecone_api_key={key})"


_ENV_KEYS: dict[str, str] = {
    "SAGERAG_REGION": "region",
    "AWS_REGION": "region",
    "SAGERAG_ENDPOINT_URL": "endpoint_url",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME": "endpoint_url",
    "SAGERAG_LLM_ENDPOINT": "llm_endpoint",
    "SAGERAG_LLM_KIND": "llm_kind",
    "SAGERAG_EMBEDDINGS_ENDPOINT": "embeddings_endpoint",
    "SAGERAG_EMBEDDINGS_KIND": "embeddings_kind",
    "SAGERAG_MAX_NEW_TOKENS": "max_new_tokens",
    "AWS_PROFILE": "aws_profile",
    "SAGERAG_PINECONE_INDEX": "pinecone_index",
    "SAGERAG_PINECONE_NAMESPACE": "pinecone_namespace",
    "SAGERAG_PINECONE_HOST": "pinecone_host",
    "PINECONE_API_KEY": "pinecone_api_key",
    "SAGERAG_DATA_DIR": "data_dir",
    "SAGERAG_TIMEOUT": "timeout",
    "SAGERAG_REMOTE": "remote",
    "SAGERAG_RETRIEVAL": "retrieval",
    "SAGERAG_ALPHA": "alpha",
    "SAGERAG_INDEX_TEXT": "index_text",
    "SAGERAG_MIN_SCORE": "min_score",
    "SAGERAG_LOOP_GUARD": "loop_guard",
    "SAGERAG_GROUNDING": "grounding",
    "SAGERAG_LOCAL_PROMPT": "local_prompt",
}
# File layout: [sagemaker] region/endpoint_url/llm_endpoint/llm_kind/embeddings_endpoint/embeddings_kind/
# aws_profile, [pinecone] index/namespace/host, [local] data_dir/prompt,
# [retrieval] mode/alpha/index_text/min_score, [answers] loop_guard/grounding, top-level timeout/remote.
_FILE_KEYS: dict[tuple[str, str], str] = {
    ("sagemaker", "region"): "region",
    ("sagemaker", "endpoint_url"): "endpoint_url",
    ("sagemaker", "llm_endpoint"): "llm_endpoint",
    ("sagemaker", "llm_kind"): "llm_kind",
    ("sagemaker", "embeddings_endpoint"): "embeddings_endpoint",
    ("sagemaker", "embeddings_kind"): "embeddings_kind",
    ("sagemaker", "max_new_tokens"): "max_new_tokens",
    ("sagemaker", "aws_profile"): "aws_profile",
    ("pinecone", "index"): "pinecone_index",
    ("pinecone", "namespace"): "pinecone_namespace",
    ("pinecone", "host"): "pinecone_host",
    ("local", "data_dir"): "data_dir",
    ("local", "prompt"): "local_prompt",
    ("answers", "loop_guard"): "loop_guard",
    ("answers", "grounding"): "grounding",
    ("", "timeout"): "timeout",
    ("", "remote"): "remote",
    ("retrieval", "mode"): "retrieval",
    ("retrieval", "alpha"): "alpha",
    ("retrieval", "index_text"): "index_text",
    ("retrieval", "min_score"): "min_score",
}
RETRIEVAL_MODES = ("hybrid", "dense")
INDEX_TEXTS = ("question+answer", "answer")
EmbeddingsKind = Literal["feature-extraction", "tei"]
EMBEDDINGS_KINDS: tuple[EmbeddingsKind, ...] = get_args(EmbeddingsKind)
"""Per-token output (Hugging Face inference toolkit) or pooled output (Text Embeddings Inference)."""


def config_path(path: str | Path | None = None) -> Path:
    """The config file in use: explicit path, else $SAGERAG_CONFIG, else ./sagerag.toml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE).expanduser()


def _coerce(name: str, value: Any, source: str) -> Any:
    try:
        if name == "timeout":
            out = float(value)
            if out <= 0:
                raise ValueError
            return out
        if name == "max_new_tokens":
            count = int(value)
            if count <= 0:
                raise ValueError
            return count
        if name in ("remote", "loop_guard"):
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if name == "data_dir":
            return Path(str(value)).expanduser()
        if name == "pinecone_api_key":
            return SecretStr(str(value))
        if name == "llm_kind" and value not in LLM_KINDS:
            raise ValueError
        if name == "retrieval" and value not in RETRIEVAL_MODES:
            raise ValueError
        if name == "index_text" and value not in INDEX_TEXTS:
            raise ValueError
        if name == "alpha":
            out = float(value)
            if not 0.0 <= out <= 1.0:
                raise ValueError
            return out
        if name == "min_score":
            return float(value)
        if name == "grounding" and value not in GROUNDING_MODES:
            raise ValueError
        if name == "embeddings_kind" and value not in EMBEDDINGS_KINDS:
            raise ValueError
    except (ValueError, TypeError):
        hint = {
            "llm_kind": f"one of {', '.join(LLM_KINDS)}",
            "embeddings_kind": f"one of {', '.join(EMBEDDINGS_KINDS)}",
            "max_new_tokens": "a positive whole number",
            "retrieval": f"one of {', '.join(RETRIEVAL_MODES)}",
            "index_text": f"one of {', '.join(INDEX_TEXTS)}",
            "alpha": "a number between 0 and 1",
            "min_score": "a number (the lowest retrieval score still answered)",
            "grounding": f"one of {', '.join(GROUNDING_MODES)}",
            "local_prompt": "a prompt name or template file",
        }.get(name, "a positive number")
        raise ConfigurationError(f"{source}: invalid value for {name}; expected {hint}") from None
    return value or None if name in {"endpoint_url", "pinecone_host", "aws_profile"} else value


def read_config_file(path: str | Path | None = None) -> dict[str, Any]:
    """Values from the TOML config file (empty when there is none)."""
    file = config_path(path)
    if not file.exists():
        if path is not None:
            raise ConfigurationError(f"config file {file} does not exist")
        return {}
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {file} is not valid TOML: {exc}") from None
    values: dict[str, Any] = {}
    for (section, key), name in _FILE_KEYS.items():
        table = raw if not section else raw.get(section, {})
        if isinstance(table, dict) and key in table:
            values[name] = _coerce(name, table[key], f"{file} [{section or 'top'}] {key}")
    return values


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the config file, the environment and explicit overrides."""
    values = read_config_file(path)
    for env, name in _ENV_KEYS.items():
        if os.environ.get(env):
            values[name] = _coerce(name, os.environ[env], f"environment variable {env}")
    for name, value in overrides.items():
        if value is not None:
            values[name] = _coerce(name, value, f"option {name}")
    return replace(Settings(), **values)


def update_config_file(values: dict[tuple[str, str], Any], path: str | Path | None = None) -> Path:
    """Write `{(section, key): value}` into the config file, keeping what else it holds."""
    file = config_path(path)
    raw: dict[str, Any] = tomllib.loads(file.read_text(encoding="utf-8")) if file.exists() else {}
    for (section, key), value in values.items():
        table = raw if not section else raw.setdefault(section, {})
        table[key] = value
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(file.suffix + ".tmp")
    tmp.write_text(tomli_w.dumps(raw), encoding="utf-8")
    tmp.replace(file)
    return file
