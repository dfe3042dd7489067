"""PII redaction: find personal data and secrets in text and replace them by typed placeholders.

Detected kinds (placeholder in brackets):

* ``email`` (``[EMAIL]``): addresses, including ``name [at] host [dot] com`` spellings;
* ``phone`` (``[PHONE]``): international (``+44 20 7946 0958``) and national numbers with
  10-11 digits, or 7+ digits right after a word such as "call" or "phone";
* ``credit_card`` (``[CREDIT_CARD]``): 13-19 digits with a card network prefix and a valid
  Luhn check digit;
* ``iban`` (``[IBAN]``): country code, check digits and BBAN of that country's length,
  mod-97 checked;
* ``ip_address`` (``[IP_ADDRESS]``): IPv4 and IPv6 addresses (validated by ``ipaddress``);
* ``national_id`` (``[NATIONAL_ID]``): US SSN, UK National Insurance number, Spanish DNI/NIE
  (check letter), Italian codice fiscale, French NIR (key checked), and with a nearby keyword
  Dutch BSN (11-test), Canadian SIN (Luhn) and passport numbers;
* ``api_key`` (``[API_KEY]``): provider keys with a known shape (OpenAI/Anthropic ``sk-``,
  AWS ``AKIA``, GitHub ``ghp_``, Slack ``xox?-``, Google ``AIza``, Stripe ``sk_live_``);
* ``token`` (``[TOKEN]``): JWTs, bearer tokens, private key blocks, passwords in URLs and
  values assigned to ``password``/``secret``/``token``/``api_key`` names;
* configurable patterns (policy ``redaction.custom_patterns``), each its own kind.

Near-misses that must survive: order numbers, dates and times, prices, version numbers,
UUIDs, commit hashes, 16-digit numbers that fail Luhn.

Every detector proposes spans; overlapping spans are resolved by detector priority, then
length. Results are cached per distinct text (system prompts and canned replies repeat).
Redacting already redacted text finds nothing, so a replayed trace is redacted the same way.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from flywheel.errors import FlywheelError

EMAIL = "email"
PHONE = "phone"
CREDIT_CARD = "credit_card"
IBAN = "iban"
IP_ADDRESS = "ip_address"
NATIONAL_ID = "national_id"
API_KEY = "api_key"
TOKEN = "token"

BUILTIN_KINDS: tuple[str, ...] = (
    EMAIL, PHONE, CREDIT_CARD, IBAN, IP_ADDRESS, NATIONAL_ID, API_KEY, TOKEN)

DEFAULT_MAX_CHARS = 200_000
_CUSTOM_NAME = re.compile(r"^[a-z][a-z0-9_]{1,39}$")


class RedactionError(FlywheelError):
    """Text could not be redacted safely; the item must not travel further."""


def placeholder(kind: str) -> str:
    """The text that replaces a span of ``kind``, e.g. ``[EMAIL]``."""
    return f"[{kind.upper()}]"


@dataclass(frozen=True)
class PiiSpan:
    """One detected span: ``text[start:end]`` is personal data of ``kind``."""

    start: int
    end: int
    kind: str
    priority: int


@dataclass(frozen=True)
class CustomPattern:
    """An extra pattern from the policy: every match becomes ``[NAME]``."""

    name: str
    pattern: str
    ignore_case: bool = False


# -- validators ---------------------------------------------------------------------------------

def luhn_ok(digits: str) -> bool:
    """True when the digit string passes the Luhn (mod 10) check."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_CARD_PREFIX = re.compile(
    r"^(?:4\d{12}(?:\d{3}){0,2}"                       # Visa 13/16/19
    r"|5[1-5]\d{14}|2(?:2[2-9]\d|[3-6]\d\d|7[01]\d|720)\d{12}"  # Mastercard
    r"|3[47]\d{13}"                                    # Amex
    r"|6(?:011|5\d\d|4[4-9]\d)\d{12,15}"               # Discover
    r"|35(?:2[89]|[3-8]\d)\d{12,15}"                   # JCB
    r"|3(?:0[0-5]|[68]\d)\d{11,16}"                    # Diners
    r"|(?:5018|5020|5038|6304|6759|676[1-3])\d{8,15}"  # Maestro
    r"|62\d{14,17})$"                                  # UnionPay
)

