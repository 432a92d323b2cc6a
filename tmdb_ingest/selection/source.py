"""movies.csv in S3: its address, and a local copy to scan.

:func:`csv_object` parses an ``s3://bucket/key`` source (an
:class:`~tmdb_ingest.errors.InputError` when it names no object); :func:`downloaded`
streams the object to a temporary file for as long as the caller needs it (a file, not
memory: the full catalogue is ~140 MB, and in Lambda this lands in /tmp, 512 MB by
default), and deletes it afterwards, after a failure too. S3 problems become an
``InputError`` naming the URI (:func:`tmdb_ingest.s3.input_message`). aiobotocore is
imported on first use.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from tmdb_ingest.errors import InputError
from tmdb_ingest.s3 import S3Uri, input_message

__all__ = ["csv_object", "downloaded"]

_DOWNLOAD_CHUNK = 1024 * 1024


def csv_object(uri: str) -> S3Uri:
    """The bucket and key of ``uri``; InputError when it names no S3 object."""
    try:
        return S3Uri.parse(uri)
    except ValueError as exc:
        raise InputError(str(exc)) from None


@contextlib.asynccontextmanager
async def downloaded(uri: str, endpoint_url: str | None) -> AsyncIterator[Path]:
    """A temporary local copy of the S3 object at ``uri``, deleted on the way out."""
    where = csv_object(uri)
    fd, name = tempfile.mkstemp(prefix="tmdb-ingest-", suffix=".csv")
    os.close(fd)
    temp = Path(name)
    try:
        await _download(where, uri, temp, endpoint_url)
        yield temp
    finally:
        await asyncio.to_thread(temp.unlink, missing_ok=True)


async def _download(where: S3Uri, uri: str, dest: Path, endpoint_url: str | None) -> None:
    """Stream the object into ``dest``; S3 problems become ``InputError``."""
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        async with get_session().create_client("s3", endpoint_url=endpoint_url) as client:
            response = await client.get_object(Bucket=where.bucket, Key=where.key)
            body = response["Body"]
            # os.open, not open(): the descriptor is only written through to_thread, so
            # the event loop never blocks on the disk.
            fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                async with body:
                    async for chunk in body.iter_chunks(_DOWNLOAD_CHUNK):
                        await asyncio.to_thread(os.write, fd, chunk)
            finally:
                os.close(fd)
    except ClientError as exc:
        raise InputError(input_message(uri, exc)) from None
    except BotoCoreError as exc:
        raise InputError(f"{uri}: cannot read from S3: {exc}") from None
    except OSError as exc:
        raise InputError(f"{uri}: download failed: {exc.strerror or exc}") from None
