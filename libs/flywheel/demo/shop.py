"""The shop world: support questions for Northwind Outfitters with exactly checkable answers.

Users ask one of eight intents (order status, return policy, refund, cancellation, shipping
cost, opening hours, address change, warranty). Each intent has several paraphrase templates,
some of which are kept for evaluation only, and ONE canonical assistant reply. Replies about an
order must copy its 3-4 digit number exactly, so a model has to both recognise the intent and
copy a number: learnable by a ~4M-parameter model, but not by chance.

Agent tasks wrap the same questions in a tool-use episode (OpenAI tool format): the assistant
calls one tool with the right arguments, reads its result and answers with the canonical
reply. Simulated tools sometimes time out or return HTTP 500 (system failures); a wrong tool
or argument is a model failure. Feedback helpers turn correctness into thumbs, ratings and
pairwise preferences with realistic noise (silence, misclicks, position bias).

Everything is deterministic given a ``random.Random``; nothing here imports torch.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Literal

SHOP_NAME = "Northwind Outfitters"
SYSTEM_PROMPT = f"You are the support assistant of {SHOP_NAME}."
HELDOUT_SEED = 20_261_101

ORDER_STATUS = "order_status"
RETURN_POLICY = "return_policy"
REFUND = "refund"
CANCEL_ORDER = "cancel_order"
SHIPPING_COST = "shipping_cost"
OPENING_HOURS = "opening_hours"
CHANGE_ADDRESS = "change_address"
WARRANTY = "warranty"

INTENTS: tuple[str, ...] = (
    ORDER_STATUS, RETURN_POLICY, REFUND, CANCEL_ORDER,
    SHIPPING_COST, OPENING_HOURS, CHANGE_ADDRESS, WARRANTY,
)
ORDER_INTENTS = frozenset({ORDER_STATUS, REFUND, CANCEL_ORDER, CHANGE_ADDRESS})

Split = Literal["train", "eval"]

# One canonical reply per intent. {n} is the order number, copied digit for digit.
REPLIES: dict[str, str] = {
    ORDER_STATUS: "Order {n} has shipped and arrives within 3 business days.",
    RETURN_POLICY: "You can return unused items within 30 days for a full refund.",
    REFUND: "The refund for order {n} is issued and reaches your account within 5 days.",
    CANCEL_ORDER: "Order {n} is cancelled and you will not be charged.",
    SHIPPING_COST: "Shipping is free on orders over 50 dollars, otherwise it costs 5 dollars.",
    OPENING_HOURS: "We are open Monday to Saturday from 9 am to 6 pm.",
    CHANGE_ADDRESS: "The delivery address for order {n} is now updated.",
    WARRANTY: "All our products come with a two year warranty against defects.",
}

# (train templates, eval-only templates). {n}: order number, {addr}: a street address. Eval
# templates share the intent's key words with training ones so they test generalisation to new
# phrasing, not guessing.
TEMPLATES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    ORDER_STATUS: (
        ("Where is my order {n}?", "What is the status of order {n}?",
         "Has order {n} shipped yet?", "Can you track order {n} for me?",
         "I am still waiting for order {n}. Where is it?", "Any news on order number {n}?",
         "When will order {n} arrive?"),
        ("Could you tell me where order {n} is right now?", "Please track my order number {n}.",
         "What is the status of my order {n} today?"),
    ),
    RETURN_POLICY: (
        ("What is your return policy?", "Can I return an item I bought?",
         "How do returns work?", "How many days do I have to return something?",
         "Do you accept returns?", "Can I send back a product?"),
        ("I want to send something back, what are the rules for returns?",
         "Is it possible to return a jacket I do not like?", "Tell me about your return policy."),
    ),
    REFUND: (
        ("I want a refund for order {n}.", "Please refund order {n}.",
         "Can I get my money back for order {n}?", "Where is the refund for order {n}?",
         "Refund order number {n}, please.", "When do I get a refund for order {n}?"),
        ("I am still waiting on a refund for order {n}.", "How do I get a refund on order {n}?",
         "I would like my money back for order number {n}."),
    ),
    CANCEL_ORDER: (
        ("Please cancel order {n}.", "I want to cancel my order {n}.",
         "Can you cancel order number {n}?", "Cancel order {n}, I changed my mind.",
         "How do I cancel order {n}?", "Stop order {n}, I do not want it anymore."),
        ("I no longer need order {n}, please cancel it.", "Is it too late to cancel order {n}?",
         "Could you cancel my order number {n}?"),
    ),
    SHIPPING_COST: (
        ("How much is shipping?", "What does shipping cost?", "Do you charge for shipping?",
         "Is shipping free?", "How much do you charge for delivery?", "What is the shipping fee?"),
        ("What are the shipping fees to my house?", "Will I pay anything for shipping?",
         "How much does delivery cost?"),
    ),
    OPENING_HOURS: (
        ("When are you open?", "What are your opening hours?",
         "What time does the store open?", "Are you open on Saturday?",
         "When does the shop close?", "What time do you close today?"),
        ("What hours is the store open this week?", "Until what time are you open today?",
         "Tell me your opening hours, please."),
    ),
    CHANGE_ADDRESS: (
        ("Please change the address for order {n} to {addr}.",
         "I moved, can you ship order {n} to {addr}?",
         "Update the delivery address of order {n} to {addr}.",
         "Can you send order {n} to {addr} instead?",
         "Change the shipping address on order {n} to {addr}.",
         "My new address for order {n} is {addr}."),
        ("The address on order {n} is wrong, it should be {addr}.",
         "Please deliver order {n} to my new address, {addr}.",
         "Could you change the address of order number {n} to {addr}?"),
    ),
    WARRANTY: (
        ("Do your products have a warranty?", "What is the warranty on a tent?",
         "How long is the warranty?", "Is my jacket covered by warranty?",
         "Does the warranty cover defects?", "Tell me about the warranty."),
        ("My backpack broke after a year, is that under warranty?",
         "What kind of warranty comes with your boots?", "How long does your warranty last?"),
    ),
}

_PREFIXES = ("", "", "", "Hi, ", "Hello. ", "Hey there, ", "Good morning! ")
_SUFFIXES = ("", "", "", " Thanks!", " Thank you.", " Please help.")
_STREETS = ("Elm", "Oak", "Maple", "Cedar", "Pine", "Birch", "Harbor", "Mill", "River", "Hill")
_STREET_KINDS = ("Street", "Road", "Avenue", "Lane")
_WS = re.compile(r"\s+")


@dataclass(frozen=True)
class Question:
    """One user question: its intent, text, and the order number it is about (if any)."""

    intent: str
    text: str
    order_number: str | None = None
    address: str | None = None
    template_id: str = ""


def _order_number(rng: random.Random) -> str:
    return str(rng.randint(100, 9999))


def _address(rng: random.Random) -> str:
    return f"{rng.randint(1, 99)} {rng.choice(_STREETS)} {rng.choice(_STREET_KINDS)}"


def _decorate(text: str, rng: random.Random) -> str:
    prefix, suffix = rng.choice(_PREFIXES), rng.choice(_SUFFIXES)
    if prefix.endswith(", "):
        text = text[0].lower() + text[1:]
    return f"{prefix}{text}{suffix}"


def sample_question(rng: random.Random, split: Split = "train", intent: str | None = None) -> Question:
    """Draw one question; ``split`` picks training or eval-only paraphrase templates."""
    intent = intent or rng.choice(INTENTS)
    train, held = TEMPLATES[intent]
    pool = train if split == "train" else held
    index = rng.randrange(len(pool))
    number = _order_number(rng) if intent in ORDER_INTENTS else None
    address = _address(rng) if intent == CHANGE_ADDRESS else None
    text = pool[index].format(n=number, addr=address)
    return Question(intent, _decorate(text, rng), number, address, f"{intent}/{split}/{index}")


def sample_questions(n: int, seed: int, split: Split = "train") -> list[Question]:
    """``n`` questions from one seed, intents drawn uniformly."""
    rng = random.Random(seed)
    return [sample_question(rng, split) for _ in range(n)]


def heldout_set(n: int = 200, seed: int = HELDOUT_SEED) -> list[Question]:
    """The fixed evaluation questions: eval-only templates, intents balanced round-robin."""
    rng = random.Random(seed)
    return [sample_question(rng, "eval", INTENTS[i % len(INTENTS)]) for i in range(n)]


def reference_answer(q: Question) -> str:
    """The one canonical assistant reply to ``q``."""
    return REPLIES[q.intent].format(n=q.order_number)


def normalize_answer(text: str) -> str:
    """Collapse runs of whitespace and strip the ends."""
    return _WS.sub(" ", text).strip()


def is_correct(answer: str, q: Question) -> bool:
    """Exact match with the canonical reply after whitespace normalisation."""
    return normalize_answer(answer) == reference_answer(q)


def question_messages(q: Question, system: bool = True) -> list[dict[str, Any]]:
    """The conversation up to the answer: optional system prompt, then the user's question."""
    messages = [{"role": "system", "content": SYSTEM_PROMPT}] if system else []
    return messages + [{"role": "user", "content": q.text}]


