"""The CLI as a new user meets it, through the real `sagerag` entry point (`python -m sagerag`).

Most runs are in remote mode against the session's local servers, so the child loads no model; the ones
that stop before any model (usage errors, settings errors) run with the embedded default.
"""

from __future__ import annotations

import csv
import json
import socket
from pathlib import Path
from typing import Any

import pytest

from tests.subprocesses import (
    CANARY,
    FACT,
    FACT_QUESTION,
    assert_one_line_error,
    base_env,
    remote_env,
    run_sagerag,
    write_faq,
)


def _remote(tmp_path: Path, servers: dict[str, Any], **extra: str) -> dict[str, str]:
    """Remote mode against the session's servers; the first generation may wait for the model to load."""
    extra = {"SAGERAG_TIMEOUT": "120", **extra}
    return remote_env(tmp_path, servers["runtime"].endpoint_url, servers["pinecone"].host, **extra)


# -- usage errors, --debug ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "needle"),
    [
        (["ask", "-k", "0", "q"], "'--k' / '-k'"),
        (["ask", "--bogus", "q"], "--bogus"),
        (["ask"], "QUESTION"),
        (["ingest", "x.csv", "--mode", "everything"], "--mode"),
        (["eval", "--questions", "q.jsonl", "--chain", "other"], "--chain"),
        (["batch", "q.txt", "--concurrency", "lots", "-o", "a.jsonl"], "--concurrency"),
    ],
)
def test_usage_errors_exit_2_with_the_option_and_a_usage_hint(
    argv: list[str], needle: str, tmp_path: Path
) -> None:
    done = run_sagerag(*argv, env=base_env(tmp_path))
    assert done.returncode == 2, done.stderr
    line = assert_one_line_error(done.stderr, needle)
    for class_name in ("BadParameter", "NoSuchOption", "MissingParameter", "UsageError"):
        assert class_name not in done.stderr
    assert "usage: sagerag " in done.stderr and f"Try 'sagerag {argv[0]} -h' for help." in done.stderr
    assert line.startswith("error: ")


@pytest.mark.parametrize(
    "how",
    [
        {"argv": ["--debug", "ask", "q"]},
        {"argv": ["ask", "q", "--debug"]},
        {"argv": ["ask", "q"], "env": {"SAGERAG_DEBUG": "1"}},
        {"argv": ["ask", "q"]},
    ],
)
def test_debug_anywhere_keeps_the_exit_code(how: dict[str, Any], tmp_path: Path) -> None:
    env = base_env(tmp_path, SAGERAG_CONFIG=str(tmp_path / "missing.toml"), **how.get("env", {}))
    done = run_sagerag(*how["argv"], env=env)
    assert done.returncode == 2, done.stderr
    assert "SAGERAG_CONFIG names" in done.stderr
    debug = "--debug" in how["argv"] or "env" in how
    assert ("Traceback" in done.stderr) == debug


@pytest.mark.parametrize("debug", [False, True])
def test_deploy_commands_keep_their_exit_code_under_debug(debug: bool, tmp_path: Path) -> None:
    (tmp_path / "aws").write_text("")
    env = base_env(
        tmp_path,
        AWS_CONFIG_FILE=str(tmp_path / "aws"),
        AWS_SHARED_CREDENTIALS_FILE=str(tmp_path / "aws"),
        AWS_EC2_METADATA_DISABLED="true",
    )
    done = run_sagerag(*(["--debug"] if debug else []), "status", "--region", "us-east-1", env=env)
    assert done.returncode == 2, done.stderr
    assert "credentials" in done.stderr.splitlines()[-1]
    assert ("Traceback" in done.stderr) == debug


def test_version_and_short_help(tmp_path: Path) -> None:
    from sagerag import __version__

    version = run_sagerag("--version", env=base_env(tmp_path))
    assert version.returncode == 0 and version.stdout.strip() == f"sagerag {__version__}"
    short = run_sagerag("ask", "-h", env=base_env(tmp_path))
    assert short.returncode == 0 and "--max-context-chars" in short.stdout


# -- configuration -------------------------------------------------------------------------------------------


