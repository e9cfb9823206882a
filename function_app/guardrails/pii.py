"""Personal data and secrets in text, found by pattern and confirmed by checksum, offline.

Each kind is a regular expression that proposes candidates and, where the format has one, a
checksum that confirms them, so a random run of digits is rarely taken for a card:

    email         local@domain.tld
    phone         international (+CC ...) or grouped national numbers, 8-15 digits
    card          13-19 digits (spaces or dashes allowed) passing Luhn
    iban          country, check digits and account, passing ISO 7064 mod 97-10
    es_dni        Spanish DNI / NIE: 8 digits and the mod 23 control letter
    uk_nhs        UK NHS number: 10 digits with the mod 11 check digit
    ip            IPv4 and IPv6 addresses (validated by `ipaddress`)
    secret        API keys and tokens by their published prefixes, JWTs, `password=...`

Every expression uses bounded repetition only, so scanning is linear in the text. Kinds are
tried in the order above after secrets (a key may contain digits that look like a card);
a span claimed by one kind is not claimed again. Values never leave this module except as
the redacted text: callers get counts per kind.
"""

from __future__ import annotations

import bisect
import ipaddress
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

PII_KINDS = ("secret", "email", "iban", "card", "es_dni", "uk_nhs", "ip", "phone")

_SECRET = re.compile(
    r"(?<![A-Za-z0-9_-])(?:"
    r"sk-(?:proj-|ant-)?[A-Za-z0-9_-]{20,200}"      # OpenAI / Anthropic style
    r"|gw_[a-z2-7]{8}_[0-9A-Za-z]{38}"               # this gateway's own keys
    r"|gh[pousr]_[A-Za-z0-9]{36,80}|github_pat_[A-Za-z0-9_]{40,120}"
    r"|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"
    r"|xox[abprs]-[A-Za-z0-9-]{10,100}|[rs]k_live_[A-Za-z0-9]{16,100}"
    r"|eyJ[A-Za-z0-9_-]{8,2000}\.eyJ[A-Za-z0-9_-]{8,4000}\.[A-Za-z0-9_-]{8,2000}"
    r")"
    r"|(?i:(?<![A-Za-z0-9])(?:api[_-]?key|secret|token|password|passwd)\s{0,3}[:=]\s{0,3}"
    r"[\"']?[^\s\"']{8,200})")
_EMAIL = re.compile(r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}"
                    r"(?:\.[A-Za-z0-9-]{1,63}){1,8}")
_IBAN = re.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_DNI = re.compile(r"(?<![A-Za-z0-9])[XYZ]?\d{7,8}-?[A-Z](?![A-Za-z0-9])")
_NHS = re.compile(r"(?<!\d)\d{3}[ -]?\d{3}[ -]?\d{4}(?!\d)")
_IPV4 = re.compile(r"(?<![\d.])(?:\d{1,3}\.){3}\d{1,3}(?![\d.])")
_IPV6 = re.compile(r"(?<![0-9A-Fa-f:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}"
                   r"(?![0-9A-Fa-f:])")
_PHONE = re.compile(r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?)?\d{2,4}"
                    r"(?:[ .-]?\d{2,4}){1,4}(?!\w)")


def luhn(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = int(char)
        if index % 2:
            value = value * 2 - 9 if value > 4 else value * 2
        total += value
    return total % 10 == 0


def iban_valid(text: str) -> bool:
    """ISO 13616: move the first four characters to the end, letters to 10..35, mod 97 == 1."""
    compact = text.replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(int(c, 36)) for c in moved)) % 97 == 1


_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def dni_valid(text: str) -> bool:
    """Spanish DNI (8 digits) or NIE (X/Y/Z and 7 digits): the letter is number mod 23."""
    compact = text.replace("-", "")
    body, letter = compact[:-1], compact[-1]
    if body[0] in "XYZ":
        if len(body) != 8:
            return False
        body = str("XYZ".index(body[0])) + body[1:]
    elif len(body) != 8:
        return False
    return _DNI_LETTERS[int(body) % 23] == letter


def nhs_valid(text: str) -> bool:
    """UK NHS number: weights 10..2 over the first nine digits; 11 - sum mod 11 is the tenth
    (11 means 0; 10 is never issued)."""
    digits = re.sub(r"\D", "", text)
    check = 11 - sum(int(d) * (10 - i) for i, d in enumerate(digits[:9])) % 11
    check = 0 if check == 11 else check
    return check != 10 and check == int(digits[9])


def _ip_valid(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _card_valid(text: str) -> bool:
    digits = re.sub(r"\D", "", text)
    return 13 <= len(digits) <= 19 and luhn(digits)


_DATE = re.compile(r"\d{4}[-./]\d{1,2}[-./]\d{1,2}|\d{1,2}[-./]\d{1,2}[-./]\d{4}")


def _phone_valid(text: str) -> bool:
    if _DATE.fullmatch(text):  # 2024-01-15 has eight digits and separators, and is a date
        return False
    digits = re.sub(r"\D", "", text)
    # A grouped or international number; a bare run of digits is too often something else.
    return 8 <= len(digits) <= 15 and (text.startswith("+") or re.search(r"[ .()-]", text)
                                       is not None)


@dataclass(frozen=True)
class Detector:
    kind: str
    pattern: re.Pattern[str]
    valid: Callable[[str], bool] = lambda _text: True


BUILT_IN: tuple[Detector, ...] = (
    Detector("secret", _SECRET), Detector("email", _EMAIL),
    Detector("iban", _IBAN, iban_valid), Detector("card", _CARD, _card_valid),
    Detector("es_dni", _DNI, dni_valid), Detector("uk_nhs", _NHS, nhs_valid),
    Detector("ip", _IPV4, _ip_valid), Detector("ip", _IPV6, _ip_valid),
    Detector("phone", _PHONE, _phone_valid),
)


@dataclass(frozen=True)
class Found:
    kind: str
    start: int
    end: int


def find(text: str, detectors: Iterable[Detector] = BUILT_IN) -> list[Found]:
    """Every confirmed finding, non-overlapping (the earlier detector wins), by position."""
    starts: list[int] = []  # sorted, non-overlapping spans: bisect finds the neighbours
    taken: list[Found] = []
    for detector in detectors:
        for match in detector.pattern.finditer(text):
            start, end = match.span()
            at = bisect.bisect_left(starts, start)
            if (at < len(taken) and taken[at].start < end) or (at and taken[at - 1].end > start):
                continue
            if detector.valid(match.group()):
                starts.insert(at, start)
                taken.insert(at, Found(detector.kind, start, end))
    return taken


def redact(text: str, detectors: Iterable[Detector] = BUILT_IN) -> tuple[str, dict[str, int]]:
    """`text` with each finding replaced by `[REDACTED:<kind>]`, and the count per kind."""
    found = find(text, detectors)
    if not found:
        return text, {}
    counts: dict[str, int] = {}
    parts, last = [], 0
    for item in found:
        parts += [text[last:item.start], f"[REDACTED:{item.kind}]"]
        last = item.end
        counts[item.kind] = counts.get(item.kind, 0) + 1
    parts.append(text[last:])
    return "".join(parts), counts


def count(text: str, detectors: Iterable[Detector] = BUILT_IN) -> dict[str, int]:
    """The count per kind, without rewriting."""
    counts: dict[str, int] = {}
    for item in find(text, detectors):
        counts[item.kind] = counts.get(item.kind, 0) + 1
    return counts
