"""Exceptions raised by tmdb_ingest.

Per-movie outcomes (``not_found``, ``failed``) are data in the run's report, never
exceptions. Exceptions are for what stops a run, or stops it from starting::

    TmdbIngestError                  base class of everything raised here
    ├── ConfigError                  bad settings: names the option and the allowed values
    ├── InputError                   movies.csv is unusable (missing column, delimiter, empty),
    │                                or it changed under a run that already started
    ├── RunBusy                      another invocation holds this run and shard (exit 4)
    └── FatalError                   the run cannot go on; what landed is kept (exit 1)
        ├── AuthError                TMDB rejected the key or token (401, code 7 or 10)
        ├── TmdbUnreachable          the first request did not prove TMDB's v3 API: a wrong
        │                            path, no answer, a certificate or a proxy that failed
        ├── SinkError                the bucket or folder is missing, denied, or failing
        │   └── PreconditionFailed   a conditional write lost (the key exists, or changed)
        ├── LeaseLost                this invocation could not keep its lease and stopped
        ├── InternalError            a bug in one of the run's own tasks (an upload, the
        │                            lease renewal): the run stopped, its state saved
        └── IngestFailed             the Lambda handler's one-line report of a fatal stop

``ConfigError`` and ``InputError`` are found before any request (CLI exit code 2);
``FatalError`` happens at run time (exit code 1). No message carries a secret. A
``FatalError`` or ``RunBusy`` raised by a run carries the run's summary so far as
``.summary``. Programming errors (a ``TypeError`` from a wrong argument type) are not
wrapped, except inside a run's background tasks, where one becomes an ``InternalError``
so that the run still saves its state.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tmdb_ingest.summary import Summary

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalError",
    "IngestFailed",
    "InputError",
    "InternalError",
    "LeaseLost",
    "PreconditionFailed",
    "RunBusy",
    "SinkError",
    "TmdbIngestError",
    "TmdbUnreachable",
]


class TmdbIngestError(Exception):
    """Base class of every exception tmdb_ingest raises."""

    summary: Summary | None = None
    """The run's summary up to the stop, when the run had started."""


class ConfigError(TmdbIngestError, ValueError):
    """A setting is invalid. The message names the option and what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class InputError(TmdbIngestError, ValueError):
    """The input catalogue cannot be used. The message names the file and the problem."""


class RunBusy(TmdbIngestError):
    """Another invocation holds the lease of this run and shard; this one did nothing."""

    def __init__(self, message: str, *, holder: str | None = None, until: str | None = None):
        self.holder = holder
        self.until = until
        super().__init__(message)


class FatalError(TmdbIngestError):
    """The run had to stop. Data already landed stays landed; re-running resumes."""


class AuthError(FatalError):
    """TMDB rejected the credentials (HTTP 401)."""

    def __init__(self, status_code: int | None, message: str) -> None:
        self.tmdb_status_code = status_code
        super().__init__(message)


class TmdbUnreachable(FatalError):
    """TMDB's v3 API is not there: ``GET /configuration`` (the first request) got no 200
    with ``images``: a wrong path, no answer, an untrusted certificate, a failing proxy."""


class SinkError(FatalError):
    """The sink (S3 bucket or local folder) refused or kept failing a write or read."""


class PreconditionFailed(SinkError):
    """A conditional write or delete lost: the key already exists, or is not the one read."""


class LeaseLost(FatalError):
    """The lease of this run and shard could not be kept; the invocation stopped writing."""


class InternalError(FatalError):
    """One of the run's own tasks failed unexpectedly (a bug); the run stopped, state saved."""


class IngestFailed(FatalError):
    """The Lambda handler's report of a fatal stop (Step Functions catches it by name).

    The message is one line: the reason, then the summary so far as JSON.
    """
