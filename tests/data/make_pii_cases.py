"""Write tests/data/pii_cases.jsonl: the labelled PII set the triage redaction is measured on.

Run ``python tests/data/make_pii_cases.py`` to regenerate (deterministic). Each line is::

    {"id": "...", "text": "...", "entities": [{"type": "email", "value": "..."}], "tags": [...]}

``entities`` lists every piece of personal data or secret in ``text`` (exact substrings);
an empty list means the text holds none. Texts come from support chats, agent tool calls,
tool results and logs. About a third are near-misses: order numbers, dates, prices,
versions, tracking numbers, hashes, 16-digit numbers that fail Luhn, invalid IBANs, prose
that mentions passwords and tokens. Values with check digits (cards, IBANs, national ids)
are generated valid, or deliberately invalid for the near-misses.
"""

from __future__ import annotations

import json
import random
import string
from pathlib import Path

OUT = Path(__file__).with_name("pii_cases.jsonl")


# -- valid values ---------------------------------------------------------------------------------

def luhn_complete(prefix: str, length: int, rng: random.Random) -> str:
    body = prefix + "".join(rng.choice(string.digits) for _ in range(length - len(prefix) - 1))
    for check in string.digits:
        digits = body + check
        total = 0
        for i, ch in enumerate(reversed(digits)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return digits
    raise AssertionError("unreachable")


def luhn_broken(prefix: str, length: int, rng: random.Random) -> str:
    good = luhn_complete(prefix, length, rng)
    return good[:-1] + str((int(good[-1]) + rng.randint(1, 9)) % 10)


def group(digits: str, sizes: list[int], sep: str) -> str:
    out, pos = [], 0
    for size in sizes:
        out.append(digits[pos:pos + size])
        pos += size
    return sep.join(out)


def iban(country: str, bban: str) -> str:
    moved = bban + country + "00"
    check = 98 - int("".join(str(int(c, 36)) for c in moved)) % 97
    return f"{country}{check:02d}{bban}"


def spaced(code: str) -> str:
    return " ".join(code[i:i + 4] for i in range(0, len(code), 4))


def dni(number: int) -> str:
    return f"{number:08d}" + "TRWAGMYFPDXBNJZSQVHLCKE"[number % 23]


def nir(body: str) -> str:
    key = 97 - int(body) % 97
    return f"{body[0]} {body[1:3]} {body[3:5]} {body[5:7]} {body[7:10]} {body[10:13]} {key:02d}"


def bsn(rng: random.Random) -> str:
    while True:
        d = [rng.randint(0, 9) for _ in range(8)]
        total = sum(x * w for x, w in zip(d, range(9, 1, -1)))
        last = total % 11
        if last < 10 and total - last != 0 and d[0] != 0:
            return "".join(map(str, d)) + str(last)


def rand_chars(rng: random.Random, n: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


# -- cases ----------------------------------------------------------------------------------------

class Cases:
    def __init__(self) -> None:
        self.rows: list[dict] = []

    def add(self, prefix: str, text: str, *entities: tuple[str, str], tags: tuple[str, ...] = ()) -> None:
        for kind, value in entities:
            assert value in text, (text, value)
        self.rows.append({
            "id": f"{prefix}-{sum(r['id'].startswith(prefix + '-') for r in self.rows) + 1:03d}",
            "text": text,
            "entities": [{"type": k, "value": v} for k, v in entities],
            "tags": list(tags),
        })


def emails(c: Cases, rng: random.Random) -> None:
    names = ["john.doe", "maria.garcia", "a.nguyen", "kim_lee", "o'brien", "li.wei+orders",
             "Jean-Luc.Picard", "sam", "PRIYA.SHARMA", "josé.álvarez", "t.müller", "dev-ops"]
    domains = ["gmail.com", "example.com", "northwind.co.uk", "mail.example.org", "corp.io",
               "web.de", "outlook.fr", "uni-heidelberg.de", "shop.example.net", "proton.me"]
    templates = [
        "Hi, my email is {e}, please send the invoice there.",
        "You can reach me at {e} if the parcel is late.",
        "Please update the account email from {e} to {e2}.",
        "Contact: <{e}>",
        "mailto:{e}",
        '{{"customer_email": "{e}", "order_number": "{n}"}}',
        "I never got the confirmation for order {n}, my address is {e}.",
        "Forwarded by {e} on behalf of the customer.",
        "Reply-To: {e}\nSubject: refund for order {n}",
        "EMAIL={e}",
        "Send the label to {e}; the order is {n}.",
        "Is {e} the right address? I also use {e2} sometimes.",
    ]
    for i, tpl in enumerate(templates * 2):
        e = f"{rng.choice(names)}@{rng.choice(domains)}"
        e2 = f"{rng.choice(names)}{rng.randint(1, 99)}@{rng.choice(domains)}"
        text = tpl.format(e=e, e2=e2, n=rng.randint(100, 9999))
        ents = [("email", e)] + ([("email", e2)] if "{e2}" in tpl else [])
        c.add("email", text, *ents)
    c.add("email", "write to jane.doe [at] example [dot] com please",
          ("email", "jane.doe [at] example [dot] com"))
    c.add("email", "my address is peter (at) northwind (dot) co (dot) uk",
          ("email", "peter (at) northwind (dot) co (dot) uk"))
    c.add("email", "Email me at mike.r at gmail dot com.", ("email", "mike.r at gmail dot com"))
    c.add("email", "CONTACT: SUPPORT.TEAM@NORTHWIND-OUTFITTERS.COM", ("email", "SUPPORT.TEAM@NORTHWIND-OUTFITTERS.COM"))
    c.add("email", "user42@mail2.example.com wrote: where is order 5512?", ("email", "user42@mail2.example.com"))


def email_near_misses(c: Cases) -> None:
    for text in [
        "Follow us @northwind on social media for deals.",
        "The retina image logo@2x.png is missing on the order page.",
        "Use the pattern user@host in the config template.",
        "Meet me at the store at 10 am.",
        "We are at home, the parcel is at the door.",
        "Ping @support-team in the channel about order 5521.",
        "npm install @types/node@20 failed",
        "git clone git@github: repo not found",
    ]:
        c.add("near-email", text, tags=("near_miss",))


def phones(c: Cases, rng: random.Random) -> None:
    numbers = [
        "+1 (415) 555-0132", "(415) 555-0199", "415-555-0178", "415.555.0143", "+1 415 555 0101",
        "+14155550166", "+1-800-555-0199", "+44 20 7946 0958", "020 7946 0321", "07700 900123",
        "+44 7700 900456", "+49 30 901820", "+49 (0)30 12345678", "+49 151 23456789",
        "0049 89 1234567", "+33 1 23 45 67 89", "+33 6 12 34 56 78", "+34 612 345 678",
        "+39 06 6982 1234", "+31 20 123 4567", "+61 2 9374 4000", "+81 3-1234-5678",
        "+91 98765 43210", "(212) 555-0147", "212-555-0123",
    ]
    templates = [
        "You can call me at {p} after 5 pm.",
        "My phone number is {p}.",
        "Please text {p} when the courier is close.",
        "Customer callback requested: {p} (order {n}).",
        '{{"phone": "{p}", "order_number": "{n}"}}',
        "Tel: {p}",
        "If nobody answers, try {p} instead.",
        "The delivery driver should ring {p} at the gate.",
    ]
    for i, p in enumerate(numbers):
        tpl = templates[i % len(templates)]
        c.add("phone", tpl.format(p=p, n=rng.randint(100, 9999)), ("phone", p))
    c.add("phone", "call me on 555 0199 tomorrow", ("phone", "555 0199"))
    c.add("phone", "my mobile: 5550123456", ("phone", "5550123456"))
    c.add("phone", "Phone 555-0123, ask for Dana.", ("phone", "555-0123"))
    c.add("phone", "Dublin office: +353 (0)1 234 5678", ("phone", "+353 (0)1 234 5678"))
    c.add("phone", "reach us on +1.415.555.0132 any time", ("phone", "+1.415.555.0132"))
    c.add("phone", "Please call 415 555 0132 about order 7781.", ("phone", "415 555 0132"))
    c.add("phone", "WhatsApp +447700900321", ("phone", "+447700900321"))
    # Known hard: digits spelled out in words are not detected.
    c.add("phone", "my number is four one five, five five five, zero one three two",
          ("phone", "four one five, five five five, zero one three two"), tags=("hard",))


def phone_near_misses(c: Cases) -> None:
    for text in [
        "Delivery takes 1-2 business days, sometimes 3-5.",
        "Order 1234 and order 5678 were merged.",
        "The ZIP code is 94107 and the suite is 1204.",
        "We shipped 1,000,000 parcels in 2023.",
        "The event was logged at unix time 1700000000.",
        "Invoice 2024-03-15-0042 was paid.",
        "SKU 400-12345-678 is back in stock.",
        "Tracking number 1Z999AA10123456784 shows it in transit.",
        "Your order 98765 ships on 15/03/2024.",
        "Open Monday to Saturday from 9 am to 6 pm, 10:00-18:00 on Sunday.",
        "Pi is 3.14159265, e is 2.71828.",
        "ISBN 978-3-16-148410-0 is the book you asked about.",
        "Reference number: 2024 0315 7781",
        "The meeting is on 2024-03-15 at 10:30:15 UTC.",
        "Account 123-456-7890 is closed.",
        "Order #A-55821 weighs 2.5 kg.",
    ]:
        c.add("near-phone", text, tags=("near_miss",))


def cards(c: Cases, rng: random.Random) -> None:
    kinds = [("4", 16, [4, 4, 4, 4]), ("51", 16, [4, 4, 4, 4]), ("55", 16, [4, 4, 4, 4]),
             ("2221", 16, [4, 4, 4, 4]), ("37", 15, [4, 6, 5]), ("34", 15, [4, 6, 5]),
             ("6011", 16, [4, 4, 4, 4]), ("3530", 16, [4, 4, 4, 4]), ("4", 13, [13])]
    templates = [
        "My card number is {c}, please charge the remaining balance.",
        "I paid with {c} but the refund went elsewhere.",
        '{{"payment": {{"card": "{c}", "exp": "12/27"}}}}',
        "card={c}",
        "Can you refund to the card {c}? Order {n}.",
        "The last payment on {c} failed twice.",
    ]
    i = 0
    for prefix, length, sizes in kinds:
        for sep in (" ", "-", ""):
            if len(sizes) == 1 and sep:
                continue
            digits = luhn_complete(prefix, length, rng)
            text_value = group(digits, sizes, sep) if sep else digits
            tpl = templates[i % len(templates)]
            i += 1
            c.add("card", tpl.format(c=text_value, n=rng.randint(100, 9999)),
                  ("credit_card", text_value))


def card_near_misses(c: Cases, rng: random.Random) -> None:
    for prefix in ("4", "5", "6011", "37"):
        bad = luhn_broken(prefix, 16 if prefix != "37" else 15, rng)
        c.add("near-card", f"Reference {bad} does not match any order.", tags=("near_miss",))
    c.add("near-card", "The card ending in 4242 was declined.", tags=("near_miss",))
    c.add("near-card", f"Order id {luhn_complete('1', 16, rng)} has shipped.", tags=("near_miss",))
    c.add("near-card", "Gift card code 9000 1234 5678 9012 345 is invalid.", tags=("near_miss",))
    c.add("near-card", "The USPS tracking number is 9400 1000 0000 0000 0000 00.",
          tags=("near_miss",))


def ibans(c: Cases, rng: random.Random) -> None:
    values = [
        iban("DE", "370400440532013000"), iban("GB", "WEST12345698765432"),
        iban("FR", "20041010050500013M02606"), iban("NL", "ABNA0417164300"),
        iban("ES", "21000418450200051332"), iban("IT", "X0542811101000000123456"),
        iban("CH", "00762011623852957"), iban("BE", "539007547034"),
        iban("AT", "1904300234573201"), iban("PL", "109010140000071219812874"),
        iban("IE", "AIBK93115212345678"), iban("SE", "50000000058398257466"),
    ]
    templates = ["Please refund to IBAN {v}.", "My bank account is {v}, thanks.",
                 '{{"iban": "{v}", "amount": 49.90}}', "Überweisung an {v} bitte."]
    for i, v in enumerate(values):
        shown = spaced(v) if i % 2 == 0 else v
        if i == 3:
            shown = spaced(v).lower()
        c.add("iban", templates[i % len(templates)].format(v=shown), ("iban", shown))
    bad = iban("DE", "370400440532013000")
    bad = bad[:2] + f"{(int(bad[2:4]) + 1) % 100:02d}" + bad[4:]
    c.add("near-iban", f"The IBAN {spaced(bad)} was rejected by the bank.", tags=("near_miss",))
    c.add("near-iban", "Code DE12 3456 7890 is a voucher.", tags=("near_miss",))
    c.add("near-iban", "Part number AB12CD34EF56GH78 is discontinued.", tags=("near_miss",))


def ips(c: Cases) -> None:
    values = ["192.168.1.23", "10.0.0.5", "172.16.254.1", "203.0.113.7", "8.8.8.8",
              "2001:db8:85a3::8a2e:370:7334", "fe80::1ff:fe23:4567:890a",
              "2001:0db8:0000:0000:0000:ff00:0042:8329", "::ffff:192.0.2.128", "198.51.100.42"]
    templates = ["Login from {v} was blocked.", "client_ip={v} path=/orders status=500",
                 "The request came from {v}:8080.", "X-Forwarded-For: {v}",
                 '{{"ip": "{v}", "user_agent": "Mozilla/5.0"}}']
    for i, v in enumerate(values):
        tpl = templates[i % len(templates)]
        if ":" in v and "8080" in tpl:
            tpl = "The request came from [{v}]:8080."  # RFC 3986: IPv6 with a port is bracketed
        c.add("ip", tpl.format(v=v), ("ip_address", v))
    c.add("ip", "blocked range 10.20.0.0/16 after abuse from 10.20.3.4",
          ("ip_address", "10.20.0.0"), ("ip_address", "10.20.3.4"))
    c.add("ip", "ssh root@192.0.2.10 -p 22", ("ip_address", "192.0.2.10"))
    # Known hard: an IPv6 address with an unbracketed port is ambiguous.
    c.add("ip", "upstream 2001:db8::42:443 timed out", ("ip_address", "2001:db8::42"),
          tags=("hard",))


def ip_near_misses(c: Cases) -> None:
    for text in [
        "Please update to version 2.4.1 of the app.",
        "Upgrade to v1.2.3.4 before the sale.",
        "Running Python 3.11.4 on the build server.",
        "The meeting starts at 10:30:15.",
        "MAC 00:1A:2B:3C:4D:5E is not registered.",
        "Release 1.0.0.1234 fixed the cart bug.",
        "The firmware version 4.2.0.17 is outdated.",
        "Section 3.2.1 of the returns policy applies.",
    ]:
        c.add("near-ip", text, tags=("near_miss",))


def national_ids(c: Cases, rng: random.Random) -> None:
    c.add("natid", "My SSN is 078-05-1120, do you need it for the warranty?",
          ("national_id", "078-05-1120"))
    c.add("natid", "ssn: 219-09-9999", ("national_id", "219-09-9999"))
    c.add("natid", "Social security number 536 22 8726 on file.", ("national_id", "536 22 8726"))
    c.add("natid", "SSN 123456789", ("national_id", "123456789"))
    c.add("natid", '{"ssn": "432-56-1098", "name": "redacted"}', ("national_id", "432-56-1098"))
    c.add("natid", "National Insurance number AB123456C.", ("national_id", "AB123456C"))
    c.add("natid", "NI number: JG 10 37 32 B", ("national_id", "JG 10 37 32 B"))
    for n in (12345678, 87654321, 45678123):
        v = dni(n)
        c.add("natid", f"Mi DNI es {v}, gracias.", ("national_id", v))
    c.add("natid", "NIE X1234567L para el envío.", ("national_id", "X1234567L"))
    c.add("natid", "Codice fiscale: RSSMRA85T10A562S", ("national_id", "RSSMRA85T10A562S"))
    c.add("natid", "CF BNCGVN70A01H501X per la fattura", ("national_id", "BNCGVN70A01H501X"))
    for body in ("1850578006084", "2690299123456"):
        v = nir(body)
        c.add("natid", f"Numéro de sécurité sociale {v}", ("national_id", v))
    for _ in range(2):
        v = bsn(rng)
        c.add("natid", f"Mijn BSN is {v}.", ("national_id", v))
    c.add("natid", "SIN 046 454 286 for the tax form", ("national_id", "046 454 286"))
    c.add("natid", "Passport number X12345678, expires 2030.", ("national_id", "X12345678"))
    c.add("natid", "passport: 533380006", ("national_id", "533380006"))


def natid_near_misses(c: Cases) -> None:
    for text in [
        "Order 000-12-3456 is not valid.",
        "Call between 9-17, ref 12-34-56.",
        "The code 12345678 has no letter.",
        "My passport is expired, can I still order?",
        "Batch 666-12-3456 failed QA.",
        "Room 123 45 6789 does not exist.",
        "ABCDEF is just a label, not an id.",
    ]:
        c.add("near-natid", text, tags=("near_miss",))


def secrets(c: Cases, rng: random.Random) -> None:
    sk = "sk-proj-" + rand_chars(rng, 40)
    ant = "sk-ant-api03-" + rand_chars(rng, 40, string.ascii_letters + string.digits + "-_")
    aws = "AKIA" + rand_chars(rng, 16, string.ascii_uppercase + string.digits)
    ghp = "ghp_" + rand_chars(rng, 36)
    slack = "xoxb-" + "-".join(str(rng.randint(10**9, 10**10)) for _ in range(2)) + "-" + rand_chars(rng, 24)
    google = "AIza" + rand_chars(rng, 35, string.ascii_letters + string.digits + "-_")
    stripe = "sk_live_" + rand_chars(rng, 24)
    hf = "hf_" + rand_chars(rng, 34)
    old_sk = "sk-" + rand_chars(rng, 48)
    for v, tpl in [
        (sk, "Here is my key {v}, why does the API fail?"),
        (ant, "ANTHROPIC_API_KEY={v}"),
        (aws, "aws_access_key_id = {v}"),
        (ghp, "git push https with token {v} failed"),
        (slack, "The bot uses {v} to post."),
        (google, 'maps.js?key={v}&callback=init'),
        (stripe, "stripe.api_key = '{v}'"),
        (hf, "HF token {v} in the notebook"),
        (old_sk, "OPENAI_API_KEY is {v}"),
    ]:
        c.add("apikey", tpl.format(v=v), ("api_key", v))
    jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9." + rand_chars(rng, 40, string.ascii_letters + string.digits + "_-") \
        + "." + rand_chars(rng, 43, string.ascii_letters + string.digits + "_-")
    bearer = rand_chars(rng, 32)
    c.add("token", f"Authorization: Bearer {jwt}", ("token", jwt))
    c.add("token", f"curl -H 'Authorization: Bearer {bearer}' https://api.example.com/orders",
          ("token", bearer))
    c.add("token", "my password: hunter2", ("token", "hunter2"))
    c.add("token", 'login failed with {"user": "kim", "password": "S3cure!Pass"}',
          ("token", "S3cure!Pass"))
    c.add("token", "db url postgres://admin:s3cr3tPw@db.internal:5432/shop",
          ("token", "s3cr3tPw"))
    c.add("token", "client_secret=9f8e7d6c5b4a3921f0e1d2c3", ("token", "9f8e7d6c5b4a3921f0e1d2c3"))
    c.add("token", "set api_key: 'a1b2c3d4e5f6g7h8i9j0' in the config", ("token", "a1b2c3d4e5f6g7h8i9j0"))
    c.add("token", "access_token=ya29.A0ARrdaM-k9Lz3x7Qp", ("token", "ya29.A0ARrdaM-k9Lz3x7Qp"))
    c.add("token", "pwd=Tr0ub4dor&3 was in the log", ("token", "Tr0ub4dor&3"))
    c.add("token", "my wifi password is qwerty123!", ("token", "qwerty123!"))
    key = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA" + rand_chars(rng, 60) + "\n-----END RSA PRIVATE KEY-----"
    c.add("token", f"Oops I pasted this:\n{key}\nplease delete", ("token", key))


def secret_near_misses(c: Cases) -> None:
    for text in [
        "commit 9fceb02d0ae598e95dc970b74767f19372d61af8 fixed the cart",
        "trace 3f2b1c4e-8d7a-4e2b-9c1d-5a6b7c8d9e0f was slow",
        "Your password is incorrect, please try again.",
        "The token limit is 4096 tokens per request.",
        "I forgot my password, how do I reset it?",
        "The secret is good service and fast shipping.",
        "Use task-list-manager for the cart.",
        "He is the bearer of bad news about order 4412.",
        "sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
        "The API key field is required in settings.",
    ]:
        c.add("near-secret", text, tags=("near_miss",))


def mixed(c: Cases, rng: random.Random) -> None:
    card = luhn_complete("4", 16, rng)
    c.add("mixed", f"Hi, I'm Anna (anna.k@example.com, +44 7700 900777). Please refund order "
                   f"{rng.randint(100, 9999)} to card {group(card, [4, 4, 4, 4], ' ')}.",
          ("email", "anna.k@example.com"), ("phone", "+44 7700 900777"),
          ("credit_card", group(card, [4, 4, 4, 4], " ")))
    ib = spaced(iban("DE", "500105175407324931"))
    c.add("mixed", f"Refund order 4821 from 15/03/2024 (EUR 49.90) to {ib}, questions to "
                   f"k.schmidt@web.de.", ("iban", ib), ("email", "k.schmidt@web.de"))
    c.add("mixed", "tool get_customer returned {\"email\": \"li.wei@corp.io\", \"phone\": "
                   "\"+86 10 6552 9988\", \"last_login_ip\": \"203.0.113.99\"}",
          ("email", "li.wei@corp.io"), ("phone", "+86 10 6552 9988"),
          ("ip_address", "203.0.113.99"))
    c.add("mixed", "Order 7734 placed 2024-03-15 from 198.51.100.23 by SSN 287-65-4321 holder.",
          ("ip_address", "198.51.100.23"), ("national_id", "287-65-4321"))
    c.add("mixed", "update_address(order_number=\"5521\", address=\"12 Elm Street\", "
                   "contact=\"bob.smith@example.com\")", ("email", "bob.smith@example.com"))
    c.add("mixed", "Call (415) 555-0188 or mail support-user@example.org about version 2.4.1.",
          ("phone", "(415) 555-0188"), ("email", "support-user@example.org"))


def shop_near_misses(c: Cases, rng: random.Random) -> None:
    texts = [
        "Where is my order {n}?", "Please refund order {n}.", "Cancel order number {n}, thanks!",
        "Order {n} has shipped and arrives within 3 business days.",
        "The refund for order {n} is on its way and reaches your account within 5 days.",
        "Please change the address for order {n} to {a} Elm Street.",
        "Shipping is free on orders over 50 dollars, otherwise it costs 5 dollars.",
        "We are open Monday to Saturday from 9 am to 6 pm.",
        "Order {n} was placed on {d} at 14:05 and costs $1,299.99.",
        "Your order {n} and order {m} ship together on {d}.",
        "tool lookup_order returned {{\"order_number\": \"{n}\", \"status\": \"shipped\", "
        "\"days_to_arrival\": 3}}",
        "Is order {n} on its way? It was due on {d}.",
    ]
    for i, tpl in enumerate(texts * 2):
        day = f"2024-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}" if i % 2 else \
            f"{rng.randint(1, 28):02d}/{rng.randint(1, 12):02d}/2024"
        c.add("near-shop", tpl.format(n=rng.randint(100, 9999), m=rng.randint(100, 9999),
                                      a=rng.randint(1, 99), d=day), tags=("near_miss",))


def main() -> None:
    rng = random.Random(20261121)
    c = Cases()
    emails(c, rng)
    email_near_misses(c)
    phones(c, rng)
    phone_near_misses(c)
    cards(c, rng)
    card_near_misses(c, rng)
    ibans(c, rng)
    ips(c)
    ip_near_misses(c)
    national_ids(c, rng)
    natid_near_misses(c)
    secrets(c, rng)
    secret_near_misses(c)
    mixed(c, rng)
    shop_near_misses(c, rng)
    with OUT.open("w", encoding="utf-8") as fh:
        for row in c.rows:
            fh.write(json.dumps(row, ensure_ascii=False) + "\n")
    n_ent = sum(len(r["entities"]) for r in c.rows)
    print(f"wrote {len(c.rows)} cases with {n_ent} entities to {OUT}")


if __name__ == "__main__":
    main()
