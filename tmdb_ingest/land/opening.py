"""The sink the settings name, built in one place for runs and for ``tmdb-ingest status``."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tmdb_ingest.land.sinks import LocalSink, S3Sink
from tmdb_ingest.run.layout import LakeLayout

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Settings

__all__ = ["open_sink"]


def open_sink(settings: Settings) -> S3Sink | LocalSink:
    """The sink ``settings`` name (``bucket`` or ``out_dir``), to be entered with ``async with``.

    Raises ConfigError unless exactly one is named. Building it touches nothing: a local
    folder is created by the first write, an S3 client opened by ``async with``; the S3
    sink's ``check()`` proves it can write under the state root.
    """
    settings.require_sink()
    if settings.bucket is not None:
        lake = LakeLayout.of(settings.prefix, settings.state_prefix)
        return S3Sink(
            settings.bucket,
            check_prefix=f"{lake.state_root}/",
            endpoint_url=settings.s3_endpoint_url,
            max_pool_connections=settings.upload_concurrency * 2 + 4,
        )
    assert settings.out_dir is not None
    return LocalSink(settings.out_dir)
