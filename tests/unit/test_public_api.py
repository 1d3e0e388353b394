"""The package's top level is the public API: every name in `__all__` resolves, lazily."""

from __future__ import annotations

import subprocess
import sys

import sagerag


def test_every_public_name_resolves() -> None:
    for name in sagerag.__all__:
        assert getattr(sagerag, name) is not None, name


def test_import_sagerag_does_not_load_langchain_or_boto3() -> None:
    code = "import sys, sagerag; print(any(m.startswith(('langchain', 'boto3')) for m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
