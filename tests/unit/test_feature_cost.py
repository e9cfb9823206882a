"""The pure parts of `make feature-cost` (load/feature_cost.py): the configurations are made of
the gateway's real settings (bare turns every switch off, each feature row turns one on), the
run's addresses go in, the table's differences and the additivity sum, and where a profiled
file's calls are grouped. No processes, no timings: figures are made up."""

from __future__ import annotations

import pytest

from function_app.settings.specs import SPECS

NAMES = {spec.name for spec in SPECS}
DEFAULTS = {spec.name: spec.default for spec in SPECS}


@pytest.fixture
def fc(monkeypatch):
    from pathlib import Path
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "load"))
    import feature_cost
    return feature_cost


def test_every_configuration_is_made_of_real_settings(fc):
    configs = fc.configurations()
    assert configs[0].name == fc.BARE and configs[-1].name == fc.DEFAULTS
    assert len({c.name for c in configs}) == len(configs)
    for config in configs:
        assert set(config.env) <= NAMES, config.name
    by = {c.name: c for c in configs}
    assert all(c.over in by for c in configs if c.over), "a nested row extends a measured one"


def test_bare_turns_off_every_switch_whose_default_is_on(fc):
    bare = fc.configurations()[0].env
    for switch in ("RATE_LIMIT_ENABLED", "CACHE_ENABLED", "TELEMETRY_ENABLED"):
        assert DEFAULTS[switch] == "true" and bare[switch] == "false"
    assert DEFAULTS["RETRY_MAX_ATTEMPTS"] == "2" and bare["RETRY_MAX_ATTEMPTS"] == "1"
    # Off by default already, so bare leaves them at their defaults.
    for off in ("GATEWAY_AUTH", "GUARDRAILS", "MCP_SERVERS", "OTEL_EXPORTER_OTLP_ENDPOINT",
                "APPLICATIONINSIGHTS_CONNECTION_STRING", "RATE_LIMIT_STORAGE_CONNECTION"):
        assert off not in bare
    assert DEFAULTS["GATEWAY_AUTH"] == "none" and DEFAULTS["GUARDRAILS"] == ""


def test_a_feature_row_changes_only_its_own_settings_over_bare(fc):
    configs = fc.configurations()
    bare = configs[0].env
    changed = {c.name: {k for k in {*c.env, *bare} if c.env.get(k) != bare.get(k)}
               for c in configs[1:]}
    assert changed["+ cache"] == {"CACHE_ENABLED"}
    assert changed["+ retries"] == {"RETRY_MAX_ATTEMPTS"}
    assert changed["+ telemetry + request log"] == {"TELEMETRY_ENABLED"}
    assert changed["+ telemetry, no request log"] == {"TELEMETRY_ENABLED",
                                                       "TELEMETRY_REQUEST_LOG"}
    assert changed["+ limits (in memory)"] == {"RATE_LIMIT_ENABLED", *fc.FAR}
    assert changed["+ limits (tally, Azurite)"] == {
        "RATE_LIMIT_ENABLED", "RATE_LIMIT_STORAGE_CONNECTION", "RATE_LIMIT_SYNC", *fc.FAR}
    assert changed["+ shared breakers (Table)"] == {"RATE_LIMIT_STORAGE_CONNECTION"}
    # The defaults: nothing turned off, limits far from binding on storage, as make bench.
    assert configs[-1].env == {**fc.FAR, "RATE_LIMIT_STORAGE_CONNECTION": fc.STORAGE}
    assert {c.name for c in configs if c.in_defaults} == {
        "+ retries", "+ limits (lease, Azurite)", "+ cache", "+ telemetry + request log"}


def test_optional_rows_can_be_left_out(fc):
    names = {c.name for c in fc.configurations(tally=False, otlp=False)}
    assert "+ limits (tally, Azurite)" not in names
    assert not any("OTLP" in n for n in names)


