"""An in-memory sink for tests on virtual time: each write takes ``latency`` loop seconds."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator


class MemorySink:
    """A dict of key -> bytes behind the Sink protocol; writes are whole or absent."""

    def __init__(self, latency: float = 0.0) -> None:
        self.objects: dict[str, bytes] = {}
        self.latency = latency
        self.write_times: list[float] = []

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        if self.latency:
            await asyncio.sleep(self.latency)
        self.objects[key] = bytes(body)
        self.write_times.append(asyncio.get_running_loop().time())

    async def get(self, key: str) -> bytes | None:
        return self.objects.get(key)

    async def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        for key in sorted(self.objects):
            if key.startswith(prefix):
                yield key

    async def check(self) -> None:
        return None

    def uri(self, key: str) -> str:
        return f"memory://{key}"