# IBAN length per country (ISO 13616 registry, the common ones).
IBAN_LENGTHS: dict[str, int] = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22,
    "BR": 29, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20,
    "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18,
    "GR": 27, "GT": 28, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "JO": 30,
    "KW": 30, "KZ": 20, "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28,
    "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24, "SI": 19, "SK": 24,
    "SM": 27, "TN": 24, "TR": 26, "UA": 29, "VG": 24, "XK": 20,
}


def iban_ok(raw: str) -> bool:
    """True for a well-formed IBAN of a known country with valid mod-97 check digits."""
    s = re.sub(r"[\s-]", "", raw).upper()
    if IBAN_LENGTHS.get(s[:2]) != len(s) or not s.isalnum():
        return False
    moved = s[4:] + s[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_ok(raw: str) -> bool:
    """Spanish DNI (8 digits + letter) or NIE (X/Y/Z + 7 digits + letter) check letter."""
    s = raw.replace("-", "").replace(" ", "").upper()
    if s[0] in "XYZ":
        s = str("XYZ".index(s[0])) + s[1:]
    return s[:-1].isdigit() and _DNI_LETTERS[int(s[:-1]) % 23] == s[-1]


def nir_ok(raw: str) -> bool:
    """French NIR: 13 characters (Corsica 2A/2B allowed) and a 2-digit key = 97 - n mod 97."""
    s = raw.replace(" ", "").upper()
    body, key = s[:13], s[13:]
    body = body.replace("2A", "19").replace("2B", "18")
    return body.isdigit() and key.isdigit() and 97 - int(body) % 97 == int(key)


def bsn_ok(digits: str) -> bool:
    """Dutch BSN 11-test."""
    if len(digits) != 9:
        return False
    total = sum(int(d) * w for d, w in zip(digits[:8], range(9, 1, -1))) - int(digits[8])
    return total % 11 == 0 and total != 0


# -- detectors ----------------------------------------------------------------------------------

Validator = Callable[[re.Match, str], "tuple[int, int] | None"]


@dataclass(frozen=True)
class _Probe:
    """Cheap facts about a text, computed once, that let most detectors skip their regex."""

    text: str
    lower: str
    digits: int

    @classmethod
    def of(cls, text: str) -> "_Probe":
        return cls(text, text.lower(), len(text) - len(text.translate(_DELETE_DIGITS)))


_DELETE_DIGITS = str.maketrans("", "", "0123456789")
Gate = Callable[[_Probe], bool]


@dataclass(frozen=True)
class _Detector:
    kind: str
    regex: re.Pattern
    priority: int
    validate: Validator | None = None
    group: int = 0
    gate: Gate | None = None  # False: the regex cannot match this text, skip it


def _has(*needles: str) -> Gate:
    return lambda p: any(n in p.text for n in needles)


def _has_lower(*needles: str) -> Gate:
    return lambda p: any(n in p.lower for n in needles)


def _digits(n: int) -> Gate:
    return lambda p: p.digits >= n


def _span(m: re.Match, group: int = 0) -> tuple[int, int]:
    return m.start(group), m.end(group)


_FILE_TLDS = frozenset({"png", "jpg", "jpeg", "gif", "svg", "webp", "bmp", "ico", "pdf", "js",
                        "css", "ts", "py", "txt", "json", "md"})

_EMAIL = re.compile(
    r"(?<![\w.%+\-'])[^\W_][\w.%+\-']*@[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?"
    r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9\-]*[A-Za-z0-9])?)*\.([A-Za-z]{2,24})(?![\w\-])")


def _email(m: re.Match, text: str) -> tuple[int, int] | None:
    local = m.group(0).split("@", 1)[0]
    if m.group(1).lower() in _FILE_TLDS or local.endswith(".") or ".." in local:
        return None
    return _span(m)


