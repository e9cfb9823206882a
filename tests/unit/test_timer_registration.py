"""The health-check timer is a real Functions timer trigger on the FunctionApp."""

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# In a fresh interpreter: get_functions() may be called once per app, and the handler tests
# already indexed this process's app.
LIST = """
import json, main
print(json.dumps({f.get_function_name(): json.loads(f.get_function_json())["bindings"]
                  for f in main.app.get_functions()}))
"""


def test_the_health_check_timer_is_registered_with_its_schedule():
    out = subprocess.run([sys.executable, "-c", LIST], cwd=ROOT, capture_output=True,
                         text=True, check=True, timeout=60).stdout
    functions = json.loads(out.strip().splitlines()[-1])
    [binding] = functions["health_checks"]
    assert binding["type"] == "timerTrigger" and binding["direction"] == "IN"
    # the host resolves the app setting (SPECS default */10 * * * * *) when it reads the binding
    assert binding["schedule"] == "%HEALTH_CHECK_SCHEDULE%" and binding["runOnStartup"] is False
    assert {"healthz", "stats", "proxy"} <= set(functions)
