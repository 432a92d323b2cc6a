"""Where data and state land: the :class:`Sink` protocol, S3 (aiobotocore) and a local folder.

Keys are S3-style paths (``Raw/TMDB/JSON/2026/11/30/x.json``). Every write is whole or
absent: an S3 PUT is atomic, and the local sink writes a temporary file and renames it.
Writing the same key twice with the same bytes is harmless, which is what makes a retry
after an ambiguous failure (the object landed but the client saw an error) safe: the
retry overwrites the object with identical bytes instead of adding a second one.

Conditional writes (S3's ``If-None-Match: *`` and ``If-Match: <etag>``, emulated by the
local sink) keep two writers apart: ``put(..., if_none_match=True)`` creates a key only if
it is absent, ``put(..., if_match=etag)`` and ``delete(..., if_match=etag)`` act only on
the version that was read. A lost condition raises :class:`PreconditionFailed`, except
when the object already holds exactly the bytes being written: a retried conditional PUT
whose first attempt landed (the answer was lost) meets its own object and reports 412,
and that is success, not a conflict.
"""

from __future__ import annotations

import asyncio
import fcntl
import hashlib
import os
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tmdb_ingest.errors import PreconditionFailed, SinkError

__all__ = ["LocalSink", "S3Sink", "Sink", "same_etag"]


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


def _error_code(exc: Exception) -> str:
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return f"HTTP {status}"
    return type(exc).__name__


_FINAL_CODES = {
    "NoSuchBucket",
    "AccessDenied",
    "AllAccessDisabled",
    "InvalidAccessKeyId",
    "SignatureDoesNotMatch",
    "InvalidBucketName",
    "403",
    "404",
    "HTTP 403",
    "HTTP 404",
}

# What S3 answers when a condition fails: 412, or 404 for If-Match on a key that is gone.
_CONDITION_CODES = {"PreconditionFailed", "412", "HTTP 412"}
_MISSING_CODES = {"NoSuchKey", "404", "HTTP 404"}


class _ConditionLost(Exception):
    """Internal: S3 refused a conditional request (passes through the retry loop)."""