def sft_example(q: Question, answer: str | None = None) -> dict[str, Any]:
    """A chat SFT example (``{"messages": [...]}``) answering ``q``; canonical by default."""
    reply = reference_answer(q) if answer is None else answer
    return {"messages": question_messages(q) + [{"role": "assistant", "content": reply}]}


def _other_number(number: str, rng: random.Random) -> str:
    digits = list(number)
    i = rng.randrange(len(digits))
    choices = [d for d in "0123456789" if d != digits[i] and not (i == 0 and d == "0")]
    digits[i] = rng.choice(choices)
    return "".join(digits)


def wrong_answer(q: Question, rng: random.Random) -> str:
    """A plausible wrong reply: a miscopied number, another intent's reply, or a vague one."""
    kind = rng.random()
    if q.order_number and kind < 0.4:
        return REPLIES[q.intent].format(n=_other_number(q.order_number, rng))
    if kind < 0.8:
        other = rng.choice([i for i in INTENTS if i != q.intent])
        return REPLIES[other].format(n=q.order_number or _order_number(rng))
    return rng.choice((
        "I am not sure, please contact our support team.",
        "Thank you for your message, we will get back to you soon.",
        f"Please visit the {SHOP_NAME} website for more information.",
    ))


# -- agent tasks --------------------------------------------------------------------------------

