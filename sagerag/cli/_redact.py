"""Keep secrets out of what `--debug` prints: log lines and tracebacks.

botocore's debug log shows each request's headers, and the SigV4 `Authorization` header carries the AWS
access key id (`Credential=AKIA.../...`); session tokens and Pinecone's `Api-Key` header travel the same
way. Every log record and the `--debug` traceback pass through `redact`, which blanks the values of the
secret environment variables and those header fields, whatever logger or exception carries them.
"""

from __future__ import annotations

import logging
import os
import re

SECRET_ENV_VARS = (
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "AWS_SESSION_TOKEN",
    "PINECONE_API_KEY",
    "HF_TOKEN",
    "HUGGING_FACE_HUB_TOKEN",
)
MASK = "**********"
_MIN_SECRET_LEN = 6  # shorter values (e.g. "local", "x") would blank ordinary words, and guard nothing
_PATTERNS = (
    re.compile(r"(Credential=)[^/,\s'\"]+"),
    re.compile(r"(Signature=)[0-9a-fA-F]+"),
    re.compile(r"((?:X-Amz-Security-Token|Api-Key|Authorization)['\"]?\s*[:=]\s*b?['\"]?)[^'\",}\s]+", re.I),
)


def _secrets() -> list[str]:
    values = {os.environ.get(name, "") for name in SECRET_ENV_VARS}
    return sorted((v for v in values if len(v) >= _MIN_SECRET_LEN), key=len, reverse=True)


def redact(text: str) -> str:
    """`text` with secret values and credential header fields masked."""
    for secret in _secrets():
        text = text.replace(secret, MASK)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda m: m.group(1) + MASK, text)
    return text


class RedactingFilter(logging.Filter):
    """A handler filter: renders the record (and its traceback) once, redacted."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info:
            record.exc_text = redact(logging.Formatter().formatException(record.exc_info))
            record.exc_info = None
        return True


def install() -> None:
    """Add the filter to every root handler (records from all loggers propagate through them)."""
    for handler in logging.getLogger().handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(RedactingFilter())
