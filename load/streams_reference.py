"""The arithmetic of load/bench_streams.py's rows, apart from the processes that measure them.

A row is one level: `direct` (the streams straight to the backend) and one result per target
it went through, by name: `gateway`, `base` (--base COMMIT), `tenline` (--reference tenline,
load/tenline_stream: a bare streaming proxy function on the same host and worker). Each
target's added latencies sit at the top of the row as `{prefix}{percentile}_added` (the
gateway's without a prefix, as in every earlier JSON; the others' prefixed by their name).
With the reference, `over_tenline` holds the gateway against it: both added p99s, their
difference and ratio, and CPU per chunk of host and worker for both, with the ratios.
"""

from __future__ import annotations

REFERENCE = "tenline"
PERCENTILES = ("ttft_p50", "ttft_p99", "gap_p50", "gap_p99")


def prefix_of(name: str) -> str:
    """Where a target's added figures go in the row: the gateway's unprefixed (the shape every
    reader of earlier runs knows), any other's under `{name}_`."""
    return "" if name == "gateway" else f"{name}_"


def added(result: dict, direct: dict, key: str) -> float | None:
    """A target's figure minus the direct phase's at the same key; None when either is."""
    if result[key] is None or direct[key] is None:
        return None
    return result[key] - direct[key]


def mark(row: dict, name: str, result: dict) -> None:
    """Put a target's phase in the row under its name, and its added figures beside it."""
    row[name] = result
    prefix = prefix_of(name)
    row.update({f"{prefix}{key}_added": added(result, row["direct"], f"{key}_ms")
                for key in PERCENTILES})


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is not positive (a ratio over an added
    latency of zero or less says nothing)."""
    if a is None or b is None or b <= 0:
        return None
    return a / b


def cpu_us_per_chunk(result: dict) -> dict | None:
    """Host, worker and total CPU per data event the clients received (the gaps counted plus
    each answered stream's first event), in microseconds; None without CPU figures or events."""
    events = result.get("chunks", 0) + result["streams"] - result["errors"]
    if "host_cpu_s" not in result or events <= 0:
        return None
    host, worker = result["host_cpu_s"], result["worker_cpu_s"]
    return {"host": host / events * 1e6, "worker": worker / events * 1e6,
            "total": (host + worker) / events * 1e6}


def over_reference(row: dict, ref: str = REFERENCE) -> dict:
    """The gateway against the reference in one row: each p99 added (TTFT, gap) of both,
    gateway minus reference and gateway / reference; CPU per chunk of both and the ratios."""
    out: dict = {}
    for key in ("ttft_p99", "gap_p99"):
        gw, bare = row[f"{key}_added"], row[f"{prefix_of(ref)}{key}_added"]
        out[f"{key}_added_ms"] = {
            "gateway": gw, ref: bare,
            "difference": None if gw is None or bare is None else gw - bare,
            "ratio": ratio(gw, bare)}
    gw_cpu, bare_cpu = cpu_us_per_chunk(row["gateway"]), cpu_us_per_chunk(row[ref])
    out["cpu_us_per_chunk"] = {
        "gateway": gw_cpu, ref: bare_cpu,
        "ratio": {part: ratio(gw_cpu[part], bare_cpu[part]) for part in ("host", "worker", "total")}
        if gw_cpu and bare_cpu else None}
    return out


def within_target(rows: list[dict], name: str, target_ms: float) -> int | None:
    """The largest N whose direct phase and `name`'s had 0 errors and whose TTFT and gap added
    at p99 were both within target_ms; None when no level was."""
    prefix = prefix_of(name)
    within = [r["n"] for r in rows if name in r
              and r["direct"]["errors"] == r[name]["errors"] == 0
              and all(r[f"{prefix}{k}"] is not None and r[f"{prefix}{k}"] <= target_ms
                      for k in ("ttft_p99_added", "gap_p99_added"))]
    return max(within) if within else None


def _fmt(value: float | None, spec: str = ".1f") -> str:
    return "n/a" if value is None else format(value, spec)


def _part(cpu: dict, who: str, key: str) -> str:
    return _fmt((cpu[who] or {}).get(key), ".0f")


def comparison_table(rows: list[dict], ref: str = REFERENCE) -> list[str]:
    """Markdown lines: per level, both p99s added and CPU per chunk, gateway over reference."""
    fmt = _fmt
    lines = [f"| N | TTFT p99 added ms (gateway / {ref}) | gap p99 added ms (gateway / {ref}) | "
             f"host µs/chunk (gateway / {ref}) | worker µs/chunk (gateway / {ref}) | "
             "CPU per chunk, gateway over " + ref + " (host / worker / total) |",
             "|---:|---|---|---|---|---|"]
    for r in rows:
        if f"over_{ref}" not in r:
            continue
        c = r[f"over_{ref}"]
        t, g, cpu = c["ttft_p99_added_ms"], c["gap_p99_added_ms"], c["cpu_us_per_chunk"]
        ratios = cpu["ratio"] or {}
        lines.append(f"| {r['n']} | {fmt(t['gateway'])} / {fmt(t[ref])} | "
                     f"{fmt(g['gateway'])} / {fmt(g[ref])} | "
                     f"{_part(cpu, 'gateway', 'host')} / {_part(cpu, ref, 'host')} | "
                     f"{_part(cpu, 'gateway', 'worker')} / {_part(cpu, ref, 'worker')} | "
                     + " / ".join(fmt(ratios.get(k), ".2f") for k in ("host", "worker", "total"))
                     + "x |")
    return lines
