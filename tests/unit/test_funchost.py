"""The local Functions host's pure parts: route templates, precedence, keys, limits, schedules,
and the protocol messages as the worker library reads them."""

import asyncio
import json
import sys
from datetime import UTC, datetime

import pytest

from funchost import messages
from funchost.auth import Keys, authorized, presented_key
from funchost.errors import error_body
from funchost.hostconfig import load_host_config, parse_timespan
from funchost.routes import HttpFunction, TemplateError, build_table, http_function, match
from funchost.timers import next_after, parse_schedule, resolve_settings
from funchost.workerproc import START_TIMEOUT_S, WorkerProcess


def fn(name, route, methods=("GET",), level="function"):
    return HttpFunction(name, f"id-{name}", route, tuple(methods), level, "req")


APP = [fn("healthz", "healthz", level="anonymous"), fn("stats", "_gateway/stats"),
       fn("proxy", "{*path}", ("GET", "POST", "DELETE")), fn("item", "items/{id:int}"),
       fn("named", "items/{name}"), fn("optional", "opt/{x?}"),
       fn("bounded", "page/{n:int:range(1,10)}"), fn("files", "files/{name}.{ext}")]


def served(method, path, prefix=""):
    found = match(build_table(APP, prefix), method, path)
    return (found.route.function.name if found.route else None), found.params


def test_literal_routes_win_over_parameters_and_catch_all():
    assert served("GET", "/healthz") == ("healthz", {})
    assert served("GET", "/_gateway/stats") == ("stats", {})
    assert served("GET", "/items/7") == ("item", {"id": "7"})  # constrained before plain
    assert served("GET", "/items/seven") == ("named", {"name": "seven"})
    assert served("GET", "/v1/chat/completions") == ("proxy", {"path": "v1/chat/completions"})


def test_precedence_order_is_literal_constrained_plain_catch_all():
    order = [r.function.name for r in build_table(APP, "")]
    assert order.index("healthz") < order.index("item") < order.index("named")
    assert order[-1] == "proxy"


def test_a_method_the_literal_route_refuses_falls_through_to_the_catch_all():
    assert served("POST", "/healthz") == ("proxy", {"path": "healthz"})


def test_no_route_for_the_method_reports_what_is_allowed():
    table = build_table([fn("only", "only", ("GET",))], "")
    found = match(table, "POST", "/only")
    assert found.route is None and found.allowed == ("GET",)
    assert match(table, "GET", "/other").allowed == ()


def test_literals_match_case_insensitively_and_values_are_decoded():
    assert served("GET", "/HEALTHZ")[0] == "healthz"
    assert served("GET", "/items/a%20b") == ("named", {"name": "a b"})


def test_optional_parameters_constraints_and_mixed_segments():
    assert served("GET", "/opt") == ("optional", {})
    assert served("GET", "/opt/3") == ("optional", {"x": "3"})
    assert served("GET", "/page/5")[0] == "bounded"
    assert served("GET", "/page/11")[0] == "proxy"  # range(1,10) refuses it
    assert served("GET", "/files/report.pdf") == ("files", {"name": "report", "ext": "pdf"})


def test_route_prefix_goes_in_front_of_every_template():
    assert served("GET", "/api/healthz", prefix="api")[0] == "healthz"
    assert served("GET", "/healthz", prefix="api")[0] is None
    assert served("GET", "/api/x/y", prefix="api") == ("proxy", {"path": "x/y"})


def test_a_catch_all_must_be_the_last_segment():
    with pytest.raises(TemplateError):
        build_table([fn("bad", "{*rest}/more")], "")


def test_http_function_reads_the_raw_bindings_the_worker_reports():
    metadata = {"name": "healthz", "function_id": "f1", "raw_bindings": [
        '{"direction": "IN", "type": "httpTrigger", "name": "req", "methods": ["GET"], '
        '"authLevel": "ANONYMOUS", "route": "healthz"}',
        '{"direction": "OUT", "type": "http", "name": "$return"}']}
    assert http_function(metadata) == HttpFunction("healthz", "f1", "healthz", ("GET",),
                                                   "anonymous", "req")
    timer = {"name": "t", "function_id": "f2", "raw_bindings": ['{"type": "timerTrigger"}']}
    assert http_function(timer) is None


def test_keys_are_off_unless_configured():
    assert authorized(Keys(), "function", "")
    assert authorized(Keys(), "admin", "")


def test_with_keys_anonymous_is_open_and_function_needs_a_key():
    keys = Keys.parse("k1, k2", master_key="m")
    assert authorized(keys, "anonymous", "")
    assert not authorized(keys, "function", "")
    assert not authorized(keys, "function", "wrong")
    assert authorized(keys, "function", "k2")
    assert authorized(keys, "function", "m")  # the master key opens every level
    assert not authorized(keys, "admin", "k1")
    assert authorized(keys, "admin", "m")


def test_the_key_comes_from_the_header_first_then_code():
    assert presented_key([(b"x-functions-key", b"h")], b"code=q") == "h"
    assert presented_key([], b"a=1&code=q%20r") == "q r"
    assert presented_key([], b"encode=x") == ""


def test_host_errors_use_the_json_shape():
    status, headers, body = error_body("unauthorized", "rid-1")
    assert status == 401 and (b"content-type", b"application/json") in headers
    assert b'"code": "unauthorized"' in body and b'"request_id": "rid-1"' in body


