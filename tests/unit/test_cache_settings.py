"""Cache settings: bad values name the setting; a shared tier without its address is refused."""

import pytest

from function_app.app import proxy
from function_app.settings.load import SettingsError, load_settings
from tests.support.handler_calls import make_request, read_json


@pytest.mark.parametrize(("name", "value"), [
    ("CACHE_BACKEND", "memcached"), ("CACHE_TTL_SECONDS", "0"),
    ("CACHE_ROUTES", '{"/slow": "sometimes"}'), ("CACHE_ROUTES", '{"slow": "off"}'),
    ("CACHE_REDIS_URL", "http://x"), ("CACHE_BLOB_CONTAINER", "Bad_Name"),
    ("CACHE_MEMORY_BYTES", "10"), ("CACHE_SHARED_TIMEOUT_S", "0"),
])
def test_a_bad_value_names_the_setting(name, value):
    with pytest.raises(SettingsError, match=name):
        load_settings({name: value})


def test_a_redis_url_with_a_password_is_not_echoed():
    with pytest.raises(SettingsError) as caught:
        load_settings({"CACHE_REDIS_URL": "http://user:hunter2@host"})
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(("backend", "needed"), [("redis", "CACHE_REDIS_URL"),
                                                 ("blob", "CACHE_BLOB_CONNECTION")])
def test_settings_refuse_a_shared_backend_without_its_address(backend, needed):
    """Checked once, when the settings are parsed, not again when the cache is wired."""
    with pytest.raises(SettingsError, match=needed):
        load_settings({"CACHE_BACKEND": backend})
    load_settings({"CACHE_BACKEND": backend, "CACHE_ENABLED": "false"})  # unused: not needed


@pytest.mark.parametrize("backend", ["redis", "blob"])
async def test_a_shared_backend_without_its_address_answers_misconfigured(install, backend):
    with pytest.raises(SettingsError, match="CACHE_"):
        await install(CACHE_BACKEND=backend)


async def test_cache_disabled_passes_get_through_unmarked(install, backend):
    await install(CACHE_ENABLED="false")
    answers = [await proxy(make_request("GET", "/slow")) for _ in range(2)]
    assert all("x-cache" not in a.headers for a in answers) and len(backend.seen) == 2
    assert await read_json(answers[0]) == {"echo": "/slow"}


async def test_cachez_says_when_the_cache_is_off(install):
    from function_app.app import cachez

    await install(CACHE_ENABLED="false")
    report = await read_json(await cachez(make_request("GET", "/cachez")))
    assert report["enabled"] is False and report["hits"] == 0
