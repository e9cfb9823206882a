"""HTTP header fields as one type: case-insensitive names, several values per name, ordered.

Field names are case-insensitive (RFC 9110 section 5.1), so they are stored lower case and every
name that comes out is lower case. Values keep their order within a name; names keep the order in
which each first appeared (a repeated name's values come out together, which RFC 9110 section
5.3 allows: the order between different names carries no meaning).

The gateway builds one at each edge (the Functions request and response in app.py, the upstream
client in adapters/httpx_upstream.py) and uses nothing else inside. A name maps to a tuple of its
values, so a copy is one dict copy and no copy shares a list it could change.

Wire memo. Fields made from wire bytes (`from_raw`) keep those bytes beside the text: `raw()` then
hands out the bytes received instead of encoding every value again (the answer's fields went
bytes -> text -> bytes on every request). The memo is exactly what `raw()` would encode, or None:
a method that changes or drops a field the memo holds drops the memo (`raw()` then encodes as
before); a field of a new name goes on its end, encoded once (what `raw()` would do anyway), and
`Fields` made once carry their bytes along (`update_fields`). tests/unit/test_headers_memo.py
checks every method against a Headers without a memo.
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
    full table holds at most NAMES_CACHED short keys."""

    def __init__(self, convert: Callable) -> None:
        super().__init__()
        self._convert = convert

    def __missing__(self, name):
        converted = self._convert(name)
        if len(self) < NAMES_CACHED and len(name) <= NAME_CACHED_LEN:
            self[name] = converted
        return converted


_LOWER = NameTable(str.lower)  # a name as given -> lower case (the key in `_fields`)
_FROM_WIRE = NameTable(lambda raw: raw.decode("latin-1").lower())  # wire bytes -> key
_TO_WIRE = NameTable(lambda name: name.encode("latin-1"))  # key -> wire bytes (UnicodeEncodeError)


class Fields(dict):
    """Fields to add to many messages, made once (`Fields.of`): lower-case names mapped to their
    values (what `update_fields` takes), and `wire`, the same fields as `raw()` would encode
    them (key, value bytes), or None when a value is wider than latin-1."""

    __slots__ = ("wire",)

    @classmethod
    def of(cls, pairs: Pairs) -> Fields:
        """The fields of `pairs`, a later value of a name replacing an earlier (as `set`)."""
        fields = cls({_LOWER[name]: (value,) for name, value in pairs})
        try:  # a name wider than latin-1 may go in: raw() meets it and takes its careful path
            fields.wire = [(key, values[0].encode("latin-1")) for key, values in fields.items()]
        except UnicodeEncodeError:
            fields.wire = None
        return fields