_OBFUSCATED_EMAIL = re.compile(
    r"(?i)(?<![\w.])[a-z0-9][\w.+\-]*\s*(?:\[at\]|\(at\)|\{at\}|\sat\s)\s*[a-z0-9][\w\-]*"
    r"(?:\s*(?:\[dot\]|\(dot\)|\{dot\}|\sdot\s|\.)\s*[a-z0-9][\w\-]*)*"
    r"\s*(?:\[dot\]|\(dot\)|\{dot\}|\sdot\s|\.)\s*"
    r"(?:com|org|net|edu|gov|io|co|uk|de|fr|es|it|nl|ch|at|be|ca|au|info|biz|me)\b")

_PHONE = re.compile(r"(?<![\w/=.+\-])(\+|\b00)?(\(?\d(?:[ ().\-]{0,2}\d){6,16}\)?)(?![\w/])")
_PHONE_CONTEXT = re.compile(
    r"(?i)(?:phone|tel|telephone|mobile|cell|call|text me|sms|whatsapp|fax|reach me|"
    r"ring|number is|contact me|dial)\b[\s\w:.,#]{0,14}$")
_NOT_PHONE_CONTEXT = re.compile(
    r"(?i)(?:order|sku|invoice|ref|reference|tracking|item|part|model|serial|account|acct|isbn|"
    r"id|ticket|case|po)\s*(?:no\.?|number|num|#|:)?\s*#?\s*$")
_DATE_LIKE = re.compile(r"^(?:\d{4}[./\-]\d{1,2}[./\-]\d{1,2}|\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4})")


def _phone(m: re.Match, text: str) -> tuple[int, int] | None:
    intl = m.group(1) is not None
    body = m.group(2)
    if body.count("(") != body.count(")"):
        if body.endswith(")") and body.count(")") == body.count("(") + 1:
            body = body[:-1]
        else:
            return None
    end = m.start(2) + len(body)
    digits = sum(ch.isdigit() for ch in body)
    groups = [g for g in re.split(r"[ ().\-]+", body) if g]
    has_sep = len(groups) > 1
    context = bool(_PHONE_CONTEXT.search(text[max(0, m.start() - 40):m.start()]))
    if not intl and (_DATE_LIKE.match(body) or _NOT_PHONE_CONTEXT.search(
            text[max(0, m.start() - 24):m.start()])):
        return None
    if intl:
        ok = 8 <= digits <= 15
    elif context:
        ok = 7 <= digits <= 15
    else:
        ok = has_sep and 10 <= digits <= 11 and len(groups[0]) >= 2 and \
            all(len(g) <= 5 for g in groups) and _consistent_separators(body)
    return (m.start(), end) if ok else None


def _consistent_separators(body: str) -> bool:
    """Dotted numbers must be dotted throughout (``415.555.0132``), unlike ``3.14 1592``."""
    seps = set(re.findall(r"[ .\-]", body.replace("(", "").replace(")", "")))
    return "." not in seps or seps == {"."}


_CARD = re.compile(r"(?<![\d\-.])(\d(?:[ \-]?\d){12,18})(?![\d\-]|\.\d)")


def _card(m: re.Match, text: str) -> tuple[int, int] | None:
    raw = m.group(1)
    digits = re.sub(r"\D", "", raw)
    seps = set(re.findall(r"[ \-]", raw))
    if len(seps) > 1 or not _CARD_PREFIX.match(digits) or not luhn_ok(digits):
        return None
    return _span(m, 1)


_IBAN = re.compile(r"(?i)(?<![\w])([A-Z]{2}\d{2}(?:[ \-]?[A-Z0-9]){11,30})(?![\w])")


def _iban(m: re.Match, text: str) -> tuple[int, int] | None:
    raw = m.group(1)
    # The optional separators let the pattern run into the next word; trim to the country length.
    cleaned = []
    want = IBAN_LENGTHS.get(raw[:2].upper())
    if want is None:
        return None
    count = 0
    for i, ch in enumerate(raw):
        if ch.isalnum():
            count += 1
            if count == want:
                cleaned.append(i + 1)
                break
    if not cleaned:
        return None
    end = cleaned[0]
    if end < len(raw) and raw[end].isalnum():
        return None
    if not iban_ok(raw[:end]):
        return None
    return m.start(1), m.start(1) + end


_IPV4 = re.compile(
    r"(?<![\w.])((?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))"
    r"(?![\w]|\.\d)")
