"""How other processes find the `sagerag serve` of their data directory, and why they can trust it.

`serve` holds an exclusive lock on `DATA_DIR/serve.json` for as long as it runs and writes its URLs and its
data directory into it. The lock is what makes the file trustworthy: the kernel releases it when serve dies,
so a file left by a killed serve is recognised as stale (and ignored, then replaced by the next serve)
instead of sending this project's documents to whatever now listens on the old ports. The same lock makes
a second serve on the same data directory refuse to start instead of sharing (and later deleting) the
first one's state.

A lock proves that *some* process holds the file, not what that process is. Before signalling the pid it
names, `serve_process` checks that the pid is a `sagerag serve` that has this very `serve.json` open, so a
serve that hangs can be stopped without ever killing an unrelated process that was given a reused pid.
"""

from __future__ import annotations

import contextlib
import json
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sagerag.errors import DataDirBusyError
from sagerag.locks import Held, LockBusy, hold, read_holder

SERVE_STATE_FILE = "serve.json"
"""In the data directory: the running serve's URLs, locked by it while it runs."""


@dataclass(frozen=True)
class ServeState:
    """A live serve for one data directory."""

    runtime_url: str
    pinecone_host: str
    data_dir: str
    pid: int


def state_file(data_dir: Path) -> Path:
    return data_dir / SERVE_STATE_FILE


def _same_dir(a: str | Path, b: Path) -> bool:
    try:
        return Path(a).resolve() == b.resolve()
    except OSError:
        return False


def listed_server(data_dir: Path) -> ServeState | None:
    """The serve that holds `data_dir` and has published its URLs, answering or not; None when none
    holds it, it is starting (no URLs yet), stopping (it unlisted them) or it recorded another directory
    (a copied or moved file)."""
    info = read_holder(state_file(data_dir))
    if not info:
        return None
    try:
        state = ServeState(
            str(info["runtime_url"]), str(info["pinecone_host"]), str(info["data_dir"]), int(info["pid"])
        )
    except (KeyError, TypeError, ValueError):
        return None
    return state if _same_dir(state.data_dir, data_dir) else None


def answers(state: ServeState, timeout: float) -> bool:
    """Both services of `state` answer their health check within `timeout` seconds each."""
    try:
        for url in (state.runtime_url, state.pinecone_host):
            with urllib.request.urlopen(f"{url}/health", timeout=timeout):
                pass
    except (OSError, ValueError):
        return False
    return True


def running_server(data_dir: Path, timeout: float = 1.0) -> ServeState | None:
    """The live serve of `data_dir`, or None.

    A serve counts only if it still holds its lock (it is alive), it recorded this very data directory
    (not a copied or moved file) and both of its services answer their health check.
    """
    state = listed_server(data_dir)
    return state if state is not None and answers(state, timeout) else None


def serve_process(data_dir: Path, pid: int) -> Any | None:
    """The `psutil.Process` of `pid` if it is a `sagerag serve` with this data dir's `serve.json` open (the
    lock holder), else None: gone, a reused pid now running another program, or not ours to inspect."""
    import psutil

    target = state_file(data_dir).resolve()
    try:
        proc = psutil.Process(pid)
        command = proc.cmdline()
        if "serve" not in command:
            return None
        before = command[: command.index("serve")]
        # `sagerag serve` or `python -m sagerag serve`
        if not any(Path(arg).name == "sagerag" for arg in before):
            return None
        if not any(Path(f.path) == target for f in proc.open_files()):
            return None
    except psutil.Error:
        return None
    return proc


def suspended(pid: int) -> bool:
    """True when `pid` is stopped (SIGSTOP, Ctrl-Z, a debugger): it holds its lock but cannot answer."""
    import psutil

    try:
        return psutil.Process(pid).status() in (psutil.STATUS_STOPPED, psutil.STATUS_TRACING_STOP)
    except psutil.Error:
        return False


