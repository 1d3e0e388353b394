"""Request and response formats of the real SageMaker containers, served by local models.

- `FeatureExtraction`: Hugging Face inference toolkit, task `feature-extraction` (ragged or padded; JSON, or
  NPY when asked with `Accept: application/x-npy`).
- `TextEmbeddingsInference`: Hugging Face's TEI container, which pools on the server (one vector per text).
- `TextGenerationInference`: the Hugging Face LLM container (TGI), including its streaming lines.
- `JumpStartLlama2Chat`: JumpStart `meta-textgeneration-llama-2-*-f` (dialogs in, generations out).

A container raises `ContainerError(status, message)` where the real one answers an HTTP error; the server
wraps it in SageMaker's 424 `ModelError`, as SageMaker does.
"""

from __future__ import annotations

import io
import json
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np
import orjson

from sagerag.adapters.token_vectors import NPY
from sagerag.errors import ContainerError
from sagerag.local.sagemaker.llama2_markup import parse_llama2_chat
from sagerag.local.sagemaker.models import GeneratedToken, GGUFChatModel, MiniLMModel

LOCAL_REPETITION_PENALTY = 1.1
"""Default when a request gives none (TGI's is 1.0): SmolLM2-135M loops under greedy decoding without it."""


JSON = "application/json"
"""With `NPY`, the answer formats the inference toolkit writes, as `Accept` asks."""


def _json_body(body: bytes) -> Any:
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ContainerError(400, f"Failed to deserialize the JSON body: {exc}") from None


def _dumps(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode("utf-8")


class FeatureExtraction:
    """`{"inputs": str | [str]}` -> per-token vectors, as the inference toolkit answers.

    Asked for NPY, it writes what the toolkit's `np.save` of the pipeline's nested lists writes: float64,
    shape `(n, 1, tokens, dim)` for a list of texts (`(1, tokens, dim)` for one string), and for a list of
    texts of different token counts numpy's own error, which the toolkit answers as a 400.
    """

    reads_accept = True
    """The server passes it the request's `Accept`, checked by `check_accept`."""

    def __init__(self, model: MiniLMModel, padded: bool = False):
        self.model = model
        self.padded = padded

    def invoke(self, body: bytes, custom_attributes: str = "", accept: str = JSON) -> bytes:
        data = _json_body(body)
        inputs = data.get("inputs") if isinstance(data, dict) else None
        single = isinstance(inputs, str)
        texts = [inputs] if single else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ContainerError(400, "'inputs' must be a string or a non-empty list of strings")
        if self.padded or single:
            padded = self.model.padded_token_embeddings(texts)
            return npy_bytes(padded) if accept == NPY else _np_json(padded)
        tokens = [t[None, :, :] for t in self.model.token_embeddings(texts)]
        if accept == NPY:
            return npy_bytes(tokens)
        return b"[" + b",".join(_np_json(t) for t in tokens) + b"]"


def npy_bytes(value: np.ndarray | list[np.ndarray]) -> bytes:
    """The toolkit's NPY answer (`np.save` of nested lists of Python floats: float64); texts of different
    token counts make numpy refuse the ragged list, which the toolkit answers as a 400 with numpy's text."""
    try:
        array = np.ascontiguousarray(value, dtype=np.float64)
    except ValueError as exc:
        raise ContainerError(400, str(exc)) from None
    # `np.save`'s bytes, written with one copy of the values instead of five (a 7-text answer is 2 MB)
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, np.lib.format.header_data_from_array_1_0(array))
    return header.getvalue() + array.data


def check_accept(accept: str) -> str:
    """The answer format for an `Accept` header: JSON for none or `*/*`, as the toolkit reads it."""
    if not accept or accept == "*/*":
        return JSON
    if accept not in (JSON, NPY):
        raise ContainerError(400, f"Content type {accept} is not supported by this framework.")
    return accept