def test_resolved_puts_in_the_addresses_and_gives_storage_its_own_tables(fc):
    by = {c.name: c for c in fc.configurations()}
    env = fc.resolved(by["+ limits (lease, Azurite)"], 5, storage="conn", otlp="http://o")
    assert env["RATE_LIMIT_STORAGE_CONNECTION"] == "conn"
    assert (env["RATE_LIMIT_TABLE"], env["LIMIT_OVERRIDES_TABLE"], env["ROUTING_TABLE"]) == (
        "ratelimits5", "limitoverrides5", "routing5")
    otlp = fc.resolved(by["+ telemetry + OTLP export (10 %)"], 9, storage="conn",
                       otlp="http://o")
    assert otlp["OTEL_EXPORTER_OTLP_ENDPOINT"] == "http://o" and "ROUTING_TABLE" not in otlp
    assert fc.resolved(by[fc.BARE], 0) == by[fc.BARE].env


def test_table_names_are_valid_settings(fc):
    from function_app.settings.parsers import table_name
    for index in (0, 12):
        env = fc.resolved(fc.configurations()[-1], index, storage="conn")
        for key in ("RATE_LIMIT_TABLE", "LIMIT_OVERRIDES_TABLE", "ROUTING_TABLE"):
            assert table_name(env[key]) == env[key]


def _configs(fc):
    C = fc.Config
    return (C(fc.BARE, {}, over=""), C("+ a", {}, in_defaults=True), C("+ b", {}),
            C("+ b + c", {}, over="+ b", in_defaults=True), C(fc.DEFAULTS, {}))


def test_summary_differences(fc):
    calls = {fc.TENLINE: 950.0, fc.BARE: 1200.0, "+ a": 1250.0, "+ b": 1210.0,
             "+ b + c": 1230.0, fc.DEFAULTS: 1290.0}
    cpu = {fc.TENLINE: {"worker_ms": 0.8, "host_ms": 0.4},
           fc.BARE: {"worker_ms": 1.1, "host_ms": 0.4},
           "+ a": {"worker_ms": 1.2, "host_ms": 0.4},
           "+ b": {"worker_ms": 1.15, "host_ms": 0.4},
           "+ b + c": {"worker_ms": 1.18, "host_ms": 0.42},
           fc.DEFAULTS: {"worker_ms": 1.35, "host_ms": 0.4}}
    table = fc.summary(_configs(fc), calls, cpu)
    by = {r["target"]: r for r in table}
    assert table[0]["target"] == fc.TENLINE
    assert by[fc.BARE]["calls_vs_tenline"] == 250 and by[fc.BARE]["calls_vs_bare"] == 0
    assert by["+ a"]["calls_vs_bare"] == 50 and by["+ a"]["calls_vs_tenline"] == 300
    assert by["+ a"]["cpu_ms"] == pytest.approx(1.6)
    assert by["+ a"]["cpu_vs_bare"] == pytest.approx(0.1)
    assert by["+ a"]["cpu_vs_tenline"] == pytest.approx(0.4)
    assert by["+ a"]["cpu_ratio_tenline"] == pytest.approx(1.6 / 1.2)
    assert by["+ a"]["over"] == "" and by["+ a"]["calls_own"] is None
    nested = by["+ b + c"]
    assert nested["over"] == "+ b" and nested["calls_own"] == 20
    assert nested["cpu_own"] == pytest.approx(0.05)
    assert nested["calls_vs_bare"] == 30
    sums = fc.additivity(_configs(fc), table)
    assert sums["calls_sum_alone"] == 80 and sums["calls_defaults"] == 90
    assert sums["cpu_sum_alone"] == pytest.approx(0.2)
    assert sums["cpu_defaults"] == pytest.approx(0.25)
    text = fc.markdown(table, sums)
    assert "| + a | 1250 | +50 | +300 | 1.600 (1.200) | +0.100 | +0.400 | 1.33 |" in text
    assert "| + b + c | + b | +20 | +0.050 |" in text
    assert ("defaults over bare: +90 calls/req, +0.250 CPU ms/req; the features in them "
            "measured alone add up to +80 calls/req, +0.200 CPU ms/req") in text


