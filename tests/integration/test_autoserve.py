"""The background `sagerag serve` that ask/batch/ingest start on first use (sagerag/autoserve.py).

Most tests start it through `ensure_server(..., warm=False)`, so the serve loads no model; one test runs the
real commands, where the serve loads MiniLM once for both of them. Every serve started here is stopped.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from sagerag.autoserve import ensure_server, log_path
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.local.pinecone import default_api_key
from sagerag.local.sagemaker import models
from sagerag.local.sagemaker.models import ModelRegistry
from sagerag.locks import read_holder
from sagerag.serve_state import running_server, server_status, state_file, stop_server, suspended
from sagerag.stores import ensure_index
from tests.subprocesses import base_env, short_rows, start_serve, stop_process, write_faq
from tests.support import run_cli


@pytest.fixture
def data_dir(cli_env: Path) -> Iterator[Path]:
    """A private data dir; whatever serve a test started for it is stopped afterwards."""
    try:
        yield cli_env
    finally:
        stop_server(cli_env)


@pytest.fixture
def paused(data_dir: Path) -> Iterator[list[int]]:
    """Pids a test stopped with SIGSTOP: resumed and killed afterwards (before `data_dir` stops the
    serve), so that no process outlives the test."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGCONT)
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # reap it if it is our child


def _suspend(pid: int) -> None:
    """SIGSTOP `pid` and wait until it is stopped: the signal takes effect when the process is next
    scheduled, which on a loaded machine can be after the test's next step (it then found it answering)."""
    os.kill(pid, signal.SIGSTOP)
    deadline = time.monotonic() + 10
    while not suspended(pid):
        assert time.monotonic() < deadline, f"pid {pid} did not stop within 10 s of SIGSTOP"
        time.sleep(0.01)


def _autoserve_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "sagerag.autoserve"]


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    try:  # our own child that exited is a zombie until reaped
        return os.waitpid(pid, os.WNOHANG)[0] == pid
    except ChildProcessError:
        return False


