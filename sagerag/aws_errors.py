"""What a botocore `ClientError` says: its code and message, read in one place.

A module of its own (botocore only) so the light modules that need it (deploy, the CLI) do not import
the adapters and with them LangChain.
"""

from __future__ import annotations


def error_code(exc: BaseException) -> str:
    """botocore's error code for a ClientError (`ModelError`, `ValidationException`, ...), else ''."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Code", ""))


def error_message(exc: BaseException) -> str:
    """botocore's error message for a ClientError, else ''."""
    response = getattr(exc, "response", None)
    if not isinstance(response, dict):
        return ""
    return str(response.get("Error", {}).get("Message", ""))