_VERSION_CONTEXT = re.compile(r"(?i)\b(?:version|release|build|ver\.?|firmware|v)\s*$")


def _ipv4(m: re.Match, text: str) -> tuple[int, int] | None:
    if _VERSION_CONTEXT.search(text[max(0, m.start() - 12):m.start()]):
        return None
    return _span(m, 1)


_IPV6 = re.compile(r"(?i)(?<![\w:.])((?:[0-9a-f]{0,4}:){2,7}(?:(?:\d{1,3}\.){3}\d{1,3}|"
                   r"[0-9a-f]{1,4}(?![.\d]))?)(?![\w:])")


def _ipv6(m: re.Match, text: str) -> tuple[int, int] | None:
    raw = m.group(1).rstrip(":") if not m.group(1).endswith("::") else m.group(1)
    if raw.count(":") < 2 or not any(c.isalpha() for c in raw) and "::" not in raw:
        # "10:30:15" is a time, not an address.
        return None
    try:
        ipaddress.IPv6Address(raw)
    except ValueError:
        return None
    return m.start(1), m.start(1) + len(raw)


_SSN = re.compile(r"(?<![\w\-])(?!000|666|9\d\d)(\d{3})([\- ]?)(?!00)(\d{2})\2(?!0000)(\d{4})"
                  r"(?![\w\-])")
_SSN_CONTEXT = re.compile(r"(?i)(?:ssn|social security|social-security|tax id|tin)\b[\s\w#:.]{0,16}$")


def _ssn(m: re.Match, text: str) -> tuple[int, int] | None:
    if m.group(2) == "-":
        return _span(m)
    # "123 45 6789" or "123456789" only next to a keyword: nine digits alone are too common.
    return _span(m) if _SSN_CONTEXT.search(text[max(0, m.start() - 30):m.start()]) else None


_NINO = re.compile(r"(?<![\w])(?!BG|GB|KN|NK|NT|TN|ZZ)[A-CEGHJ-PR-TW-Z][A-CEGHJ-NPR-TW-Z]"
                   r" ?\d{2} ?\d{2} ?\d{2} ?[A-D](?![\w])")
_DNI = re.compile(r"(?i)(?<![\w\-])(?:\d{8}|[XYZ]\d{7})-?[A-Z](?![\w\-])")
_CODICE_FISCALE = re.compile(r"(?<![\w])[A-Z]{6}\d{2}[A-EHLMPR-T]\d{2}[A-Z]\d{3}[A-Z](?![\w])")
_NIR = re.compile(r"(?<![\w])[12] ?\d{2} ?(?:0[1-9]|1[0-2]|[2-9]\d) ?(?:\d{2}|2[ABab]) ?\d{3}"
                  r" ?\d{3} ?\d{2}(?![\w])")
_KEYWORD_ID = re.compile(
    r"(?i)\b(?:bsn|burgerservicenummer|sin|social insurance(?: number)?|passport(?: number| no\.?)?"
    r"|national id(?: number)?|id card(?: number)?|personalausweis|ausweisnummer)"
    r"\b\s*(?:is|:|#|no\.?|number)?\s*(?:is\s*)?[:#]?\s*"
    r"([A-Z0-9](?:[A-Z0-9 \-]{4,12})[A-Z0-9])(?![\w])")


def _dni(m: re.Match, text: str) -> tuple[int, int] | None:
    return _span(m) if dni_ok(m.group(0)) else None


def _nir(m: re.Match, text: str) -> tuple[int, int] | None:
    return _span(m) if nir_ok(m.group(0)) else None


def _keyword_id(m: re.Match, text: str) -> tuple[int, int] | None:
    value = m.group(1)
    compact = re.sub(r"[ \-]", "", value)
    keyword = m.group(0)[: m.start(1) - m.start()].lower()
    if "passport" in keyword or "ausweis" in keyword or "id card" in keyword \
            or "national id" in keyword:
        ok = 6 <= len(compact) <= 12 and any(c.isdigit() for c in compact)
    elif compact.isdigit() and len(compact) == 9:
        ok = bsn_ok(compact) or luhn_ok(compact)
    else:
        ok = False
    return _span(m, 1) if ok else None


