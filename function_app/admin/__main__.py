"""Entry point: storage from the app's own settings (environment), then the command."""

from __future__ import annotations

import asyncio
import os
import sys

from .cli import main

if __name__ == "__main__":
    sys.exit(asyncio.run(main(sys.argv[1:], os.environ)))
