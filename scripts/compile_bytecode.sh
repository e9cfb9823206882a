#!/usr/bin/env bash
# azd's prepackage hook for the gateway (azure.yaml): compile the app's modules to bytecode so the
# deployed package carries it. The package is mounted read-only on Flex Consumption, so without
# it every cold start compiles ~210 modules from source and throws the result away: about 0.2 s
# of CPU (docs/perf/pass13-coldstart.md). checked-hash bytecode is checked against its source's
# hash, not its time stamp (a zip does not keep time stamps), so a stale file is never run.
# Bytecode is per Python version: only a Python 3.13's matches the platform's, so without one
# the package ships sources only, as before, and says so.
set -eu
cd "$(dirname "$0")/.."
if ! py=$(bash scripts/find-python313.sh 2>/dev/null); then
  echo "compile_bytecode: no Python 3.13 here; the package ships sources only (each cold start" \
       "compiles them)" >&2
  exit 0
fi
"$py" -m compileall -q -f --invalidation-mode checked-hash main.py function_app
echo "compile_bytecode: main.py and function_app compiled with $py (checked-hash)"
