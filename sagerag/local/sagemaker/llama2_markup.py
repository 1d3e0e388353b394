"""Read Llama 2 chat markup (`<s>[INST] <<SYS>> ... <</SYS>> ... [/INST] ... </s>`) back into turns.

The local `llama2` endpoint is backed by a model that is not Llama 2, so it re-renders these turns with the
backing model's own chat template. Text without markup is a single user turn.
"""

from __future__ import annotations

import re

_SYS = re.compile(r"^\s*<<SYS>>\s*(.*?)\s*<</SYS>>\s*", re.DOTALL)


def parse_llama2_chat(text: str) -> list[dict[str, str]]:
    """Turns (role/content dicts) encoded in `text`; plain text becomes one user turn."""
    if "[INST]" not in text:
        return [{"role": "user", "content": text.strip()}]
    turns: list[dict[str, str]] = []
    body = text.replace("<s>", "").replace("</s>", "")
    before, *segments = body.split("[INST]")
    if before.strip():
        turns.append({"role": "user", "content": before.strip()})
    for segment in segments:
        user, _, answer = segment.partition("[/INST]")
        match = _SYS.match(user)
        if match and not turns:
            turns.append({"role": "system", "content": match.group(1)})
            user = user[match.end() :]
        turns.append({"role": "user", "content": user.strip()})
        if answer.strip():
            turns.append({"role": "assistant", "content": answer.strip()})
    return turns
