"""How other processes find the `sagerag serve` of their data directory, and why they can trust it.

`serve` holds an exclusive lock on `DATA_DIR/serve.json` for as long as it runs and writes its URLs and its
data directory into it. The lock is what makes the file trustworthy: the kernel releases it when serve dies,
so a file left by a killed serve is recognised as stale (and ignored, then replaced by the next serve)
instead of sending this project's documents to whatever now listens on the old ports. The same lock makes
a second serve on the same data directory refuse to start instead of sharing (and later deleting) the
first one's state.
"""

from __future__ import annotations

import json
import os
import signal
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


def running_server(data_dir: Path, timeout: float = 1.0) -> ServeState | None:
    """The live serve of `data_dir`, or None.

    A serve counts only if it still holds its lock (it is alive), it recorded this very data directory
    (not a copied or moved file) and both of its services answer their health check.
    """
    info = read_holder(state_file(data_dir))
    if not info:
        return None
    try:
        state = ServeState(
            str(info["runtime_url"]), str(info["pinecone_host"]), str(info["data_dir"]), int(info["pid"])
        )
    except (KeyError, TypeError, ValueError):
        return None  # starting up (URLs not written yet) or not ours
    if not _same_dir(state.data_dir, data_dir):
        return None
    try:
        for url in (state.runtime_url, state.pinecone_host):
            with urllib.request.urlopen(f"{url}/health", timeout=timeout):
                pass
    except (OSError, ValueError):
        return None
    return state


@contextmanager
def serving(data_dir: Path) -> Iterator[Held]:
    """Claim `data_dir` for one serve; refuses with a clear line when another serve has it."""
    try:
        with hold(state_file(data_dir), {"data_dir": str(data_dir.resolve()), "state": "starting"}) as held:
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


def stop_server(data_dir: Path, timeout: float = 30.0) -> int | None:
    """Stop the serve of `data_dir` (SIGTERM, as Ctrl-C); its pid once it has let go, None if none ran.

    The pid comes from the lock's holder, which is alive while it holds the lock, so it is the serve."""
    info = read_holder(state_file(data_dir))
    if not info or "pid" not in info:
        return None
    pid = int(info["pid"])
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return pid
    deadline = time.monotonic() + timeout
    while read_holder(state_file(data_dir)) is not None:
        if time.monotonic() > deadline:
            raise DataDirBusyError(
                f"the sagerag serve of {data_dir} (pid {pid}) did not stop in {timeout:.0f}s"
            )
        time.sleep(0.05)
    return pid


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
