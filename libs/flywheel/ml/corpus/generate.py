"""Generate the tiny model's pre-training corpus, deterministically.

Run ``python -m flywheel.ml.corpus.generate`` to rewrite ``shop_text.txt`` and ``chats.jsonl``
next to this file (``--check`` only compares). The text is about the same shop as the demo's
support task and often mentions and copies order numbers, but never uses the task's canonical
replies: pre-training teaches the language, the chat format and copying, while the flywheel's
own training has to teach the answers. Conversations are stored without a system prompt (the
pre-training code adds the shop's usually) to keep the files small.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
from typing import Any, Callable

from flywheel.ml.corpus import CHATS_FILE, TEXT_FILE

SEED = 7
N_TEXTS = 1000
N_CHATS = 1200

PRODUCTS = ("Alpine jacket", "Trail backpack", "Summit tent", "River boots", "Canyon fleece",
            "Harbor raincoat", "Ridge gloves", "Meadow hat", "Glacier sleeping bag",
            "Forest socks", "Coast shorts", "Peak trousers")
COLORS = ("red", "blue", "green", "black", "grey", "orange", "yellow", "navy")
MATERIALS = ("recycled nylon", "merino wool", "organic cotton", "waxed canvas", "polyester",
             "leather")
CITIES = ("Oslo", "Bergen", "Leeds", "Portland", "Denver", "Lyon", "Graz", "Tromso")
DAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
SIZES = ("XS", "S", "M", "L", "XL")
STREETS = ("Fjord Street", "Quay Road", "Station Lane", "Church Avenue", "Bridge Street")
GREET = ("", "", "", "Hi, ", "Hello. ", "Hey, ")

CHECK_STOCK_TOOL = {
    "type": "function",
    "function": {
        "name": "check_stock",
        "description": "Count the items of a product in stock.",
        "parameters": {"type": "object", "properties": {"product": {"type": "string"}},
                       "required": ["product"]},
    },
}


def _n(rng: random.Random) -> str:
    return str(rng.randint(100, 9999))


def _price(rng: random.Random) -> int:
    return rng.choice((15, 19, 25, 29, 35, 45, 59, 79, 99, 120, 149, 199, 249))


def _text(rng: random.Random) -> str:
    if rng.random() < 0.4:
        return _packing_list(rng)
    p, p2, c, c2 = rng.choice(PRODUCTS), rng.choice(PRODUCTS), rng.choice(COLORS), rng.choice(COLORS)
    city, m = rng.choice(CITIES), rng.choice(MATERIALS)
    options = (
        f"The {p} is made of {m} and comes in {c} and {c2}. It costs {_price(rng)} dollars.",
        f"Northwind Outfitters opened its first store in {city} in {rng.randint(1970, 2015)}. "
        "Today the team sells outdoor gear for hiking, camping and travel.",
        f"Many customers ask about sizes. The {p} runs {rng.choice(('small', 'large'))}, "
        f"so most people pick one size {rng.choice(('up', 'down'))}.",
        f"This week the {city} store has a sale on the {p} and the {p2}.",
        f"Wash the {p} in cold water and let it dry in the air. Do not iron {m}.",
        "Every order gets a number with three or four digits. "
        "You find it in the confirmation email and on the packing slip.",
        f"A customer in {city} wrote about order {_n(rng)}: the {c} {p} fits well and "
        "kept her dry on a long walk.",
        f"Our {city} team packs parcels every {rng.choice(DAYS)} morning. "
        "Each parcel carries the order number on its label.",
        f"The {p} weighs {rng.randint(2, 30) * 50} grams and packs into its own pocket.",
        f"Guides from {city} test the {p} on trips in rain, wind and snow before it goes on sale.",
        f"Gift cards from Northwind Outfitters come in values of {_price(rng)} dollars.",
        "Refunds are paid back to the card used at checkout.",
        "A return label is in every parcel, so unused items are easy to send back.",
        "Business days are Monday to Friday. Parcels do not move on Sundays.",
        "A cancelled order never leaves the warehouse and is not charged.",
        "Customers can update the delivery address in their account until the parcel ships.",
        "Defects in seams and zips are covered by the warranty, wear and tear is not.",
        "Shipping fees depend on the weight of the parcel and the distance.",
        f"The {city} store opens in the morning and closes in the evening on weekdays.",
        "Your account shows every order, its status and the expected arrival day.",
        f"Support agents answer messages in the order they arrive and always quote the "
        f"order number, for example order {_n(rng)}.",
        _repeat_number(rng),
    )
    return rng.choice(options)


def _packing_list(rng: random.Random) -> str:
    # A list of random numbers repeated later in the line can only be predicted by copying:
    # it is what makes a small model learn to copy numbers within a short pre-training.
    numbers = ", ".join(_n(rng) for _ in range(rng.randint(2, 5)))
    return rng.choice((
        f"Packing list for the {rng.choice(CITIES)} van: orders {numbers}. Checked again: orders {numbers}.",
        f"Orders waiting for pick-up: {numbers}. Picked up today: {numbers}.",
        f"Returns received: {numbers}. Refunds sent for {numbers}.",
    ))


def _repeat_number(rng: random.Random) -> str:
    n = _n(rng)
    return rng.choice((
        f"The parcel for order {n} left the {rng.choice(CITIES)} warehouse. Its label reads order {n}.",
        f"Ticket for order {n}: the customer asked about order {n} twice this week.",
        f"Order {n} is a {rng.choice(COLORS)} {rng.choice(PRODUCTS)}; order {n} ships in one box.",
    ))


def _user(rng: random.Random, text: str) -> str:
    prefix = rng.choice(GREET)
    return prefix + (text[0].lower() + text[1:] if prefix.endswith(", ") else text)


def _qa_product(rng: random.Random) -> tuple[str, str]:
    p, c, price = rng.choice(PRODUCTS), rng.choice(COLORS), _price(rng)
    return rng.choice((
        (f"How much is the {p}?", f"The {p} costs {price} dollars."),
        (f"Do you have the {p} in {c}?", f"Yes, the {p} is available in {c}."),
        (f"Is the {p} available in {c}?", f"Sorry, the {p} is not available in {c} right now."),
        (f"What is the {p} made of?", f"The {p} is made of {rng.choice(MATERIALS)}."),
        (f"What size {p} should I get? I am {rng.randint(150, 200)} cm tall.",
         f"For your height we suggest size {rng.choice(SIZES)}."),
        (f"How do I wash the {p}?", "Wash it in cold water and let it dry in the air."),
    ))


def _qa_order(rng: random.Random) -> tuple[str, str]:
    n, p, c, k = _n(rng), rng.choice(PRODUCTS), rng.choice(COLORS), rng.randint(1, 60)
    street = f"{rng.randint(1, 99)} {rng.choice(STREETS)}"
    return rng.choice((
        (f"What is in order {n}?", f"Order {n} contains one {c} {p}."),
        (f"How much did I pay for order {n}?", f"You paid {_price(rng)} dollars for order {n}."),
        (f"When did I place order {n}?", f"Order {n} was placed on {rng.choice(DAYS)}."),
        (f"Can I get an invoice for order {n}?", f"The invoice for order {n} is in your email."),
        (f"Can order {n} be gift wrapped?", f"Yes, we can gift wrap order {n} for 3 dollars."),
        (f"Which color did I choose in order {n}?", f"You chose {c} for order {n}."),
        (f"Is there a receipt for order number {n}?",
         f"Yes, the receipt for order {n} is attached to your account."),
        (f"I ordered {k} pairs of socks in order {n}. Is that right?",
         f"Yes, order {n} has {k} pairs of Forest socks."),
        (f"Who packed order {n} at {street}?", f"Order {n} was packed by our {rng.choice(CITIES)} team."),
        (f"Order {n} was a gift. Can you add a note?", f"A gift note is added to order {n}."),
        (f"Does order {n} include the {p}?", f"Yes, order {n} includes the {c} {p}."),
    ))


def _qa_smalltalk(rng: random.Random) -> tuple[str, str]:
    return rng.choice((
        ("Hi!", "Hello! How can I help you today?"),
        ("How are you?", "I am fine, thank you. How can I help?"),
        ("Thank you so much.", "You are welcome. Have a great day!"),
        ("Tell me a joke.", "Why did the tent go to school? It wanted to be a little more intense."),
        ("Who are you?", "I am the support assistant of Northwind Outfitters."),
        ("What do you sell?", "We sell outdoor gear: jackets, tents, backpacks, boots and more."),
        ("Is it going to rain this weekend?", "I cannot check the weather, but a raincoat helps."),
        (f"Do you have a store in {rng.choice(CITIES)}?",
         "Yes, our stores are listed on the website with their addresses."),
        ("Bye!", "Goodbye, and enjoy your next trip outdoors!"),
    ))


# Shop topics asked about in many ways, each answered with general facts (not the assistant's
# canonical replies, which only fine-tuning teaches): the general knowledge of a base model,
# here that a question's topic words, not its frame, decide what the answer is about.
_TOPIC_FRAMES = (
    "I have a question about {x}.", "Can you tell me about {x}?", "What should I know about {x}?",
    "Quick question on {x}, please.", "{X}: how does that work?", "Is there any information on {x}?",
    "My friend asked me about {x}. What do I tell her?", "Before I buy, what about {x}?",
    "Explain {x} to me.", "Where can I read about {x}?", "I am confused about {x}.",
    "Help me with {x}.", "Something about {x} is not clear to me.", "One more thing: {x}?",
)
_TOPICS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "shipping": (
        ("shipping", "shipping costs", "the delivery fee", "postage", "delivery charges",
         "the price of shipping", "shipping to {city}", "what delivery costs", "paying for shipping"),
        ("Shipping fees depend on the weight of the parcel and the distance.",
         "Parcels to {city} travel with a tracked courier.",
         "The shipping price is shown at checkout before you pay."),
    ),
    "hours": (
        ("your opening hours", "the store hours", "when the shop is open", "closing time",
         "weekend hours", "the hours of the {city} store", "what time you open", "holiday hours",
         "the days you are open", "what time the shop closes", "how late you stay open"),
        ("The {city} store opens in the morning and closes in the evening on weekdays.",
         "Each store lists its hours on the website.",
         "On public holidays the stores open later."),
    ),
    "warranty": (
        ("the warranty", "warranty coverage", "the guarantee on your gear", "a warranty claim",
         "broken gear under warranty", "how long gear is covered", "the warranty on the {p}"),
        ("Defects in seams and zips are covered by the warranty, wear and tear is not.",
         "A warranty claim needs the receipt and a photo of the defect.",
         "The {p} is built to last and the warranty covers its defects."),
    ),
    "returns": (
        ("returns", "sending an item back", "the return policy", "returning a gift",
         "exchanges and returns", "how to return the {p}", "the rules for returns"),
        ("A return label is in every parcel, so unused items are easy to send back.",
         "Returned items are checked in the {city} warehouse.",
         "Gifts can be exchanged for another size or color."),
    ),
    "status": (
        ("the status of order {n}", "where order {n} is", "tracking order {n}",
         "when order {n} arrives", "the delivery of order {n}"),
        ("Your account shows order {n}, its status and the expected arrival day.",
         "The tracking link for order {n} is in the shipping email."),
    ),
    "refund": (
        ("a refund for order {n}", "getting my money back for order {n}", "refunding order {n}",
         "the refund on order {n}"),
        ("Refunds are paid back to the card used at checkout, also for order {n}.",
         "A refund for order {n} starts when the parcel is back in the warehouse."),
    ),
    "cancel": (
        ("cancelling order {n}", "stopping order {n}", "a cancellation of order {n}",
         "how to cancel order {n}"),
        ("A cancelled order never leaves the warehouse, so order {n} can be stopped until it ships.",
         "Order {n} can be cancelled in your account until it is packed."),
    ),
    "address": (
        ("the address on order {n}", "changing the address of order {n}",
         "a new delivery address for order {n}", "where order {n} is delivered to"),
        ("The delivery address of order {n} can be changed until the parcel ships.",
         "Send the new street and city for order {n} and the team updates the label."),
    ),
}


def _qa_topic(rng: random.Random) -> tuple[str, str]:
    phrases, answers = _TOPICS[rng.choice(tuple(_TOPICS))]
    fill = {"n": _n(rng), "city": rng.choice(CITIES), "p": rng.choice(PRODUCTS)}
    x = rng.choice(phrases).format(**fill)
    question = rng.choice(_TOPIC_FRAMES).format(x=x, X=x[0].upper() + x[1:])
    return question, rng.choice(answers).format(**fill)


def _stock_chat(rng: random.Random) -> dict[str, Any]:
    p, k = rng.choice(PRODUCTS), rng.randint(0, 40)
    call = {"id": "call_0", "type": "function",
            "function": {"name": "check_stock", "arguments": json.dumps({"product": p})}}
    reply = f"We have {k} of the {p} in stock." if k else f"The {p} is out of stock right now."
    return {"messages": [
        {"role": "user", "content": _user(rng, f"Is the {p} in stock?")},
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {"role": "tool", "tool_call_id": "call_0", "name": "check_stock",
         "content": json.dumps({"product": p, "in_stock": k})},
        {"role": "assistant", "content": reply},
    ], "tools": [CHECK_STOCK_TOOL]}


def _chat(rng: random.Random) -> dict[str, Any]:
    if rng.random() < 0.1:
        return _stock_chat(rng)
    # Order questions are weighted up (half of the turns): copying a number from the question
    # into the answer is the skill the demo task builds on. A quarter ask about shop topics.
    kinds: tuple[Callable[[random.Random], tuple[str, str]], ...] = (
        _qa_product, _qa_order, _qa_order, _qa_order, _qa_order, _qa_topic, _qa_topic,
        _qa_smalltalk)
    messages: list[dict[str, Any]] = []
    for _ in range(1 if rng.random() < 0.7 else 2):
        question, answer = rng.choice(kinds)(rng)
        messages += [{"role": "user", "content": _user(rng, question)},
                     {"role": "assistant", "content": answer}]
    return {"messages": messages}


def sample_chat(rng: random.Random) -> dict[str, Any]:
    """One fresh conversation (new order numbers each draw), as in ``chats.jsonl``."""
    return _chat(rng)


def sample_text(rng: random.Random) -> str:
    """One fresh paragraph, as in ``shop_text.txt``."""
    return _text(rng)


def copy_drill(rng: random.Random) -> tuple[str, str]:
    """A copying drill: (head, tail) where the tail repeats numbers read in the head.

    Random numbers are unpredictable except by looking back, so the tail's loss is only lowered
    by attending to the head and copying: the skill the demo task needs (an answer quotes the
    order number of the question), which a small model does not pick up from shop text alone.
    """
    listed = " ".join(_n(rng) for _ in range(rng.randint(2, 6)))
    return f"Numbers: {listed}. Again:", f" {listed}."


def generate(seed: int = SEED) -> tuple[str, str]:
    """The corpus files' contents: (shop_text.txt, chats.jsonl)."""
    rng = random.Random(seed)
    texts = "".join(_text(rng) + "\n" for _ in range(N_TEXTS))
    chats = "".join(json.dumps(_chat(rng), separators=(",", ":")) + "\n" for _ in range(N_CHATS))
    return texts, chats


def main(argv: list[str] | None = None) -> int:
    """Write (or with ``--check`` compare) the corpus files; returns the exit code."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="fail if the files differ")
    args = parser.parse_args(argv)
    texts, chats = generate()
    if args.check:
        same = TEXT_FILE.read_text(encoding="utf-8") == texts and CHATS_FILE.read_text(encoding="utf-8") == chats
        sys.stderr.write("corpus up to date\n" if same else "corpus differs from the generator\n")
        return 0 if same else 1
    TEXT_FILE.write_text(texts, encoding="utf-8")
    CHATS_FILE.write_text(chats, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
