"""An ASGI middleware of a user's own: upper-cases every body message it passes on, so a test
can tell whether a message went through the app's middleware stack or around it."""


class UpperBodies:
    def __init__(self, inner):
        self.inner = inner

    async def __call__(self, scope, receive, send):
        async def upper(message):
            if message["type"] == "http.response.body":
                message = {**message, "body": message["body"].upper()}
            await send(message)
        await self.inner(scope, receive, upper)
