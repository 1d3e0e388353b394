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
    "SAGERAG_MAX_NEW_TOKENS": "max_new_tokens",
    "AWS_PROFILE": "aws_profile",
    "SAGERAG_PINECONE_INDEX": "pinecone_index",
    "SAGERAG_PINECONE_NAMESPACE": "pinecone_namespace",
    "SAGERAG_PINECONE_HOST": "pinecone_host",
    "PINECONE_API_KEY": "pinecone_api_key",
    "SAGERAG_DATA_DIR": "data_dir",
    "SAGERAG_TIMEOUT": "timeout",
    "SAGERAG_REMOTE": "remote",
}
# File layout: [sagemaker] region/endpoint_url/llm_endpoint/llm_kind/embeddings_endpoint/aws_profile,
# [pinecone] index/namespace/host, [local] data_dir, top-level timeout/remote.
_FILE_KEYS: dict[tuple[str, str], str] = {
    ("sagemaker", "region"): "region",
    ("sagemaker", "endpoint_url"): "endpoint_url",
    ("sagemaker", "llm_endpoint"): "llm_endpoint",
    ("sagemaker", "llm_kind"): "llm_kind",
    ("sagemaker", "embeddings_endpoint"): "embeddings_endpoint",
    ("sagemaker", "max_new_tokens"): "max_new_tokens",
    ("sagemaker", "aws_profile"): "aws_profile",
    ("pinecone", "index"): "pinecone_index",
    ("pinecone", "namespace"): "pinecone_namespace",
    ("pinecone", "host"): "pinecone_host",
    ("local", "data_dir"): "data_dir",
    ("", "timeout"): "timeout",
    ("", "remote"): "remote",
}


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
        if name == "remote":
            if isinstance(value, bool):
                return value
            return str(value).strip().lower() in {"1", "true", "yes", "on"}
        if name == "data_dir":
            return Path(str(value)).expanduser()
        if name == "pinecone_api_key":
            return SecretStr(str(value))
        if name == "llm_kind" and value not in LLM_KINDS:
            raise ValueError
    except ValueError:
        hint = {
            "llm_kind": f"one of {', '.join(LLM_KINDS)}",
            "max_new_tokens": "a positive whole number",
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
