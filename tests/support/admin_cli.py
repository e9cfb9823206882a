"""The admin CLI as an operator runs it (`python -m function_app.admin ...`), for e2e tests."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from scripts.procs import PYTHON, ROOT


def run_admin(storage_env: Mapping[str, str], *argv: str) -> subprocess.CompletedProcess:
    """One run against the storage in `storage_env`; whatever it exits with."""
    return subprocess.run([PYTHON, "-m", "function_app.admin", *argv], cwd=ROOT,
                          env={**os.environ, **storage_env}, capture_output=True, text=True,
                          timeout=60)


def admin(storage_env: Mapping[str, str], *argv: str) -> str:
    """One run that must succeed; its stdout."""
    done = run_admin(storage_env, *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout


def create_key(storage_env: Mapping[str, str], tenant: str, *extra: str,
               name: str = "e2e") -> str:
    """A new gateway key for `tenant` (`extra`: limits, --operator, ...); the key itself."""
    return admin(storage_env, "keys", "create", "--tenant", tenant, "--name", name,
                 *extra).splitlines()[-1]
