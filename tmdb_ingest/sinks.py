"""Where data and state land: the :class:`Sink` protocol, S3 (aiobotocore) and a local folder.

Keys are S3-style paths (``Raw/TMDB/JSON/2026/11/30/x.json``). Every write is whole or
absent: an S3 PUT is atomic, and the local sink writes a temporary file and renames it.
Writing the same key twice with the same bytes is harmless, which is what makes a retry
after an ambiguous failure (the object landed but the client saw an error) safe: the
retry overwrites the object with identical bytes instead of adding a second one.
"""

from __future__ import annotations

import asyncio
import os
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from tmdb_ingest.errors import SinkError

__all__ = ["LocalSink", "S3Sink", "Sink"]


@runtime_checkable
class Sink(Protocol):
    """Storage for data files and run state."""

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        """Write ``body`` at ``key``, whole or not at all. Raise SinkError when it cannot."""
        ...

    async def get(self, key: str) -> bytes | None:
        """Return the object at ``key``, or None when there is none."""
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

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        path = self._path(key)
        try:
            await asyncio.to_thread(self._write, path, body)
        except OSError as exc:
            raise SinkError(f"cannot write {path}: {exc.strerror or type(exc).__name__}") from None

    @staticmethod
    def _write(path: Path, body: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.{os.getpid()}.{random.getrandbits(32):08x}.tmp")
        try:
            with open(tmp, "wb") as f:
                f.write(body)
            os.replace(tmp, path)  # atomic: readers see the old file or the new, never half
        finally:
            if tmp.exists():
                tmp.unlink()

    async def get(self, key: str) -> bytes | None:
        path = self._path(key)
        try:
            return await asyncio.to_thread(path.read_bytes)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise SinkError(f"cannot read {path}: {exc.strerror or type(exc).__name__}") from None

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

    async def put(self, key: str, body: bytes, *, content_type: str = "application/json") -> None:
        await self._with_retries(
            f"writing s3://{self.bucket}/{key}",
            lambda: self.client.put_object(
                Bucket=self.bucket, Key=key, Body=body, ContentType=content_type
            ),
        )

    async def get(self, key: str) -> bytes | None:
        from botocore.exceptions import ClientError

        async def read() -> bytes | None:
            try:
                response = await self.client.get_object(Bucket=self.bucket, Key=key)
            except ClientError as exc:
                if _error_code(exc) in ("NoSuchKey", "404", "HTTP 404"):
                    return None
                raise
            async with response["Body"] as stream:
                data: bytes = await stream.read()
                return data

        result: bytes | None = await self._with_retries(f"reading s3://{self.bucket}/{key}", read)
        return result

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
