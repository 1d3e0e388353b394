"""Settings from options, environment variables and an optional `sagerag.toml`, with their sources.

Precedence, highest first (one rule for every setting, tested):

    1. explicit arguments (`load_settings(**overrides)`, the CLI's options)
    2. sagerag's own variables (`SAGERAG_*`)
    3. standard variables of AWS and Pinecone (`AWS_REGION`, `AWS_PROFILE`, `PINECONE_API_KEY`, ...)
    4. the config file: `SAGERAG_CONFIG`, else `./sagerag.toml`
    5. defaults

`AWS_REGION` is preset on EC2, CloudShell and Lambda; `SAGERAG_REGION` still wins over it.
`AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME` is read only in remote mode: it redirects boto3 code, and on its own
must not move sagerag off the embedded local services. With no remote endpoint or Pinecone host
configured, `Settings.is_local` is true and the pipeline starts the embedded local services. Secrets (the
Pinecone API key) are held as `SecretStr` and never rendered.

Each setting is one field of `Settings` declared with `setting(...)`: its default, file key, variables and
help text in one place. Values are validated by pydantic against the field's type (so `SAGERAG_TIMEOUT=abc`
is an error naming the variable, never a silent default).
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import MISSING, dataclass, field, fields, replace
from functools import cache
from pathlib import Path
from typing import Annotated, Any, Literal, NamedTuple, get_type_hints

import tomli_w
from pydantic import BeforeValidator, Field, SecretStr, TypeAdapter, ValidationError

from sagerag.errors import ConfigurationError
from sagerag.kinds import EmbeddingsFormat, EmbeddingsKind, Grounding, IndexText, LLMKind, Retrieval

CONFIG_ENV = "SAGERAG_CONFIG"
DEFAULT_CONFIG_FILE = "sagerag.toml"

LOCAL_DEFAULT_PROMPT = "local-brief"
"""The prompt measured best for SmolLM2-135M on the tuning half of the dev set (docs/benchmarks.md)."""
Fraction = Annotated[float, Field(ge=0, le=1)]
PositiveInt = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]


def _off_is_zero(value: Any) -> Any:
    return 0.0 if isinstance(value, str) and value.strip().lower() in {"off", "false", "no"} else value


IdleTimeout = Annotated[float, BeforeValidator(_off_is_zero), Field(ge=0)]
"""Seconds, or `off` (0): the background server's idle timeout."""


def default_data_dir() -> Path:
    """Where the embedded default keeps its Pinecone data and ingestion records."""
    env = os.environ.get("SAGERAG_DATA_DIR")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "sagerag"


def setting(
    default: Any = None,
    *,
    file: str | None = None,
    env: str | None = None,
    standard_env: tuple[str, ...] = (),
    doc: str,
    secret: bool = False,
    default_factory: Any = None,
) -> Any:
    """A `Settings` field with where it is read from: `file` is "section.key" ("key" at top level),
    `env` the `SAGERAG_*` variable, `standard_env` AWS's or Pinecone's own variables (lower precedence)."""
    meta = {"file": file, "env": env, "standard_env": standard_env, "doc": doc, "secret": secret}
    if default_factory is not None:
        return field(default_factory=default_factory, metadata=meta)
    return field(default=default, metadata=meta)


