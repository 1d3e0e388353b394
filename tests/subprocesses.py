"""Subprocess helpers for the reliability, bad-input and security tests.

Subprocess runs of `python -m sagerag` get a clean environment (no SAGERAG_*/AWS_*/PINECONE_* from the
caller) plus what each test sets. Most of them run in *remote* mode against servers in this test process,
so the child loads no model and starts in a few seconds. `CutProxy` stands between a client and a local
server and can pull the plug, or stop answering, when a chosen request goes through it.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

from sagerag.local import LocalPinecone
from sagerag.local._server import free_port
from tests.support import empty_config

CANARY = "CANARY-SECRET-5f1e9a7c3b2d"
"""A unique string planted as every secret; it must never be printed."""
PINECONE_KEY = "reliability-key-0123"
FACT = "Reliability probes are answered by the endpoint that serves the llama2 model."
FACT_QUESTION = "What answers reliability probes?"
_SCRUB = ("SAGERAG_", "AWS_", "PINECONE_")


def base_env(root: Path, **extra: str) -> dict[str, str]:
    """A child environment with nothing sagerag-related inherited, a private data dir and short answers."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(_SCRUB)}
    env.update(
        SAGERAG_DATA_DIR=str(root / "data"),
        SAGERAG_CONFIG=str(empty_config(root)),
        SAGERAG_MAX_NEW_TOKENS="4",
        SAGERAG_SERVE_IDLE_TIMEOUT="0",  # no background serve left behind; tests/integration/test_autoserve.py
        PYTHONUNBUFFERED="1",
    )
    env.update(extra)
    return env


def remote_env(root: Path, runtime_url: str, pinecone_host: str, **extra: str) -> dict[str, str]:
    """Remote mode by configuration only, pointed at servers on loopback."""
    settings = {
        "SAGERAG_REMOTE": "1",
        "SAGERAG_ENDPOINT_URL": runtime_url,
        "SAGERAG_PINECONE_HOST": pinecone_host,
        "PINECONE_API_KEY": PINECONE_KEY,
        "AWS_ACCESS_KEY_ID": "reliability-access",
        "AWS_SECRET_ACCESS_KEY": "reliability-secret",
        "SAGERAG_TIMEOUT": "5",
    }
    return base_env(root, **{**settings, **extra})


def start_serve(env: dict[str, str], data_dir: Path, *extra: str) -> tuple[subprocess.Popen[str], object]:
    """`sagerag serve` on free ports for `data_dir`, once it is discoverable: (process, its ServeState)."""
    from sagerag.autoserve import serve_command
    from sagerag.serve_state import running_server

    proc = subprocess.Popen(
        serve_command(data_dir, "--port", str(free_port()), "--pinecone-port", str(free_port()), *extra),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 60
    while proc.poll() is None and time.monotonic() < deadline:
        state = running_server(data_dir)
        if state is not None:
            return proc, state
        time.sleep(0.05)
    stop_process(proc)
    raise AssertionError(f"serve did not start: {proc.stderr.read() if proc.stderr else ''}")


def stop_process(proc: subprocess.Popen[str], sig: int = signal.SIGTERM) -> int:
    """Stop a child we started (by its own pid) and return its exit code."""
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    return int(proc.returncode)


def run_sagerag(
    *argv: str, env: dict[str, str], timeout: float = 120, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    """Run `python -m sagerag ARGV` to completion."""
    return subprocess.run(
        [sys.executable, "-m", "sagerag", *argv],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd,
    )


def error_lines(stderr: str) -> list[str]:
    """stderr lines that are not model-loading progress noise."""
    return [line for line in stderr.splitlines() if line.strip() and not line.startswith("Loading weights")]


def assert_one_line_error(stderr: str, *needles: str) -> str:
    """Exactly one `error: ...` line, no traceback, mentioning every needle; returns the line."""
    assert "Traceback" not in stderr, stderr
    errors = [line for line in error_lines(stderr) if line.startswith("error:")]
    assert len(errors) == 1, stderr
    for needle in needles:
        assert needle in errors[0], (needle, errors[0])
    return errors[0]


def stored_ids(pinecone: LocalPinecone, index: str = "sagerag", namespace: str = "") -> list[str]:
    """Every id in an index namespace, through the SDK's list API (with duplicates, if any)."""
    pc = pinecone.client()
    handle = pc.Index(host=pc.indexes.describe(index).host)
    return [item.id for page in handle.list(namespace=namespace) for item in page.vectors]


def ids_in_data_dir(data_dir: Path, index: str = "sagerag") -> list[str]:
    """Ids stored by the embedded default under `data_dir` (opens its local Pinecone briefly)."""
    with LocalPinecone(data_dir / "pinecone", api_key=PINECONE_KEY) as pinecone:
        pc = pinecone.client()
        if not pc.indexes.exists(index):
            return []
        return stored_ids(pinecone, index)


def ledger_count(data_dir: Path) -> int:
    """Documents recorded as stored in the ingestion ledger (0 while it does not exist yet)."""
    db = data_dir / "records.sqlite3"
    if not db.exists():
        return 0
    try:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)) as conn:
            return int(conn.execute("SELECT count(*) FROM upsertion_record").fetchone()[0])
    except sqlite3.Error:
        return 0


def write_faq(path: Path, rows: list[tuple[str, str]]) -> Path:
    import csv

    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["question", "answer"])
        writer.writerows(rows)
    return path


def short_rows(n: int, prefix: str = "row") -> list[tuple[str, str]]:
    return [
        (f"What is {prefix} {i}?", f"{prefix} {i} is item number {i} of a synthetic corpus.")
        for i in range(n)
    ]


class CutProxy:
    """A TCP proxy to `upstream`; when a request containing `trigger` passes, it drops or stalls.

    `mode="drop"`: close that connection and stop listening (the endpoint is gone: later connects are
    refused). `mode="hang"`: swallow the request and never answer (a stuck endpoint).
    """

    def __init__(self, upstream_port: int, trigger: bytes, mode: str = "drop") -> None:
        self.upstream_port = upstream_port
        self.trigger = trigger
        self.mode = mode
        self.port = free_port()
        self.triggered = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", self.port))
        self._sockets: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            upstream = socket.create_connection(("127.0.0.1", self.upstream_port))
            self._sockets += [client, upstream]
            threading.Thread(target=self._pump, args=(client, upstream, True), daemon=True).start()
            threading.Thread(target=self._pump, args=(upstream, client, False), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while chunk := src.recv(65536):
                if outbound and self.trigger in chunk:
                    self.triggered.set()
                    if self.mode == "drop":
                        self.close()
                    return  # "hang": the request is swallowed, the client waits
                dst.sendall(chunk)
        except OSError:
            pass

    def close(self) -> None:
        self._closed = True
        for sock in [self._listener, *self._sockets]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                sock.close()


def interruptible() -> None:
    """`preexec_fn` for a child that a test stops with SIGINT, as Ctrl-C does.

    A job started in the background by a non-interactive shell (a CI script run with `&`) inherits SIGINT
    ignored, and Python then leaves it ignored: restore the default so the child sees KeyboardInterrupt.
    """
    signal.signal(signal.SIGINT, signal.SIG_DFL)