_API_KEYS = re.compile(
    r"(?<![\w\-])(?:sk-(?:proj-|ant-(?:api\d\d-)?|live-|svcacct-)?[A-Za-z0-9_\-]{20,}"
    r"|(?:AKIA|ASIA)[0-9A-Z]{16}"
    r"|gh[pousr]_[A-Za-z0-9]{36,}|github_pat_[A-Za-z0-9_]{40,}"
    r"|xox[abprs]-[A-Za-z0-9\-]{10,}"
    r"|AIza[0-9A-Za-z_\-]{35}"
    r"|(?:sk|pk|rk)_(?:live|test)_[0-9A-Za-z]{16,}"
    r"|hf_[A-Za-z0-9]{30,}"
    r"|glpat-[A-Za-z0-9_\-]{20,})(?![\w\-])")

_JWT = re.compile(r"(?<![\w\-])eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
                  r"(?![\w\-])")
_BEARER = re.compile(r"(?i)\b(?:bearer|token)\s+([A-Za-z0-9._~+/\-]{16,}=*)(?![\w])")
_ASSIGNED_SECRET = re.compile(
    r"(?i)(?<![\w])[\"']?(?P<key>api[_\-]?key|apikey|api[_\-]?secret|secret(?:[_\-]?key)?|"
    r"access[_\-]?token|auth[_\-]?token|refresh[_\-]?token|token|password|passwd|pwd|"
    r"client[_\-]?secret|private[_\-]?key|aws[_\-]?secret[_\-]?access[_\-]?key)[\"']?"
    r"\s*(?P<sep>[:=]|=>|\bis\b)\s*[\"']?(?P<value>[^\s\"',;}]{4,})")
_URL_PASSWORD = re.compile(r"(?i)\b[a-z][a-z0-9+.\-]*://[^\s/:@]+:([^\s/@]+)@")
_PRIVATE_KEY = re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----")


def _assigned(m: re.Match, text: str) -> tuple[int, int] | None:
    value = m.group("value")
    if value.startswith("[") and value.endswith("]"):
        return None  # already a placeholder
    explicit = m.group("sep").lower() != "is"
    if m.group("key").lower() in ("password", "passwd", "pwd") and explicit:
        return m.span("value")
    # "token: 4096" or "your password is incorrect.": a secret has a digit or a symbol (besides
    # sentence punctuation), or is long. Trailing punctuation stays redacted: it may be part
    # of the secret.
    word = value.rstrip(".!?)")
    if len(word) < 6 or (word.isalpha() and len(word) < 16) or word.isdigit():
        return None
    return m.span("value")


_KEY_PREFIXES = ("sk-", "AKIA", "ASIA", "gh", "github_pat_", "xox", "AIza", "_live_", "_test_",
                 "hf_", "glpat-")


def _builtin_detectors() -> list[_Detector]:
    return [
        _Detector(TOKEN, _PRIVATE_KEY, 100, gate=_has("PRIVATE KEY")),
        _Detector(TOKEN, _URL_PASSWORD, 95, None, 1, gate=_has("://")),
        _Detector(API_KEY, _API_KEYS, 90, gate=_has(*_KEY_PREFIXES)),
        _Detector(TOKEN, _JWT, 90, gate=_has("eyJ")),
        _Detector(TOKEN, _BEARER, 85, None, 1, gate=_has_lower("bearer", "token")),
        _Detector(TOKEN, _ASSIGNED_SECRET, 80, _assigned,
                  gate=_has_lower("key", "secret", "token", "pass", "pwd")),
        _Detector(EMAIL, _EMAIL, 70, _email, gate=_has("@")),
        _Detector(EMAIL, _OBFUSCATED_EMAIL, 69,
                  gate=_has_lower("[at]", "(at)", "{at}", " at ")),
        _Detector(IBAN, _IBAN, 65, _iban, gate=_digits(8)),
        _Detector(CREDIT_CARD, _CARD, 60, _card, gate=_digits(13)),
        _Detector(NATIONAL_ID, _SSN, 55, _ssn, gate=_digits(9)),
        _Detector(NATIONAL_ID, _NINO, 55, gate=_digits(6)),
        _Detector(NATIONAL_ID, _DNI, 55, _dni, gate=_digits(7)),
        _Detector(NATIONAL_ID, _CODICE_FISCALE, 55, gate=_digits(7)),
        _Detector(NATIONAL_ID, _NIR, 54, _nir, gate=_digits(15)),
        _Detector(NATIONAL_ID, _KEYWORD_ID, 53, _keyword_id, 1,
                  gate=lambda p: p.digits >= 1 and any(
                      k in p.lower for k in ("bsn", "burgerservice", "sin", "social insurance",
                                             "passport", "national id", "id card", "ausweis"))),
        _Detector(IP_ADDRESS, _IPV4, 50, _ipv4, gate=lambda p: p.digits >= 4
                  and p.text.count(".") >= 3),
        _Detector(IP_ADDRESS, _IPV6, 50, _ipv6, gate=lambda p: p.text.count(":") >= 2),
        _Detector(PHONE, _PHONE, 40, _phone, gate=_digits(7)),
    ]


