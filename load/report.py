"""Turn a k6 summary JSON (written by load/lib/summary.js) into Markdown and a PNG chart.

Usage: python load/report.py load/results/baseline.json --out docs/perf/baseline
writes docs/perf/baseline.md and docs/perf/baseline.png.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

PERCENTILES = ("p(50)", "p(90)", "p(95)", "p(99)")
_LATENCY_RULE = re.compile(r"^(p\(\d+(?:\.\d+)?\))\s*<=?\s*(\d+(?:\.\d+)?)$")


@dataclass(frozen=True)
class Threshold:
    metric: str
    rule: str
    ok: bool


@dataclass(frozen=True)
class CacheRow:
    """One scenario of the cache profile: a backend behind GET /slow."""

    scenario: str
    requests: int
    rps: float
    hit_ratio: float
    p95_ms: float


@dataclass(frozen=True)
class Report:
    """What one k6 run measured, over its main stage when the profile has one."""

    profile: str
    scope: str
    requests: int
    rps: float
    target_rps: float | None
    latency_ms: dict[str, float]
    latency_metric: str
    errors: int
    error_rate: float
    rate_limited: float | None
    cache_hits: int | None
    dropped_iterations: int
    checks: tuple[int, int] | None
    thresholds: tuple[Threshold, ...]
    cache: tuple[CacheRow, ...] = ()

    @property
    def thresholds_passed(self) -> int:
        return sum(t.ok for t in self.thresholds)

    def latency_limits(self) -> dict[str, float]:
        """Latency thresholds such as p(95)<200 on the reported latency metric, by percentile."""
        limits = {}
        for threshold in self.thresholds:
            match = _LATENCY_RULE.match(threshold.rule)
            if threshold.metric == self.latency_metric and match:
                limits[match[1]] = float(match[2])
        return limits


# --- parsing ---------------------------------------------------------------------------------

def _values(metrics: Mapping[str, Any], name: str) -> Mapping[str, float] | None:
    metric = metrics.get(name)
    return None if metric is None else metric["values"]


def _count(metrics: Mapping[str, Any], name: str) -> int | None:
    values = _values(metrics, name)
    return None if values is None else int(values["count"])


def _scoped(metrics: Mapping[str, Any], name: str, scenario: str | None) -> str:
    """`name{scenario:<scenario>}` when the summary holds that sub-metric, else `name`."""
    tagged = f"{name}{{scenario:{scenario}}}"
    return tagged if scenario and tagged in metrics else name


def _rate_counts(values: Mapping[str, float] | None) -> tuple[int, int]:
    """(true samples, all samples) of a k6 Rate metric; (0, 0) when it has none."""
    if values is None:
        return 0, 0
    passes, fails = int(values["passes"]), int(values["fails"])
    return passes, passes + fails


def _rate_limited(metrics: Mapping[str, Any]) -> float | None:
    custom = _values(metrics, "rate_limited")
    if custom is not None:
        return custom["rate"]
    limited, total = _count(metrics, "http_reqs{status:429}"), _count(metrics, "http_reqs")
    return limited / total if limited is not None and total else None


def _thresholds(metrics: Mapping[str, Any]) -> tuple[Threshold, ...]:
    return tuple(
        Threshold(name, rule, bool(result["ok"]))
        for name, metric in sorted(metrics.items())
        for rule, result in metric.get("thresholds", {}).items()
    )


def cache_rows(metrics: Mapping[str, Any], profile: Mapping[str, Any]) -> tuple[CacheRow, ...]:
    """Per-scenario hit ratio, throughput and p95 of the cache profile (none for others)."""
    rows, duration = [], profile.get("scenario_duration_s") or 1
    for name in profile.get("cache_scenarios", ()):
        ratio = _values(metrics, f"cache_hit_ratio{{scenario:{name}}}")
        latency = _values(metrics, f"http_req_duration{{scenario:{name}}}")
        if ratio is not None and latency is not None:
            count = int(latency["count"])
            rows.append(CacheRow(name, count, count / duration, ratio["rate"],
                                 latency.get("p(95)", 0.0)))
    return tuple(rows)


def parse_summary(data: Mapping[str, Any]) -> Report:
    """Build a Report from the summary JSON; pure, so tests feed it dicts."""
    metrics, profile = data["metrics"], data.get("profile", {})
    scenario = profile.get("main_scenario")
    latency_metric = _scoped(metrics, "http_req_duration", scenario)
    latency = _values(metrics, latency_metric) or {}
    failed = _values(metrics, _scoped(metrics, "http_req_failed", scenario))
    errors, answered = _rate_counts(failed)
    checks = _rate_counts(_values(metrics, "checks"))
    if latency_metric == "http_req_duration":
        scope, requests = "whole run", _count(metrics, "http_reqs") or 0
        rps = _values(metrics, "http_reqs")["rate"] if requests else 0.0
    else:
        scope, requests = f"scenario {scenario!r}", int(latency["count"])
        rps = requests / profile["main_duration_s"]
    return Report(
        profile=profile.get("name", "k6"),
        scope=scope,
        requests=requests,
        rps=rps,
        target_rps=profile.get("target_rps"),
        latency_ms={p: latency[p] for p in PERCENTILES if p in latency},
        latency_metric=latency_metric,
        errors=errors,
        error_rate=errors / answered if answered else 0.0,
        rate_limited=_rate_limited(metrics),
        cache_hits=_count(metrics, "cache_hits"),
        dropped_iterations=_count(metrics, "dropped_iterations") or 0,
        checks=checks if checks[1] else None,
        thresholds=_thresholds(metrics),
        cache=cache_rows(metrics, profile),
    )


def load_summary(path: Path) -> Report:
    return parse_summary(json.loads(path.read_text()))


# --- Markdown --------------------------------------------------------------------------------

def _percent(value: float) -> str:
    return f"{value * 100:.2f} %"


def summary_rows(report: Report) -> list[tuple[str, str]]:
    target = f" (target {report.target_rps:g})" if report.target_rps else ""
    rows = [("Requests", str(report.requests)), ("Throughput", f"{report.rps:.1f} req/s{target}")]
    rows += [(f"Latency p{p[2:-1]}", f"{ms:.1f} ms") for p, ms in report.latency_ms.items()]
    rows.append(("Error rate", f"{_percent(report.error_rate)} ({report.errors} failed)"))
    if report.rate_limited is not None:
        rows.append(("429 rate", _percent(report.rate_limited)))
    if report.cache_hits is not None:
        rows.append(("Cache hits (X-Cache: HIT)", str(report.cache_hits)))
    rows.append(("Dropped iterations", str(report.dropped_iterations)))
    if report.checks is not None:
        passed, total = report.checks
        rows.append(("Checks", f"{passed} of {total} passed"))
    passed, total = report.thresholds_passed, len(report.thresholds)
    failed = f" ({total - passed} FAILED)" if passed < total else ""
    rows.append(("Thresholds", f"{passed} of {total} passed{failed}"))
    return rows


def _table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    return lines + ["| " + " | ".join(row) + " |" for row in rows]


def _scope_note(report: Report) -> str:
    source = f"latency from `{report.latency_metric}`"
    if report.scope == "whole run":
        return f"Measured over the whole run; {source}."
    return (f"Requests, throughput, latency and errors over the {report.scope} ({source});"
            " the other rows over the whole run.")


def markdown(report: Report, chart_name: str) -> str:
    lines = [
        f"# Load test: {report.profile}",
        "",
        _scope_note(report),
        "",
        *_table(("Metric", "Value"), summary_rows(report)),
        "",
        *_cache_section(report),
        "## Thresholds",
        "",
        *_table(("Metric", "Rule", "Result"), [
            (f"`{t.metric}`", f"`{t.rule}`", "pass" if t.ok else "**FAIL**")
            for t in report.thresholds
        ]),
        "",
        f"![{report.profile} latency and throughput]({chart_name})",
        "",
    ]
    return "\n".join(lines)


def _cache_section(report: Report) -> list[str]:
    if not report.cache:
        return []
    rows = [(r.scenario, str(r.requests), f"{r.rps:.1f}", f"{r.hit_ratio:.4f}", f"{r.p95_ms:.1f}")
            for r in report.cache]
    return ["## Cache, per backend", "",
            *_table(("Backend", "Requests", "RPS", "Hit ratio", "p95 (ms)"), rows), ""]


# --- chart -----------------------------------------------------------------------------------

def render_chart(report: Report, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    panels = 3 if report.cache else 2
    fig, axes = plt.subplots(1, panels, figsize=(5 * panels, 4), width_ratios=(2, 1, 1)[:panels])
    _latency_bars(axes[0], report)
    _throughput_bars(axes[1], report)
    if report.cache:
        _cache_bars(axes[2], report)
    fig.suptitle(f"k6 {report.profile} ({report.scope})")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _latency_bars(ax: Any, report: Report) -> None:
    names = list(report.latency_ms)
    bars = ax.bar(names, list(report.latency_ms.values()), color="tab:blue")
    ax.bar_label(bars, fmt="%.1f")
    limits = report.latency_limits()
    for index, name in enumerate(names):
        if name in limits:
            ax.hlines(limits[name], index - 0.4, index + 0.4, colors="tab:red", linestyles="--")
    ax.set_ylabel("latency (ms)")
    ax.set_title("Latency percentiles (dashed: threshold)")


def _throughput_bars(ax: Any, report: Report) -> None:
    labels, values = ["achieved"], [report.rps]
    if report.target_rps:
        labels.insert(0, "target")
        values.insert(0, report.target_rps)
    bars = ax.bar(labels, values, color=["tab:gray", "tab:green"][-len(values):])
    ax.bar_label(bars, fmt="%.1f")
    ax.set_ylabel("requests / s")
    ax.set_title("Throughput")


def _cache_bars(ax: Any, report: Report) -> None:
    bars = ax.bar([r.scenario for r in report.cache], [r.hit_ratio for r in report.cache],
                  color="tab:purple")
    ax.bar_label(bars, labels=[f"{r.hit_ratio:.3f}\n{r.rps:.0f}/s p95 {r.p95_ms:.0f} ms"
                               for r in report.cache], fontsize=8)
    ax.set_ylim(0, 1.25)
    ax.set_ylabel("hit ratio")
    ax.set_title("Cache hit ratio per backend")


# --- command line ----------------------------------------------------------------------------

def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("summary", type=Path, help="summary JSON written by a load/*.js run")
    parser.add_argument("--out", type=Path, required=True,
                        help="output path without suffix: writes <out>.md and <out>.png")
    args = parser.parse_args(argv)
    report = load_summary(args.summary)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    chart, text = (args.out.parent / f"{args.out.name}{suffix}" for suffix in (".png", ".md"))
    render_chart(report, chart)
    text.write_text(markdown(report, chart.name))
    print(f"wrote {text} and {chart}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