def _tool(name: str, description: str, properties: dict[str, Any]) -> dict[str, Any]:
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties,
                           "required": sorted(properties)},
        },
    }


_ORDER_ARG = {"order_number": {"type": "string", "description": "The 3-4 digit order number."}}
POLICY_TOPICS = {RETURN_POLICY: "returns", SHIPPING_COST: "shipping",
                 OPENING_HOURS: "hours", WARRANTY: "warranty"}

# The shop's tools in OpenAI function-calling format.
TOOLS: list[dict[str, Any]] = [
    _tool("lookup_order", "Look up an order's shipping status.", _ORDER_ARG),
    _tool("issue_refund", "Refund an order.", _ORDER_ARG),
    _tool("cancel_order", "Cancel an order that has not shipped.", _ORDER_ARG),
    _tool("update_address", "Change the delivery address of an order.",
          {**_ORDER_ARG, "address": {"type": "string", "description": "The new address."}}),
    _tool("get_policy", "Read a shop policy.",
          {"topic": {"type": "string", "enum": sorted(POLICY_TOPICS.values())}}),
]
_INTENT_TOOL = {ORDER_STATUS: "lookup_order", REFUND: "issue_refund",
                CANCEL_ORDER: "cancel_order", CHANGE_ADDRESS: "update_address"}