def _compile_custom(patterns: Iterable[CustomPattern]) -> list[_Detector]:
    out = []
    for p in patterns:
        if not _CUSTOM_NAME.match(p.name):
            raise RedactionError(f"custom pattern name {p.name!r} must be snake_case")
        try:
            regex = re.compile(p.pattern, re.IGNORECASE if p.ignore_case else 0)
        except re.error as exc:
            raise RedactionError(f"custom pattern {p.name!r} does not compile: {exc}") from None
        out.append(_Detector(p.name, regex, 75))
    return out


def _resolve(spans: list[PiiSpan]) -> list[PiiSpan]:
    """Keep non-overlapping spans: higher priority first, then longer, then earlier."""
    if len(spans) < 2:
        return spans
    chosen: list[PiiSpan] = []
    for span in sorted(spans, key=lambda s: (-s.priority, s.start - s.end, s.start)):
        if all(span.end <= c.start or span.start >= c.end for c in chosen):
            chosen.append(span)
    return sorted(chosen, key=lambda s: s.start)


class Redactor:
    """Finds and replaces PII; one instance per policy (custom patterns are part of it)."""

    def __init__(self, custom_patterns: Sequence[CustomPattern] = (),
                 max_chars: int = DEFAULT_MAX_CHARS, cache_size: int = 50_000) -> None:
        self.detectors = _builtin_detectors() + _compile_custom(custom_patterns)
        self.kinds = tuple(dict.fromkeys(d.kind for d in self.detectors))
        self.max_chars = max_chars
        self._cached = lru_cache(maxsize=cache_size)(self._redact_uncached)

    def find(self, text: str) -> list[PiiSpan]:
        """Non-overlapping PII spans in ``text``, in order."""
        spans: list[PiiSpan] = []
        probe = _Probe.of(text)
        for det in self.detectors:
            if det.gate is not None and not det.gate(probe):
                continue
            for m in det.regex.finditer(text):
                bounds = det.validate(m, text) if det.validate else _span(m, det.group)
                if bounds is not None and bounds[1] > bounds[0]:
                    spans.append(PiiSpan(bounds[0], bounds[1], det.kind, det.priority))
        return _resolve(spans)

    def redact(self, text: str) -> tuple[str, dict[str, int]]:
        """``text`` with every span replaced by its placeholder, and the count per kind.

        Raises:
            RedactionError: the text is longer than ``max_chars`` (no regex runs on it).
        """
        if not text:
            return text, {}
        if len(text) > self.max_chars:
            raise RedactionError(f"text of {len(text)} chars exceeds the redaction limit "
                                 f"of {self.max_chars}")
        out, counts = self._cached(text)
        return out, dict(counts)

    def _redact_uncached(self, text: str) -> tuple[str, tuple[tuple[str, int], ...]]:
        spans = self.find(text)
        if not spans:
            return text, ()
        parts: list[str] = []
        counts: dict[str, int] = {}
        pos = 0
        for s in spans:
            parts.append(text[pos:s.start])
            parts.append(placeholder(s.kind))
            counts[s.kind] = counts.get(s.kind, 0) + 1
            pos = s.end
        parts.append(text[pos:])
        return "".join(parts), tuple(sorted(counts.items()))


