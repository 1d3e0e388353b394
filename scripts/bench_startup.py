"""Start-up time of CLI commands, before and after the background serve, measured in one run.

Each command runs as a new process, as a user runs it, in a data dir holding the ingested FAQ. Variants:

- before, cold: an older sagerag (`--before-rev`, default 3d34af9, extracted with `git archive`): every
  command starts its own local services and loads its models.
- before, warm: the same with a `sagerag serve` running.
- after, cold: this tree, no serve running: the command starts the background serve (and waits for it).
- after, warm: this tree, the background serve the previous command started is running.
- after, off: this tree with SAGERAG_SERVE_IDLE_TIMEOUT=0: in-process services, as before.

Timings are wall-clock medians of `--repeat` runs, interleaved so that machine load hits every variant
alike; the table gives each as a ratio to "before, cold". Compare ratios, not seconds across runs.
Measures, asserts nothing.

    python scripts/bench_startup.py [--repeat 2] [--before-rev 3d34af9]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
import urllib.request
from collections import defaultdict
from pathlib import Path

from _bench_common import FAQ_CSV, machine_lines, print_table

REPO = Path(__file__).resolve().parents[1]
COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "config": ["config"],
    "ask (refused by the gate)": ["ask", "What is the capital of France?"],
    "ask (answered)": ["ask", "Which instances can I use with Managed Spot Training in SageMaker?"],
    "ingest (nothing to do)": ["ingest", str(FAQ_CSV)],
}
VARIANTS = ("before, cold", "before, warm", "after, cold", "after, warm", "after, off")


def extract(rev: str, into: Path) -> Path:
    """The `sagerag` package of `rev`, from git (a copy: the working tree is not touched)."""
    archive = into / "before.tar"
    with archive.open("wb") as handle:
        subprocess.run(["git", "-C", str(REPO), "archive", rev, "sagerag"], stdout=handle, check=True)
    with tarfile.open(archive) as tar:
        tar.extractall(into / "before", filter="data")
    return into / "before"


def make_env(root: Path, code: Path, data: str, **extra: str) -> dict[str, str]:
    keep = {k: v for k, v in os.environ.items() if not k.startswith(("SAGERAG_", "AWS_", "PINECONE_"))}
    (root / "sagerag.toml").touch()
    return {
        **keep,
        "PYTHONPATH": str(code),
        "SAGERAG_DATA_DIR": str(root / data),
        "SAGERAG_CONFIG": str(root / "sagerag.toml"),
        "SAGERAG_MAX_NEW_TOKENS": "16",
        **extra,
    }


def run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sagerag", *argv], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"sagerag {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return elapsed


def serve_info(data_dir: Path) -> dict[str, object]:
    """What the running serve of `data_dir` says about itself (models loaded and their load times)."""
    state = json.loads((data_dir / "serve.json").read_text())
    with urllib.request.urlopen(f"{state['runtime_url']}/health", timeout=5) as response:
        return dict(json.loads(response.read()))


def import_seconds(module: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=2)
    parser.add_argument("--before-rev", default="3d34af9")
    parser.add_argument(
        "--command", action="append", choices=list(COMMANDS), help="Only these commands (repeatable)."
    )
    args = parser.parse_args()
    commands = {name: COMMANDS[name] for name in (args.command or COMMANDS)}
    times: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        before_code = extract(args.before_rev, root)
        before = make_env(root, before_code, "data-before")
        after = make_env(root, REPO, "data-after")
        off = {**after, "SAGERAG_SERVE_IDLE_TIMEOUT": "0"}
        run(["ingest", str(FAQ_CSV)], before)
        run(["ingest", str(FAQ_CSV)], off)
        models_loaded: dict[str, object] = {}
        for _ in range(args.repeat):
            for name, argv in commands.items():
                times[name]["before, cold"].append(run(argv, before))
                run(["serve", "--stop"], after)  # the previous command's background serve
                times[name]["after, off"].append(run(argv, off))
                times[name]["after, cold"].append(run(argv, after))  # starts the background serve
                times[name]["after, warm"].append(run(argv, after))
        models_loaded = dict(serve_info(root / "data-after").get("models_loaded", {}))  # type: ignore[call-overload]
        run(["serve", "--stop"], after)
        serve = subprocess.Popen(
            [sys.executable, "-m", "sagerag", "serve", "--port", "0", "--pinecone-port", "0"],
            env=before,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            deadline = time.monotonic() + 120
            while not (root / "data-before" / "serve.json").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)
            run(COMMANDS["ask (answered)"], before)  # loads both models in the server
            for _ in range(args.repeat):
                for name, argv in commands.items():
                    times[name]["before, warm"].append(run(argv, before))
        finally:
            serve.terminate()
            serve.wait(30)
        parts = {
            module: statistics.median(import_seconds(module, off) for _ in range(args.repeat))
            for module in (
                "sagerag.cli",
                "sagerag.pipeline",
                "sagerag.chains",
                "sagerag.local.sagemaker.server",
                "torch",
                "transformers",
                "llama_cpp",
            )
        }
    medians = {name: {v: statistics.median(times[name][v]) for v in VARIANTS} for name in commands}
    for line in machine_lines():
        print(line)
    print(
        f"\nmedian of {args.repeat} runs; seconds, and each as a ratio to `before, cold` (before = {args.before_rev})\n"
    )
    print_table(
        ["command", *VARIANTS],
        [
            [
                name,
                *(
                    f"{m[v]:.2f} ({m[v] / m['before, cold']:.2f}x)" if v != "before, cold" else f"{m[v]:.2f}"
                    for v in VARIANTS
                ),
            ]
            for name, m in medians.items()
        ],
    )
    print("\nimport time of the parts (this tree), seconds, each in a fresh interpreter\n")
    print_table(["module", "import"], [[m, f"{s:.2f}"] for m, s in parts.items()])
    print("\nmodel load times in the background serve (seconds):", json.dumps(models_loaded))


if __name__ == "__main__":
    main()