ToolStatus = Literal["ok", "timeout", "http_500"]


@dataclass(frozen=True)
class AgentTask:
    """A question answered through one tool call: the call expected, then the final reply."""

    question: Question
    tool: str
    arguments: dict[str, str]
    final_answer: str


@dataclass(frozen=True)
class ToolResult:
    """What a simulated tool returned: status, JSON content and latency."""

    status: ToolStatus
    content: str
    latency_ms: int


@dataclass(frozen=True)
class AgentOutcome:
    """How an episode ended: failure source is ``model``, ``system`` or empty on success."""

    success: bool
    failure_source: Literal["", "model", "system"] = ""
    failure_kind: str = ""
    detail: str = ""


def agent_task(q: Question) -> AgentTask:
    """The tool call and final answer that solve question ``q``."""
    if q.intent in _INTENT_TOOL:
        args = {"order_number": q.order_number or ""}
        if q.intent == CHANGE_ADDRESS:
            args["address"] = q.address or ""
        return AgentTask(q, _INTENT_TOOL[q.intent], args, reference_answer(q))
    return AgentTask(q, "get_policy", {"topic": POLICY_TOPICS[q.intent]}, reference_answer(q))


def sample_agent_task(rng: random.Random, split: Split = "train") -> AgentTask:
    """Draw a question and wrap it as an agent task."""
    return agent_task(sample_question(rng, split))


def call_tool(task: AgentTask, name: str, arguments: dict[str, Any], rng: random.Random,
              failure_rate: float = 0.1) -> ToolResult:
    """Simulate the shop backend answering one tool call.

    With probability ``failure_rate`` the backend fails (half timeouts, half HTTP 500)
    whatever was asked. Unknown tools and orders other than the task's answer with errors.
    """
    latency = int(rng.lognormvariate(4.0, 0.5))
    if rng.random() < failure_rate:
        if rng.random() < 0.5:
            return ToolResult("timeout", json.dumps({"error": "timeout"}), 5000)
        return ToolResult("http_500", json.dumps({"error": "HTTP 500"}), latency)
    if name not in {t["function"]["name"] for t in TOOLS}:
        return ToolResult("ok", json.dumps({"error": f"unknown tool {name}"}), latency)
    wanted = task.arguments.get("order_number")
    if wanted is not None and str(arguments.get("order_number", "")) != wanted:
        return ToolResult("ok", json.dumps({"error": "order not found"}), latency)
    return ToolResult("ok", json.dumps(_tool_payload(task)), latency)


def _tool_payload(task: AgentTask) -> dict[str, Any]:
    n = task.question.order_number
    if task.tool == "lookup_order":
        return {"order_number": n, "status": "shipped", "days_to_arrival": 3}
    if task.tool == "issue_refund":
        return {"order_number": n, "refund": "issued", "days_to_account": 5}
    if task.tool == "cancel_order":
        return {"order_number": n, "cancelled": True, "charged": False}
    if task.tool == "update_address":
        return {"order_number": n, "address": task.arguments.get("address"), "updated": True}
    return {"topic": task.arguments["topic"], "policy": reference_answer(task.question)}


def tool_call_message(name: str, arguments: dict[str, Any], call_id: str = "call_0") -> dict[str, Any]:
    """An assistant message making one tool call, OpenAI-shaped (arguments as a JSON string)."""
    return {
        "role": "assistant",
        "content": "",
        "tool_calls": [{"id": call_id, "type": "function",
                        "function": {"name": name, "arguments": json.dumps(arguments)}}],
    }