def add_counts(total: dict[str, int], more: dict[str, int]) -> None:
    """Add per-kind counts into ``total`` in place."""
    for kind, n in more.items():
        total[kind] = total.get(kind, 0) + n


# -- events -------------------------------------------------------------------------------------

def _redact_field(redactor: Redactor, obj, field: str, counts: dict[str, int]) -> None:
    value = getattr(obj, field)
    if value:
        new, found = redactor.redact(value)
        if found:
            setattr(obj, field, new)
            add_counts(counts, found)


def _redact_struct(redactor: Redactor, struct, counts: dict[str, int]) -> None:
    for key in list(struct.fields):
        _redact_value(redactor, struct.fields[key], counts)


def _redact_value(redactor: Redactor, value, counts: dict[str, int]) -> None:
    kind = value.WhichOneof("kind")
    if kind == "string_value":
        _redact_field(redactor, value, "string_value", counts)
    elif kind == "struct_value":
        _redact_struct(redactor, value.struct_value, counts)
    elif kind == "list_value":
        for item in value.list_value.values:
            _redact_value(redactor, item, counts)


def _redact_feedback(redactor: Redactor, fb, counts: dict[str, int]) -> None:
    _redact_field(redactor, fb, "comment", counts)
    _redact_field(redactor, fb, "corrected_answer", counts)


def _drop_unknown_with_pii(redactor: Redactor, msg, counts: dict[str, int]) -> None:
    """Unknown fields (from a newer producer) cannot be redacted field by field: keep them only
    when their bytes show no PII at all."""
    full = msg.SerializeToString()
    probe = type(msg)()
    probe.CopyFrom(msg)
    probe.DiscardUnknownFields()
    if probe.ByteSize() == len(full):
        return
    if redactor.find(full.decode("utf-8", "replace")):
        msg.DiscardUnknownFields()
        counts["unknown_fields_dropped"] = counts.get("unknown_fields_dropped", 0) + 1


def redact_trace(trace, redactor: Redactor):
    """A redacted copy of a ``Trace`` and the number of redactions per kind.

    Every free-text field is covered: messages and tool-call arguments, tool descriptions,
    context documents (title, content, string metadata), agent step input/output/error,
    the outcome detail, inline feedback, sampled answers and tag values.

    Raises:
        RedactionError: a text is too long to redact safely.
    """
    out = type(trace)()
    out.CopyFrom(trace)
    counts: dict[str, int] = {}
    for m in out.messages:
        _redact_field(redactor, m, "content", counts)
        for call in m.tool_calls:
            _redact_field(redactor, call.function, "arguments", counts)
    for tool in out.tools:
        _redact_field(redactor, tool, "description", counts)
    for doc in out.context_documents:
        _redact_field(redactor, doc, "title", counts)
        _redact_field(redactor, doc, "content", counts)
        if doc.HasField("metadata"):
            _redact_struct(redactor, doc.metadata, counts)
    for step in out.steps:
        _redact_field(redactor, step, "input", counts)
        _redact_field(redactor, step, "output", counts)
        if step.HasField("error"):
            _redact_field(redactor, step.error, "message", counts)
    if out.HasField("outcome"):
        _redact_field(redactor, out.outcome, "detail", counts)
    for fb in out.feedback:
        _redact_feedback(redactor, fb, counts)
    if out.HasField("logprobs"):
        for sample in out.logprobs.samples:
            _redact_field(redactor, sample, "text", counts)
    for key in list(out.tags):
        value, found = redactor.redact(out.tags[key])
        if found:
            out.tags[key] = value
            add_counts(counts, found)
    _drop_unknown_with_pii(redactor, out, counts)
    return out, counts


def redact_feedback_event(event, redactor: Redactor):
    """A redacted copy of a ``FeedbackEvent`` (comment and corrected answer) and its counts."""
    out = type(event)()
    out.CopyFrom(event)
    counts: dict[str, int] = {}
    if out.HasField("feedback"):
        _redact_feedback(redactor, out.feedback, counts)
    _drop_unknown_with_pii(redactor, out, counts)
    return out, counts
