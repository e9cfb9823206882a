"""The dashboard page: one self-contained HTML file (inline SVG charts, no build step)."""

from __future__ import annotations

import functools
from importlib import resources

# The page only talks to its own origin (GET /metrics) and loads nothing from elsewhere.
DASHBOARD_CSP = ("default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; "
                 "connect-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'none'")


@functools.cache
def dashboard_page() -> bytes:
    return resources.files(__package__).joinpath("dashboard.html").read_bytes()
