"""Fencing: a sink whose writes happen only while a run's lease is held."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING

from tmdb_ingest.land.sinks import Sink

if TYPE_CHECKING:
    from tmdb_ingest.run.lease import Lease

__all__ = ["FencedSink"]


class FencedSink:
    """A :class:`Sink` whose writes happen only while ``lease`` is held.

    ``put`` and ``delete`` raise LeaseLost once the lease is lost or its ``valid_until``
    has passed, and are cancelled when that happens mid-write. Reads pass through.
    """

    def __init__(self, sink: Sink, lease: Lease) -> None:
        self.sink = sink
        self.lease = lease

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        return await self.lease.fenced(
            lambda: self.sink.put(
                key,
                body,
                content_type=content_type,
                if_none_match=if_none_match,
                if_match=if_match,
            )
        )

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        await self.lease.fenced(lambda: self.sink.delete(key, if_match=if_match))

    async def get(self, key: str) -> bytes | None:
        return await self.sink.get(key)

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        return await self.sink.get_with_etag(key)

    def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        return self.sink.iter_keys(prefix)

    async def check(self) -> None:
        await self.sink.check()

    def uri(self, key: str) -> str:
        return self.sink.uri(key)
