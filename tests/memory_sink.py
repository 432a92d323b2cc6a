"""An in-memory sink for tests on virtual time: each write takes ``latency`` loop seconds."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import AsyncIterator

from tmdb_ingest.errors import PreconditionFailed


def _etag(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


class MemorySink:
    """A dict of key -> bytes behind the Sink protocol; writes are whole or absent."""

    def __init__(self, latency: float = 0.0) -> None:
        self.objects: dict[str, bytes] = {}
        self.latency = latency
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
        if self.latency:
            await asyncio.sleep(self.latency)
        old = self.objects.get(key)
        if if_none_match and old is not None and old != body:
            raise PreconditionFailed(f"{key} exists")
        if if_match is not None and (old is None or _etag(old) != if_match):
            raise PreconditionFailed(f"{key} changed")
        self.objects[key] = bytes(body)
        self.write_times.append(asyncio.get_running_loop().time())
        return _etag(body)

    async def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        body = self.objects.get(key)
        return None if body is None else (body, _etag(body))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        old = self.objects.get(key)
        if if_match is not None and (old is None or _etag(old) != if_match):
            raise PreconditionFailed(f"{key} changed")
        self.objects.pop(key, None)

    async def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield key

    async def check(self) -> None:
        return None

    def uri(self, key: str) -> str:
        return f"memory://{key}"