class Headers:
    """Ordered, case-insensitive, multi-value header fields; see the module docstring."""

    __slots__ = ("_fields", "_wire")

    def __init__(self, pairs: Pairs = ()):
        self._fields: dict[str, tuple[str, ...]] = _fields_of(pairs) if pairs else {}
        # The wire memo (module docstring): (key, value bytes) per value, as raw() gives them.
        self._wire: list[tuple[str, bytes]] | None = None

    @classmethod
    def from_raw(cls, raw: Sequence[tuple[bytes, bytes]]) -> Headers:
        """From wire bytes (ASGI scope, httpx): latin-1 text of exactly the bytes received."""
        headers = object.__new__(cls)  # no __init__ frame: `_fields` is set below
        # Names rarely repeat: one comprehension, and the careful loop only when one did.
        names = _FROM_WIRE
        fields = {names[k]: (v.decode("latin-1"),) for k, v in raw}
        if len(fields) < len(raw):  # a name repeated: raw() groups its values, no memo
            fields = _fields_of((k.decode("latin-1"), v.decode("latin-1")) for k, v in raw)
            headers._wire = None
        else:  # exactly the bytes raw() would encode from `fields`, in the same order
            headers._wire = [(names[k], v) for k, v in raw]
        headers._fields = fields
        return headers

    def raw(self) -> list[tuple[bytes, bytes]]:
        """As wire bytes: latin-1, the inverse of `from_raw`. A value the gateway made from wider
        text than latin-1 goes as UTF-8 (httpx, and the ASGI server, refuse such str values)."""
        try:
            wire = _TO_WIRE
            memo = self._wire
            if memo is not None:
                return [(wire[key], value) for key, value in memo]
            return [(wire[name], value.encode("latin-1"))
                    for name, values in self._fields.items() for value in values]
        except UnicodeEncodeError:
            return [(name.encode("latin-1", "replace"), _wire_value(value)) for name, value in self]

    def pairs(self) -> list[tuple[str, str]]:
        """(name, value) pairs as a list: what iterating gives, built in one comprehension."""
        return [(name, value) for name, values in self._fields.items() for value in values]

    def plain(self) -> dict[str, str] | None:
        """{name: value} in order when no name has two values and every name and value is
        ASCII (text every encoding reads alike: the dict says all the fields say); else None."""
        pairs = [(key, value) for key, values in self._fields.items() for value in values]
        if len(pairs) != len(self._fields):
            return None
        plain = dict(pairs)
        return plain if "".join([*plain, *plain.values()]).isascii() else None

    # get, get_all and __contains__ probe the dict with `in` and a subscript, not `dict.get`:
    # the same lookups without a method call, and most names asked for are absent.

    def get(self, name: str, default: str | None = None) -> str | None:
        """The first value of `name` (any case), or `default`."""
        key = _LOWER[name]
        fields = self._fields
        if key in fields:
            found = fields[key]
            if found:
                return found[0]
        return default

    def get_all(self, name: str) -> list[str]:
        """Every value of `name` (any case), in order; empty when absent."""
        key = _LOWER[name]
        fields = self._fields
        return list(fields[key]) if key in fields else []

    # set, set_all and add keep the memo (module docstring) inline, each step written out: they
    # run a few times a request, and a helper would be a call more each time. A new name's
    # field goes on the memo's end, encoded once (raw() would encode it anyway); a name already
    # there drops the memo (its values and place change), as does a value wider than latin-1.
    # A name wider than latin-1 may go in: raw() meets it and takes its careful path.

    def set(self, name: str, value: str) -> None:
        """Replace every value of `name` with `value`."""
        key = _LOWER[name]
        fields = self._fields
        memo = self._wire
        if memo is not None:
            if key in fields:
                self._wire = None
            else:
                try:
                    memo += ((key, value.encode("latin-1")),)
                except UnicodeEncodeError:
                    self._wire = None
        fields[key] = (value,)

    def set_all(self, fields: Iterable[tuple[str, str]]) -> None:
        """`set` each (name, value), in one update: a later pair of a name replaces an earlier."""
        lower = _LOWER
        new = {lower[name]: (value,) for name, value in fields}
        own = self._fields
        memo = self._wire
        if memo is not None:
            try:
                added = [(key, values[0].encode("latin-1")) for key, values in new.items()
                         if key not in own]
            except UnicodeEncodeError:
                added = None
            if added is None or len(added) < len(new):
                self._wire = None
            else:
                memo += added
        own.update(new)

    def add(self, name: str, value: str) -> None:
        """Add one more value of `name`, after those already there."""
        key = _LOWER[name]
        fields = self._fields
        found = fields.get(key)
        memo = self._wire
        if memo is not None:
            if found is not None:
                self._wire = None
            else:
                try:
                    memo += ((key, value.encode("latin-1")),)
                except UnicodeEncodeError:
                    self._wire = None
        fields[key] = (value,) if found is None else (*found, value)

    def extend(self, pairs: Pairs) -> None:
        """`add` each pair, in order."""
        self._wire = None
        fields = self._fields
        for name, value in pairs:
            key = name.lower()
            found = fields.get(key)
            fields[key] = (value,) if found is None else (*found, value)

    def update(self, pairs: Pairs) -> None:
        """Replace the fields of every name in `pairs` with the values `pairs` give it."""
        self._wire = None
        self._fields.update(_fields_of(pairs))

    def update_fields(self, fields: dict[str, tuple[str, ...]]) -> None:
        """`update` with fields already made: names lower case, each with its values (a
        stage that adds the same fields to many answers makes them once). `Fields` bring
        their wire bytes: when none of their names is here yet, the memo takes them as made."""
        own = self._fields
        memo = self._wire
        if memo is not None:
            wire = fields.wire if isinstance(fields, Fields) else None
            if wire is None:
                self._wire = None
            else:
                for key in fields:
                    if key in own:
                        self._wire = None
                        break
                else:
                    memo += wire
        own.update(fields)

    def remove(self, *names: str) -> None:
        """Drop every value of each of `names`; absent names are ignored."""
        fields = self._fields
        lower = _LOWER
        gone = None
        for name in names:
            key = lower[name]
            if key in fields:
                del fields[key]
                gone = (*gone, key) if gone else (key,)
        memo = self._wire
        if gone and memo is not None:  # the others keep their order: the memo less those names
            self._wire = [p for p in memo if p[0] not in gone]

    def without(self, names: Collection[str]) -> Headers:
        """A copy without the fields of `names` (lower case)."""
        copy = object.__new__(Headers)
        fields = self._fields
        copy._fields = {k: fields[k] for k in fields if k not in names}
        memo = self._wire
        copy._wire = None if memo is None else [p for p in memo if p[0] not in names]
        return copy

    def copy(self) -> Headers:
        copy = object.__new__(Headers)
        copy._fields = self._fields.copy()
        memo = self._wire
        copy._wire = None if memo is None else [*memo]
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
        try:  # a name: the table lower-cases any str; anything else raises TypeError
            return _LOWER[item] in self._fields
        except TypeError:
            pass
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
