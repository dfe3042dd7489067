"""Cheap quality heuristics on a trace's final answer: no model, a few microseconds each.

Flags (each lowers the 0-1 quality score by a policy-independent penalty):

* ``empty_answer``: no assistant text and no tool call at the end;
* ``too_short`` / ``too_long``: outside the policy's character bounds;
* ``truncated``: the server said ``finish_reason=length``, a code fence is left open, or a long
  answer stops mid-sentence (no closing punctuation, ends on a connector);
* ``repetitive``: a large share of repeated word 3-grams or repeated lines (degenerate loops);
* ``refusal``: the model declined ("I can't help with that", "As an AI language model");
* ``gibberish``: few letters, endless "words", replacement characters;
* ``language_mismatch``: the answer is written in another script than the question.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field

PENALTIES: dict[str, float] = {
    "empty_answer": 1.0,
    "gibberish": 0.9,
    "repetitive": 0.5,
    "language_mismatch": 0.5,
    "too_short": 0.4,
    "truncated": 0.4,
    "refusal": 0.3,
    "too_long": 0.3,
}

_REFUSAL = re.compile(
    r"(?i)\b(?:i(?:'m| am) (?:sorry|afraid),? but i (?:can(?:no|')t|am unable|won't)"
    r"|i (?:can(?:no|')t|won't|am unable to|am not able to) (?:help|assist|provide|comply|do that"
    r"|answer|share|fulfil)"
    r"|as an ai(?: language model)?,? i"
    r"|i must (?:decline|refuse)"
    r"|(?:this|that) (?:request )?(?:goes against|violates) (?:my|our) (?:guidelines|policy)"
    r"|i'm not (?:allowed|permitted) to)")
_CONNECTOR_END = re.compile(r"(?:[,:;(\-–/]|\b(?:and|or|the|a|an|to|of|with|for|but|because))\s*$",
                            re.IGNORECASE)
_CLOSING = ".!?)]}\"'`*…>|"
_WORD = re.compile(r"\w+", re.UNICODE)
_PUNCT_SPLIT = re.compile(r"[^\w\s]+")


@dataclass(frozen=True)
class QualityConfig:
    """Bounds from the policy's ``quality`` section."""

    min_answer_chars: int = 2
    max_answer_chars: int = 8000
    repetition_threshold: float = 0.35
    truncation_min_chars: int = 80


@dataclass(frozen=True)
class QualityReport:
    """The score (1 = no problem found) and the flags that lowered it."""

    score: float
    flags: tuple[str, ...] = field(default_factory=tuple)
    answer_chars: int = 0
    repetition: float = 0.0

    def has(self, flag: str) -> bool:
        return flag in self.flags


def final_answer(trace) -> str:
    """The text of the last assistant message ("" when there is none)."""
    for m in reversed(trace.messages):
        if m.role == "assistant":
            return m.content
    return ""


def _ends_with_tool_call(trace) -> bool:
    for m in reversed(trace.messages):
        if m.role == "assistant":
            return bool(m.tool_calls) and not m.content
    return False


def last_user_text(trace) -> str:
    """The last user message before the final answer ("" when there is none)."""
    for m in reversed(trace.messages):
        if m.role == "user":
            return m.content
    return ""


def repetition_ratio(text: str) -> float:
    """Share of word 3-grams (or lines, whichever is worse) that repeat an earlier one."""
    words = _PUNCT_SPLIT.sub(" ", text.lower()).split()
    gram_ratio = 0.0
    if len(words) >= 8:
        grams = [tuple(words[i:i + 3]) for i in range(len(words) - 2)]
        gram_ratio = 1.0 - len(set(grams)) / len(grams)
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    line_ratio = 1.0 - len(set(lines)) / len(lines) if len(lines) >= 4 else 0.0
    return max(gram_ratio, line_ratio)


_SCRIPTS = (
    ("LATIN", "latin"), ("CYRILLIC", "cyrillic"), ("GREEK", "greek"), ("ARABIC", "arabic"),
    ("HEBREW", "hebrew"), ("CJK", "cjk"), ("HIRAGANA", "cjk"), ("KATAKANA", "cjk"),
    ("HANGUL", "hangul"), ("DEVANAGARI", "devanagari"), ("THAI", "thai"),
)


_TEN_ASCII_LETTERS = re.compile(r"(?:[^A-Za-z]*[A-Za-z]){10}")
_LETTERS = re.compile(r"[^\W\d_]")
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
_DELETE_ASCII_LETTERS = str.maketrans("", "", "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz")


def dominant_script(text: str, sample: int = 400) -> str | None:
    """The writing system of most letters in ``text`` ("latin", "cyrillic", ...), or None
    when it has fewer than 10 letters."""
    head = text[:sample]
    if head.isascii():
        return "latin" if _TEN_ASCII_LETTERS.match(head) else None
    counts: dict[str, int] = {}
    letters = 0
    for ch in head:
        if not ch.isalpha():
            continue
        letters += 1
        if ch.isascii():
            counts["latin"] = counts.get("latin", 0) + 1
            continue
        name = unicodedata.name(ch, "")
        script = next((s for prefix, s in _SCRIPTS if name.startswith(prefix)), "other")
        counts[script] = counts.get(script, 0) + 1
    if letters < 10:
        return None
    return max(counts.items(), key=lambda kv: kv[1])[0]


def _letter_count(text: str) -> int:
    if text.isascii():
        return len(text) - len(text.translate(_DELETE_ASCII_LETTERS))
    return len(_LETTERS.findall(text))


def is_gibberish(text: str) -> bool:
    """Mostly non-letters, very long "words", or replacement characters."""
    if len(text) < 20:
        return False
    if "\ufffd" in text or len(_CONTROL.findall(text)) > 3:
        return True
    words = text.split()
    long_words = sum(len(w) > 30 and not w.startswith(("http", "[")) for w in words)
    return _letter_count(text) / len(text) < 0.4 or (bool(words) and long_words / len(words) > 0.3)


def is_truncated(text: str, trace, cfg: QualityConfig) -> bool:
    if trace.tags.get("finish_reason") == "length":
        return True
    if text.count("```") % 2 == 1:
        return True
    stripped = text.rstrip()
    if len(stripped) < cfg.truncation_min_chars:
        return False
    return stripped[-1] not in _CLOSING and (
        bool(_CONNECTOR_END.search(stripped[-12:])) or stripped[-1].isalpha())


def assess_quality(trace, cfg: QualityConfig) -> QualityReport:
    """Score the trace's final answer; see the module docstring for the flags."""
    answer = final_answer(trace)
    text = answer.strip()
    if not text and not _ends_with_tool_call(trace):
        return QualityReport(0.0, ("empty_answer",))
    flags: list[str] = []
    if text:
        if len(text) < cfg.min_answer_chars:
            flags.append("too_short")
        if len(text) > cfg.max_answer_chars:
            flags.append("too_long")
        if is_truncated(answer, trace, cfg):
            flags.append("truncated")
        if _REFUSAL.search(text[:600]):
            flags.append("refusal")
        if is_gibberish(text):
            flags.append("gibberish")
        question = last_user_text(trace)
        a_script, q_script = dominant_script(text), dominant_script(question)
        if a_script and q_script and a_script != q_script:
            flags.append("language_mismatch")
    rep = repetition_ratio(text) if len(text) > 40 else 0.0
    if rep >= cfg.repetition_threshold:
        flags.append("repetitive")
    score = 1.0
    for flag in flags:
        score -= PENALTIES[flag]
    return QualityReport(round(max(0.0, score), 4), tuple(flags), len(text), round(rep, 4))
