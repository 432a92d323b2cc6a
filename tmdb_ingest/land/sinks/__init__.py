"""Where data and state land: the :class:`Sink` protocol (:mod:`.protocol`), a local
folder (:mod:`.local`) and S3 (:mod:`.s3`). The fenced sink, which writes only while the
run's lease is held, is the lease's (:mod:`tmdb_ingest.run.lease`)."""

from tmdb_ingest.land.sinks.local import LocalSink
from tmdb_ingest.land.sinks.protocol import Sink, same_etag
from tmdb_ingest.land.sinks.s3 import S3Sink

__all__ = ["LocalSink", "S3Sink", "Sink", "same_etag"]
