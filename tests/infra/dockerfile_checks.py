"""Offline checks of a Dockerfile against its build context (the Dockerfile's folder)."""

from __future__ import annotations

import fnmatch
import glob
import json
import re
import shlex
from pathlib import Path


def instructions(dockerfile: Path) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined, pending = [], ""
    for raw in dockerfile.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        joined.append(pending + line)
        pending = ""
    if pending:
        joined.append(pending)
    result = []
    for line in joined:
        word, _, rest = line.partition(" ")
        result.append((word.upper(), rest.strip()))
    return result


def copy_sources(arguments: str) -> list[str]:
    """Build-context sources of a COPY/ADD; none for COPY --from (another stage or image)."""
    parts = json.loads(arguments) if arguments.startswith("[") else shlex.split(arguments)
    if any(part.startswith("--from") for part in parts):
        return []
    paths = [part for part in parts if not part.startswith("--")]
    return [path for path in paths[:-1] if not re.match(r"^https?://", path)]


def env_vars(arguments: str) -> dict[str, str]:
    first = arguments.split()[0]
    if "=" not in first:  # legacy form: ENV NAME value
        name, _, value = arguments.partition(" ")
        return {name: value.strip()}
    return dict(item.split("=", 1) for item in shlex.split(arguments))


def ignored(context: Path, relative: str) -> bool:
    """Whether .dockerignore excludes `relative` (last matching rule wins, `!` re-includes)."""
    ignore_file = context / ".dockerignore"
    if not ignore_file.is_file():
        return False
    verdict = False
    for raw in ignore_file.read_text(encoding="utf-8").splitlines():
        rule = raw.strip()
        if not rule or rule.startswith("#"):
            continue
        pattern = rule.lstrip("!").strip("/")
        if fnmatch.fnmatch(relative, pattern) or relative.startswith(pattern + "/"):
            verdict = not rule.startswith("!")
    return verdict


def problems(dockerfile: Path, expected_port: int | None = None) -> list[str]:
    """Every problem found; empty when the Dockerfile is consistent."""
    context = dockerfile.parent
    steps = instructions(dockerfile)
    found = []
    for word, arguments in steps:
        if word not in ("COPY", "ADD"):
            continue
        for source in copy_sources(arguments):
            matches = glob.glob(str(context / source))
            if not matches:
                found.append(f"COPY source {source!r} does not exist")
            for match in matches:
                relative = Path(match).resolve().relative_to(context.resolve()).as_posix()
                if relative != "." and ignored(context, relative):
                    found.append(f"COPY source {relative!r} is excluded by .dockerignore")
    env: dict[str, str] = {}
    for word, arguments in steps:
        if word == "ENV":
            env.update(env_vars(arguments))
    exposed = [arguments.split("/")[0] for word, arguments in steps if word == "EXPOSE"]
    port = env.get("PORT")
    if port is None:
        found.append("no ENV PORT")
    elif exposed != [port]:
        found.append(f"EXPOSE {exposed} but ENV PORT={port}")
    if expected_port is not None and port != str(expected_port):
        found.append(f"ENV PORT={port}, but the service listens on {expected_port} by default")
    return found
