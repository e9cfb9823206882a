"""Gateway API keys: `gw_<prefix>_<secret><check>`, generated, recognised and hashed.

- prefix: 8 lowercase base32 characters (40 bits), the key's public id: shown by the CLI, written
  in logs and error messages, and what `keys revoke <prefix>` takes.
- secret: 32 base62 characters (about 190 bits) from the OS's CSPRNG.
- check: 6 base62 characters of CRC-32 over the rest, so a mistyped or made-up key is refused
  without any storage call (as GitHub's token checksum does).

Only SHA-256 of the whole key is stored. An unsalted fast hash is enough here, unlike for
passwords: a slow or salted hash protects secrets an attacker can guess, and 190 random bits
cannot be guessed, so a stolen table still yields no usable key. A deterministic hash is also
what lets the gateway find the record with one point read (RowKey = hash).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import zlib

BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
BASE32 = "abcdefghijklmnopqrstuvwxyz234567"
PREFIX_LEN, SECRET_LEN, CHECK_LEN = 8, 32, 6
KEY_RE = re.compile(r"gw_([a-z2-7]{8})_([0-9A-Za-z]{38})")
PREFIX_RE = re.compile(r"(?:gw_)?([a-z2-7]{8})_?")


def _base62(number: int, width: int) -> str:
    out = []
    for _ in range(width):
        number, digit = divmod(number, 62)
        out.append(BASE62[digit])
    return "".join(reversed(out))


def _check(body: str) -> str:
    return _base62(zlib.crc32(body.encode()), CHECK_LEN)


def generate(choice=secrets.choice) -> str:
    """A new key; `choice` picks one character from a string (a CSPRNG unless a test says)."""
    prefix = "".join(choice(BASE32) for _ in range(PREFIX_LEN))
    secret = "".join(choice(BASE62) for _ in range(SECRET_LEN))
    body = f"gw_{prefix}_{secret}"
    return body + _check(body)


def prefix_of(key: str) -> str | None:
    """The prefix of a well-formed key whose checksum matches; None for anything else."""
    match = KEY_RE.fullmatch(key)
    if match is None:
        return None
    body, check = key[:-CHECK_LEN], key[-CHECK_LEN:]
    return match.group(1) if secrets.compare_digest(_check(body), check) else None


def normalise_prefix(text: str) -> str | None:
    """`abcd2345`, `gw_abcd2345` or a whole key -> the prefix; None if it is none of these."""
    if prefix_of(text) is not None:
        return prefix_of(text)
    match = PREFIX_RE.fullmatch(text)
    return match.group(1) if match else None


def key_hash(key: str) -> str:
    """Hex SHA-256 of the whole key: the only form in which a key is stored."""
    return hashlib.sha256(key.encode()).hexdigest()


def display(prefix: str) -> str:
    """How a key is named wherever a human reads it: the prefix only."""
    return f"gw_{prefix}_…"
