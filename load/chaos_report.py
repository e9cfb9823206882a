"""Figures, a chart and a table from a chaos run's record (load/chaos.py).

Targets checked (issue #12): no client-visible 5xx while any member or fallback of the route is
up (the Node fallback is up throughout); retries within the budget (at most 20 % of an
instance's requests plus 3/s over any 10 s window); once one instance opens a breaker, the
others within 2 s; after a restart, traffic back within 5 s of the backend answering.
"""

from __future__ import annotations

import itertools
import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

LEVEL = {"closed": 0, "half_open": 1, "open": 2}
WINDOW_S, RATIO, FLOOR = 10.0, 0.2, 3.0


def _first(samples: list[dict], backend: str, after: float, instance: int) -> float | None:
    for s in samples:
        if s["instance"] == instance and s["t"] >= after and \
                s["states"].get(backend) in ("open", "half_open"):
            return s["t"]
    return None


def _event(raw: dict, prefix: str) -> float:
    return next(t for t, name in raw["events"] if name.startswith(prefix))


def figures(raw: dict[str, Any]) -> dict[str, Any]:
    answers, samples, n = raw["answers"], raw["samples"], raw["instances"]
    failed = [a for a in answers if a[1] >= 500 or a[1] == 0]
    killed, up, both = (_event(raw, "python2 killed"), _event(raw, "python2 answering"),
                        _event(raw, "both python killed"))
    spreads = {}
    for backend, after in (("python2", killed), ("python", both)):
        firsts = [_first(samples, backend, after, i) for i in range(n)]
        seen = [t for t in firsts if t is not None]
        spreads[backend] = {"first_open_s": round(min(seen) - after, 2) if seen else None,
                            "spread_s": round(max(seen) - min(seen), 2)
                            if len(seen) == n else None}
    back = next((a[0] for a in sorted(answers) if a[0] >= up and a[2] == "python2"), None)
    return {"requests": len(answers), "ok": sum(1 for a in answers if a[1] == 200),
            "client_5xx": len(failed), "statuses": dict(Counter(a[1] for a in answers)),
            "served_by": dict(Counter(a[2] for a in answers)),
            "breaker": spreads, "traffic_back_s": round(back - up, 2) if back else None,
            "budget": _budget(raw), "events": raw["events"]}


def _budget(raw: dict[str, Any]) -> dict[str, Any]:
    """Worst 10 s window per instance: retries against the budget's allowance."""
    per_instance: dict[int, list[dict]] = defaultdict(list)
    for s in raw["samples"]:
        per_instance[s["instance"]].append(s)
    sent: dict[int, list[float]] = defaultdict(list)
    for t, _, _, instance in raw["answers"]:
        sent[instance].append(t)
    worst, retries, refusals, adopted = 0.0, 0, 0, 0
    for instance, rows in per_instance.items():
        retries += rows[-1]["retries"]
        refusals += rows[-1]["refusals"]
        adopted += rows[-1].get("adopted", 0)
        for row in rows:
            before = next((r for r in rows if r["t"] >= row["t"] - WINDOW_S), rows[0])
            used = row["retries"] - before["retries"]
            requests = sum(1 for t in sent[instance] if before["t"] <= t <= row["t"])
            allowance = FLOOR * WINDOW_S + RATIO * requests
            worst = max(worst, used / allowance)
    return {"retries": retries, "refusals": refusals, "worst_window_use": round(worst, 3),
            "adopted": adopted}


