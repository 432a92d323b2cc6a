"""An S3 bucket as a :class:`~tmdb_ingest.land.sinks.protocol.Sink`, through aiobotocore.

S3's conditional writes (``If-None-Match: *``, ``If-Match``) keep two writers apart; a
lost condition is checked against the object before it is reported (a retried PUT may
meet its own bytes). Error codes are sorted by :mod:`tmdb_ingest.s3`: a missing bucket
or a denial is final, anything else is tried again a few times.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from typing import Any

from tmdb_ingest.errors import PreconditionFailed, SinkError
from tmdb_ingest.s3 import S3Error, S3Uri, denied_detail, error_code, kind_of

__all__ = ["S3Sink"]

# Codes no retry can mend.
_FINAL = (S3Error.NO_SUCH_KEY, S3Error.NO_SUCH_BUCKET, S3Error.ACCESS_DENIED)


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
                code = error_code(exc)
                if kind_of(code) in _FINAL or attempt == self._attempts:
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
                kind = kind_of(error_code(exc))
                if conditions and (
                    kind is S3Error.CONDITION_FAILED
                    or (if_match and kind is S3Error.NO_SUCH_KEY)  # If-Match on a key that is gone
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
                if kind_of(error_code(exc)) is S3Error.NO_SUCH_KEY:
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
                kind = kind_of(error_code(exc))
                if kind is S3Error.NO_SUCH_KEY:
                    return  # already gone: what a delete wants (and a retried one meets)
                if conditions and kind is S3Error.CONDITION_FAILED:
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
                f"listing {S3Uri(self.bucket, prefix)} failed: {error_code(exc)}"
            ) from None
        except (BotoCoreError, OSError) as exc:
            where = S3Uri(self.bucket, prefix)
            raise SinkError(f"listing {where} failed: {type(exc).__name__}") from None

    async def check(self) -> None:
        from botocore.exceptions import BotoCoreError, ClientError

        try:
            # A one-key listing under the run's own prefix, not HeadBucket: HeadBucket needs
            # s3:ListBucket on the whole bucket, which a least-privilege role does not have.
            await self.client.list_objects_v2(
                Bucket=self.bucket, Prefix=self._check_prefix, MaxKeys=1
            )
        except ClientError as exc:
            code = error_code(exc)
            kind = kind_of(code)
            if kind in (S3Error.NO_SUCH_BUCKET, S3Error.NO_SUCH_KEY):
                raise SinkError(f"bucket {self.bucket!r} does not exist") from None
            if kind is S3Error.ACCESS_DENIED:
                raise SinkError(
                    f"access denied to bucket {self.bucket!r}{denied_detail(code)}"
                ) from None
            raise SinkError(f"cannot reach bucket {self.bucket!r}: {code}") from None
        except (BotoCoreError, OSError) as exc:
            # no credentials, an unreachable endpoint, ...: botocore's messages hold no secret
            raise SinkError(f"cannot reach bucket {self.bucket!r}: {exc}") from None

    def uri(self, key: str) -> str:
        return str(S3Uri(self.bucket, key))
