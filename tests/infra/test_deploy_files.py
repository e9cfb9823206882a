"""azure.yaml and the backend Dockerfiles agree with the Bicep and with the services' code."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys

import pytest

from . import dockerfile_checks
from .bicep_ast import MAIN, ROOT, BicepFile, object_properties, string_value, text

# Backend directory -> (azd service name, port the simulator listens on by default).
BACKENDS = {"python": ("pybackend", 8001), "node": ("nodebackend", 8002)}
DOCKERFILES = sorted((ROOT / "services").glob("*/Dockerfile"))


def _azure_yaml_services() -> dict[str, dict[str, str]]:
    """Service name -> its scalar fields (project, language, host), read without a YAML library."""
    services: dict[str, dict[str, str]] = {}
    current = None
    in_services = False
    for line in (ROOT / "azure.yaml").read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        if not line.startswith(" "):
            in_services = line.startswith("services:")
            continue
        if in_services and re.match(r"^  \w[\w-]*:\s*$", line):
            current = line.strip().rstrip(":")
            services[current] = {}
        elif in_services and current and re.match(r"^    \w+:\s*\S", line):
            key, value = line.strip().split(":", 1)
            services[current][key] = value.strip()
    return services


def _backend_modules() -> dict[str, int]:
    """azd service name -> port, from the backend module calls in main.bicep."""
    found = {}
    for module in BicepFile.load(MAIN).declarations("module").values():
        params = object_properties(module.body).get("params")
        props = object_properties(params) if params is not None else {}
        if "serviceName" in props and "port" in props:
            found[string_value(props["serviceName"])] = int(text(props["port"]))
    return found


def test_azure_yaml_services_point_at_existing_projects() -> None:
    services = _azure_yaml_services()
    assert services["gateway"] == {"project": ".", "language": "python", "host": "function"}
    for directory, (service, _) in BACKENDS.items():
        assert services[service]["project"] == f"services/{directory}"
        assert services[service]["host"] == "containerapp"
        assert (ROOT / "services" / directory).is_dir()


def test_bicep_backends_use_the_simulators_ports() -> None:
    assert _backend_modules() == dict(BACKENDS.values())


def test_every_backend_has_a_dockerfile() -> None:
    assert {path.parent.name for path in DOCKERFILES} >= set(BACKENDS)


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.parent.name)
def test_dockerfile_is_consistent_with_its_context_and_port(dockerfile) -> None:
    expected = BACKENDS.get(dockerfile.parent.name, (None, None))[1]
    assert dockerfile_checks.problems(dockerfile, expected) == []


GOOD = """FROM python:3.11-slim
COPY app.py \\
     requirements.txt ./
COPY --from=builder /out /out
ENV A=1 PORT=8001
EXPOSE 8001/tcp
"""


@pytest.mark.parametrize(
    ("dockerfile", "ignore", "problem"),
    [
        (GOOD, "", None),
        (GOOD.replace("app.py", "main.py"), "", "COPY source 'main.py' does not exist"),
        (GOOD, "*\n!app.py\n", "COPY source 'requirements.txt' is excluded by .dockerignore"),
        (GOOD.replace("EXPOSE 8001", "EXPOSE 8000"), "", "EXPOSE ['8000'] but ENV PORT=8001"),
        (GOOD.replace("PORT=8001", "P=1"), "", "no ENV PORT"),
        (GOOD.replace("8001", "8002"), "", "the service listens on 8001 by default"),
    ],
    ids=["consistent", "missing", "ignored", "expose", "no-port", "default-port"],
)
def test_dockerfile_checks_catch_each_problem(tmp_path, dockerfile, ignore, problem) -> None:
    (tmp_path / "app.py").write_text("")
    (tmp_path / "requirements.txt").write_text("")
    (tmp_path / ".dockerignore").write_text(ignore)
    (tmp_path / "Dockerfile").write_text(dockerfile)
    found = dockerfile_checks.problems(tmp_path / "Dockerfile", 8001)
    if problem is None:
        assert found == []
    else:
        assert any(problem in message for message in found), found


def test_the_gateway_package_carries_checked_hash_bytecode(tmp_path) -> None:
    """azd's prepackage hook compiles the app (the package is read-only on Flex Consumption, so
    sources would be compiled at every cold start) and .funcignore lets the bytecode through;
    every module gets a checked-hash .pyc (flags 3: hash-based, checked against its source)."""
    text_yaml = (ROOT / "azure.yaml").read_text(encoding="utf-8")
    gateway = text_yaml.split("\n  gateway:\n", 1)[1].split("\n  pybackend:", 1)[0]
    assert re.search(r"hooks:\s*\n\s+prepackage:\s*\n\s+shell: sh\s*\n\s+"
                     r"run: \./scripts/compile_bytecode\.sh", gateway)
    ignored = (ROOT / ".funcignore").read_text(encoding="utf-8").split()
    assert not {"__pycache__/", "__pycache__", "*.pyc"} & set(ignored)
    for name in ("main.py", "function_app", "scripts"):
        copy = shutil.copytree if (ROOT / name).is_dir() else shutil.copy
        copy(ROOT / name, tmp_path / name,
             **({"ignore": shutil.ignore_patterns("__pycache__")} if copy is shutil.copytree
                else {}))
    done = subprocess.run(["sh", "scripts/compile_bytecode.sh"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=240, check=False)
    assert done.returncode == 0, done.stderr
    assert "checked-hash" in done.stdout
    tag = sys.implementation.cache_tag
    sources = [tmp_path / "main.py", *sorted((tmp_path / "function_app").rglob("*.py"))]
    assert len(sources) > 100
    for source in sources:
        compiled = source.parent / "__pycache__" / f"{source.stem}.{tag}.pyc"
        assert compiled.read_bytes()[4:8] == b"\x03\x00\x00\x00", compiled
