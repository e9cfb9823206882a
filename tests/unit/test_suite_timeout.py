"""A test that hangs fails with its name (pytest-timeout, set in pyproject.toml), so a missed
wake-up in an event loop costs minutes and says where, instead of running into CI's limit."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

HUNG = '''
import asyncio

async def test_waits_for_a_wake_up_that_never_comes():
    await asyncio.Event().wait()

def test_finishes():
    assert True
'''


def test_the_suite_has_a_per_test_timeout():
    options = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["pytest"]["ini_options"]
    assert 60 <= int(options["timeout"]) <= 900


def test_a_hung_async_test_fails_with_its_name_and_the_run_goes_on(tmp_path):
    (tmp_path / "test_hung.py").write_text(HUNG)
    (tmp_path / "pytest.ini").write_text("[pytest]\nasyncio_mode = auto\ntimeout = 2\n")
    run = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120)
    out = run.stdout + run.stderr
    assert run.returncode == 1, out
    assert "Timeout" in out, out
    assert "FAILED test_hung.py::test_waits_for_a_wake_up_that_never_comes" in out, out
    assert "1 failed, 1 passed" in out, out
