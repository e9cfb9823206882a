"""Custom PII patterns from settings, accepted only when they cannot backtrack badly.

Python's `re` has no time limit, so a pattern such as `(a+)+$` can take exponential time on a
hostile prompt. A custom pattern is refused at start-up (the setting is named) when it:
- is longer than MAX_PATTERN_CHARS, or does not compile;
- repeats, without an upper bound, something that itself contains an unbounded repeat
  (nested quantifiers: `(a+)+`, `(\\w*x?)*`) or an alternation (`(a|ab)*`);
- uses a backreference (matching it is NP-hard in general) or a lookaround with a repeat.
It then runs over slices of at most SLICE_CHARS characters (with an overlap of
MAX_MATCH_CHARS), so even a pattern that is slow per character is slow on a bounded input.
"""

from __future__ import annotations

import re
import re._constants as sre_constants  # the parser's node names (part of the stdlib)
import re._parser as sre_parse

from .pii import Detector

MAX_PATTERN_CHARS = 200
MAX_MATCH_CHARS = 256
SLICE_CHARS = 8192
KIND_RE = re.compile(r"[a-z][a-z0-9_]{0,31}")
_REPEATS = {sre_constants.MAX_REPEAT, sre_constants.MIN_REPEAT, sre_constants.POSSESSIVE_REPEAT}
_UNBOUNDED = sre_constants.MAXREPEAT


def _risky(parsed, inside_unbounded: bool) -> str | None:
    """Why the parsed pattern may backtrack badly, or None."""
    for op, arg in parsed:
        if op in _REPEATS:
            _low, high, body = arg
            unbounded = high == _UNBOUNDED or high > 100
            if unbounded and inside_unbounded:
                return "a repeat inside an unbounded repeat"
            if unbounded and _branches(body) and op != sre_constants.POSSESSIVE_REPEAT:
                return "an alternation inside an unbounded repeat"
            why = _risky(body, inside_unbounded or unbounded)
        elif op == sre_constants.SUBPATTERN:
            why = _risky(arg[-1], inside_unbounded)
        elif op == sre_constants.BRANCH:
            why = next((w for b in arg[1] if (w := _risky(b, inside_unbounded))), None)
        elif op in (sre_constants.GROUPREF, sre_constants.GROUPREF_EXISTS):
            why = "a backreference"
        elif op in (sre_constants.ASSERT, sre_constants.ASSERT_NOT):
            why = _risky(arg[1], True)
        elif op == sre_constants.ATOMIC_GROUP:
            why = _risky(arg, inside_unbounded)
        else:
            why = None
        if why:
            return why
    return None


def _branches(parsed) -> bool:
    """Whether an alternation appears anywhere in `parsed` (through groups)."""
    for op, arg in parsed:
        if op == sre_constants.BRANCH:
            return True
        if op == sre_constants.SUBPATTERN and _branches(arg[-1]):
            return True
        if op == sre_constants.ATOMIC_GROUP and _branches(arg):
            return True
    return False


def custom_detector(kind: str, pattern: str) -> Detector:
    """A Detector for `pattern`, or ValueError saying why it is refused."""
    if not KIND_RE.fullmatch(kind):
        raise ValueError(f"custom pattern name {kind!r}: use 1-32 of a-z, 0-9, _")
    if len(pattern) > MAX_PATTERN_CHARS:
        raise ValueError(f"custom pattern {kind!r} is longer than {MAX_PATTERN_CHARS} characters")
    try:
        compiled = re.compile(pattern)
        parsed = sre_parse.parse(pattern)
    except (re.error, RecursionError) as exc:
        raise ValueError(f"custom pattern {kind!r} does not compile: {exc}") from None
    why = _risky(parsed, False)
    if why:
        raise ValueError(f"custom pattern {kind!r} is refused: {why} can backtrack "
                         "exponentially; bound it ({1,50}) or simplify it")
    return Detector(kind, SlicedPattern(compiled))


class SlicedPattern:
    """`finditer` over overlapping slices, so no single search sees more than SLICE_CHARS."""

    def __init__(self, compiled: re.Pattern[str]):
        self.compiled = compiled

    def finditer(self, text: str):
        step = SLICE_CHARS - MAX_MATCH_CHARS
        seen_to = 0
        for base in range(0, max(len(text), 1), step):
            for match in self.compiled.finditer(text, base, min(len(text), base + SLICE_CHARS)):
                if match.start() >= seen_to and match.end() > match.start():
                    seen_to = match.end()
                    yield match
