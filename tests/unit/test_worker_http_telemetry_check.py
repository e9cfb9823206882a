"""worker_http.telemetry_enabled answers what FastAPI's NativeTelemetry.enabled() answers: False
from three module attributes and the environment's dict while no provider is set, named or
configured; FastAPI's own method in every other case."""

import hashlib
import inspect
import os

import opentelemetry._logs._internal as logs_api
import opentelemetry.metrics._internal as metrics_api
import opentelemetry.trace as trace_api
import pytest
from fastapi import FastAPI
from fastapi.telemetry._asgi import NativeTelemetry

from function_app.worker_http import telemetry_enabled


def _delegating(app: FastAPI) -> list[str]:
    """Make the app's own check answer True and note each time it is asked."""
    asked: list[str] = []

    def enabled() -> bool:
        asked.append("enabled")
        return True

    app._native_telemetry.enabled = enabled
    return asked


def test_nothing_set_is_off_without_asking_fastapi():
    app = FastAPI()
    assert app._native_telemetry.enabled() is False
    asked = _delegating(app)
    assert telemetry_enabled(app) is False
    assert asked == []


@pytest.mark.parametrize("config", [{"tracer_provider": object()}, {"meter_provider": object()},
                                    {"logger_provider": object()}])
def test_a_provider_in_the_apps_config_is_fastapis_answer(config):
    app = FastAPI(telemetry=config)
    asked = _delegating(app)
    assert telemetry_enabled(app) is True
    assert asked == ["enabled"]


@pytest.mark.parametrize("module,attribute", [(trace_api, "_TRACER_PROVIDER"),
                                              (metrics_api, "_METER_PROVIDER"),
                                              (logs_api, "_LOGGER_PROVIDER")])
def test_a_global_provider_set_is_fastapis_answer(monkeypatch, module, attribute):
    app = FastAPI()
    monkeypatch.setattr(module, attribute, object())
    asked = _delegating(app)
    assert telemetry_enabled(app) is True
    assert asked == ["enabled"]


@pytest.mark.parametrize("name", ["OTEL_PYTHON_TRACER_PROVIDER", "OTEL_PYTHON_METER_PROVIDER",
                                  "OTEL_PYTHON_LOGGER_PROVIDER"])
def test_a_provider_named_in_the_environment_is_fastapis_answer(monkeypatch, name):
    """FastAPI's getters then load the named provider; its own method still does that."""
    app = FastAPI()
    monkeypatch.setitem(os.environ, name, "some_provider")
    asked = _delegating(app)
    assert telemetry_enabled(app) is True
    assert asked == ["enabled"]
    monkeypatch.delitem(os.environ, name)
    assert telemetry_enabled(app) is False


def test_the_mirrored_check_is_the_pinned_versions():
    """telemetry_enabled restates NativeTelemetry.enabled and the three getters it calls; when
    any of them changes, re-read it and update worker_http.py."""

    def digest(obj) -> str:
        return hashlib.sha256(inspect.getsource(obj).encode()).hexdigest()[:16]

    assert {"enabled": digest(NativeTelemetry.enabled),
            "tracer": digest(trace_api.get_tracer_provider),
            "meter": digest(metrics_api.get_meter_provider),
            "logger": digest(logs_api.get_logger_provider)} == PINNED


# fastapi 0.165.0, opentelemetry-api 1.45.1
PINNED = {"enabled": "0b078e55154fc339", "tracer": "18fcbb9f5e726edb", "meter": "22ebd1e24cf167be",
          "logger": "75479adffe00c6e5"}