class TextEmbeddingsInference:
    """TEI: `{"inputs": str | [str], "normalize": true, "truncate": false}` -> `[[float, ...], ...]`.

    Mean pooling over each text's real tokens (MiniLM's sentence-transformers pooling, which TEI reads
    from the model), L2-normalised unless `normalize` is false. Like TEI, it refuses more than
    `max_client_batch_size` inputs, and texts over the model's token limit unless `truncate` is true.
    """

    def __init__(self, model: MiniLMModel, max_client_batch_size: int = 32):
        self.model = model
        self.max_client_batch_size = max_client_batch_size

    def invoke(self, body: bytes, custom_attributes: str = "") -> bytes:
        data = _json_body(body)
        if not isinstance(data, dict) or "inputs" not in data:
            raise ContainerError(422, "Failed to deserialize the JSON body: missing field `inputs`")
        inputs = data["inputs"]
        texts = [inputs] if isinstance(inputs, str) else inputs
        if not isinstance(texts, list) or not texts or not all(isinstance(t, str) for t in texts):
            raise ContainerError(422, "`inputs` must be a string or a non-empty list of strings")
        if len(texts) > self.max_client_batch_size:
            raise ContainerError(
                413, f"batch size {len(texts)} > maximum allowed batch size {self.max_client_batch_size}"
            )
        if not data.get("truncate", False):
            limit = self.model.max_tokens
            for text in texts:
                count = len(self.model.tokenizer(text, truncation=False)["input_ids"])
                if count > limit:
                    raise ContainerError(
                        413,
                        f"Input validation error: `inputs` must have less than {limit} tokens. "
                        f"Given: {count}",
                    )
        pooled = np.stack([tokens.mean(axis=0) for tokens in self.model.token_embeddings(texts)])
        if data.get("normalize", True):
            pooled = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return _np_json(pooled)


def _np_json(array: np.ndarray) -> bytes:
    """JSON for a float array; orjson writes numpy arrays directly, ~20x faster than json on nested lists."""
    return bytes(
        orjson.dumps(np.ascontiguousarray(array, dtype=np.float32), option=orjson.OPT_SERIALIZE_NUMPY)
    )


class _Generator:
    """Shared generation logic: validated parameters, stop sequences, TGI-style details."""

    def __init__(self, model: GGUFChatModel):
        self.model = model

    def _options(self, params: Mapping[str, Any], default_max: int = 20) -> dict[str, Any]:
        def number(name: str, kind: type, default: Any) -> Any:
            value = params.get(name, default)
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ContainerError(422, f"Input validation error: `{name}` must be a number")
            return kind(value)

        max_new = number("max_new_tokens", int, default_max)
        if max_new <= 0:
            raise ContainerError(422, "Input validation error: `max_new_tokens` must be strictly positive")
        temperature = number("temperature", float, None)
        if temperature is not None and temperature <= 0:
            raise ContainerError(422, "Input validation error: `temperature` must be strictly positive")
        top_p = number("top_p", float, None)
        if top_p is not None and not 0.0 < top_p <= 1.0:
            raise ContainerError(422, "Input validation error: `top_p` must be > 0.0 and < 1.0")
        top_k = number("top_k", int, None)
        if top_k is not None and top_k <= 0:
            raise ContainerError(422, "Input validation error: `top_k` must be strictly positive")
        penalty = number("repetition_penalty", float, LOCAL_REPETITION_PENALTY)
        if penalty <= 0:
            raise ContainerError(
                422, "Input validation error: `repetition_penalty` must be strictly positive"
            )
        stop = params.get("stop") or []
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
            raise ContainerError(422, "Input validation error: `stop` must be a list of strings")
        sampling = (
            bool(params.get("do_sample"))
            or any(v is not None for v in (top_p, top_k))
            or (temperature is not None and temperature != 1.0)
        )
        return {
            "max_new_tokens": max_new,
            "temperature": (temperature or 1.0) if sampling else 0.0,
            "top_p": top_p or 1.0,
            "top_k": top_k or 0,
            "seed": number("seed", int, 0),
            "repetition_penalty": penalty,
            "stop": stop,
        }

    def _tokens(self, turns: list[dict[str, str]], options: dict[str, Any]) -> list[int]:
        prompt = self.model.tokenize(self.model.render(turns))
        limit = self.model.n_ctx
        if len(prompt) + options["max_new_tokens"] > limit:
            raise ContainerError(
                422,
                f"Input validation error: `inputs` tokens + `max_new_tokens` must be <= {limit}. "
                f"Given: {len(prompt)} `inputs` tokens and {options['max_new_tokens']} `max_new_tokens`",
            )
        return prompt

    def run(
        self, turns: list[dict[str, str]], options: dict[str, Any]
    ) -> Iterator[tuple[GeneratedToken, str]]:
        """Yield (token, finish_reason or '') and stop at EOS, the token budget, or a stop sequence."""
        tokens = self._tokens(turns, options)
        text = ""
        generated = self.model.generate(
            tokens,
            options["max_new_tokens"],
            options["temperature"],
            options["top_p"],
            options["top_k"],
            options["seed"],
            options["repetition_penalty"],
        )
        for count, token in enumerate(generated, start=1):
            if token.special:
                yield token, "eos_token"
                return
            text += token.text
            if any(s and s in text for s in options["stop"]):
                yield token, "stop_sequence"
                return
            yield token, "length" if count >= options["max_new_tokens"] else ""

    def complete(self, turns: list[dict[str, str]], options: dict[str, Any]) -> tuple[str, str, int]:
        text, reason, count = "", "length", 0
        for token, finish in self.run(turns, options):
            text, count = text + token.text, count + 1
            reason = finish or reason
        return text, reason, count


