"""A small HTTP forward proxy on loopback: CONNECT tunnels and absolute-URI GETs, counted.

What a corporate proxy or a VPC's egress proxy does, enough for a client to go through it:

- ``CONNECT host:port``: opens a TCP connection to the target and pipes bytes both ways
  (TLS passes through untouched; the proxy sees the target, never the request);
- ``GET http://host:port/path``: forwards one request in origin form with
  ``Connection: close`` and pipes the answer back, so that every request is counted.

Targets are resolved through ``hosts`` first (a name only this proxy knows makes a server
reachable only through it), then by the system. ``credentials`` makes it answer 407 to
any request without that ``Proxy-Authorization``; a target it cannot reach gets 502.
Start with ``async with ForwardProxy() as proxy`` (or ``start``/``stop`` from a
:class:`ProxyThread`); everything it opened is closed on exit.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import threading
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self
from urllib.parse import urlsplit

_HEAD_LIMIT = 64 * 1024


@dataclass
class ProxyLog:
    """What went through: CONNECT targets, forwarded GETs (URL without query), refusals."""

    connects: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    refused: list[int] = field(default_factory=list)  # statuses the proxy answered itself

    @property
    def targets(self) -> set[str]:
        """Every ``host:port`` the proxy was asked to reach."""
        hosts = {urlsplit(url).netloc for url in self.requests}
        return hosts | set(self.connects)


class ForwardProxy:
    """The proxy on ``127.0.0.1`` and a free port; see the module's docstring."""

    def __init__(
        self,
        *,
        hosts: dict[str, str] | None = None,
        credentials: tuple[str, str] | None = None,
    ) -> None:
        self.hosts = dict(hosts or {})
        self.credentials = credentials
        self.log = ProxyLog()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self.port = 0

    @property
    def url(self) -> str:
        """``http://127.0.0.1:PORT``, what HTTPS_PROXY/HTTP_PROXY name."""
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = int(self._server.sockets[0].getsockname()[1])

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    # -- one client connection ----------------------------------------------------------

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._tasks.add(task)
        try:
            await self._serve(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            pass
        finally:
            self._tasks.discard(task)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        head = await reader.readuntil(b"\r\n\r\n")
        if len(head) > _HEAD_LIMIT:
            return
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, version = request_line.split(" ", 2)
        headers = [line for line in header_lines if line]
        if not self._authorised(headers):
            self.log.refused.append(407)
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n'
                b"Connection: close\r\n\r\n"
            )
            await writer.drain()
            return
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            self.log.connects.append(target)
            upstream = await self._open(host, int(port), writer)
            if upstream is None:
                return
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await self._pipe(reader, writer, *upstream)
            return
        parts = urlsplit(target)
        if parts.scheme != "http" or not parts.hostname:
            self.log.refused.append(400)
            writer.write(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            return
        self.log.requests.append(f"http://{parts.netloc}{parts.path}")
        upstream = await self._open(parts.hostname, parts.port or 80, writer)
        if upstream is None:
            return
        up_reader, up_writer = upstream
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        kept = [
            line
            for line in headers
            if line.split(":", 1)[0].strip().lower()
            not in ("proxy-authorization", "proxy-connection", "connection", "keep-alive")
        ]
        forwarded = "\r\n".join([f"{method} {path} {version}", *kept, "Connection: close"])
        up_writer.write(forwarded.encode("latin-1") + b"\r\n\r\n")
        await up_writer.drain()
        await self._pipe(reader, writer, up_reader, up_writer)

    def _authorised(self, headers: list[str]) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        wanted = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()
        for line in headers:
            name, _, value = line.partition(":")
            if name.strip().lower() == "proxy-authorization" and value.strip() == wanted:
                return True
        return False

    async def _open(
        self, host: str, port: int, writer: asyncio.StreamWriter
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        try:
            return await asyncio.open_connection(self.hosts.get(host, host), port)
        except OSError:
            self.log.refused.append(502)
            writer.write(
                b"HTTP/1.1 502 Bad Gateway\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            )
            await writer.drain()
            return None

    async def _pipe(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        async def copy(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            try:
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            except ConnectionError:
                pass
            finally:
                with contextlib.suppress(OSError):
                    if dst.can_write_eof():
                        dst.write_eof()

        try:
            # The answer's end (the server closes: Connection: close) ends the exchange.
            upward = asyncio.ensure_future(copy(reader, up_writer))
            await copy(up_reader, writer)
            upward.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await upward
        finally:
            up_writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await up_writer.wait_closed()


class ProxyThread:
    """A :class:`ForwardProxy` served from a background thread, for subprocess tests."""

    def __init__(self, **kwargs: object) -> None:
        self.proxy = ForwardProxy(**kwargs)  # type: ignore[arg-type]
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return self.proxy.url

    @property
    def log(self) -> ProxyLog:
        return self.proxy.log

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=asyncio.run, args=(self._serve(),), daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the forward proxy did not start")
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stopping is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)
        if self._thread is not None:
            self._thread.join(10)

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        await self.proxy.start()
        self._ready.set()
        try:
            await self._stopping.wait()
        finally:
            await self.proxy.stop()