def test_config_lists_values_sources_and_masks_secrets(tmp_path: Path) -> None:
    config = tmp_path / "sagerag.toml"
    config.write_text('timeout = 12.5\n[sagemaker]\nregion = "eu-north-1"\n')
    env = base_env(
        tmp_path,
        SAGERAG_CONFIG=str(config),
        AWS_REGION="eu-west-1",
        SAGERAG_REGION="us-west-2",
        PINECONE_API_KEY=CANARY,
        AWS_ENDPOINT_URL_SAGEMAKER_RUNTIME="http://127.0.0.1:9",
    )
    done = run_sagerag("config", "--json", env=env)
    assert done.returncode == 0, done.stderr
    assert CANARY not in done.stdout + done.stderr
    report = json.loads(done.stdout)
    rows = {row["name"]: row for row in report["settings"]}
    assert (rows["region"]["value"], rows["region"]["source"], rows["region"]["from"]) == (
        "us-west-2",
        "variable",
        "SAGERAG_REGION",
    )
    assert (rows["timeout"]["value"], rows["timeout"]["source"]) == (12.5, "file")
    assert rows["pinecone_api_key"]["value"] == "**********"
    assert rows["llm_endpoint"]["source"] == "default"
    # the AWS variable for the user's boto3 code does not move sagerag off the local default
    assert report["mode"] == "local" and rows["endpoint_url"]["value"] is None
    text = run_sagerag("config", env=env)
    assert text.returncode == 0 and CANARY not in text.stdout + text.stderr
    assert "SAGERAG_REGION" in text.stdout and "us-west-2" in text.stdout


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        ({"SAGERAG_CONFIG": "{root}/nope.toml"}, "SAGERAG_CONFIG names"),
        ({"SAGERAG_LOCAL_THREADS": "abc"}, "SAGERAG_LOCAL_THREADS"),
        ({"SAGERAG_MAX_NEW_TOKENS": "many"}, "SAGERAG_MAX_NEW_TOKENS"),
    ],
)
def test_bad_settings_are_one_line_and_exit_2(extra: dict[str, str], needle: str, tmp_path: Path) -> None:
    env = base_env(tmp_path, **{k: v.replace("{root}", str(tmp_path)) for k, v in extra.items()})
    done = run_sagerag("ask", "What is SageMaker?", env=env)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, needle)
    assert not (tmp_path / "data").exists()  # refused before anything was opened or created


# -- ask, batch, ingest, serve ---------------------------------------------------------------------------


def test_ask_refuses_a_missing_or_empty_index_and_creates_nothing(
    remote_servers: dict[str, Any], tmp_path: Path
) -> None:
    env = _remote(tmp_path, remote_servers, SAGERAG_PINECONE_INDEX="never-ingested")
    done = run_sagerag("ask", FACT_QUESTION, env=env)
    assert done.returncode == 2
    assert_one_line_error(done.stderr, "'never-ingested' does not exist", "sagerag ingest")
    assert not remote_servers["pinecone"].client().indexes.exists("never-ingested")
    empty = run_sagerag("ask", FACT_QUESTION, "--namespace", "nobody", env=_remote(tmp_path, remote_servers))
    assert empty.returncode == 2
    assert_one_line_error(empty.stderr, "no documents in the 'nobody' namespace", "sagerag ingest")


def test_ask_shows_the_context_budget_and_takes_max_context_chars(
    remote_servers: dict[str, Any], tmp_path: Path
) -> None:
    env = _remote(tmp_path, remote_servers)
    done = run_sagerag("ask", FACT_QUESTION, "-k", "5", "--max-context-chars", "4000", env=env)
    assert done.returncode == 0, done.stderr
    assert "within the 4,000-character budget (--max-context-chars)" in done.stderr
    tight = run_sagerag("ask", FACT_QUESTION, "--max-context-chars", "10", "--json", env=env)
    result = json.loads(tight.stdout)
    assert result["max_context_chars"] == 10 and tight.stderr == ""


def test_ask_stream_json_emits_delta_lines_then_the_result(
    remote_servers: dict[str, Any], tmp_path: Path
) -> None:
    done = run_sagerag("ask", FACT_QUESTION, "--stream", "--json", env=_remote(tmp_path, remote_servers))
    assert done.returncode == 0, done.stderr
    lines = [json.loads(line) for line in done.stdout.splitlines()]
    *deltas, final = lines
    assert deltas and all(set(d) == {"delta"} for d in deltas)
    assert "".join(d["delta"] for d in deltas).strip() == final["answer"].strip()
    assert final["question"] == FACT_QUESTION and final["sources"][0]["text"] == FACT