@dataclass(frozen=True)
class Settings:
    """Everything the pipeline needs to wire LLM, embeddings, store and chain."""

    region: str = setting(
        "us-east-1",
        file="sagemaker.region",
        env="SAGERAG_REGION",
        standard_env=("AWS_REGION", "AWS_DEFAULT_REGION"),
        doc="AWS region of the SageMaker endpoints.",
    )
    endpoint_url: str | None = setting(
        file="sagemaker.endpoint_url",
        env="SAGERAG_ENDPOINT_URL",
        standard_env=("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",),
        doc="SageMaker Runtime URL override (a local server, a VPC endpoint); unset means AWS's own.",
    )
    llm_endpoint: str = setting(
        "llama2", file="sagemaker.llm_endpoint", env="SAGERAG_LLM_ENDPOINT", doc="Text-generation endpoint."
    )
    llm_kind: LLMKind = setting(
        "tgi",
        file="sagemaker.llm_kind",
        env="SAGERAG_LLM_KIND",
        doc="tgi (Hugging Face LLM container), jumpstart-chat (JumpStart Llama-2-chat) or messages "
        "(OpenAI-style chat completions with tool calling).",
    )
    max_new_tokens: PositiveInt = setting(
        256, file="sagemaker.max_new_tokens", env="SAGERAG_MAX_NEW_TOKENS", doc="Most tokens per answer."
    )
    embeddings_endpoint: str = setting(
        "minilm",
        file="sagemaker.embeddings_endpoint",
        env="SAGERAG_EMBEDDINGS_ENDPOINT",
        doc="MiniLM feature-extraction endpoint.",
    )
    embeddings_kind: EmbeddingsKind = setting(
        "feature-extraction",
        file="sagemaker.embeddings_kind",
        env="SAGERAG_EMBEDDINGS_KIND",
        doc="feature-extraction (per-token vectors, pooled by sagerag) or tei (Text Embeddings Inference).",
    )
    embeddings_format: EmbeddingsFormat = setting(
        "json",
        file="sagemaker.embeddings_format",
        env="SAGERAG_EMBEDDINGS_FORMAT",
        doc="json, or npy to ask a feature-extraction endpoint (the Hugging Face inference toolkit) for NPY "
        "answers: ~10x less for it to write and for sagerag to read.",
    )
    aws_profile: str | None = setting(
        file="sagemaker.aws_profile",
        standard_env=("AWS_PROFILE",),
        doc="Named AWS profile for credentials; unset means the default chain.",
    )
    pinecone_index: str = setting(
        "sagerag", file="pinecone.index", env="SAGERAG_PINECONE_INDEX", doc="Pinecone index name."
    )
    pinecone_namespace: str = setting(
        "",
        file="pinecone.namespace",
        env="SAGERAG_PINECONE_NAMESPACE",
        doc="Pinecone namespace ('' is the default namespace).",
    )
    pinecone_host: str | None = setting(
        file="pinecone.host",
        env="SAGERAG_PINECONE_HOST",
        doc="Pinecone control-plane host override (a local server); unset means Pinecone's cloud.",
    )
    pinecone_api_key: SecretStr | None = setting(
        standard_env=("PINECONE_API_KEY",), secret=True, doc="Pinecone API key; never printed."
    )
    data_dir: Path = setting(
        file="local.data_dir",
        env="SAGERAG_DATA_DIR",
        default_factory=default_data_dir,
        doc="Embedded default's data directory.",
    )
    local_threads: PositiveInt = setting(
        1, env="SAGERAG_LOCAL_THREADS", doc="CPU threads per local model (2 spin-wait on a busy machine)."
    )
    serve_idle_timeout: IdleTimeout = setting(
        300.0,
        file="local.serve_idle_timeout",
        env="SAGERAG_SERVE_IDLE_TIMEOUT",
        doc="Seconds a background `sagerag serve`, started by ask/batch/ingest to keep the local models "
        "warm, waits idle before it exits; 0 or off: never start one.",
    )
    timeout: PositiveFloat = setting(
        60.0, file="timeout", env="SAGERAG_TIMEOUT", doc="Seconds for each network call before giving up."
    )
    remote: bool = setting(
        False, file="remote", env="SAGERAG_REMOTE", doc="Use remote SageMaker and Pinecone explicitly."
    )

    retrieval: Retrieval = setting(
        "hybrid",
        file="retrieval.mode",
        env="SAGERAG_RETRIEVAL",
        doc="hybrid (dense + BM25 sparse in one dotproduct index) or dense (MiniLM only).",
    )
    alpha: Fraction = setting(
        0.7,
        file="retrieval.alpha",
        env="SAGERAG_ALPHA",
        doc="Dense weight of a hybrid query (Pinecone's convex combination); tuned on the dev set.",
    )
    index_text: IndexText = setting(
        "question+answer",
        file="retrieval.index_text",
        env="SAGERAG_INDEX_TEXT",
        doc="What a FAQ row's vector encodes: question+answer or answer.",
    )
    min_score: float | None = setting(
        file="retrieval.min_score",
        env="SAGERAG_MIN_SCORE",
        doc="Score gate; unset means the calibrated default for the retrieval mode.",
    )
    loop_guard: bool = setting(
        True,
        file="answers.loop_guard",
        env="SAGERAG_LOOP_GUARD",
        doc="Stop a generation that repeats a sentence or a run of words.",
    )
    grounding: Grounding = setting(
        "drop",
        file="answers.grounding",
        env="SAGERAG_GROUNDING",
        doc="Answer sentences the passages do not support: drop them, flag them only, or off.",
    )
    local_prompt: str = setting(
        LOCAL_DEFAULT_PROMPT,
        file="local.prompt",
        env="SAGERAG_LOCAL_PROMPT",
        doc="Prompt for the embedded local generator when none is given (real endpoints use default).",
    )

    @property
    def is_local(self) -> bool:
        """True when nothing remote is configured: use the embedded local services."""
        return not (self.remote or self.endpoint_url or self.pinecone_host)

    def __repr__(self) -> str:
        shown = {f.name: getattr(self, f.name) for f in fields(self) if f.name != "pinecone_api_key"}
        key = "'**********'" if self.pinecone_api_key else "None"
        return f"Settings({', '.join(f'{k}={v!r}' for k, v in shown.items())}, pinecone_api_key={key})"


