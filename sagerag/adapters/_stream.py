"""Reading SageMaker response streams and cutting at stop words, without langchain-aws's two defects.

langchain-aws's `LineIterator` spins forever when the stream ends on a line without a trailing newline,
and its `enforce_stop_tokens` joins stop words into a regex (`stop=["."]` matches any character and
empties the answer). Here lines end at end-of-stream too, and stop words are literal strings.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any


def iter_payload_lines(events: Iterable[Mapping[str, Any]]) -> Iterator[bytes]:
    """Yield newline-delimited lines from `PayloadPart` events; a last line without newline is kept.

    The event stream is closed when the lines end or the reader stops early (a stop word, the loop
    guard), so an abandoned generation frees its HTTP connection at once instead of at garbage collection.
    """
    buffer = b""
    try:
        for event in events:
            part = event.get("PayloadPart")
            if part is None:
                continue
            buffer += part["Bytes"]
            *lines, buffer = buffer.split(b"\n")
            yield from (line.rstrip(b"\r") for line in lines if line.strip())
        if buffer.strip():
            yield buffer.rstrip(b"\r")
    finally:
        close = getattr(events, "close", None)
        if close is not None:
            close()


def cut_at_stop(text: str, stop: list[str] | None) -> str:
    """Text up to the earliest literal occurrence of any stop word."""
    if not stop:
        return text
    cut = min((i for i in (text.find(s) for s in stop if s) if i >= 0), default=-1)
    return text if cut < 0 else text[:cut]


class StopWordFilter:
    """Streaming stop-word cut: holds back only the tail that could still begin a stop word."""

    def __init__(self, stop: list[str] | None):
        self._stop = [s for s in (stop or []) if s]
        self._held = ""
        self.stopped = False

    def feed(self, text: str) -> str:
        """Return the part of `text` that is safe to emit now."""
        if self.stopped or not self._stop:
            return "" if self.stopped else text
        pending = self._held + text
        cut = cut_at_stop(pending, self._stop)
        if len(cut) < len(pending):
            self.stopped, self._held = True, ""
            return cut
        keep = max((self._partial_suffix(pending, s) for s in self._stop), default=0)
        self._held = pending[len(pending) - keep :] if keep else ""
        return pending[: len(pending) - keep]

    def flush(self) -> str:
        """What was held back, once the stream has ended without a stop word."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    @staticmethod
    def _partial_suffix(text: str, stop: str) -> int:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                return size
        return 0