def agent_messages(task: AgentTask, result: ToolResult | None = None,
                   call_id: str = "call_0") -> list[dict[str, Any]]:
    """The full reference episode: system, user, tool call, tool result, final answer."""
    if result is None:
        result = ToolResult("ok", json.dumps(_tool_payload(task)), 0)
    return question_messages(task.question) + [
        tool_call_message(task.tool, task.arguments, call_id),
        {"role": "tool", "tool_call_id": call_id, "name": task.tool, "content": result.content},
        {"role": "assistant", "content": task.final_answer},
    ]


def judge_episode(task: AgentTask, calls: list[tuple[str, dict[str, Any]]],
                  results: list[ToolResult], final_answer: str) -> AgentOutcome:
    """Decide success, and on failure whether the model or the system is to blame.

    A failed tool (timeout, HTTP 500) that left the episode unfinished is a system failure;
    the wrong tool, wrong arguments or a wrong final reply are model failures.
    """
    for result in results:
        if result.status != "ok":
            kind = "tool_timeout" if result.status == "timeout" else "tool_http_500"
            return AgentOutcome(False, "system", kind, f"{task.tool}: {result.status}")
    if not calls:
        return AgentOutcome(False, "model", "no_tool_call", "the answer did not use a tool")
    name, arguments = calls[0]
    if name != task.tool:
        return AgentOutcome(False, "model", "wrong_tool", f"called {name}, expected {task.tool}")
    if {k: str(v) for k, v in arguments.items()} != task.arguments:
        return AgentOutcome(False, "model", "bad_arguments", "arguments do not match the request")
    if not is_correct(final_answer, task.question):
        return AgentOutcome(False, "model", "wrong_answer", "final reply is not the expected one")
    return AgentOutcome(True)


@dataclass
class AgentEpisode:
    """A played agent episode: the messages (OpenAI-shaped), tool results and outcome."""

    task: AgentTask
    messages: list[dict[str, Any]]
    results: list[ToolResult]
    outcome: AgentOutcome


AssistantFn = Callable[[list[dict[str, Any]], list[dict[str, Any]]], dict[str, Any]]