class Source(NamedTuple):
    """Where a setting's value came from: kind is option, variable, file or default."""

    kind: Literal["option", "variable", "file", "default"]
    detail: str = ""
    """The variable's name, the file and key, or a note such as why a value is not used."""

    def __str__(self) -> str:
        return f"{self.kind} {self.detail}".strip()


def config_path(path: str | Path | None = None) -> Path:
    """The config file in use: explicit path, else $SAGERAG_CONFIG, else ./sagerag.toml."""
    return Path(path or os.environ.get(CONFIG_ENV) or DEFAULT_CONFIG_FILE).expanduser()


@cache
def _adapters() -> dict[str, TypeAdapter[Any]]:
    hints = get_type_hints(Settings, include_extras=True)
    return {f.name: TypeAdapter(hints[f.name]) for f in fields(Settings)}


def _coerce(name: str, value: Any, source: str) -> Any:
    """`value` validated against the field's type; an error names the source and what is expected."""
    if isinstance(value, str):
        value = value.strip() if name != "pinecone_api_key" else value
        if value == "" and name in {"endpoint_url", "pinecone_host", "aws_profile", "pinecone_api_key"}:
            return None
    if name == "data_dir" and isinstance(value, str | Path):
        return Path(value).expanduser()
    try:
        return _adapters()[name].validate_python(value)
    except ValidationError as exc:
        error = exc.errors()[0]
        why = error["msg"] + ("; use a positive number" if error["type"] == "greater_than" else "")
        shown = "" if _spec(name)["secret"] else f" {value!r}"
        raise ConfigurationError(f"{source}: invalid value{shown} for {name} ({why})") from None


def _spec(name: str) -> dict[str, Any]:
    return dict(next(f.metadata for f in fields(Settings) if f.name == name))


