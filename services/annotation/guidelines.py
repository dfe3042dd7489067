"""Annotation guidelines per task kind: the first versions, seeded when a kind has none.

Guidelines are versioned rows (``guidelines`` table: kind, version, text). A task shows the
version triage asked for when it exists, else the newest; every label records the version
shown. Admins add versions with ``POST /v1/guidelines``.
"""

from __future__ import annotations

from .kinds import CLASSIFY_FAILURE, CORRECT, PAIRWISE, RATE

FIRST_VERSION = "g-1"

DEFAULT_GUIDELINES: dict[str, str] = {
    RATE: (
        "Rate the assistant's final answer to the user's last message.\n"
        "0 very bad: wrong, harmful or ignores the question.\n"
        "1 bad: mostly wrong or missing the key fact (e.g. the wrong order number).\n"
        "2 moderate: partly right, or right but vague or padded.\n"
        "3 good: correct and complete, small issues of tone or length.\n"
        "4 excellent: correct, complete, concise and friendly.\n"
        "Judge the answer, not the user. Mark unusable when the conversation is garbled or "
        "context needed to judge is missing."
    ),
    CORRECT: (
        "Write the answer the assistant should have given to the user's last message. "
        "Keep facts from the conversation and tool results exactly (order numbers digit for "
        "digit), answer in one or two sentences, and do not invent policies. If the original "
        "answer is already right, copy it with any fixes. Mark unusable when no correct answer "
        "can be written from the conversation."
    ),
    PAIRWISE: (
        "Choose the better answer to the user's last message. Prefer the answer that is "
        "correct; if both are correct, the clearer and more concise one; if both are wrong, "
        "the less harmful one. Choose tie only when you cannot tell them apart. Ignore which "
        "side an answer is shown on. Give a short reason."
    ),
    CLASSIFY_FAILURE: (
        "The agent run failed. Say whose fault it was.\n"
        "model: the model chose the wrong tool, passed wrong arguments, ignored a tool result "
        "or wrote a wrong final answer.\n"
        "system: a tool timed out, returned an HTTP error or the retrieval was down, and the "
        "model could not have done better.\n"
        "unknown: the trace does not show enough to tell.\n"
        "Add a short snake_case failure kind, e.g. wrong_tool, bad_arguments, tool_timeout."
    ),
}


def default_documents() -> dict[str, tuple[str, str]]:
    """``kind -> (version, text)`` for seeding the guidelines table."""
    return {kind: (FIRST_VERSION, text) for kind, text in DEFAULT_GUIDELINES.items()}
