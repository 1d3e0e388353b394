"""Pure metric functions for `sagerag eval`: retrieval, answer quality, abstention and latency.

Kept free of I/O so they can be checked on hand-made cases and reused by scripts. Words and sentences
are the chain's own definitions (`sagerag.chains.sentences`), so "a repeated sentence" means the same
in the report as in the loop guard.

Definitions:

- recall@k: share of questions with at least one gold row among the first k retrieved rows.
- MRR: mean over questions of 1 / rank of the first gold row in the retrieved list (0 when absent).
- token F1: SQuAD-style bag-of-tokens F1 between the answer and the reference text, after lower-casing
  and removing punctuation and the articles a/an/the.
- supported by gold: the answer's token precision against a gold passage (the share of answer tokens,
  counted with multiplicity, that also occur in the passage) is at least `SUPPORT_THRESHOLD`; with several
  gold passages the best one counts. It asks "is this answer made of the gold passage's words?", a cheap
  proxy for faithfulness that needs no judge model.
- repeated sentence: two sentences of the answer are equal after token normalisation.
- ends mid-sentence: the answer's last character is not closing punctuation (`.!?)` or a quote).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Collection, Iterable, Sequence

from sagerag.chains.sentences import ends_mid_sentence, has_repeated_sentence, tokens

__all__ = [
    "SUPPORT_THRESHOLD",
    "ends_mid_sentence",
    "first_hit_rank",
    "has_repeated_sentence",
    "mean",
    "mean_reciprocal_rank",
    "percentile",
    "rate",
    "recall_at_k",
    "supported_by",
    "token_f1",
    "token_precision",
    "tokens",
]

SUPPORT_THRESHOLD = 0.5
"""Token precision against the gold passage at or above which an answer counts as supported by it."""


def token_f1(prediction: str, reference: str) -> float:
    """Bag-of-tokens F1; 1.0 when both are empty, 0.0 when only one is."""
    pred, ref = tokens(prediction), tokens(reference)
    if not pred or not ref:
        return float(pred == ref)
    common = sum((Counter(pred) & Counter(ref)).values())
    if common == 0:
        return 0.0
    precision, recall = common / len(pred), common / len(ref)
    return 2 * precision * recall / (precision + recall)


def token_precision(answer: str, passage: str) -> float:
    """Share of the answer's tokens (with multiplicity) that the passage also holds; 0.0 for no tokens."""
    ans = tokens(answer)
    if not ans:
        return 0.0
    return sum((Counter(ans) & Counter(tokens(passage))).values()) / len(ans)


def supported_by(answer: str, passages: Iterable[str], threshold: float = SUPPORT_THRESHOLD) -> bool:
    """True when the answer's token precision against its best gold passage reaches `threshold`."""
    return max((token_precision(answer, p) for p in passages), default=0.0) >= threshold


def first_hit_rank(retrieved: Sequence[object], gold: Collection[object]) -> int | None:
    """1-based rank of the first retrieved item in `gold`, or None."""
    for rank, item in enumerate(retrieved, start=1):
        if item in gold:
            return rank
    return None


def recall_at_k(
    retrieved: Sequence[Sequence[object]], gold: Sequence[Collection[object]], k: int
) -> float | None:
    """Share of questions with a gold item in their top `k`; None with no questions."""
    if not retrieved:
        return None
    hits = [first_hit_rank(r[:k], g) is not None for r, g in zip(retrieved, gold, strict=True)]
    return sum(hits) / len(hits)


def mean_reciprocal_rank(
    retrieved: Sequence[Sequence[object]], gold: Sequence[Collection[object]]
) -> float | None:
    """Mean of 1/rank of the first gold item (0 when none was retrieved); None with no questions."""
    if not retrieved:
        return None
    ranks = [first_hit_rank(r, g) for r, g in zip(retrieved, gold, strict=True)]
    return sum(1.0 / r for r in ranks if r) / len(ranks)


def rate(flags: Sequence[bool]) -> float | None:
    """Share of True values; None for an empty sequence (no data is not 0%)."""
    return sum(flags) / len(flags) if flags else None


def mean(values: Sequence[float]) -> float | None:
    return math.fsum(values) / len(values) if values else None


def percentile(values: Sequence[float], p: float) -> float | None:
    """The p-th percentile (0-100) with linear interpolation between ranks (numpy's default)."""
    if not values:
        return None
    if not 0 <= p <= 100:
        raise ValueError(f"percentile must be within 0..100, got {p}")
    ordered = sorted(values)
    position = (len(ordered) - 1) * p / 100
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)
