"""The fixed vocabularies of the settings: which endpoint formats, retrieval modes and answer guards exist.

One definition each, used by the settings, the factories, the chains and the CLI's choices; a module with
no imports beyond `typing`, so the CLI's option declarations stay cheap to load.
"""

from __future__ import annotations

from typing import Literal, get_args

LLMKind = Literal["tgi", "jumpstart-chat", "messages"]
"""What an LLM endpoint speaks: `tgi` (Hugging Face LLM container, text in and out), `jumpstart-chat`
(JumpStart Llama-2-chat dialogs) or `messages` (the Messages API of TGI >= 1.4 and LMI: OpenAI-style
chat completions with tool calling)."""
LLM_KINDS: tuple[LLMKind, ...] = get_args(LLMKind)
EmbeddingsKind = Literal["feature-extraction", "tei"]
"""Per-token output (Hugging Face inference toolkit) or pooled output (Text Embeddings Inference)."""
EmbeddingsFormat = Literal["json", "npy"]
"""How a `feature-extraction` endpoint is asked to write its per-token answer: `json` (what every container
writes) or `npy` (the inference toolkit's `np.save`: ~10x cheaper for the endpoint to write and for sagerag
to read; requests then group texts of one token count)."""
Retrieval = Literal["hybrid", "dense"]
"""`hybrid` (dense + BM25 sparse in one dotproduct index) or `dense` (MiniLM only)."""
IndexText = Literal["question+answer", "answer"]
"""What a FAQ row's vector encodes."""
Grounding = Literal["drop", "flag", "off"]
"""Unsupported answer sentences: `drop` them (abstain when none is left), `flag` them only, or `off`."""
