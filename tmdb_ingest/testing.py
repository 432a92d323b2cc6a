"""Test doubles for your own tests: an in-memory sink and a local TMDB on a free port.

Shipped with the package, as httpx ships its mock transport, so that code built on
tmdb_ingest can be tested without S3 or TMDB::

    import asyncio

    from tmdb_ingest import Settings, ingest
    from tmdb_ingest.testing import MemorySink, local_tmdb

    with local_tmdb() as tmdb:
        sink = MemorySink()
        settings = Settings(tmdb_url=tmdb.url, api_key=tmdb.api_key)
        summary = asyncio.run(ingest(["tt0076759"], settings, sink=sink))
        assert summary.done and sink.objects

:class:`MemorySink` keeps objects in a dict and honours S3's conditional writes;
:func:`local_tmdb` serves the project's TMDB emulator (:mod:`tmdb_ingest.emulator`) from a
background thread. Importing this module is cheap: the emulator (aiohttp) is loaded only
when :func:`local_tmdb` is called.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from tmdb_ingest.errors import PreconditionFailed

if TYPE_CHECKING:
    from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorStats, EmulatorThread

__all__ = ["LocalTmdb", "MemorySink", "local_tmdb"]


def _etag(body: bytes) -> str:
    # S3's ETag of a single-part upload: the quoted MD5 of the bytes.
    return '"' + hashlib.md5(body, usedforsecurity=False).hexdigest() + '"'


class MemorySink:
    """A :class:`~tmdb_ingest.land.sinks.Sink` that keeps every object in :attr:`objects`.

    Writes are whole or absent and conditional exactly as on S3: ``put(if_none_match=True)``
    creates only an absent key, ``put(if_match=etag)`` and ``delete(if_match=etag)`` act
    only on that version; a lost condition raises
    :class:`~tmdb_ingest.errors.PreconditionFailed`, except when the key already holds
    exactly the bytes being written (a retry whose first attempt landed). ETags are S3's
    (quoted MD5). A delete of an absent key succeeds, with or without ``if_match``.

    ``latency`` makes each ``put`` take that many seconds on the event loop's clock (free on
    a virtual clock; it lets uploads overlap and pile up as real ones do). :attr:`puts`,
    :attr:`bytes_written` and :attr:`write_times` (loop time of each completed ``put``)
    count what was written.
    """

    def __init__(self, *, latency: float = 0.0) -> None:
        self.objects: dict[str, bytes] = {}
        self.latency = latency
        self.puts = 0
        self.bytes_written = 0
        self.write_times: list[float] = []

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Store ``body`` at ``key`` when the condition holds; return its ETag."""
        if if_none_match and if_match is not None:
            raise ValueError("put: pass if_none_match or if_match, not both")
        if self.latency:
            await asyncio.sleep(self.latency)
        body = bytes(body)
        current = self.objects.get(key)
        if current != body:  # the same bytes again is a retry that already landed
            if if_none_match and current is not None:
                raise PreconditionFailed(f"writing {self.uri(key)}: it exists")
            if if_match is not None and (current is None or not _same(_etag(current), if_match)):
                raise PreconditionFailed(f"writing {self.uri(key)}: it changed")
        self.objects[key] = body
        self.puts += 1
        self.bytes_written += len(body)
        self.write_times.append(asyncio.get_running_loop().time())
        return _etag(body)

    async def get(self, key: str) -> bytes | None:
        """The object at ``key``, or None."""
        return self.objects.get(key)

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """The object at ``key`` and its ETag, or None."""
        body = self.objects.get(key)
        return None if body is None else (body, _etag(body))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Remove ``key`` (absent is fine); with ``if_match``, only that version of it."""
        current = self.objects.get(key)
        if current is None:
            return
        if if_match is not None and not _same(_etag(current), if_match):
            raise PreconditionFailed(f"deleting {self.uri(key)}: it changed")
        del self.objects[key]

    async def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        """Every key under ``prefix``, in order."""
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield key

    async def check(self) -> None:
        """Always there and writable."""
        return None

    def uri(self, key: str) -> str:
        """``memory://{key}``."""
        return f"memory://{key}"


def _same(a: str, b: str) -> bool:
    return a.strip('"') == b.strip('"')


@dataclass(frozen=True)
class LocalTmdb:
    """A running emulator: pass :attr:`url` as ``tmdb_url`` and :attr:`api_key` as ``api_key``
    (or :attr:`access_token` as ``access_token``). :attr:`server` answers questions about
    what it served (``stats``, ``is_missing(id)``, ``expected_body(id)``)."""

    url: str
    api_key: str | None
    access_token: str | None
    server: EmulatorThread

    @property
    def stats(self) -> EmulatorStats:
        """The live request counters."""
        return self.server.stats


@contextlib.contextmanager
def local_tmdb(config: EmulatorConfig | None = None, **changes: Any) -> Iterator[LocalTmdb]:
    """Serve the TMDB emulator on 127.0.0.1 and a free port for the ``with`` block.

    ``config`` (an :class:`~tmdb_ingest.emulator.EmulatorConfig`) and ``changes`` (its
    fields, e.g. ``latency_ms=20, missing_rate=0``) say how it behaves; the defaults accept
    the key ``test-api-key`` and the token ``test-access-token``. The server runs in a
    background thread, so the block may be synchronous or run its own event loop; it stops
    and the thread is joined on exit, also when the block raises.
    """
    from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread

    chosen = replace(config or EmulatorConfig(), **changes)
    with EmulatorThread(chosen) as server:
        yield LocalTmdb(
            url=server.url,
            api_key=chosen.api_key,
            access_token=chosen.access_token,
            server=server,
        )
