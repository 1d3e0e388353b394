"""Ingest at scale, on paper: time and cost of `sagerag ingest` for 10k..1M passages against N endpoint
instances, from the simulated endpoint's timing model, the client costs bench_ingest measured, and
Pinecone's documented write limits. Says which part saturates (client CPU, endpoint, Pinecone).

The model (docs/benchmarks.md, "Ingest at scale", states every assumption):
- embedding rate = min(endpoint capacity, in-flight bound, client bounds), where
  endpoint capacity = N x b / service(b)  (b texts per request: 32 for TEI; what the 6 MB response cap
  leaves for the token-level toolkit), in-flight bound = C x b / (round trip + service(b)), and the client:
  its own process is one core (one GIL), so 1 / (its CPU seconds per text); token-level answers are parsed
  in W worker processes (`--parse-workers`; 0: in the client process), W / (parse CPU per text), and all
  of it shares the client machine's CPUs (`--client-cpus`);
- `sagerag ingest` works in batches of `--ingest-batch` documents: embed the batch, then upsert it
  (`--upsert-workers` requests in flight, each `--pinecone-latency-ms`), then write the ledger; so a
  batch's time is embed + upsert, not the larger of the two;
- Pinecone serverless caps upserts per namespace at 100 requests/s and 50 MB/s, 1,000 records or 2 MB
  per request: whichever binds first is the Pinecone bound.

Run: python scripts/scale_ingest.py [--plot docs/ingest_scale.png] [--compare bench_output.txt]
"""

from __future__ import annotations

import argparse
import math
import re
from dataclasses import dataclass
from pathlib import Path

from _bench_common import print_table

from sagerag.adapters.client import SAGEMAKER_MAX_PAYLOAD_BYTES
from sagerag.deploy.pricing import HOURLY_USD, PRICES_AS_OF
from sagerag.ingest import parse_processes_for
from sagerag.local.sagemaker.simulated import (
    TEI_JSON_S_PER_BYTE,
    TOOLKIT_JSON_S_PER_BYTE,
    TOOLKIT_NPY_S_PER_BYTE,
    RemoteTiming,
)

PINECONE_UPSERTS_PER_S = 100
"""Upsert requests per second per namespace (Pinecone database limits, serverless)."""
PINECONE_UPSERT_BYTES_PER_S = 50 * 1024 * 1024
"""Upsert size per second per namespace (Pinecone database limits: 50 MB)."""
PINECONE_MAX_RECORDS = 1000
PINECONE_MAX_REQUEST_BYTES = 2 * 1024 * 1024
PINECONE_USD_PER_M_WRITE_UNITS = 4.0
"""Standard plan, AWS us-east-1, on demand."""
WRITE_UNIT_BYTES = 1024
"""About one write unit per KB written (vector values as float32 plus metadata), rounded up per record."""


@dataclass(frozen=True)
class Endpoint:
    name: str
    per_byte_s: float
    texts_per_request: float
    response_bytes_per_text: float
    client_cpu_s_per_text: float
    """The client process's CPU a text when it parses the answers itself."""
    parse_cpu_s_per_text: float = 0.0
    """CPU a text that parsing workers take over (token-level answers; 0: nothing to parse there)."""
    main_cpu_s_per_text: float = 0.0
    """The client process's CPU a text when workers parse (handing answers over included)."""


@dataclass(frozen=True)
class Setup:
    tokens_per_text: float
    record_json_bytes: float
    record_stored_bytes: float
    concurrency: int
    embed_chunk: int
    upsert_workers: int
    pinecone_latency_s: float
    round_trip_s: float
    per_request_s: float
    per_token_s: float
    instance_type: str
    serial_s_per_text: float
    local_pinecone_rate: float = 0.0
    workers: int = 1
    """Model-server workers per instance of the token-level endpoint (TEI: always 1)."""
    parse_workers: int = 0
    """Client processes parsing token-level answers (`sagerag ingest --parse-processes`)."""
    client_cpus: float = 1.0
    """CPUs the client machine gives the ingest."""