def test_ask_starts_a_serve_that_the_next_command_reuses_and_stop_stops_it(
    data_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SAGERAG_SERVE_IDLE_TIMEOUT", "120")
    corpus = write_faq(tmp_path / "faq.csv", short_rows(5, "gadget"))
    code, _, err = run_cli(capsys, "ingest", str(corpus))
    assert code == 0, err
    assert "a running `sagerag serve`" in err
    first = running_server(data_dir)
    assert first is not None
    code, out, err = run_cli(capsys, "ask", "What is the capital of France?")
    assert code == 0, err
    assert "abstained" in out and "a running `sagerag serve`" in err
    second = running_server(data_dir)
    assert second is not None and second.pid == first.pid  # reused, not a second serve
    status = server_status(data_dir)
    assert status is not None
    # The gate refused the question: the generator was never loaded, in the serve or here.
    assert set(status["models_loaded"]) == {"minilm"}
    assert float(status["idle_timeout"]) == 120
    code, out, _ = run_cli(capsys, "serve", "--status")
    assert (
        code == 0 and str(first.pid) in out and "exits after 120s" in out and str(log_path(data_dir)) in out
    )
    assert "SageMaker Runtime API" in log_path(data_dir).read_text()  # its output goes to the log
    code, out, _ = run_cli(capsys, "serve", "--stop")
    assert code == 0 and f"pid {first.pid}" in out
    assert read_holder(state_file(data_dir)) is None
    code, out, _ = run_cli(capsys, "serve", "--status")
    assert code == 0 and "no sagerag serve runs" in out


def _fresh_registry(monkeypatch: pytest.MonkeyPatch, runtime: LocalRuntime) -> ModelRegistry:
    """A new process-wide model registry whose MiniLM is the session's (no second load): what it has
    `loaded()` is what the next in-process command loaded."""
    registry = ModelRegistry({"minilm": lambda: runtime.app.registry.get("minilm")})
    monkeypatch.setattr(models, "_shared", registry)
    return registry


def test_disabled_setting_starts_no_background_process_and_a_no_op_ingest_loads_no_model(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: LocalRuntime,
) -> None:
    monkeypatch.setenv("SAGERAG_SERVE_IDLE_TIMEOUT", "off")
    corpus = write_faq(tmp_path / "faq.csv", short_rows(3, "widget"))
    first = _fresh_registry(monkeypatch, runtime)
    code, _, err = run_cli(capsys, "ingest", str(corpus))
    assert code == 0, err
    assert "embedded local services" in err
    assert read_holder(state_file(data_dir)) is None and not log_path(data_dir).exists()
    assert set(first.loaded()) == {"minilm"}  # new documents: embedded here
    again = _fresh_registry(monkeypatch, runtime)
    code, out, err = run_cli(capsys, "ingest", str(corpus))
    assert code == 0, err
    assert "3 unchanged" in out + err
    assert again.loaded() == {}  # nothing to embed: no model loaded, not even to size the index


def test_an_index_of_another_dimension_is_refused_without_loading_the_model(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
    runtime: LocalRuntime,
) -> None:
    monkeypatch.setenv("SAGERAG_SERVE_IDLE_TIMEOUT", "0")
    with LocalPinecone(data_dir / "pinecone", api_key=default_api_key()) as pinecone:
        ensure_index(pinecone.client(), "sagerag", 12, metric="dotproduct")
    registry = _fresh_registry(monkeypatch, runtime)
    code, _, err = run_cli(capsys, "ingest", str(write_faq(tmp_path / "faq.csv", short_rows(2))))
    assert code == 2 and "dimension 12" in err and "needs dimension 384" in err, err
    assert registry.loaded() == {}


def test_idle_timeout_stops_the_serve(data_dir: Path) -> None:
    state = ensure_server(data_dir, idle_timeout=1, warm=False)
    assert state is not None
    deadline = time.monotonic() + 30
    while read_holder(state_file(data_dir)) is not None and time.monotonic() < deadline:
        time.sleep(0.1)
    assert read_holder(state_file(data_dir)) is None, "the serve did not exit when idle"
    while not _gone(state.pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert _gone(state.pid)
    assert "idle for 1s: stopping" in log_path(data_dir).read_text()


def test_a_serve_stopping_on_idle_unlists_itself_still_answers_and_is_replaced(data_dir: Path) -> None:
    first = ensure_server(data_dir, idle_timeout=1, warm=False)
    assert first is not None
    deadline = time.monotonic() + 30
    while not (read_holder(state_file(data_dir)) or {}).get("stopping") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert (read_holder(state_file(data_dir)) or {}).get("stopping"), "the serve did not unlist itself"
    assert running_server(data_dir) is None  # no new command picks a serve that is stopping
    with urllib.request.urlopen(f"{first.runtime_url}/health", timeout=5) as response:
        assert response.status == 200  # a command that found it just before is still answered
    second = ensure_server(data_dir, idle_timeout=60, warm=False)  # waits for it to go, starts another
    assert second is not None and second.pid != first.pid and running_server(data_dir) == second
    while not _gone(first.pid) and time.monotonic() < deadline + 30:
        time.sleep(0.1)
    assert _gone(first.pid)


def test_stale_state_of_a_dead_serve_is_replaced(data_dir: Path) -> None:
    data_dir.mkdir(parents=True)
    dead = {"runtime_url": "http://127.0.0.1:9", "pinecone_host": "http://127.0.0.1:9", "pid": 2**22 + 1}
    state_file(data_dir).write_text(json.dumps({**dead, "data_dir": str(data_dir)}))
    state = ensure_server(data_dir, idle_timeout=60, warm=False)
    assert state is not None and state.pid != dead["pid"]
    assert state.runtime_url != dead["runtime_url"]
    assert running_server(data_dir) == state


def test_two_first_commands_start_one_serve(data_dir: Path) -> None:
    code = (
        "import sys; from pathlib import Path; from sagerag.autoserve import ensure_server; "
        "state = ensure_server(Path(sys.argv[1]), idle_timeout=60, warm=False); "
        "print(state.pid if state else 'none')"
    )
    procs = [
        subprocess.Popen([sys.executable, "-c", code, str(data_dir)], stdout=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    pids = [proc.communicate(timeout=120)[0].strip() for proc in procs]
    assert pids[0] == pids[1] and pids[0].isdigit(), pids
    log = log_path(data_dir).read_text()
    assert log.count("SageMaker Runtime API") == 1 and "already serves" not in log, log


def test_a_stopped_background_serve_is_replaced_by_the_next_command(
    data_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
    paused: list[int],
) -> None:
    monkeypatch.setenv("SAGERAG_SERVE_IDLE_TIMEOUT", "120")
    hung = ensure_server(data_dir, idle_timeout=120, warm=False)
    assert hung is not None
    paused.append(hung.pid)
    _suspend(hung.pid)
    corpus = write_faq(tmp_path / "faq.csv", short_rows(3, "sprocket"))
    with caplog.at_level(logging.WARNING, logger="sagerag.autoserve"):
        code, _, err = run_cli(capsys, "ingest", str(corpus))
    assert code == 0, err
    # Served by a new background serve, not in-process after waiting out START_TIMEOUT for the old one.
    assert "a running `sagerag serve`" in err
    new = running_server(data_dir)
    assert new is not None and new.pid != hung.pid
    deadline = time.monotonic() + 30
    while not _gone(hung.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _gone(hung.pid)
    (warning,) = _autoserve_warnings(caplog)
    assert f"(pid {hung.pid})" in warning and "stopped" in warning and str(log_path(data_dir)) in warning
    assert "\n" not in warning


def test_a_stopped_serve_the_user_started_is_left_alone(
    data_dir: Path, tmp_path: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    proc, _state = start_serve(base_env(tmp_path), data_dir)  # no --idle-timeout: runs until stopped
    try:
        _suspend(proc.pid)
        with caplog.at_level(logging.WARNING, logger="sagerag.autoserve"):
            assert ensure_server(data_dir, idle_timeout=60, warm=False) is None  # in-process, at once
        (warning,) = _autoserve_warnings(caplog)
        assert (
            f"(pid {proc.pid})" in warning and "left alone" in warning and "sagerag serve --stop" in warning
        )
        assert proc.poll() is None and suspended(proc.pid)
        # `serve --stop` still stops it: SIGTERM and SIGCONT, so that the stopped process acts on it.
        code, out, _ = run_cli(capsys, "serve", "--stop")
        assert code == 0 and f"pid {proc.pid}" in out
        assert proc.wait(timeout=30) == 0  # it shut down cleanly, it was not killed
        assert read_holder(state_file(data_dir)) is None
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGCONT)
        stop_process(proc, signal.SIGKILL)


def test_stop_kills_a_serve_that_does_not_exit_on_sigterm(data_dir: Path, tmp_path: Path) -> None:
    """A serve busy with a request that never ends does not finish shutting down: SIGKILL after grace."""
    proc, state = start_serve(base_env(tmp_path), data_dir, "--latency-ms", "600000")
    stuck = threading.Thread(
        target=_post_quietly, args=(f"{state.runtime_url}/endpoints/minilm/invocations",), daemon=True
    )
    stuck.start()
    try:
        deadline = time.monotonic() + 30
        while not server_status(data_dir) and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.5)  # the request is in, sleeping its injected latency
        assert stop_server(data_dir, grace=1) == proc.pid
        assert proc.wait(timeout=30) == -signal.SIGKILL
        assert read_holder(state_file(data_dir)) is None
    finally:
        stop_process(proc, signal.SIGKILL)


def _post_quietly(url: str) -> None:
    with contextlib.suppress(OSError):
        request = urllib.request.Request(
            url, data=b'{"inputs": ["x"]}', headers={"Content-Type": "application/json"}
        )
        urllib.request.urlopen(request, timeout=60).close()


_IMPOSTOR = """
import socket, sys, time
from pathlib import Path
from sagerag.locks import hold
data_dir = Path(sys.argv[1])
silent = socket.create_server(("127.0.0.1", 0))  # accepts connections, never answers
url = f"http://127.0.0.1:{silent.getsockname()[1]}"
info = {"runtime_url": url, "pinecone_host": url, "data_dir": str(data_dir.resolve()), "idle_timeout": 60}
with hold(data_dir / "serve.json", info):
    print("holding", flush=True)
    time.sleep(600)
"""


def test_a_process_holding_the_lock_that_is_not_a_serve_is_never_signalled(
    data_dir: Path, caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str]
) -> None:
    """What a reused pid looks like from here: the lock's holder lists URLs that do not answer, but it
    is another program. The command must not stop it, only go in-process."""
    data_dir.mkdir(parents=True)
    impostor = subprocess.Popen(
        [sys.executable, "-c", _IMPOSTOR, str(data_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert impostor.stdout is not None and impostor.stdout.readline().strip() == "holding"
        with caplog.at_level(logging.WARNING, logger="sagerag.autoserve"):
            assert ensure_server(data_dir, idle_timeout=60, warm=False) is None
        (warning,) = _autoserve_warnings(caplog)
        assert f"pid {impostor.pid} holds" in warning and "its health check got no answer" in warning
        assert "not a `sagerag serve`" in warning and "not stopping it" in warning
        code, _, err = run_cli(capsys, "serve", "--stop")
        assert code != 0 and "not stopping it" in err
        assert impostor.poll() is None  # never signalled
    finally:
        stop_process(impostor, signal.SIGKILL)
