"""Token counts from cached segments equal the tokenizer's own: an NPY request whose texts the endpoint
counts differently is refused as ragged, and a JSON batch is sized by these counts."""

from __future__ import annotations

import csv
import random
import string
from pathlib import Path

from tokenizers import Tokenizer, models, pre_tokenizers

from sagerag.adapters.token_vectors import SegmentCounts, load_tokenizer, token_counts

FAQ = Path(__file__).resolve().parents[2] / "evals" / "Amazon_SageMaker_FAQs.csv"


def _tokenizer_counts(texts: list[str], max_tokens: int = 512) -> list[int]:
    return [len(enc.ids) for enc in load_tokenizer(None, max_tokens).encode_batch(texts)]


def test_segment_counts_equal_the_tokenizers_on_the_faq_and_on_awkward_text() -> None:
    with FAQ.open(newline="", encoding="utf-8") as file:
        faq = [cell for row in csv.reader(file) for cell in row]
    rng = random.Random(7)
    alphabet = string.printable + "[]éü’—中\x0b\x1f\u00a0\u3000\u0301"
    pieces = [
        "[CLS]",
        "[mask]",
        "[MASK]",
        "[SEP]x",
        "##ing",
        "x" * 120,
        "don’t",
        "naïve",
        "a\u0301b",
        "中文字",
    ]
    awkward = [
        rng.choice(["", " ", "\n", "\t"]).join(
            rng.choice(pieces)
            if rng.random() < 0.3
            else "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            for _ in range(rng.randint(0, 12))
        )
        for _ in range(3000)
    ]
    texts = faq + awkward + ["word " * 700, "", " ", "a"]
    assert SegmentCounts.fits(load_tokenizer(None, 512))
    assert token_counts(texts, None, 512) == _tokenizer_counts(texts)
    assert token_counts(texts, None, 512) == _tokenizer_counts(texts)  # from the caches, the same
    assert token_counts(["word " * 700], None, 128) == [128]  # truncated at the limit, like the container


def test_other_tokenizers_are_counted_by_the_tokenizer_itself(tmp_path: Path) -> None:
    """A tokenizer file of another shape (here whitespace-split words) gets no BERT shortcut."""
    tokenizer = Tokenizer(models.WordLevel({"[UNK]": 0, "a": 1}, unk_token="[UNK]"))
    tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    path = tmp_path / "tokenizer.json"
    tokenizer.save(str(path))
    assert not SegmentCounts.fits(load_tokenizer(path, 512))
    assert token_counts(["a b, c", "a"], path, 512) == [4, 1]