def _file_values(path: str | Path | None) -> tuple[Path, dict[str, tuple[Any, str]]]:
    """The config file and `{name: (raw value, "file [section] key")}` from it."""
    file = config_path(path)
    if not file.exists():
        if path is not None:
            raise ConfigurationError(f"config file {file} does not exist")
        if os.environ.get(CONFIG_ENV):
            raise ConfigurationError(
                f"{CONFIG_ENV} names {file}, which does not exist; create it or unset {CONFIG_ENV}"
            )
        return file, {}
    try:
        raw = tomllib.loads(file.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigurationError(f"config file {file} is not valid TOML: {exc}") from None
    except OSError as exc:
        raise ConfigurationError(f"config file {file} cannot be read ({exc.strerror})") from None
    values: dict[str, tuple[Any, str]] = {}
    for f in fields(Settings):
        key = f.metadata["file"]
        if not key:
            continue
        section, _, name = key.rpartition(".")
        table = raw.get(section, {}) if section else raw
        if isinstance(table, dict) and name in table:
            values[f.name] = (table[name], f"{file} [{section or 'top'}] {name}")
    return file, values


def read_config_file(path: str | Path | None = None) -> dict[str, Any]:
    """Validated values from the TOML config file (empty when there is none)."""
    _, raw = _file_values(path)
    return {name: _coerce(name, value, where) for name, (value, where) in raw.items()}


def resolve_settings(path: str | Path | None = None, **overrides: Any) -> tuple[Settings, dict[str, Source]]:
    """The settings and, for each, where its value came from (the precedence in the module docstring)."""
    _, file_values = _file_values(path)
    values: dict[str, Any] = {}
    sources: dict[str, Source] = {}
    for f in fields(Settings):
        name = f.name
        meta = f.metadata
        variables = ([meta["env"]] if meta["env"] else []) + list(meta["standard_env"])
        set_variable = next((v for v in variables if os.environ.get(v)), None)
        if overrides.get(name) is not None:
            values[name] = _coerce(name, overrides[name], f"option {name}")
            sources[name] = Source("option")
        elif set_variable:
            values[name] = _coerce(name, os.environ[set_variable], f"environment variable {set_variable}")
            sources[name] = Source("variable", set_variable)
        elif name in file_values:
            raw, where = file_values[name]
            values[name] = _coerce(name, raw, where)
            sources[name] = Source("file", where)
        else:
            sources[name] = Source("default")
    unknown = set(overrides) - set(sources)
    if unknown:
        raise TypeError(f"unknown settings: {', '.join(sorted(unknown))}")
    settings = replace(Settings(), **values)
    if sources["endpoint_url"].detail == "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME" and not (
        settings.remote or settings.pinecone_host
    ):
        # A variable meant for the user's boto3 code: in local mode it is not ours to follow.
        settings = replace(settings, endpoint_url=None)
        sources["endpoint_url"] = Source(
            "default", "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME is for remote mode only"
        )
    return settings, sources


def load_settings(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Build settings from defaults, the config file, the environment and explicit overrides."""
    return resolve_settings(path, **overrides)[0]


def env_setting(name: str) -> Any:
    """One setting from its variables alone (or its default), validated: for code that runs without the
    rest of the configuration, such as the local model servers."""
    f = next(f for f in fields(Settings) if f.name == name)
    for variable in ([f.metadata["env"]] if f.metadata["env"] else []) + list(f.metadata["standard_env"]):
        if os.environ.get(variable):
            return _coerce(name, os.environ[variable], f"environment variable {variable}")
    if f.default is MISSING:
        return f.default_factory()  # type: ignore[operator]
    return f.default


def describe_settings(path: str | Path | None = None, **overrides: Any) -> list[dict[str, Any]]:
    """Every setting with its effective value (secrets masked), source, file key, variables and help."""
    settings, sources = resolve_settings(path, **overrides)
    rows = []
    for f in fields(Settings):
        value = getattr(settings, f.name)
        if f.metadata["secret"]:
            shown: Any = "**********" if value else None
        elif isinstance(value, Path):
            shown = str(value)
        else:
            shown = value
        rows.append(
            {
                "name": f.name,
                "value": shown,
                "source": sources[f.name].kind,
                "from": sources[f.name].detail or None,
                "file_key": f.metadata["file"],
                "variables": ([f.metadata["env"]] if f.metadata["env"] else [])
                + list(f.metadata["standard_env"]),
                "doc": f.metadata["doc"],
            }
        )
    return rows


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