def test_summary_with_one_phase_only(fc):
    table = fc.summary(_configs(fc), {fc.TENLINE: 900.0, fc.BARE: 1000.0}, None)
    by = {r["target"]: r for r in table}
    assert by[fc.BARE]["calls_vs_tenline"] == 100 and by[fc.BARE]["cpu_ms"] is None
    assert by["+ a"]["calls"] is None and by["+ a"]["calls_vs_bare"] is None
    sums = fc.additivity(_configs(fc), table)
    assert sums["calls_sum_alone"] is None and sums["cpu_defaults"] is None
    assert "| bare | 1000 | +0 | +100 | - (-) | - | - | - |" in fc.markdown(table, sums)


@pytest.mark.parametrize(("key", "group"), [
    ("httpx/_models.py", "upstream: httpx and the gateway's adapters"),
    ("function_app/adapters/httpx_upstream.py", "upstream: httpx and the gateway's adapters"),
    ("function_app/adapters/aiohttp_transport.py", "upstream: httpx and the gateway's adapters"),
    ("aiohttp/streams.py", "aiohttp client"),
    ("function_app/http/headers.py", "gateway: request/response conversion"),
    ("function_app/worker_http.py", "gateway: request/response conversion"),
    ("function_app/routing/member_attempt.py", "gateway: routing"),
    ("function_app/stages/body.py", "gateway: pipeline and stages"),
    ("function_app/core/pipeline.py", "gateway: pipeline and stages"),
    ("function_app/telemetry/tracing.py", "gateway: features"),
    ("function_app/ratelimit/lease/fast.py", "gateway: features"),
    ("function_app/settings/specs.py", "gateway: other"),
    ("starlette/requests.py", "FastAPI/Starlette, uvicorn, the HTTP extension"),
    ("funchost/worker.py", "worker runtime"),
    ("/root/.pyenv/versions/3.13.0/lib/python3.13/logging/__init__.py", "logging"),
    ("/root/.pyenv/versions/3.13.0/lib/python3.13/asyncio/locks.py", "asyncio"),
    ("~", "built-ins called from C"),
    ("opentelemetry/trace/__init__.py", "OpenTelemetry API and SDK"),
    ("/root/.pyenv/versions/3.13.0/lib/python3.13/json/encoder.py", "json"),
    ("function_app/adapters/deadline_body.py", "upstream: httpx and the gateway's adapters"),
    ("uvicorn/protocols/http/httptools_impl.py", "FastAPI/Starlette, uvicorn, the HTTP extension"),
    ("function_app/wiring/gateway.py", "gateway: pipeline and stages"),
    ("/root/.pyenv/versions/3.13.0/lib/python3.13/contextvars.py",
     "other (standard library, the rest)"),
])
def test_group_of(fc, key, group):
    assert fc.group_of(key) == group


def test_grouped_and_group_table(fc):
    ten = fc.grouped({"~": 400.0, "aiohttp/streams.py": 20.0})
    bare = fc.grouped({"~": 500.0, "aiohttp/streams.py": 20.0, "httpx/_models.py": 30.0})
    assert ten == {"aiohttp client": 20.0, "built-ins called from C": 400.0}
    text = fc.group_table({"a": ten, "b": bare, "c": bare}, ["a", "b", "c"])
    assert "| upstream: httpx and the gateway's adapters | 0.0 | 30.0 | 30.0 | +30.0 |" in text
    assert "| **total** | 420.0 | 550.0 | 550.0 | +130.0 |" in text


def test_only_keeps_bare_and_defaults_and_unnests_a_lone_child(fc):
    args = fc.arguments(["--only", "+ telemetry + request log",
                         "--only", "+ limits (lease, Azurite)"])
    picked = fc.chosen(args)
    assert [c.name for c in picked] == [fc.BARE, "+ limits (lease, Azurite)",
                                        "+ telemetry + request log", fc.DEFAULTS]
    assert picked[2].over == fc.BARE


