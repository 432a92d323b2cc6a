"""A local folder as a :class:`~tmdb_ingest.land.sinks.protocol.Sink` (``--out-dir``).

Writes go to a temporary file that is then renamed (readers see the old file or the new,
never half); the conditional writes S3 has are emulated: creating is ``os.link`` (atomic
and exclusive), compare-and-swap and conditional deletes hold an ``flock`` on the folder.
ETags are a hash of the content.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import random
from collections.abc import AsyncIterator
from pathlib import Path

from tmdb_ingest.errors import PreconditionFailed, SinkError
from tmdb_ingest.land.sinks.protocol import same_etag

__all__ = ["LocalSink"]


class LocalSink:
    """A folder laid out like the bucket would be (``--out-dir``)."""

    def __init__(self, root: str | os.PathLike[str]) -> None:
        self.root = Path(root)

    async def __aenter__(self) -> LocalSink:
        return self  # nothing to open: entered like S3Sink so callers need not tell them apart

    async def __aexit__(self, *exc_info: object) -> None:
        return None

    def _path(self, key: str) -> Path:
        parts = [p for p in key.split("/") if p]
        if not parts or any(p in (".", "..") for p in parts):
            raise SinkError(f"invalid key {key!r}")
        return self.root.joinpath(*parts)

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        if if_none_match and if_match is not None:
            raise ValueError("put: pass if_none_match or if_match, not both")
        path = self._path(key)
        try:
            await asyncio.to_thread(self._write, path, body, if_none_match, if_match)
        except OSError as exc:
            raise SinkError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None
        return _etag(body)

    @staticmethod
    def _write(path: Path, body: bytes, if_none_match: bool, if_match: str | None) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(body)
            if if_none_match:
                try:
                    os.link(tmp, path)  # atomic and exclusive: fails if the name exists
                except FileExistsError:
                    if _read_or_none(path) != body:
                        raise PreconditionFailed(f"cannot create {path}: it exists") from None
            elif if_match is not None:
                with _locked(path.parent):
                    current = _read_or_none(path)
                    if current is None:
                        raise PreconditionFailed(f"cannot replace {path}: it does not exist")
                    if not same_etag(_etag(current), if_match):
                        if current == body:
                            return
                        raise PreconditionFailed(f"cannot replace {path}: it changed")
                    os.replace(tmp, path)
            else:
                os.replace(tmp, path)  # atomic: readers see the old file or the new, never half
        finally:
            tmp.unlink(missing_ok=True)

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SinkError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        body = await self.get(key)
        return None if body is None else (body, _etag(body))

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(self._delete, path, if_match)
        except OSError as exc:
            raise SinkError(f"cannot delete {path}: {exc.strerror or type(exc).__name__}") from None

    @staticmethod
    def _delete(path: Path, if_match: str | None) -> None:
        if if_match is None:
            path.unlink(missing_ok=True)
            return
        if not path.parent.is_dir():
            return
        with _locked(path.parent):
            current = _read_or_none(path)
            if current is None:
                return
            if not same_etag(_etag(current), if_match):
                raise PreconditionFailed(f"cannot delete {path}: it changed")
            path.unlink()

    async def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        keys = await asyncio.to_thread(self._list, prefix)
        for key in keys:
            yield key

    def _list(self, prefix: str) -> list[str]:
        # Walk from the deepest folder the prefix names, then filter by the full prefix.
        folder = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        base = self.root.joinpath(*[p for p in folder.split("/") if p])
        if not base.is_dir():
            return []
        keys = []
        for dirpath, _dirs, files in os.walk(base):
            for name in files:
                if name.startswith(".") and name.endswith(".tmp"):
                    continue
                key = Path(dirpath, name).relative_to(self.root).as_posix()
                if key.startswith(prefix):
                    keys.append(key)
        return sorted(keys)

    async def check(self) -> None:
        try:
            await asyncio.to_thread(self.root.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            raise SinkError(
                f"cannot create {self.root}: {exc.strerror or type(exc).__name__}"
            ) from None
        if not os.access(self.root, os.W_OK):
            raise SinkError(f"cannot write to {self.root}: permission denied")

    def uri(self, key: str) -> str:
        return str(self._path(key))


def _etag(body: bytes) -> str:
    """The local sink's ETag: a hash of the content, quoted like S3's."""
    return '"' + hashlib.blake2b(body, digest_size=16).hexdigest() + '"'


def _read_or_none(path: Path) -> bytes | None:
    try:
        return path.read_bytes()
    except FileNotFoundError:
        return None


class _locked:
    """An exclusive flock on a folder: compare-and-swap in it is one step for every process.

    Creating a file (``os.link``) needs no lock, being atomic on its own; replacing or
    deleting one after comparing its ETag does, or two writers could both compare equal.
    """

    def __init__(self, folder: Path) -> None:
        self._folder = folder
        self._fd = -1

    def __enter__(self) -> None:
        self._fd = os.open(self._folder, os.O_RDONLY | os.O_DIRECTORY)
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX)
        except BaseException:
            os.close(self._fd)
            raise

    def __exit__(self, *exc_info: object) -> None:
        os.close(self._fd)  # closing the descriptor releases the lock