class S3Sink:
    """An S3 bucket, through one aiobotocore client per run.

    Open with ``async with S3Sink(bucket, ...) as sink`` inside the running loop. botocore's
    "standard" retry mode retries 5xx, SlowDown and connection errors; on top of it each
    write is tried again a few times with backoff, because botocore's retry quota can run
    dry during a long burst of errors. ``client`` can be injected (it is then not closed).
    """

    def __init__(
        self,
        bucket: str,
        *,
        endpoint_url: str | None = None,
        region_name: str | None = None,
        max_pool_connections: int = 10,
        client: Any = None,
        attempts: int = 4,
        check_prefix: str = "",
    ) -> None:
        self.bucket = bucket
        self._check_prefix = check_prefix
        self._endpoint_url = endpoint_url
        self._region = region_name
        self._pool = max_pool_connections
        self._client = client
        self._attempts = attempts
        self._stack: AsyncExitStack | None = None

    async def __aenter__(self) -> S3Sink:
        if self._client is None:
            from aiobotocore.config import AioConfig
            from aiobotocore.session import get_session

            config = AioConfig(
                max_pool_connections=self._pool,
                retries={"mode": "standard", "total_max_attempts": 6},
                connect_timeout=10,
                read_timeout=60,
            )
            self._stack = AsyncExitStack()
            self._client = await self._stack.enter_async_context(
                get_session().create_client(
                    "s3", endpoint_url=self._endpoint_url, region_name=self._region, config=config
                )
            )
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._stack is not None:
            await self._stack.aclose()
            self._stack = None
            self._client = None

    @property
    def endpoint_url(self) -> str | None:
        """The S3 endpoint this sink talks to (None: AWS's own)."""
        return self._endpoint_url

    @property
    def client(self) -> Any:
        if self._client is None:
            raise RuntimeError("use `async with S3Sink(...)` before calling it")
        return self._client

    async def _with_retries(self, what: str, call: Any) -> Any:
        from botocore.exceptions import BotoCoreError, ClientError

        for attempt in range(1, self._attempts + 1):
            try:
                return await call()
            except ClientError as exc:
                code = _error_code(exc)
                if code in _FINAL_CODES or attempt == self._attempts:
                    raise SinkError(f"{what} failed: {code}") from None
            except (TimeoutError, BotoCoreError, OSError) as exc:
                if attempt == self._attempts:
                    raise SinkError(f"{what} failed: {type(exc).__name__}") from None
            await asyncio.sleep(random.uniform(0.5, 1.0) * 2 ** (attempt - 1))
        raise AssertionError("unreachable")

    async def put(
        self,
        key: str,
        body: bytes,
        *,
        content_type: str = "application/json",
        if_none_match: bool = False,
        if_match: str | None = None,
    ) -> str:
        from botocore.exceptions import ClientError

        if if_none_match and if_match is not None:
            raise ValueError("put: pass if_none_match or if_match, not both")
        conditions: dict[str, str] = {}
        if if_none_match:
            conditions["IfNoneMatch"] = "*"
        if if_match is not None:
            conditions["IfMatch"] = if_match

        async def write() -> str:
            try:
                response = await self.client.put_object(
                    Bucket=self.bucket, Key=key, Body=body, ContentType=content_type, **conditions
                )
            except ClientError as exc:
                code = _error_code(exc)
                if conditions and (
                    code in _CONDITION_CODES or (if_match and code in _MISSING_CODES)
                ):
                    raise _ConditionLost from None
                raise
            return str(response["ETag"])

        try:
            etag: str = await self._with_retries(f"writing {self.uri(key)}", write)
            return etag
        except _ConditionLost:
            pass
        # botocore or the loop above may have retried a PUT that had in fact landed (a 500
        # or a lost connection after the write): then the key holds our own bytes.
        current = await self.get_with_etag(key)
        if current is not None and current[0] == body:
            return current[1]
        why = "it exists" if if_none_match else "it changed"
        raise PreconditionFailed(f"writing {self.uri(key)}: {why}")

    async def get(self, key: str) -> bytes | None:
        found = await self.get_with_etag(key)
        return None if found is None else found[0]

    async def get_with_etag(self, key: str) -> tuple[bytes, str] | None:
        from botocore.exceptions import ClientError

        async def read() -> tuple[bytes, str] | None:
            try:
                response = await self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in _MISSING_CODES:
                    return None
                raise
            async with response["Body"] as stream:
                data: bytes = await stream.read()
                return data, str(response["ETag"])

        result: tuple[bytes, str] | None = await self._with_retries(
            f"reading {self.uri(key)}", read
        )
        return result

    async def delete(self, key: str, *, if_match: str | None = None) -> None:
        from botocore.exceptions import ClientError

        conditions = {"IfMatch": if_match} if if_match is not None else {}

        async def remove() -> None:
            try:
                await self.client.delete_object(Bucket=self.bucket, Key=key, **conditions)
            except ClientError as exc:
                code = _error_code(exc)
                if code in _MISSING_CODES:
                    return  # already gone: what a delete wants (and a retried one meets)
                if conditions and code in _CONDITION_CODES:
                    raise _ConditionLost from None
                raise

        try:
            await self._with_retries(f"deleting {self.uri(key)}", remove)
        except _ConditionLost:
            # Unlike a PUT, a lost condition here is not resolved by reading: the caller
            # knows whose object it was (the lease re-reads its token).
            raise PreconditionFailed(f"deleting {self.uri(key)}: it changed") from None

    async def iter_keys(self, prefix: str) -> AsyncIterator[str]:
        from botocore.exceptions import BotoCoreError, ClientError

        paginator = self.client.get_paginator("list_objects_v2")
        try:
            async for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                for item in page.get("Contents", []):
                    yield item["Key"]
        except ClientError as exc:
            raise SinkError(
                f"listing s3://{self.bucket}/{prefix} failed: {_error_code(exc)}"
            ) from None
        except (BotoCoreError, OSError) as exc:
            what = f"s3://{self.bucket}/{prefix}"
            raise SinkError(f"listing {what} failed: {type(exc).__name__}") from None

    async def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # A one-key listing under the run's own prefix, not HeadBucket: HeadBucket needs
            # s3:ListBucket on the whole bucket, which a least-privilege role does not have.
            await self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._check_prefix, MaxKeys=1
            )
        except ClientError as exc:
            code = _error_code(exc)
            if code in ("404", "NoSuchBucket", "HTTP 404"):
                raise SinkError(f"bucket {self.bucket!r} does not exist") from None
            if code in ("403", "AccessDenied", "HTTP 403"):
                raise SinkError(f"access denied to bucket {self.bucket!r}") from None
            raise SinkError(f"cannot reach bucket {self.bucket!r}: {code}") from None
        except (BotoCoreError, OSError) as exc:
            # no credentials, an unreachable endpoint, ...: botocore's messages hold no secret
            raise SinkError(f"cannot reach bucket {self.bucket!r}: {exc}") from None

    def uri(self, key: str) -> str:
        return f"s3://{self.bucket}/{key}"
