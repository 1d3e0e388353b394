"""Shared helpers for the benchmark scripts: the FAQ data, machine/version lines, table printing."""

from __future__ import annotations

import json
import os
import platform
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from io import BytesIO
from pathlib import Path

EVALS = Path(__file__).resolve().parents[1] / "evals"
FAQ_CSV = EVALS / "Amazon_SageMaker_FAQs.csv"
"""The repository's copy of the SageMaker FAQ (MIT-0; see evals/README.md)."""


def faq_answers() -> list[str]:
    """The 154 FAQ answers, loaded as `sagerag ingest` loads them."""
    from sagerag.ingest import load_csv

    return [doc.page_content for doc in load_csv(FAQ_CSV)]


def faq_questions() -> list[dict[str, object]]:
    lines = (EVALS / "sagemaker_faq_questions.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def machine_lines(packages: tuple[str, ...] = ()) -> list[str]:
    names = ("sagerag", "torch", "sentence-transformers", "transformers", "boto3", "pinecone", *packages)
    versions = []
    for name in names:
        try:
            versions.append(f"{name} {metadata.version(name)}")
        except metadata.PackageNotFoundError:
            versions.append(f"{name} -")
    try:
        load = "load average " + " ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "load average n/a"
    return [
        f"machine: {platform.platform()}, {platform.processor() or platform.machine()}, "
        f"cpus: {os.cpu_count()}, {load}",
        f"python {platform.python_version()}; " + ", ".join(versions),
    ]


def print_table(headers: list[str], rows: list[list[str]]) -> None:
    """A plain Markdown table (pastes into docs/benchmarks.md as is)."""
    widths = [max(len(str(c)) for c in col) for col in zip(headers, *rows, strict=True)]
    print("| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |")
    print("|" + "|".join("-" * (w + 2) for w in widths) + "|")
    for row in rows:
        print("| " + " | ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)) + " |")


@contextmanager
def ref_package(ref: str) -> Iterator[str]:
    """A directory holding the `sagerag` package of git ref `ref` (`git archive`; the working tree is
    untouched): put it first on PYTHONPATH to run a benchmark on that code."""
    root = Path(__file__).resolve().parents[1]
    archive = subprocess.run(
        ["git", "-C", str(root), "archive", "--format=tar", ref, "sagerag"], check=True, capture_output=True
    ).stdout
    with tempfile.TemporaryDirectory() as tmp:
        with tarfile.open(fileobj=BytesIO(archive)) as tar:
            tar.extractall(tmp, filter="data")
        yield tmp
