"""A fault-injecting HTTP proxy in front of moto's S3 server, for the S3 fault tests.

Real S3 answers 503 SlowDown under load, and sometimes a 500 after the object has in
fact been written (the client cannot tell). This proxy reproduces both, per key, on the
first attempt only, and forwards everything else untouched.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import aiohttp
from aiohttp import web

SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message></Error>"
)
INTERNAL = (
    b'<?xml version="1.0" encoding="UTF-8"?><Error><Code>InternalError</Code>'
    b"<Message>We encountered an internal error. Please try again.</Message></Error>"
)
_HOP = {"host", "content-length", "transfer-encoding", "connection"}


class S3FaultProxy:
    """Forwards to ``upstream``; ``decide(method, path, attempt)`` picks a fault or None.

    Faults: ``"slowdown"`` (503 SlowDown, not forwarded), ``"after"`` (forwarded, then
    answered 500 InternalError), ``"denied"`` (403 AccessDenied, not forwarded).
    """

    def __init__(self, upstream: str, decide: Callable[[str, str, int], str | None]) -> None:
        self.upstream = upstream.rstrip("/")
        self.decide = decide
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.injected: Counter[str] = Counter()
        self.url = ""
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None

    async def __aenter__(self) -> S3FaultProxy:
        app = web.Application(client_max_size=64 * 1024**2)
        app.router.add_route("*", "/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        self._session = aiohttp.ClientSession(auto_decompress=False)
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        assert self._session is not None
        body = await request.read()
        key = (request.method, request.path)
        self.attempts[key] += 1
        fault = self.decide(request.method, request.path, self.attempts[key])
        if fault == "slowdown":
            self.injected[fault] += 1
            return web.Response(status=503, body=SLOWDOWN, content_type="application/xml")
        if fault == "denied":
            self.injected[fault] += 1
            denied = SLOWDOWN.replace(b"SlowDown", b"AccessDenied")
            return web.Response(status=403, body=denied, content_type="application/xml")
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP}
        async with self._session.request(
            request.method, self.upstream + request.path_qs, headers=headers, data=body
        ) as upstream:
            payload = await upstream.read()
            # A HEAD answer has no body, so its Content-Length (the object's size) is kept.
            hop = _HOP - {"content-length"} if request.method == "HEAD" else _HOP
            out_headers = {k: v for k, v in upstream.headers.items() if k.lower() not in hop}
            status = upstream.status
        if fault == "after":
            self.injected[fault] += 1
            return web.Response(status=500, body=INTERNAL, content_type="application/xml")
        if request.method == "HEAD":
            return web.Response(status=status, headers=out_headers)
        return web.Response(status=status, body=payload, headers=out_headers)
