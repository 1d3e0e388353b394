"""Start-up time of CLI commands, cold (each command starts its own local services) and warm (a running
`sagerag serve` keeps the models loaded), plus where a cold start spends its time.

Each command runs as a new process, as a user runs it, in a fresh data dir holding a small ingested FAQ.
Timings are wall-clock medians of `--repeat` runs; compare them as ratios within one run (shared machines
are noisy). Measures, asserts nothing.

    python scripts/bench_startup.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from _bench_common import FAQ_CSV, machine_lines, print_table

COMMANDS: dict[str, list[str]] = {
    "--help": ["--help"],
    "config": ["config"],
    "ask (refused by the gate)": ["ask", "What is the capital of France?"],
    "ask (answered)": ["ask", "Which instances can I use with Managed Spot Training in SageMaker?"],
    "ingest (nothing to do)": ["ingest", str(FAQ_CSV)],
}


def run(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "sagerag", *argv], env=env, capture_output=True, text=True)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        sys.exit(f"sagerag {' '.join(argv)} failed ({done.returncode}): {done.stderr.strip()[-400:]}")
    return elapsed


def import_seconds(module: str, env: dict[str, str]) -> float:
    code = f"import time; t = time.perf_counter(); import {module}; print(time.perf_counter() - t)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        (root / "sagerag.toml").touch()
        env = {
            **{k: v for k, v in os.environ.items() if not k.startswith(("SAGERAG_", "AWS_", "PINECONE_"))},
            "SAGERAG_DATA_DIR": str(root / "data"),
            "SAGERAG_CONFIG": str(root / "sagerag.toml"),
            "SAGERAG_MAX_NEW_TOKENS": "16",
        }
        run(["ingest", str(FAQ_CSV)], env)
        cold = {
            name: statistics.median(run(argv, env) for _ in range(args.repeat))
            for name, argv in COMMANDS.items()
        }
        parts = {
            module: statistics.median(import_seconds(module, env) for _ in range(args.repeat))
            for module in ("sagerag.cli", "sagerag.pipeline", "sagerag.local", "torch", "llama_cpp")
        }
        serve = subprocess.Popen(
            [sys.executable, "-m", "sagerag", "serve", "--port", "0", "--pinecone-port", "0"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        try:
            deadline = time.monotonic() + 120
            while not (root / "data" / "serve.json").exists() and time.monotonic() < deadline:
                time.sleep(0.2)
            time.sleep(2)
            run(COMMANDS["ask (answered)"], env)  # loads both models in the server
            warm = {
                name: statistics.median(run(argv, env) for _ in range(args.repeat))
                for name, argv in COMMANDS.items()
            }
        finally:
            serve.terminate()
            serve.wait(30)
    for line in machine_lines():
        print(line)
    print(f"\nmedian of {args.repeat} runs, seconds (warm = with `sagerag serve` running)\n")
    print_table(
        ["command", "cold", "warm", "warm / cold"],
        [
            [name, f"{cold[name]:.2f}", f"{warm[name]:.2f}", f"{warm[name] / cold[name]:.2f}"]
            for name in COMMANDS
        ],
    )
    print("\nimport time of the parts, seconds (each in a fresh interpreter)\n")
    print_table(["module", "import"], [[m, f"{s:.2f}"] for m, s in parts.items()])


if __name__ == "__main__":
    main()