def table(f: dict[str, Any], raw: dict[str, Any]) -> str:
    b = f["breaker"]
    rows = [
        ("requests sent / answered 200", f"{f['requests']} / {f['ok']}", ""),
        ("client-visible 5xx or no answer (Node fallback up throughout)",
         str(f["client_5xx"]), "0"),
        ("retries in all / refused by the budget",
         f"{f['budget']['retries']} / {f['budget']['refusals']}", ""),
        ("worst 10 s window: retries / allowance (20 % + 3/s)",
         f"{f['budget']['worst_window_use']:.2f}", "≤ 1"),
        ("python2 killed: first instance open after / last instance after the first",
         f"{b['python2']['first_open_s']} s / {b['python2']['spread_s']} s", "spread ≤ 2 s"),
        ("both killed: python's breaker, first open after / spread",
         f"{b['python']['first_open_s']} s / {b['python']['spread_s']} s", "spread ≤ 2 s"),
        ("breaker states taken from another instance's row (shared through Azurite)",
         str(f["budget"]["adopted"]), ""),
        ("python2 restarted: first answer served by it after it answers its /healthz",
         f"{f['traffic_back_s']} s", "≤ 5 s"),
        ("answers by backend", ", ".join(f"{k or 'none'} {v}" for k, v in
                                         sorted(f["served_by"].items())), ""),
    ]
    head = (f"Chaos run: {raw['instances']} gateway instances on one Azurite, "
            f"{raw['rps']:.0f} RPS for {raw['seconds']:.0f} s; events at "
            + ", ".join(f"{t:.1f} s {name}" for t, name in f["events"]) + ". Each instance "
            "is the app served by the local Functions host (funchost/) through the real Python "
            "worker, its health-check timer firing every 10 s.\n\n")
    lines = ["| what | measured | target |", "|---|---|---|"]
    lines += [f"| {a} | {m} | {t} |" for a, m, t in rows]
    return head + "\n".join(lines) + "\n"


def chart(raw: dict[str, Any], f: dict[str, Any], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    seconds = math.ceil(raw["seconds"]) + 1
    fig, (top, mid, low) = plt.subplots(3, 1, figsize=(11, 9), sharex=True)
    by_status: dict[str, list[int]] = {k: [0] * seconds for k in ("200", "5xx", "none", "4xx")}
    for t, status, _, _ in raw["answers"]:
        key = "200" if status == 200 else "none" if status == 0 else \
            "5xx" if status >= 500 else "4xx"
        by_status[key][min(int(t), seconds - 1)] += 1
    for key, color in (("200", "tab:green"), ("5xx", "tab:red"), ("none", "black"),
                       ("4xx", "tab:orange")):
        if any(by_status[key]):
            top.plot(range(seconds), by_status[key], label=key, color=color)
    top.set_ylabel("answers / s")
    for instance in range(raw["instances"]):
        rows = [s for s in raw["samples"] if s["instance"] == instance]
        for backend, style in (("python2", "-"), ("python", ":")):
            mid.plot([s["t"] for s in rows],
                     [LEVEL.get(s["states"].get(backend, "closed"), 0) + instance * 0.06
                      for s in rows], style, label=f"gw{instance} {backend}")
        per_s = [0] * seconds
        for prev, cur in itertools.pairwise(rows):
            per_s[min(int(cur["t"]), seconds - 1)] += cur["retries"] - prev["retries"]
        low.plot(range(seconds), per_s, label=f"gw{instance} retries")
    mid.set_yticks([0, 1, 2], ["closed", "half-open", "open"])
    mid.set_ylabel("breaker")
    low.set_ylabel("retries / s")
    low.set_xlabel("seconds")
    for axis in (top, mid, low):
        for t, _ in raw["events"]:
            axis.axvline(t, color="grey", linewidth=0.8, linestyle="--")
        axis.legend(loc="upper right", fontsize=7, ncol=3)
    top.set_title(f"Chaos: {f['client_5xx']} client-visible 5xx of {f['requests']} requests")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def write_report(raw: dict[str, Any], out: Path) -> str:
    out.mkdir(parents=True, exist_ok=True)
    f = figures(raw)
    text = table(f, raw)
    (out / "chaos.md").write_text("# Chaos run\n\nCommand: `make chaos` "
                                  "(`.venv/bin/python load/chaos.py`).\n\n" + text
                                  + "\n![timeline](chaos.png)\n")
    chart(raw, f, out / "chaos.png")
    return text