@contextmanager
def serving(data_dir: Path, idle_timeout: float = 0.0) -> Iterator[Held]:
    """Claim `data_dir` for one serve; refuses with a clear line when another serve has it.

    `idle_timeout` is recorded from the start: a command may replace a hung serve that exits when idle
    (it is disposable), never one that runs until stopped (the user's; see `sagerag.autoserve`)."""
    starting = {"data_dir": str(data_dir.resolve()), "state": "starting", "idle_timeout": idle_timeout}
    try:
        with hold(state_file(data_dir), starting) as held:
            yield held
    except LockBusy as busy:
        where = busy.holder.get("pinecone_host")
        raise DataDirBusyError(
            f"another `sagerag serve` (pid {busy.holder.get('pid', '?')}"
            f"{f', Pinecone API at {where}' if where else ''}) already serves data dir {data_dir}; "
            "use that one, stop it first, or pass another --data-dir"
        ) from None


def record_urls(held: Held, data_dir: Path, runtime_url: str, pinecone_host: str, **extra: Any) -> None:
    """Publish the serve's URLs once its servers accept connections (`extra`: how it runs, for status)."""
    held.record(
        {
            "runtime_url": runtime_url,
            "pinecone_host": pinecone_host,
            "data_dir": str(data_dir.resolve()),
            **extra,
        }
    )


STOP_GRACE_S = 10.0
"""How long `stop_server` lets a serve shut down after SIGTERM before it kills it."""


def stop_server(data_dir: Path, grace: float = STOP_GRACE_S, pid: int | None = None) -> int | None:
    """Stop the serve of `data_dir` (only if its pid is `pid`, when given); its pid once it has let go of
    the data dir, None if none ran.

    SIGTERM first (as Ctrl-C: it closes its stores), with SIGCONT so that a stopped serve can act on it;
    SIGKILL if it still holds the data dir after `grace` seconds (hung). Only a process that
    `serve_process` recognises is signalled: anything else holding the lock is a `DataDirBusyError`."""
    import psutil

    info = read_holder(state_file(data_dir))
    if not info or "pid" not in info or (pid is not None and info["pid"] != pid):
        return None
    pid = int(info["pid"])
    proc = serve_process(data_dir, pid)
    if proc is None:
        if read_holder(state_file(data_dir)) is None:
            return pid  # it exited while we looked
        raise DataDirBusyError(
            f"{state_file(data_dir)} is locked by pid {pid}, which is not a `sagerag serve` of {data_dir} "
            "(or not one this user may inspect); not stopping it: check that process yourself"
        )
    try:
        proc.terminate()
        proc.resume()
    except psutil.NoSuchProcess:
        return pid
    if _released(data_dir, grace):
        return pid
    with contextlib.suppress(psutil.NoSuchProcess):
        proc.kill()  # psutil refuses to signal a pid that was reused since `serve_process` looked
    if _released(data_dir, 10.0):
        return pid
    raise DataDirBusyError(f"the sagerag serve of {data_dir} (pid {pid}) did not stop, even on SIGKILL")


def _released(data_dir: Path, within: float) -> bool:
    """Wait up to `within` seconds for no process to hold `data_dir`'s serve lock."""
    deadline = time.monotonic() + within
    while read_holder(state_file(data_dir)) is not None:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def server_status(data_dir: Path) -> dict[str, Any] | None:
    """What the serve of `data_dir` recorded (pid, URLs, auto-started, idle timeout) and its health
    (models loaded), or None when no serve holds the data dir."""
    info = read_holder(state_file(data_dir))
    if not info:
        return None
    status: dict[str, Any] = {**info, "healthy": False}
    url = info.get("runtime_url")
    if url:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2.0) as response:
                health = json.loads(response.read())
            status.update(healthy=True, models_loaded=health.get("models_loaded", {}))
        except (OSError, ValueError):
            pass
    return status
