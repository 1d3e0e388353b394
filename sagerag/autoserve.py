"""The background `sagerag serve` that `ask`, `batch` and `ingest` start on first use, to keep models warm.

Without it every command loads MiniLM (and, to answer, SmolLM2) again: several seconds before it does
anything. The first command of a data directory starts `sagerag serve --idle-timeout N --warm` detached,
on free loopback ports, logging to `DATA_DIR/serve.log`; it and every later command then find it as they
find a serve the user started (`serve_state.running_server`). It exits after N seconds without a request
(`SAGERAG_SERVE_IDLE_TIMEOUT`; 0 or `off` starts none), and `sagerag serve --stop` stops it.

One per data directory: the serve's own lock on `serve.json` makes a second one refuse, and a start lock
(`serve.start.lock`) makes two first commands start one between them. A serve that crashed released its
lock, so the next command starts a new one. A serve stopping on idle first unlists its URLs (commands
then wait for it to let go and start a new one) and keeps answering for a few seconds, for a command that
found it just before. The start runs in a thread (`start_soon`) while the command
imports its libraries, and the serve loads MiniLM while the command gets ready, so the first command does
not wait longer than it would loading the models itself; if the serve cannot start, the command says so
and uses in-process services as before.

A serve that holds its lock but does not answer is noticed in seconds, not after START_TIMEOUT: a stopped
one (SIGSTOP, Ctrl-Z) at once, a stuck one when its health check gets no answer in HEALTH_TIMEOUT. One
that exits when idle (every background serve) is disposable: the command stops it (SIGTERM, then SIGKILL, once `serve_state.serve_process` has made
sure the pid is that serve) and starts a new one. One that runs until stopped was started by the user,
who may have paused it on purpose: the command leaves it alone, says so, and loads the models itself.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import time
from concurrent.futures import Future
from pathlib import Path
from typing import Any

from sagerag.errors import DataDirBusyError
from sagerag.locks import hold, read_holder
from sagerag.serve_state import (
    ServeState,
    answers,
    listed_server,
    running_server,
    serve_process,
    state_file,
    stop_server,
    suspended,
)

START_LOCK = "serve.start.lock"
LOG_FILE = "serve.log"
"""In the data directory: the background serve's output (kept to about LOG_MAX_BYTES, one old copy)."""
LOG_MAX_BYTES = 1_000_000
START_TIMEOUT = 60.0
"""How long a command waits for a starting serve before it gives up and loads the models itself."""
HEALTH_TIMEOUT = 3.0
"""How long a listed serve may take to answer its health check before a command calls it hung. A busy
serve answers at once: the check runs on its event loop, model calls in threads."""
REPLACE_GRACE = 5.0
"""How long a hung background serve gets to exit on SIGTERM before it is killed."""

logger = logging.getLogger(__name__)
_pending: dict[Path, Future[subprocess.Popen[bytes] | None]] = {}


def log_path(data_dir: Path) -> Path:
    return data_dir / LOG_FILE


def serve_command(data_dir: Path, *options: str) -> list[str]:
    """The command line of a `sagerag serve` of `data_dir` run by this interpreter."""
    return [sys.executable, "-m", "sagerag", "serve", "--data-dir", str(data_dir), *options]


def _spawn(data_dir: Path, idle_timeout: float, warm: bool) -> subprocess.Popen[bytes]:
    """`sagerag serve` detached from this process (own session: Ctrl-C here does not stop it)."""
    log = log_path(data_dir)
    log.parent.mkdir(parents=True, exist_ok=True)
    if log.exists() and log.stat().st_size > LOG_MAX_BYTES:
        log.replace(log.with_name(LOG_FILE + ".1"))
    command = serve_command(
        data_dir, "--port", "0", "--pinecone-port", "0", "--idle-timeout", f"{idle_timeout:g}"
    ) + (["--warm"] if warm else [])
    with log.open("ab") as handle:
        return subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=handle, stderr=subprocess.STDOUT, start_new_session=True
        )


def _claim_and_spawn(data_dir: Path, idle_timeout: float, warm: bool) -> subprocess.Popen[bytes] | None:
    """Start a serve unless one holds (or is claiming) `data_dir`; returns once the new one holds it.

    Under the start lock, so of two commands starting at once only the first spawns; the second sees the
    serve's claim on `serve.json` and waits for that serve instead."""
    with hold(data_dir / START_LOCK, {"purpose": "starting a background sagerag serve"}, wait=True):
        if read_holder(state_file(data_dir)) is not None:
            return None  # running, or starting: use that one
        proc = _spawn(data_dir, idle_timeout, warm)
        deadline = time.monotonic() + START_TIMEOUT
        while read_holder(state_file(data_dir)) is None and proc.poll() is None:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        return proc


