"""The :class:`Sink` protocol: where data and state land, whole or not at all.

Keys are S3-style paths (``Raw/TMDB/JSON/2026/11/30/x.json``). Every write is whole or
absent. Writing the same key twice with the same bytes is harmless, which is what makes
a retry after an ambiguous failure (the object landed but the client saw an error) safe:
the retry overwrites the object with identical bytes instead of adding a second one.

Conditional writes (S3's ``If-None-Match: *`` and ``If-Match: <etag>``) keep two writers
apart: ``put(..., if_none_match=True)`` creates a key only if it is absent, ``put(...,
if_match=etag)`` and ``delete(..., if_match=etag)`` act only on the version that was
read. A lost condition raises :class:`~tmdb_ingest.errors.PreconditionFailed`, except
when the object already holds exactly the bytes being written: a retried conditional PUT
whose first attempt landed (the answer was lost) meets its own object and reports 412,
and that is success, not a conflict.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Protocol, runtime_checkable

__all__ = ["Sink", "same_etag"]


def same_etag(a: str, b: str) -> bool:
    """Whether two ETags name the same version (S3 quotes them, but not always)."""
    return a.strip('"') == b.strip('"')


@runtime_checkable
class Sink(Protocol):
    """Storage for data files and run state."""

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        """Write ``body`` at ``key``, whole or not at all, and return its ETag.

        ``if_none_match=True`` writes only if ``key`` does not exist; ``if_match=etag`` only
        if its current ETag is ``etag``. When the condition fails and the object does not
        already hold exactly ``body``, raise PreconditionFailed. Raise SinkError when the
        write cannot be made.
        """
        ...

    async def get(self, key: str) -> bytes | None:
        """Return the object at ``key``, or None when there is none."""
        ...

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        """Return the object at ``key`` and its ETag, or None when there is none."""
        ...

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        """Delete ``key`` (absent is fine); with ``if_match``, only that version of it.

        Raise PreconditionFailed when ``key`` holds another version than ``if_match``.
        """
        ...

    def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        """Yield every key under ``prefix``."""
        ...

    async def check(self) -> None:
        """Raise SinkError unless the sink exists and can be written."""
        ...

    def uri(self, key: str) -> str:
        """A URI for ``key`` that a person can use (s3://... or a path)."""
        ...
