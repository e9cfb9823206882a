"""The admin CLI's code run in the test process, for the fuzzer's keys and tenants."""

from __future__ import annotations

import io

from function_app.admin import cli

KEYS_TABLE = "fuzzkeys"


class Admin:
    """The admin CLI's code in this process, against the fuzz Azurite."""

    def __init__(self, connection: str):
        self.environ = {"RATE_LIMIT_STORAGE_CONNECTION": connection,
                        "GATEWAY_KEYS_TABLE": KEYS_TABLE}

    async def run(self, *argv: str) -> str:
        out = io.StringIO()
        code = await cli.main(list(argv), self.environ, out=out)
        assert code == 0, (argv, out.getvalue())
        return out.getvalue()

    async def key(self, tenant: str, *limits: str) -> str:
        return (await self.run("keys", "create", "--tenant", tenant, "--name", "fuzz",
                               *limits)).splitlines()[-1]