def test_by_file_counts_a_builtin_in_its_callers_file(fc):
    root = str(fc.ROOT)
    gate = (f"{root}/function_app/http/headers.py", 10, "build")
    aio = ("/x/.venv/lib/python3.13/site-packages/aiohttp/streams.py", 5, "read")
    builtin = ("~", 0, "<method 'lower' of 'str' objects>")
    stats = {gate: (200, 200, 0.1, 0.2, {}), aio: (100, 100, 0.1, 0.1, {}),
             builtin: (700, 700, 0.1, 0.1, {gate: (400, 400, 0.0, 0.0),
                                             aio: (200, 200, 0.0, 0.0)})}
    table = fc.by_file(stats, 100)
    assert table == {"function_app/http/headers.py": 6.0, "aiohttp/streams.py": 3.0, "~": 1.0}
    assert sum(table.values()) == 10.0  # every call counted once


def test_shortfalls_name_failed_and_slow_rounds(fc):
    calls = {"bare": [{"requests": 500, "errors": 0, "achieved_rps": 99.0}],
             "defaults": [{"requests": 400, "errors": 2, "achieved_rps": 80.0}]}
    cpu = {"bare": {"errors": [0, 0], "achieved_rps": [200.0, 150.0]}}
    assert fc.shortfalls({"calls": calls, "CPU": cpu}, {"calls": 100, "CPU": 200}) == [
        "calls, defaults: 2 failed requests",
        "calls, defaults: 1 of 1 rounds below 0.9 x 100/s (80)",
        "CPU, bare: 1 of 2 rounds below 0.9 x 200/s (150)"]
    wrk = {"bare": [{"requests": 5000, "errors": 0, "achieved_rps": None}]}
    assert fc.shortfalls({"calls": wrk}, {"calls": 0}) == [
        "every round kept its rate, no failed requests"]


def test_the_azure_monitor_rows_go_to_the_local_receiver_only(fc):
    from tests.support.appinsights_receiver import LOCAL_ONLY_ENV, connection_string

    by = {c.name: c for c in fc.configurations()}
    row = by["+ telemetry + request log + Azure Monitor (10 %)"]
    assert row.over == "+ telemetry + request log"
    assert row.env["APPLICATIONINSIGHTS_CONNECTION_STRING"] == fc.APPINSIGHTS
    conn = connection_string("http://127.0.0.1:5")
    env = fc.resolved(row, 3, appinsights=conn)
    assert env["APPLICATIONINSIGHTS_CONNECTION_STRING"] == conn
    assert "IngestionEndpoint=http://127.0.0.1:5/" in conn
    assert "LiveEndpoint=http://127.0.0.1:5/" in conn
    assert {k: env[k] for k in LOCAL_ONLY_ENV} == LOCAL_ONLY_ENV  # statsbeat, control plane, IMDS
    assert "APPLICATIONINSIGHTS_STATSBEAT_DISABLED_ALL" not in fc.resolved(by[fc.BARE], 0)
    assert not any("Azure Monitor" in c.name
                   for c in fc.configurations(appinsights=False))


def test_base_repeats_only_the_exporter_rows_before_the_defaults(fc):
    args = fc.arguments(["--base", "abc123", "--only", "+ telemetry + OTLP export (10 %)",
                         "--only", "+ telemetry + Azure Monitor (10 %)"])
    configs = fc.chosen(args)
    names = [c.name for c in configs]
    assert names[-1] == fc.DEFAULTS
    based = [c for c in configs if c.base]
    assert [c.name for c in based] == ["+ telemetry + OTLP export (10 %) [base]",
                                       "+ telemetry + Azure Monitor (10 %) [base]"]
    by = {c.name: c for c in configs}
    for c in based:
        twin = by[c.name.removesuffix(fc.BASE)]
        assert c.env == twin.env and c.over == twin.over and not c.in_defaults
    assert fc._short("/tmp/x/base/function_app/app.py") == "function_app/app.py"
