"""The tally's rows as stored: one instance's row and the summary, encoded as compact JSON
split over string properties (Table Storage: 64 KiB per property, 1 MiB per entity). What
fits is measured on the encoding itself (tally.fitting); a row that cannot be read is None,
never an exception. The maths is in tally.py.
"""

from __future__ import annotations

import json
from collections.abc import Mapping

from function_app.ratelimit.tally.tally import (
    BUDGET_CHUNKS,
    CHUNK,
    HOT_CHUNKS,
    MAX_CHUNKS,
    MAX_ROW_KEYS,
    MEMBER_CHUNKS,
    PHI,
    InstanceRow,
    View,
    fitting,
    hot_entry,
)


def instance_fields(period: int, now: float, demand: Mapping[str, float],
                    rates: Mapping[str, float], traffic: float = 0.0,
                    budgets: Mapping[str, list[float]] | None = None, reads: bool = False
                    ) -> tuple[dict[str, float | str], int]:
    """One instance's row, and how many keys did not fit (the smallest demands go). What fits
    is measured on the encoding itself (a token limit's rate alone once took 18 characters,
    twice the estimate, and a full row stopped the instance publishing). `budgets` (already
    fitted to BUDGET_CHUNKS: tally/pots.py) come first; the keys get the chunks left. `reads`:
    this instance will read the summary of `period` (only then is it granted a pot)."""
    budget_part = _chunks("b", dict(budgets or {}), BUDGET_CHUNKS)
    ranked = sorted(demand.items(), key=lambda item: -item[1])
    entries = [(kid, [round(value, 4), _short(rates.get(kid, 0.0))]) for kid, value in ranked]
    kept = fitting(entries, CHUNK * (MAX_CHUNKS - len(budget_part)), MAX_ROW_KEYS)
    body = dict(entries[:kept])
    flag = {"br": 1.0} if budget_part and reads else {}
    return ({"p": float(period), "at": now, "t": traffic, **_chunks("d", body),
             **budget_part, **flag}, len(entries) - kept)


def _short(value: float) -> float:
    """A figure to seven significant digits (a rate of 200000/60 is 3333.333, not
    3333.3333333333335): what the maths needs, in half the characters."""
    return float(f"{value:.7g}")


def parse_instance(row_key: str, fields: Mapping[str, object]) -> InstanceRow | None:
    """A row another instance wrote; None when it is not one (never raises)."""
    try:
        body = _unchunk("d", fields, dict)
        demand = {str(k): (float(v[0]), float(v[1])) for k, v in body.items()}
        budgets = {str(k): (max(0.0, float(v[0])), max(0.0, float(v[1])), float(v[2]))
                   for k, v in _unchunk("b", fields, dict).items()}
        return InstanceRow(row_key, int(float(fields["p"])), float(fields["at"]), demand,
                           max(0.0, float(fields.get("t", 0.0))), budgets,
                           bool(float(fields.get("br", 0.0))))
    except (KeyError, TypeError, ValueError, IndexError, AttributeError):
        return None


def summary_fields(view: View, by: str, now: float) -> dict[str, float | str]:
    """The summary row: members as a sorted list, and which of them the row of the period
    before stood for (`behind`) as a bitmap over that list in hex (a bit per member: 2,000
    characters for the 7,800 members the list holds at most)."""
    body = {kid: hot_entry(listed) for kid, listed in view.hot.items()}
    members = sorted(view.members)
    bits = sum(1 << i for i, member in enumerate(members) if member in view.behind)
    return {"p": float(view.period), "at": now, "by": by, "n": float(view.instances),
            "phi": view.phi, "tt": view.traffic, "bh": format(bits, "x"),
            **_chunks("m", members, MEMBER_CHUNKS), **_chunks("h", body, HOT_CHUNKS),
            **pot_fields(view.pots, view.excluded)}


def pot_fields(pots: Mapping[str, tuple[float, float, float, int]],
               excluded: frozenset[str]) -> dict[str, str]:
    """The summary's budget grants (callers fit them: tally/potgrants.py) and the members
    whose budget demand was not summed; nothing when no pot was granted."""
    if not pots:
        return {}
    return {**_chunks("b", {k: list(v) for k, v in pots.items()}, BUDGET_CHUNKS),
            **_chunks("x", sorted(excluded), BUDGET_CHUNKS)}


def parse_summary(fields: Mapping[str, object]) -> tuple[View, str, float] | None:
    """(view, aggregator, written at) from the summary row; None for a malformed one."""
    try:
        hot = {str(k): (float(v[0]), int(v[1])) for k, v in _unchunk("h", fields, dict).items()}
        listed = [str(m) for m in _unchunk("m", fields, list)]
        bits = int(str(fields.get("bh", "0")), 16)
        behind = frozenset(m for i, m in enumerate(listed) if bits >> i & 1)
        pots = {str(k): (float(v[0]), float(v[1]), float(v[2]), int(v[3]))
                for k, v in _unchunk("b", fields, dict).items()}
        excluded = frozenset(str(m) for m in _unchunk("x", fields, list))
        view = View(int(float(fields["p"])), int(float(fields["n"])), frozenset(listed), hot,
                    float(fields.get("phi", PHI)), float(fields.get("tt", 0.0)), behind, pots,
                    excluded)
        return view, str(fields.get("by", "")), float(fields["at"])
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _chunks(prefix: str, body: object, limit: int = MAX_CHUNKS) -> dict[str, str]:
    """JSON split over string properties <prefix>0, <prefix>1, ... (callers keep it small
    enough; what would exceed `limit` chunks raises, never a row that cannot be read)."""
    text = json.dumps(body, separators=(",", ":"))
    parts = [text[i:i + CHUNK] for i in range(0, len(text), CHUNK)]
    if len(parts) > limit:
        raise ValueError(f"{len(parts)} chunks of {prefix!r} exceed {limit}")
    return {f"{prefix}{n}": part for n, part in enumerate(parts)}


def _unchunk(prefix: str, fields: Mapping[str, object], kind: type) -> object:
    parts, n = [], 0
    while f"{prefix}{n}" in fields:
        parts.append(str(fields[f"{prefix}{n}"]))
        n += 1
    body = json.loads("".join(parts)) if parts else kind()
    if not isinstance(body, kind):
        raise ValueError(f"{prefix!r} is not a {kind.__name__}")
    return body
