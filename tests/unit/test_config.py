"""Configuration precedence and validation: option > SAGERAG_* > AWS/Pinecone variables > file > default."""

from __future__ import annotations

from pathlib import Path

import pytest

from sagerag.config import Settings, describe_settings, load_settings, resolve_settings
from sagerag.errors import ConfigurationError

_ALL_VARIABLES = (
    "SAGERAG_REGION",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "SAGERAG_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME",
    "SAGERAG_REMOTE",
    "SAGERAG_PINECONE_HOST",
    "SAGERAG_LOCAL_THREADS",
    "SAGERAG_CONFIG",
    "PINECONE_API_KEY",
    "SAGERAG_TIMEOUT",
    "SAGERAG_DATA_DIR",
)


@pytest.fixture
def clean_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """No inherited settings; returns a config file path (not yet written) named by SAGERAG_CONFIG."""
    for name in _ALL_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path / "sagerag.toml"


def test_each_layer_beats_the_ones_below(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_settings()[1]["region"].kind == "default"
    clean_env.write_text('[sagemaker]\nregion = "eu-north-1"\n')
    settings, sources = resolve_settings()
    assert (settings.region, sources["region"].kind) == ("eu-north-1", "file")
    monkeypatch.setenv("AWS_REGION", "eu-west-1")  # preset on EC2, CloudShell, Lambda
    settings, sources = resolve_settings()
    assert (settings.region, str(sources["region"])) == ("eu-west-1", "variable AWS_REGION")
    monkeypatch.setenv("SAGERAG_REGION", "us-west-2")
    settings, sources = resolve_settings()
    assert (settings.region, str(sources["region"])) == ("us-west-2", "variable SAGERAG_REGION")
    settings, sources = resolve_settings(region="ap-south-1")
    assert (settings.region, sources["region"].kind) == ("ap-south-1", "option")


def test_sagerag_endpoint_url_beats_the_aws_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:1111")
    monkeypatch.setenv("SAGERAG_ENDPOINT_URL", "http://127.0.0.1:2222")
    assert load_settings().endpoint_url == "http://127.0.0.1:2222"


def test_aws_endpoint_variable_alone_keeps_the_local_default(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME", "http://127.0.0.1:8080")
    settings = load_settings()
    assert settings.is_local and settings.endpoint_url is None
    monkeypatch.setenv("SAGERAG_REMOTE", "1")  # in remote mode it is followed
    settings = load_settings()
    assert not settings.is_local and settings.endpoint_url == "http://127.0.0.1:8080"


def test_missing_file_named_by_sagerag_config_is_an_error(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGERAG_CONFIG", str(clean_env.parent / "nope.toml"))
    with pytest.raises(ConfigurationError, match=r"SAGERAG_CONFIG names .*nope\.toml.*does not exist"):
        load_settings()
    monkeypatch.delenv("SAGERAG_CONFIG")
    assert load_settings().region == "us-east-1"  # no ./sagerag.toml is fine


@pytest.mark.parametrize(
    ("variable", "value", "setting"),
    [
        ("SAGERAG_LOCAL_THREADS", "abc", "local_threads"),
        ("SAGERAG_LOCAL_THREADS", "0", "local_threads"),
        ("SAGERAG_TIMEOUT", "soon", "timeout"),
        ("SAGERAG_REMOTE", "maybe", "remote"),
        ("SAGERAG_LLM_KIND", "gpt", "llm_kind"),
    ],
)
def test_bad_values_name_the_variable(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch, variable: str, value: str, setting: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(ConfigurationError, match=rf"{variable}: invalid value '{value}' for {setting}"):
        load_settings()


def test_local_model_threads_refuse_a_bad_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    from sagerag.local.sagemaker.models import model_threads

    monkeypatch.setenv("SAGERAG_LOCAL_THREADS", "abc")
    with pytest.raises(ConfigurationError, match="SAGERAG_LOCAL_THREADS"):
        model_threads()
    monkeypatch.setenv("SAGERAG_LOCAL_THREADS", "2")
    assert model_threads() == 2


def test_bad_file_value_names_file_and_key(clean_env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clean_env.write_text("timeout = -3\n")
    with pytest.raises(ConfigurationError, match=r"sagerag\.toml \[top\] timeout: invalid value -3"):
        load_settings()


def test_describe_masks_the_secret_and_tells_sources(
    clean_env: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PINECONE_API_KEY", "pcsk-very-secret-value")
    rows = {row["name"]: row for row in describe_settings()}
    assert set(rows) == {f for f in Settings.__dataclass_fields__}
    assert rows["pinecone_api_key"]["value"] == "**********"
    assert "pcsk-very-secret-value" not in repr(rows)
    assert (rows["pinecone_api_key"]["source"], rows["pinecone_api_key"]["from"]) == (
        "variable",
        "PINECONE_API_KEY",
    )
    assert rows["timeout"]["variables"] == ["SAGERAG_TIMEOUT"] and rows["timeout"]["file_key"] == "timeout"
    assert all(row["doc"] for row in rows.values())
