"""The Python worker's entry file (PYTHON_SCRIPT_FILE_NAME=main.py).

It cannot be named function_app.py: the function_app/ package beside it would shadow it. Exactly
one FunctionApp is visible here.

The worker imports this file to index the functions, on every cold start. The import runs with
the garbage collector paused and freezes what it made (`start_up_objects`): modules and classes
that live as long as the process, which the collector otherwise walked 37-46 times while they
were being made (docs/perf/pass13-coldstart.md). No setting is read here: every one is read and
validated when the gateway is built (function_app/wiring/lazy.py).
"""

from function_app.wiring.collector import start_up_objects

with start_up_objects():
    from function_app.app import app

__all__ = ["app"]