class TextGenerationInference(_Generator):
    """TGI: `{"inputs": str, "parameters": {...}}` -> `[{"generated_text": str}]`, or streamed lines.

    Llama 2 chat markup in `inputs` is read as turns and re-rendered with the backing model's template.
    """

    def _request(self, body: bytes) -> tuple[str, dict[str, Any], Mapping[str, Any]]:
        data = _json_body(body)
        if not isinstance(data, dict) or not isinstance(data.get("inputs"), str):
            raise ContainerError(
                422, "Failed to deserialize the JSON body into the target type: missing field `inputs`"
            )
        params = data.get("parameters") or {}
        if not isinstance(params, dict):
            raise ContainerError(422, "Failed to deserialize the JSON body: `parameters` must be an object")
        return data["inputs"], self._options(params), params

    def invoke(self, body: bytes, custom_attributes: str = "") -> bytes:
        inputs, options, params = self._request(body)
        text, reason, count = self.complete(parse_llama2_chat(inputs), options)
        out: dict[str, Any] = {"generated_text": (inputs + text) if params.get("return_full_text") else text}
        if params.get("details"):
            out["details"] = {"finish_reason": reason, "generated_tokens": count, "seed": options["seed"]}
        return _dumps([out])

    def stream(self, body: bytes, custom_attributes: str = "") -> Iterator[bytes]:
        """TGI's `data:{...}` lines; validation errors are raised before the first line."""
        inputs, options, params = self._request(body)
        turns = parse_llama2_chat(inputs)
        self._tokens(turns, options)  # raise validation errors before the stream starts
        text, count = "", 0
        for token, finish in self.run(turns, options):
            text, count = text + token.text, count + 1
            event: dict[str, Any] = {
                "index": count,
                "token": {
                    "id": token.id,
                    "text": token.text,
                    "logprob": token.logprob,
                    "special": token.special,
                },
                "generated_text": None,
                "details": None,
            }
            if finish:
                event["generated_text"] = (inputs + text) if params.get("return_full_text") else text
                event["details"] = {
                    "finish_reason": finish,
                    "generated_tokens": count,
                    "seed": options["seed"],
                }
            yield b"data:" + _dumps(event) + b"\n\n"


class JumpStartLlama2Chat(_Generator):
    """JumpStart Llama-2-chat: `{"inputs": [[{role, content}, ...]], "parameters"}` -> `[{"generation": ...}]`."""

    def invoke(self, body: bytes, custom_attributes: str = "") -> bytes:
        if "accept_eula=true" not in custom_attributes.replace(" ", "").lower():
            raise ContainerError(
                400,
                "Need to pass custom_attributes='accept_eula=true' as part of request. This action indicates "
                "that you have read and accept the applicable End User License Agreement (EULA) for this model.",
            )
        data = _json_body(body)
        dialogs = data.get("inputs") if isinstance(data, dict) else None
        if not isinstance(dialogs, list) or not dialogs or not all(isinstance(d, list) for d in dialogs):
            raise ContainerError(
                400, "'inputs' must be a list of dialogs, each a list of {role, content} turns"
            )
        options = self._options(data.get("parameters") or {}, default_max=256)
        out = []
        for dialog in dialogs:
            _check_dialog(dialog)
            text, _, _ = self.complete(dialog, options)
            out.append({"generation": {"role": "assistant", "content": text.strip()}})
        return _dumps(out)


def _check_dialog(dialog: list[Any]) -> None:
    roles = [turn.get("role") if isinstance(turn, dict) else None for turn in dialog]
    if not all(isinstance(t, dict) and isinstance(t.get("content"), str) for t in dialog):
        raise ContainerError(400, "each turn must be an object with string 'role' and 'content'")
    turns = roles[1:] if roles and roles[0] == "system" else roles
    expected = ["user" if i % 2 == 0 else "assistant" for i in range(len(turns))]
    if not turns or turns != expected or turns[-1] != "user":
        raise ContainerError(
            400,
            "Model only supports 'system', 'user' and 'assistant' roles, starting with 'system', then 'user' "
            "and alternating (u/a/u/a/u...), ending with 'user'.",
        )
