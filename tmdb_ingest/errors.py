"""Exceptions raised by tmdb_ingest.

Per-movie outcomes (``not_found``, ``failed``) are data in the run's report, never
exceptions. Exceptions are for what stops a run, or stops it from starting::

    TmdbIngestError                  base class of everything raised here
    ├── ConfigError                  bad settings: names the field and the allowed values
    ├── InputError                   movies.csv is unusable (missing column, delimiter, empty)
    └── FatalError                   the run cannot go on; what landed is kept
        ├── AuthError                TMDB rejected the key or token (401, code 7 or 10)
        └── SinkError                the bucket or folder is missing, denied, or failing

``ConfigError`` and ``InputError`` are found before any request (CLI exit code 2);
``FatalError`` happens at run time (exit code 1). No message carries a secret.
"""

from __future__ import annotations

__all__ = [
    "AuthError",
    "ConfigError",
    "FatalError",
    "InputError",
    "SinkError",
    "TmdbIngestError",
]


class TmdbIngestError(Exception):
    """Base class of every exception tmdb_ingest raises."""


class ConfigError(TmdbIngestError, ValueError):
    """A setting is invalid. The message names the field and what is allowed."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(f"{field}: {message}")


class InputError(TmdbIngestError, ValueError):
    """The input catalogue cannot be used. The message names the file and the problem."""


class FatalError(TmdbIngestError):
    """The run had to stop. Data already landed stays landed; re-running resumes.

    ``summary`` holds the run's summary up to the stop, when the run had started.
    """

    summary: object | None = None


class AuthError(FatalError):
    """TMDB rejected the credentials (HTTP 401)."""

    def __init__(self, status_code: int | None, message: str) -> None:
        self.tmdb_status_code = status_code
        super().__init__(message)


class SinkError(FatalError):
    """The sink (S3 bucket or local folder) refused or kept failing a write or read."""