def start_soon(data_dir: Path, idle_timeout: float, warm: bool = True) -> None:
    """Begin starting the background serve in a thread: the caller's imports overlap its start-up."""
    key = data_dir.resolve()
    if idle_timeout <= 0 or key in _pending:
        return
    future: Future[subprocess.Popen[bytes] | None] = Future()

    def run() -> None:
        try:
            future.set_result(_claim_and_spawn(data_dir, idle_timeout, warm))
        except BaseException as exc:  # reported by ensure_server, in the caller's thread
            future.set_exception(exc)

    _pending[key] = future
    threading.Thread(target=run, name="sagerag-autoserve", daemon=True).start()


def ensure_server(
    data_dir: Path, idle_timeout: float, warm: bool = True, timeout: float = START_TIMEOUT
) -> ServeState | None:
    """The serve of `data_dir`, started in the background if there is none; None when it cannot start
    (logged as a warning naming the log file; the caller then runs the services in-process).

    `warm`: the new serve loads MiniLM at once, which every command needs, while the command gets ready."""
    state = running_server(data_dir)
    if state is not None or idle_timeout <= 0:
        return state
    future = _pending.pop(data_dir.resolve(), None)
    try:
        proc = future.result() if future is not None else _claim_and_spawn(data_dir, idle_timeout, warm)
    except OSError as exc:
        logger.warning("could not start a background sagerag serve (%s); loading the models here", exc)
        return None
    deadline = time.monotonic() + timeout
    respawned = replaced = False
    while time.monotonic() < deadline:
        state = running_server(data_dir)
        if state is not None:
            return state
        holder = read_holder(state_file(data_dir))
        if holder is None and (proc is None or proc.poll() is not None):
            if respawned:
                break  # nobody serves this data dir, nor is starting to
            # The holder was a serve stopping on idle (it unlists itself first), or one that died while
            # starting: start a new one, once.
            respawned = True
            proc = _claim_and_spawn(data_dir, idle_timeout, warm)
            continue
        if holder is not None and not replaced and (why := _hung(data_dir, holder)):
            if not _stop_hung(data_dir, holder, why):
                return None
            replaced = True  # once: a new serve that hangs too is waited for, as before
            proc = _claim_and_spawn(data_dir, idle_timeout, warm)
            continue
        time.sleep(0.05)
    logger.warning(
        "the background sagerag serve did not start (see %s); loading the models here. "
        "SAGERAG_SERVE_IDLE_TIMEOUT=0 turns it off",
        log_path(data_dir),
    )
    return None


def _hung(data_dir: Path, holder: dict[str, Any]) -> str | None:
    """Why the live holder of `data_dir` will not serve this command, or None if it may yet: it is
    stopped, or it listed its URLs but does not answer its health check within HEALTH_TIMEOUT. (A serve
    still starting or stopping on idle is waited for, as long as it runs.)"""
    pid = holder.get("pid")
    if not isinstance(pid, int):
        return None
    if suspended(pid):
        return "it is stopped (SIGSTOP or Ctrl-Z)"
    listed = listed_server(data_dir)
    if listed is None or listed.pid != pid or answers(listed, HEALTH_TIMEOUT):
        return None
    if read_holder(state_file(data_dir)) != holder:
        return None  # it changed meanwhile (stopping on idle, or replaced): look again
    return f"its health check got no answer within {HEALTH_TIMEOUT:g}s"


def _stop_hung(data_dir: Path, holder: dict[str, Any], why: str) -> bool:
    """Stop the hung serve `holder` if it is a disposable one (it exits when idle); True once it is gone.
    False (after one line saying why) when the command should load the models itself instead."""
    pid = holder.get("pid")
    disposable = bool(holder.get("stopping")) or float(holder.get("idle_timeout") or 0) > 0
    if not disposable:
        logger.warning(
            "the sagerag serve of %s (pid %s) does not answer: %s; loading the models here. It runs until "
            "stopped, so it is left alone: `sagerag serve --stop` (or kill %s) ends it",
            data_dir,
            pid,
            why,
            pid,
        )
        return False
    # Under the start lock, so that of two commands finding it hung only one stops it, and neither
    # stops the serve the other started in its place.
    with hold(data_dir / START_LOCK, {"purpose": "replacing a hung sagerag serve"}, wait=True):
        if read_holder(state_file(data_dir)) != holder:
            return True  # gone, or replaced already
        if not isinstance(pid, int) or serve_process(data_dir, pid) is None:
            logger.warning(
                "pid %s holds %s and does not answer (%s), but it is not a `sagerag serve` of this data "
                "dir: not stopping it; loading the models here",
                pid,
                state_file(data_dir),
                why,
            )
            return False
        logger.warning(
            "the background sagerag serve of %s (pid %s) does not answer: %s; stopping it and starting a "
            "new one (its log: %s)",
            data_dir,
            pid,
            why,
            log_path(data_dir),
        )
        try:
            stop_server(data_dir, grace=REPLACE_GRACE, pid=pid)
        except DataDirBusyError as exc:
            logger.warning("%s; loading the models here", exc)
            return False
    return True