def test_batch_reads_a_json_array_and_refuses_other_json(
    remote_servers: dict[str, Any], tmp_path: Path
) -> None:
    env = _remote(tmp_path, remote_servers)
    questions = tmp_path / "q.json"
    questions.write_text(json.dumps([FACT_QUESTION, {"id": "b", "question": "Who serves llama2 probes?"}]))
    done = run_sagerag(
        "batch",
        str(questions),
        "-o",
        str(tmp_path / "a.jsonl"),
        "--json",
        "--max-context-chars",
        "300",
        env=env,
    )
    assert done.returncode == 0, done.stderr
    summary = json.loads(done.stdout)
    assert summary["questions"] == 2 and summary["max_context_chars"] == 300
    asked = {json.loads(line)["question"] for line in (tmp_path / "a.jsonl").read_text().splitlines()}
    assert asked == {FACT_QUESTION, "Who serves llama2 probes?"}  # not "[" and "]"
    bad = tmp_path / "bad.json"
    bad.write_text('{"question": "not in an array"}')
    refused = run_sagerag("batch", str(bad), "-o", str(tmp_path / "b.jsonl"), env=env)
    assert refused.returncode == 2
    assert_one_line_error(refused.stderr, "bad.json", "JSON array")


def test_ingest_counts_a_changed_row_as_updated_and_reads_folder_csvs(
    remote_servers: dict[str, Any], tmp_path: Path
) -> None:
    env = _remote(tmp_path, remote_servers, SAGERAG_PINECONE_INDEX="counts")
    folder = tmp_path / "kb"
    folder.mkdir()
    write_faq(folder / "faq.csv", [("What is A?", "A is the first letter."), ("What is B?", "B is second.")])
    (folder / "notes.md").write_text("Notes about the alphabet.\n")
    first = run_sagerag("ingest", str(folder), "--json", env=env)
    assert first.returncode == 0, first.stderr
    assert json.loads(first.stdout) | {"warnings": []} == {
        "added": 3,
        "updated": 0,
        "unchanged": 0,
        "deleted": 0,
        "restored": 0,
        "documents": 3,
        "vectors_in_namespace": 3,
        "warnings": [],
    }
    write_faq(
        folder / "faq.csv", [("What is A?", "A is the very first letter."), ("What is B?", "B is second.")]
    )
    second = run_sagerag("ingest", str(folder), env=env)
    assert second.returncode == 0, second.stderr
    assert "3 documents: 0 added, 1 updated, 2 unchanged, 0 deleted; 3 vectors" in second.stdout
    single = tmp_path / "one.csv"
    write_faq(single, [("What is C?", "C is third.")])
    one = run_sagerag("ingest", str(single), env=env)
    assert "1 document: 1 added" in one.stdout


def test_serve_on_a_busy_port_is_one_line_with_the_port_option(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = run_sagerag("serve", "--port", str(port), env=base_env(tmp_path), timeout=60)
    assert done.returncode == 2
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert_one_line_error(done.stderr, f"127.0.0.1:{port}", "--port")


# -- eval ----------------------------------------------------------------------------------------------------


def test_eval_json_flag_no_temp_dir_and_a_clean_csv(remote_servers: dict[str, Any], tmp_path: Path) -> None:
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    env = _remote(tmp_path, remote_servers, TMPDIR=str(scratch))
    questions = tmp_path / "q.jsonl"
    questions.write_text(json.dumps({"question": FACT_QUESTION}) + "\n")
    table = tmp_path / "report.csv"
    done = run_sagerag(
        "eval", "--questions", str(questions), "--no-generate", "--json", "--csv", str(table), env=env
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["configs"][0]["counts"]["in_scope"] == 1
    assert list(scratch.iterdir()) == []  # no sagerag-eval-* left behind
    with table.open(newline="") as handle:
        header, *rows = list(csv.reader(handle))
    assert len(header) == len(set(header)), header
    for value in rows[0]:
        if "." in value and value.replace(".", "", 1).isdigit():
            assert len(value.split(".")[1]) <= 4, value


# -- no library noise --------------------------------------------------------------------------------------


def test_local_models_print_nothing_on_stderr_under_json(tmp_path: Path) -> None:
    """The embedded default loads MiniLM here: no `Loading weights` bar, no warnings, on any run."""
    env = base_env(tmp_path)
    csv_file = write_faq(tmp_path / "one.csv", [(FACT_QUESTION, FACT)])
    done = run_sagerag("ingest", str(csv_file), "--json", env=env, timeout=300)
    assert done.returncode == 0, done.stderr
    assert done.stderr == ""
    assert json.loads(done.stdout)["added"] == 1