def test_function_timeout_timespans():
    assert parse_timespan("00:04:00") == 240
    assert parse_timespan("1.00:00:00") == 86400
    assert parse_timespan("-1") == float("inf")
    with pytest.raises(ValueError):
        parse_timespan("5 minutes")


def test_ncrontab_schedules():
    start = datetime(2026, 1, 1, 10, 0, 7, tzinfo=UTC)
    every_30s = parse_schedule("*/30 * * * * *")
    assert next_after(every_30s, start) == datetime(2026, 1, 1, 10, 0, 30, tzinfo=UTC)
    daily = parse_schedule("0 30 9 * * *")
    assert next_after(daily, start) == datetime(2026, 1, 2, 9, 30, 0, tzinfo=UTC)
    mondays = parse_schedule("0 0 8 * * mon")  # 2026-01-01 is a Thursday
    assert next_after(mondays, start) == datetime(2026, 1, 5, 8, 0, 0, tzinfo=UTC)
    assert next_after(parse_schedule("00:05:00"), start) == datetime(2026, 1, 1, 10, 5, 7,
                                                                     tzinfo=UTC)
    with pytest.raises(ValueError):
        parse_schedule("* * * * *")  # five fields: NCRONTAB needs six


def test_a_schedule_naming_an_app_setting_resolves_from_the_environment():
    env = {"HEALTH_CHECK_SCHEDULE": "*/2 * * * * *", "SECS": "5"}
    assert resolve_settings("%HEALTH_CHECK_SCHEDULE%", env) == "*/2 * * * * *"
    assert resolve_settings("*/%SECS% * * * * *", env) == "*/5 * * * * *"
    assert resolve_settings("0 */5 * * * *", {}) == "0 */5 * * * *"
    with pytest.raises(ValueError, match="MISSING"):
        resolve_settings("%MISSING%", env)


def test_messages_answer_which_oneof_like_the_real_ones():
    empty = messages.TypedData()
    assert empty.WhichOneof("data") is None
    request = messages.invocation_request({
        "invocation_id": "i", "function_id": "f",
        "input_data": [{"name": "req", "data": {"http": {"method": "GET", "url": "/x"}}}]})
    binding = request.input_data[0]
    assert binding.WhichOneof("rpc_data") == "data"
    assert binding.data.WhichOneof("data") == "http"
    assert binding.data.http.body.WhichOneof("data") is None  # never None, as on the wire
    with pytest.raises(AttributeError):
        _ = binding.data.TypedData  # the library probes for this and must be refused


def test_host_json_gives_the_route_prefix_and_function_timeout(tmp_path):
    assert load_host_config(tmp_path).route_prefix == "api"  # no host.json: the default
    (tmp_path / "host.json").write_text(
        '{"extensions": {"http": {"routePrefix": "/v2/"}}, "functionTimeout": "00:01:30"}')
    config = load_host_config(tmp_path)
    assert (config.route_prefix, config.function_timeout_s) == ("v2", 90)


def test_a_function_is_disabled_by_its_app_setting():
    from funchost.timers import disabled

    assert disabled("health_checks", {"AzureWebJobs.health_checks.Disabled": "true"})
    assert disabled("health_checks", {"AzureWebJobs.health_checks.Disabled": "1"})
    assert not disabled("health_checks", {"AzureWebJobs.health_checks.Disabled": "false"})
    assert not disabled("health_checks", {"AzureWebJobs.other.Disabled": "true"})
    assert not disabled("health_checks", {})


def test_a_measurement_wraps_the_worker_command_and_no_host_setting_reaches_it(tmp_path):
    """FUNCHOST_WORKER_WRAPPER puts its words before the worker command (how
    load/instructions_per_request.py runs the worker under callgrind); like every FUNCHOST_*
    variable it stays out of the worker's environment. Unset, the command is the plain one."""
    seen = tmp_path / "argv"
    wrapper = tmp_path / "wrap.py"  # records its arguments and environment, exits at once
    wrapper.write_text("import json, os, sys\n"
                       f"open({str(seen)!r}, 'w').write(json.dumps([sys.argv[1:], "
                       "sorted(k for k in os.environ if k.startswith('FUNCHOST_'))]))\n")
    env = {"PATH": "/usr/bin:/bin", "FUNCHOST_WORKER_WRAPPER": f"{sys.executable} {wrapper}",
           "FUNCHOST_START_TIMEOUT_S": "5", "APP_SETTING": "x"}
    worker = WorkerProcess(tmp_path, environ=env)
    assert worker.start_timeout_s == 5.0 and "APP_SETTING" in worker.environ
    assert not [k for k in worker.environ if k.startswith("FUNCHOST_")]

    async def start() -> None:
        try:
            await worker.start()
        except Exception:  # the wrapper exits before connecting: a failed start
            pass
        finally:
            await worker.stop(grace=1)

    asyncio.run(start())
    argv, host_vars = json.loads(seen.read_text())
    assert argv[:3] == [sys.executable, "-m", "funchost.worker"] and host_vars == []
    plain = WorkerProcess(tmp_path, environ={"PATH": "/usr/bin"})
    assert plain.wrapper == [] and plain.start_timeout_s == START_TIMEOUT_S