def embed_bounds(e: Endpoint, s: Setup, instances: int) -> dict[str, float]:
    timing = RemoteTiming(
        round_trip_s=s.round_trip_s,
        per_request_s=s.per_request_s,
        per_token_s=s.per_token_s,
        instances=instances,
        per_response_byte_s=e.per_byte_s,
        workers=1 if e.name == "tei" else s.workers,
    )
    b = e.texts_per_request
    service = timing.service_s(round(s.tokens_per_text * b), round(e.response_bytes_per_text * b))
    client_per_request = e.client_cpu_s_per_text * b
    bounds = {
        "endpoint": timing.capacity(s.tokens_per_text, b, e.response_bytes_per_text),
        "in flight": s.concurrency * b / (s.round_trip_s + service + client_per_request),
    }
    if s.parse_workers and e.parse_cpu_s_per_text:
        bounds["client"] = 1.0 / e.main_cpu_s_per_text
        bounds["parsing"] = s.parse_workers / e.parse_cpu_s_per_text
        bounds["client CPUs"] = s.client_cpus / (e.main_cpu_s_per_text + e.parse_cpu_s_per_text)
    else:
        bounds["client"] = min(1.0, s.client_cpus) / e.client_cpu_s_per_text
    return bounds


def write_rate(s: Setup) -> float:
    """Records per second the upserts can take: Pinecone's per-namespace limits, or the client's workers."""
    if s.local_pinecone_rate:
        return s.local_pinecone_rate
    per_request = min(PINECONE_MAX_RECORDS, int(PINECONE_MAX_REQUEST_BYTES // s.record_json_bytes))
    documented = min(PINECONE_UPSERTS_PER_S * per_request, PINECONE_UPSERT_BYTES_PER_S / s.record_json_bytes)
    return min(documented, s.upsert_workers * per_request / s.pinecone_latency_s)


def ingest_seconds(e: Endpoint, s: Setup, instances: int, passages: int) -> tuple[float, str]:
    """Seconds `sagerag ingest` takes for `passages`, and the part that limits it.

    Embedding and upserts overlap chunk by chunk (`PineconeStore.embed_batch_size`), so the slower of the
    two sets the pace and the faster one adds one chunk (filling or draining the pipeline). The ledger's
    work (hashing, SQLite) runs before and after each ingest batch, overlapping nothing.
    """
    bounds = embed_bounds(e, s, instances)
    bounds["Pinecone"] = write_rate(s)
    limit = min(bounds, key=lambda k: bounds[k])
    slowest = bounds[limit]
    other = min(v for k, v in bounds.items() if k != limit) if len(bounds) > 1 else slowest
    chunk = min(s.embed_chunk, passages)
    seconds = passages / slowest + chunk / max(other, slowest) + passages * s.serial_s_per_text
    return seconds, limit


def ingest_rate(e: Endpoint, s: Setup, instances: int, passages: int = 1_000_000) -> tuple[float, str]:
    seconds, limit = ingest_seconds(e, s, instances, passages)
    return passages / seconds, limit


def cost_usd(e: Endpoint, s: Setup, instances: int, passages: int) -> tuple[float, float, float]:
    """(hours, SageMaker USD, Pinecone write USD) to ingest `passages`."""
    seconds, _ = ingest_seconds(e, s, instances, passages)
    hours = seconds / 3600
    sagemaker = HOURLY_USD[s.instance_type] * instances * hours
    units = passages * math.ceil(s.record_stored_bytes / WRITE_UNIT_BYTES)
    return hours, sagemaker, units * PINECONE_USD_PER_M_WRITE_UNITS / 1e6


BENCH_LINE = re.compile(
    r"^\s+(\d+) texts, (\S+), ([\d.]+) ms, (\d+) instance\(s\) x (\d+) worker\(s\), sagerag: "
    r"([\d.]+) texts/s .*"
    r"client CPU (\d+)% of a core"
)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--passages", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    parser.add_argument("--instances", type=int, nargs="+", default=[1, 2, 4, 8, 16])
    parser.add_argument("--rtt-ms", type=float, default=30.0)
    parser.add_argument("--tokens-per-text", type=float, default=106.0, help="the FAQ answers' mean")
    parser.add_argument(
        "--toolkit-client-ms",
        type=float,
        default=2.4,
        help="client CPU per text, token level, parsed in the client process",
    )
    parser.add_argument(
        "--toolkit-main-ms",
        type=float,
        default=1.35,
        help="client process CPU per text, token level, parsed by workers",
    )
    parser.add_argument(
        "--toolkit-parse-ms", type=float, default=1.5, help="parsing workers' CPU per text, token level"
    )
    parser.add_argument(
        "--parse-workers",
        type=int,
        default=4,
        help="client processes parsing token-level answers (sagerag ingest: one a CPU, up to 4)",
    )
    parser.add_argument("--client-cpus", type=float, default=4.0, help="CPUs of the client machine")
    parser.add_argument(
        "--bench-client-cpus",
        type=float,
        default=1.6,
        help="CPUs the bench's client had (--compare): 2, less the emulator's ~0.4",
    )
    parser.add_argument("--tei-client-ms", type=float, default=0.16, help="client CPU per text, pooled")
    parser.add_argument(
        "--npy-client-ms", type=float, default=0.42, help="client CPU per text, token level asked for NPY"
    )
    parser.add_argument(
        "--npy-batch",
        type=float,
        default=7.2,
        help="texts an NPY request (one token count a request, planned 1,024 texts at a time)",
    )
    parser.add_argument(
        "--toolkit-batch", type=float, default=4.4, help="texts a token-level request (the 5 MB budget's cut)"
    )
    parser.add_argument("--concurrency", type=int, default=32, help="requests in flight (max_concurrency)")
    parser.add_argument("--embed-chunk", type=int, default=256, help="PineconeStore.embed_batch_size")
    parser.add_argument(
        "--serial-ms",
        type=float,
        default=0.05,
        help="time a text that overlaps nothing (ledger, SQLite commits; fitted)",
    )
    parser.add_argument(
        "--local-pinecone-rate",
        type=float,
        default=0.0,
        help="vectors/s the local Pinecone takes, for validation (0: Pinecone's documented limits)",
    )
    parser.add_argument("--upsert-workers", type=int, default=4)
    parser.add_argument("--pinecone-latency-ms", type=float, default=50.0)
    parser.add_argument("--record-json-bytes", type=float, default=8_400.0)
    parser.add_argument("--record-stored-bytes", type=float, default=384 * 4 + 600.0)
    parser.add_argument("--instance-type", default="ml.g5.xlarge")
    parser.add_argument(
        "--workers",
        type=int,
        default=4,
        help="model-server workers per token-level instance (sagerag deploy: the vCPUs, 4 on ml.g5.xlarge)",
    )
    parser.add_argument("--plot", type=Path, default=None)
    parser.add_argument("--compare", type=Path, default=None, help="bench_ingest output to validate against")
    args = parser.parse_args()

    setup = Setup(
        tokens_per_text=args.tokens_per_text,
        record_json_bytes=args.record_json_bytes,
        record_stored_bytes=args.record_stored_bytes,
        concurrency=args.concurrency,
        embed_chunk=args.embed_chunk,
        upsert_workers=args.upsert_workers,
        pinecone_latency_s=args.pinecone_latency_ms / 1000,
        round_trip_s=args.rtt_ms / 1000,
        per_request_s=RemoteTiming.per_request_s,
        per_token_s=RemoteTiming.per_token_s,
        instance_type=args.instance_type,
        serial_s_per_text=args.serial_ms / 1000,
        workers=args.workers,
        parse_workers=args.parse_workers,
        client_cpus=args.client_cpus,
    )
    toolkit_bytes = args.tokens_per_text * 384 * 20.6 + 30  # the toolkit's JSON: ~20.6 bytes a value
    tei_bytes = 384 * 11.0 + 4
    npy_bytes = args.tokens_per_text * 384 * 8 + 128 / args.npy_batch  # float64, one header a request
    toolkit_batch = args.toolkit_batch
    client = {
        "client_cpu_s_per_text": args.toolkit_client_ms / 1000,
        "parse_cpu_s_per_text": args.toolkit_parse_ms / 1000,
        "main_cpu_s_per_text": args.toolkit_main_ms / 1000,
    }
    endpoints = [
        Endpoint("toolkit", TOOLKIT_JSON_S_PER_BYTE, toolkit_batch, toolkit_bytes, **client),
        Endpoint("toolkit-npy", TOOLKIT_NPY_S_PER_BYTE, args.npy_batch, npy_bytes, args.npy_client_ms / 1000),
        Endpoint("tei", TEI_JSON_S_PER_BYTE, 32, tei_bytes, args.tei_client_ms / 1000),
    ]
    print(
        f"model: round trip {args.rtt_ms:g} ms, {setup.tokens_per_text:.0f} tokens a passage, "
        f"toolkit batches of {toolkit_batch:.1f} (6 MB cap {SAGEMAKER_MAX_PAYLOAD_BYTES:,} B), "
        f"NPY {args.npy_batch:.1f}, TEI 32; "
        f"{setup.concurrency} requests in flight; a client of {setup.client_cpus:g} CPUs, "
        f"{setup.parse_workers} parsing workers; "
        f"Pinecone bound {write_rate(setup):,.0f} records/s per namespace; "
        f"{args.instance_type} ${HOURLY_USD[args.instance_type]}/h (prices as of {PRICES_AS_OF})\n"
    )
    rows = []
    for e in endpoints:
        for n in args.instances:
            rate, limit = ingest_rate(e, setup, n)
            line = [e.name, str(n), f"{rate:,.0f}", limit]
            for passages in args.passages:
                hours, sm, pc = cost_usd(e, setup, n, passages)
                line.append(f"{hours * 60:,.1f} min, ${sm + pc:,.2f}")
            rows.append(line)
    print_table(
        ["endpoint", "instances", "passages/s", "limited by", *[f"{p:,} passages" for p in args.passages]],
        rows,
    )
    print(
        f"\ncost = SageMaker instance-hours while ingesting + Pinecone write units "
        f"(~{math.ceil(setup.record_stored_bytes / WRITE_UNIT_BYTES)} WU a record at "
        f"${PINECONE_USD_PER_M_WRITE_UNITS}/M); storage and the endpoint's idle hours are not counted"
    )

    if args.compare:
        print("\nvalidation: bench_ingest's sagerag runs vs the model at the same settings\n")
        table = []
        by_name = {e.name: e for e in endpoints}
        by_name["toolkit-free"] = Endpoint("toolkit-free", 0.0, toolkit_batch, toolkit_bytes, **client)
        by_name["toolkit-free-npy"] = Endpoint(
            "toolkit-free-npy", 0.0, args.npy_batch, npy_bytes, args.npy_client_ms / 1000
        )
        for text in args.compare.read_text().splitlines():
            m = BENCH_LINE.match(text)
            if not m:
                continue
            texts, kind, rtt, inst, workers, measured, _cpu = m.groups()
            bench_setup = Setup(
                **{
                    **setup.__dict__,
                    "round_trip_s": float(rtt) / 1000,
                    "local_pinecone_rate": args.local_pinecone_rate,
                    "workers": int(workers),
                    "client_cpus": args.bench_client_cpus,
                    "parse_workers": parse_processes_for(int(texts), round(args.bench_client_cpus)),
                }
            )
            predicted, limit = ingest_rate(by_name[kind], bench_setup, int(inst), int(texts))
            table.append(
                [
                    texts,
                    kind,
                    rtt,
                    inst,
                    workers,
                    measured,
                    f"{predicted:.0f}",
                    f"{float(measured) / predicted:.2f}",
                    limit,
                ]
            )
        print_table(
            [
                "texts",
                "endpoint",
                "rtt ms",
                "instances",
                "workers",
                "measured /s",
                "model /s",
                "measured / model",
                "model limit",
            ],
            table,
        )

    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        grid = [int(10 ** (4 + i / 8)) for i in range(17)]  # 10k .. 1M
        fig, axes = plt.subplots(1, 2, figsize=(11, 4.2), sharex=True)
        for e, style in zip(endpoints, ("-", ":", "--"), strict=True):
            for n in args.instances:
                hours = [cost_usd(e, setup, n, p)[0] for p in grid]
                usd = [sum(cost_usd(e, setup, n, p)[1:]) for p in grid]
                label = f"{e.name}, {n} inst."
                axes[0].plot(grid, hours, style, label=label)
                axes[1].plot(grid, usd, style, label=label)
        axes[0].set_ylabel("ingest time (hours)")
        axes[1].set_ylabel("cost (USD: endpoint hours + Pinecone writes)")
        for ax in axes:
            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.set_xlabel("passages")
            ax.grid(True, which="both", alpha=0.3)
        axes[0].legend(fontsize=7, ncol=2)
        fig.suptitle(
            f"sagerag ingest, modelled: {args.instance_type}, round trip {args.rtt_ms:g} ms, "
            f"{setup.tokens_per_text:.0f} tokens a passage\n(solid: token-level toolkit, {setup.workers} "
            "workers an instance; dotted: the same asked for NPY; dashed: TEI)",
            fontsize=9,
        )
        fig.tight_layout()
        fig.savefig(args.plot, dpi=110)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
