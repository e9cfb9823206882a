"""HTTP header fields as one type: case-insensitive names, several values per name, ordered.

Field names are case-insensitive (RFC 9110 section 5.1), so they are stored lower case and every
name that comes out is lower case. Values keep their order within a name; names keep the order in
which each first appeared (a repeated name's values come out together, which RFC 9110 section
5.3 allows: the order between different names carries no meaning).

The gateway builds one at each edge (the Functions request and response in app.py, the upstream
client in adapters/httpx_upstream.py) and uses nothing else inside. A name maps to a tuple of its
values, so a copy is one dict copy and no copy shares a list it could change.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Iterator, Sequence

Pairs = Iterable[tuple[str, str]]
NAMES_CACHED = 1024  # distinct names each table below keeps; past it, each is made per use
NAME_CACHED_LEN = 128  # longer keys are converted per use and never stored


class NameTable(dict):
    """A name's other form, made once per distinct name: a lookup by subscript is one C-level
    dict probe, where `.lower()`, `.decode()` or `.encode()` makes a new object per use (a few
    dozen per request). Names come from clients and backends too, so the table is bounded:
    once full, a new name is converted per use, never stored, and nothing is evicted. A key
    longer than NAME_CACHED_LEN (only a hostile or odd sender's) is never stored either, so a
    full table holds at most NAMES_CACHED short keys.

    A subclass of dict loses the dict's own fast paths for `in` and subscripts: the type's slot
    for them goes through `__getitem__` found on the class, a method call in C, about 250
    instructions a look-up more than an exact dict's. The tables below, looked up a few dozen
    times a request, are exact dicts instead, probed with `in` and a subscript and filled by
    `learned` on a miss."""

    def __init__(self, convert: Callable) -> None:
        super().__init__()
        self._convert = convert

    def __missing__(self, name):
        return learned(self, name, self._convert(name))


def learned[K, V](table: dict[K, V], name: K, converted: V) -> V:
    """`converted`, kept in `table` under `name` when the table has room and the name is short
    (NameTable's bound)."""
    if len(table) < NAMES_CACHED and len(name) <= NAME_CACHED_LEN:  # type: ignore[arg-type]
        table[name] = converted
    return converted


# Exact dicts (see NameTable): a hit is `table[name] if name in table`, a miss the function.
_LOWER: dict[str, str] = {}  # a name as given -> lower case (the key in `_fields`)
_FROM_WIRE: dict[bytes, str] = {}  # wire bytes -> key
_TO_WIRE: dict[str, bytes] = {}  # key -> wire bytes


def _lower(name: str) -> str:
    return learned(_LOWER, name, name.lower())


def _from_wire(raw: bytes) -> str:
    return learned(_FROM_WIRE, raw, raw.decode("latin-1").lower())


def _to_wire(name: str) -> bytes:
    return learned(_TO_WIRE, name, name.encode("latin-1"))  # UnicodeEncodeError: not latin-1


class Headers:
    """Ordered, case-insensitive, multi-value header fields; see the module docstring."""

    __slots__ = ("_fields",)

    def __init__(self, pairs: Pairs = ()):
        self._fields: dict[str, tuple[str, ...]] = _fields_of(pairs) if pairs else {}

    @classmethod
    def from_raw(cls, raw: Sequence[tuple[bytes, bytes]]) -> Headers:
        """From wire bytes (ASGI scope, httpx): latin-1 text of exactly the bytes received."""
        headers = object.__new__(cls)  # no __init__ frame: `_fields` is set below
        # Names rarely repeat: one comprehension, and the careful loop only when one did.
        names = _FROM_WIRE
        fields = {(names[k] if k in names else _from_wire(k)): (v.decode("latin-1"),)
                  for k, v in raw}
        if len(fields) < len(raw):
            fields = _fields_of((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
        headers._fields = fields
        return headers

    def raw(self, skip: str = "") -> list[tuple[bytes, bytes]]:
        """As wire bytes: latin-1, the inverse of `from_raw`. A value the gateway made from wider
        text than latin-1 goes as UTF-8 (httpx, and the ASGI server, refuse such str values).
        `skip`, a lower-case name, is left out (the answer's edge sets its own Content-Length:
        one pass, no copy of the fields without it)."""
        fields = self._fields
        wire = _TO_WIRE
        try:
            try:  # one value a name, as nearly every message has: no inner loop per field
                return [(wire[name] if name in wire else _to_wire(name), value.encode("latin-1"))
                        for name, (value,) in fields.items() if name != skip]
            except ValueError:  # a name with several values (or, below, a value past latin-1)
                return [(wire[name] if name in wire else _to_wire(name), value.encode("latin-1"))
                        for name, values in fields.items() if name != skip for value in values]
        except UnicodeEncodeError:
            return [(name.encode("latin-1", "replace"), _wire_value(value))
                    for name, value in self if name != skip]

    def pairs(self) -> list[tuple[str, str]]:
        """(name, value) pairs as a list: what iterating gives, built in one comprehension."""
        return [(name, value) for name, values in self._fields.items() for value in values]

    # get, get_all, remove and __contains__ probe the dict with `in` and a subscript, not a
    # `dict.get` or `pop` call: the same look-ups (most names asked for are absent) with no
    # method call, as fast or faster (load/bench_header_path.py).

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (any case), or `default`."""
        lower = _LOWER
        key = lower[name] if name in lower else _lower(name)
        fields = self._fields
        if key in fields:
            found = fields[key]
            if found:
                return found[0]
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of `name` (any case), in order; empty when absent."""
        lower = _LOWER
        key = lower[name] if name in lower else _lower(name)
        fields = self._fields
        return list(fields[key]) if key in fields else []

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with `value`."""
        lower = _LOWER
        self._fields[lower[name] if name in lower else _lower(name)] = (value,)

    def set_all(self, fields: Iterable[tuple[str, str]]) -> None:
        """`set` each (name, value), in one update: a later pair of a name replaces an earlier."""
        lower = _LOWER
        self._fields.update({(lower[name] if name in lower else _lower(name)): (value,)
                             for name, value in fields})

    def add(self, name: str, value: str) -> None:
        """Add one more value of `name`, after those already there."""
        lower = _LOWER
        key = lower[name] if name in lower else _lower(name)
        found = self._fields.get(key)
        self._fields[key] = (value,) if found is None else (*found, value)

    def extend(self, pairs: Pairs) -> None:
        """`add` each pair, in order."""
        fields = self._fields
        for name, value in pairs:
            key = name.lower()
            found = fields.get(key)
            fields[key] = (value,) if found is None else (*found, value)

    def update(self, pairs: Pairs) -> None:
        """Replace the fields of every name in `pairs` with the values `pairs` give it."""
        self._fields.update(_fields_of(pairs))

    def update_fields(self, fields: dict[str, tuple[str, ...]]) -> None:
        """`update` with fields already made: names lower case, each with its values (a
        stage that adds the same fields to many answers makes them once)."""
        self._fields.update(fields)

    def remove(self, *names: str) -> None:
        """Drop every value of each of `names`; absent names are ignored."""
        fields = self._fields
        lower = _LOWER
        for name in names:
            if name in fields:  # a lower-case name, as callers give: no look-up of its key
                del fields[name]
                continue
            key = lower[name] if name in lower else _lower(name)
            if key in fields:
                del fields[key]

    def without(self, names: Collection[str]) -> Headers:
        """A copy without the fields of `names` (lower case)."""
        copy = object.__new__(Headers)
        fields = self._fields
        copy._fields = {k: fields[k] for k in fields if k not in names}  # no items() call
        return copy

    def copy(self) -> Headers:
        copy = object.__new__(Headers)
        copy._fields = self._fields.copy()
        return copy

    def names(self) -> list[str]:
        """The distinct names, lower case, in order."""
        return list(self._fields)

    def __iter__(self) -> Iterator[tuple[str, str]]:
        """(name, value) pairs: every value of the first name, then of the next..."""
        for name, values in self._fields.items():
            for value in values:
                yield name, value

    def __contains__(self, item: object) -> bool:
        """A name (any case) is present, or a (name, value) pair is."""
        if item.__class__ is str or isinstance(item, str):
            lower = _LOWER
            return (lower[item] if item in lower else _lower(item)) in self._fields
        if isinstance(item, tuple) and len(item) == 2 and isinstance(item[0], str):
            return item[1] in self._fields.get(item[0].lower(), ())
        return False

    def __len__(self) -> int:
        """How many (name, value) pairs."""
        return sum(len(values) for values in self._fields.values())

    def __bool__(self) -> bool:
        return bool(self._fields)

    def __eq__(self, other: object) -> bool:
        """The same values for the same names (in the same order within a name), compared with
        Headers or with a list of pairs."""
        if isinstance(other, Headers):
            return self._fields == other._fields
        if isinstance(other, list):
            return self._fields == Headers(other)._fields
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]  # mutable

    def __repr__(self) -> str:
        return f"Headers({list(self)!r})"


def _fields_of(pairs: Pairs) -> dict[str, tuple[str, ...]]:
    fields: dict[str, tuple[str, ...]] = {}
    for name, value in pairs:
        key = name.lower()
        found = fields.get(key)
        fields[key] = (value,) if found is None else (*found, value)
    return fields


def _wire_value(value: str) -> bytes:
    try:
        return value.encode("latin-1")
    except UnicodeEncodeError:
        return value.encode("utf-8")
