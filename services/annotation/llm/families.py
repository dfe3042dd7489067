"""Model families: a judge must not share the generator's family (it would share its biases).

``model_family`` maps a model name to a family from known name patterns, or else to the first
word of the name (``acme-7b`` -> ``acme``). An explicit family in the config always wins.
"""

from __future__ import annotations

import re

# (pattern on the lower-cased name, family). First match wins.
_KNOWN: tuple[tuple[str, str], ...] = (
    (r"qwen|qwq", "qwen"),
    (r"llama|codellama|vicuna", "llama"),
    (r"mistral|mixtral|ministral|codestral", "mistral"),
    (r"gemma|gemini", "google"),
    (r"\bgpt|\bo[134]\b|\bo[134]-|davinci|chatgpt", "openai"),
    (r"claude", "anthropic"),
    (r"\bphi", "phi"),
    (r"deepseek", "deepseek"),
    (r"command|\baya\b", "cohere"),
    (r"falcon", "falcon"),
    (r"smollm", "smollm"),
    (r"olmo", "olmo"),
    (r"granite", "granite"),
    (r"shop-assistant|flywheel|tiny-", "flywheel"),
)


def model_family(model: str, explicit: str | None = None) -> str:
    """The family of ``model``: ``explicit`` when given, else inferred from the name."""
    if explicit:
        return explicit.strip().lower()
    name = model.strip().lower().rsplit("/", 1)[-1]
    for pattern, family in _KNOWN:
        if re.search(pattern, name):
            return family
    return re.split(r"[-_:.@\s]", name, maxsplit=1)[0] or name


def same_family(a: str, b: str, family_a: str | None = None, family_b: str | None = None) -> bool:
    """Whether two models belong to the same family (explicit families override names)."""
    return model_family(a, family_a) == model_family(b, family_b)