def _parse_calls(message: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    calls = []
    for call in message.get("tool_calls") or []:
        fn = call.get("function", {})
        args = fn.get("arguments") or {}
        if isinstance(args, str):
            try:
                args = json.loads(args or "{}")
            except json.JSONDecodeError:
                args = {"_unparsed": args}
        calls.append((str(fn.get("name", "")), args if isinstance(args, dict) else {}))
    return calls


def play_episode(task: AgentTask, assistant: AssistantFn, rng: random.Random,
                 failure_rate: float = 0.1, max_tool_turns: int = 2) -> AgentEpisode:
    """Run an agent episode: ``assistant(messages, tools)`` returns assistant messages.

    Each tool call is answered by the simulated backend (``call_tool``); the episode ends at
    the first assistant message without tool calls, or after ``max_tool_turns`` tool turns.
    """
    messages = question_messages(task.question)
    calls: list[tuple[str, dict[str, Any]]] = []
    results: list[ToolResult] = []
    final = ""
    for turn in range(max_tool_turns + 1):
        reply = assistant(messages, TOOLS)
        messages.append(reply)
        turn_calls = _parse_calls(reply)
        if not turn_calls or turn == max_tool_turns:
            final = reply.get("content") or ""
            break
        for i, (name, args) in enumerate(turn_calls):
            result = call_tool(task, name, args, rng, failure_rate)
            call_id = (reply["tool_calls"][i].get("id") or f"call_{len(calls)}")
            calls.append((name, args))
            results.append(result)
            messages.append({"role": "tool", "tool_call_id": call_id, "name": name,
                             "content": result.content})
    return AgentEpisode(task, messages, results, judge_episode(task, calls, results, final))


def scripted_assistant(task: AgentTask, rng: random.Random, *, wrong_tool_rate: float = 0.1,
                       wrong_argument_rate: float = 0.1, wrong_answer_rate: float = 0.1) -> AssistantFn:
    """A stand-in for a model that makes the usual mistakes at the given rates.

    Useful to generate realistic agent traffic (and its failures) without running a model.
    """
    def _assistant(messages: list[dict[str, Any]], tools: list[dict[str, Any]]) -> dict[str, Any]:
        if messages[-1]["role"] == "tool":
            failed = "error" in messages[-1]["content"]
            if failed or rng.random() < wrong_answer_rate:
                return {"role": "assistant", "content": wrong_answer(task.question, rng)}
            return {"role": "assistant", "content": task.final_answer}
        name, args = task.tool, dict(task.arguments)
        if rng.random() < wrong_tool_rate:
            name = rng.choice([t["function"]["name"] for t in tools if t["function"]["name"] != task.tool])
        if "order_number" in args and rng.random() < wrong_argument_rate:
            args["order_number"] = _other_number(args["order_number"], rng)
        return tool_call_message(name, args, f"call_{rng.randrange(10**6)}")

    return _assistant


# -- noisy feedback ------------------------------------------------------------------------------

@dataclass(frozen=True)
class Feedback:
    """Explicit feedback on one answer: thumbs (``up``/``down``), 1-7 ratings, a comment."""

    thumbs: Literal["up", "down"] | None = None
    ratings: dict[str, int] = field(default_factory=dict)
    comment: str = ""
    corrected_answer: str = ""


@dataclass(frozen=True)
class Preference:
    """A user's choice between answers A and B; ``None`` means the user skipped."""

    choice: Literal["a", "b", "tie"] | None
    reason: str = ""
    ratings_a: dict[str, int] = field(default_factory=dict)
    ratings_b: dict[str, int] = field(default_factory=dict)


def _rating(correct: bool, rng: random.Random) -> int:
    centre = 6.0 if correct else 2.2
    return max(1, min(7, round(rng.gauss(centre, 1.0))))


def _ratings(correct: bool, rng: random.Random) -> dict[str, int]:
    return {k: _rating(correct, rng) for k in ("helpfulness", "correctness", "style")}


def noisy_feedback(answer: str, q: Question, rng: random.Random, *, response_rate: float = 0.4,
                   flip_rate: float = 0.08, rating_rate: float = 0.25,
                   correction_rate: float = 0.1) -> Feedback | None:
    """What a user might send after seeing ``answer``; ``None`` when they send nothing.

    Most users stay silent; some misclick (``flip_rate``); a few rate 1-7; some who are
    unhappy type the right answer (a correction).
    """
    if rng.random() >= response_rate:
        return None
    correct = is_correct(answer, q)
    happy = correct != (rng.random() < flip_rate)
    ratings = _ratings(correct, rng) if rng.random() < rating_rate else {}
    correction = ""
    if not correct and not happy and rng.random() < correction_rate:
        correction = reference_answer(q)
    comment = "" if happy else rng.choice(("", "wrong answer", "not helpful", "that is not my order"))
    return Feedback("up" if happy else "down", ratings, comment, correction)


def noisy_preference(answer_a: str, answer_b: str, q: Question, rng: random.Random, *,
                     skip_rate: float = 0.2, flip_rate: float = 0.1,
                     first_bias: float = 0.1) -> Preference:
    """A user's pick between two answers, with skips, misclicks and a bias toward A."""
    if rng.random() < skip_rate:
        return Preference(None)
    ok_a, ok_b = is_correct(answer_a, q), is_correct(answer_b, q)
    ratings_a, ratings_b = _ratings(ok_a, rng), _ratings(ok_b, rng)
    if ok_a == ok_b:
        if rng.random() < first_bias:
            return Preference("a", "first looked fine", ratings_a, ratings_b)
        return Preference("tie", "both correct" if ok_a else "both wrong", ratings_a, ratings_b)
    better: Literal["a", "b"] = "a" if ok_a else "b"
    if rng.random() < flip_rate:
        better = "b" if better == "a" else "a"
    return Preference(better, "answered my question", ratings_a, ratings_b)
