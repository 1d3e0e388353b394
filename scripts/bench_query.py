"""End-to-end `ask` latency split into embed / search / generate, and the LCEL chain's own overhead.

For each question the same work runs twice, interleaved: once as three direct calls (embed the question,
search Pinecone, stream the LLM's answer over the budgeted context) and once through `build_rag_chain`.
Generation is seeded and greedy, so both produce the same tokens; the difference is the chain's overhead
(LangChain runnables, callbacks, the abstention stream). Medians over questions and rounds.

Run: python scripts/bench_query.py [--questions N] [--rounds R] [--max-new-tokens T]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time

from _bench_common import FAQ_CSV, faq_questions, machine_lines, print_table

from sagerag.adapters import make_embeddings, make_llm
from sagerag.chains import DEFAULT_MIN_SCORE, build_rag_chain, normalize_answer
from sagerag.ingest import load_csv
from sagerag.local import LocalPinecone, LocalRuntime
from sagerag.prompts import resolve_prompt
from sagerag.prompts.context import select_context
from sagerag.prompts.sanitize import neutralize
from sagerag.stores import PineconeStore, ensure_index


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--questions", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument(
        "--torch-threads",
        type=int,
        default=None,
        help="torch intra-op threads for MiniLM (default: torch's own; 1 avoids spin-waiting on a busy machine)",
    )
    args = parser.parse_args()
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    docs = load_csv(FAQ_CSV)
    questions = [str(q["question"]) for q in faq_questions()[: args.questions]]
    prompt = resolve_prompt("default")
    steps: dict[str, list[float]] = {"embed": [], "search": [], "generate": [], "direct": [], "chain": []}
    with tempfile.TemporaryDirectory() as tmp, LocalRuntime() as runtime, LocalPinecone(tmp) as pinecone:
        client = runtime.client()
        embeddings = make_embeddings("minilm", client=client)
        llm = make_llm("llama2", client=client, model_kwargs={"max_new_tokens": args.max_new_tokens})
        pc = pinecone.client()
        ensure_index(pc, "bench", 384)
        store = PineconeStore.from_index_name(pc, "bench", embeddings)
        store.add_documents(docs)
        chain = build_rag_chain(llm, store, k=5)
        llm.invoke("warm up")

        def direct(question: str) -> str:
            t0 = time.perf_counter()
            vector = embeddings.embed_query(question)
            t1 = time.perf_counter()
            scored = store.similarity_search_by_vector_with_score(vector, k=5)
            t2 = time.perf_counter()
            if not scored or scored[0][1] < DEFAULT_MIN_SCORE:
                answer = "I don't know"
            else:
                context, _ = select_context([d for d, _ in scored])
                text = prompt.format(context=context, question=neutralize(question))
                answer = normalize_answer("".join(llm.stream(text)))[0]
            t3 = time.perf_counter()
            for name, value in (("embed", t1 - t0), ("search", t2 - t1), ("generate", t3 - t2)):
                steps[name].append(value)
            steps["direct"].append(t3 - t0)
            return answer

        for _ in range(args.rounds):
            for question in questions:
                answer = direct(question)
                started = time.perf_counter()
                result = chain.invoke(question)
                steps["chain"].append(time.perf_counter() - started)
                if result["answer"] != answer:
                    print(f"  note: answers differ for {question!r}")

    print(f"torch threads: {__import__('torch').get_num_threads()}")
    for line in machine_lines(("llama-cpp-python", "langchain-core")):
        print(line)
    print(
        f"\n{len(questions)} FAQ questions x {args.rounds} rounds, k=5, max_new_tokens={args.max_new_tokens}; "
        "median seconds\n"
    )
    median = {name: statistics.median(values) for name, values in steps.items()}
    direct_total, chain_total = median["direct"], median["chain"]
    # paired per question/round, so slow outliers (a loaded machine) do not masquerade as overhead
    paired = [c - d for c, d in zip(steps["chain"], steps["direct"], strict=True)]
    overhead = statistics.median(paired)
    print_table(
        ["step", "median s", "share of direct total"],
        [
            [name, f"{median[name]:.3f}", f"{median[name] / direct_total:.1%}"]
            for name in ("embed", "search", "generate")
        ]
        + [
            ["direct total (embed + search + generate)", f"{direct_total:.3f}", "100%"],
            ["through build_rag_chain", f"{chain_total:.3f}", f"{chain_total / direct_total:.1%}"],
            ["chain overhead (median of paired differences)", f"{overhead:.3f}", f"{overhead / chain_total:.1%} of chain total (target <= 5%)"],
        ],
    )  # fmt: skip


if __name__ == "__main__":
    main()
