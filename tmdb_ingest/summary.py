"""What one invocation did (:class:`Summary`), and progress so far (:class:`Snapshot`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any, Protocol

import orjson

__all__ = ["Progress", "Snapshot", "Summary", "marked", "one_line"]


@dataclass(frozen=True, slots=True)
class Summary:
    """What one invocation did. ``done``: every selected id is in a data file or the report.

    ``busy`` and ``error`` apply only sometimes: ``busy`` when another invocation held the
    run and this one did nothing, ``error`` (one line, no secret) when the run stopped on
    a fatal error. ``retried_failed``: ids reported ``failed`` by an earlier invocation
    that this one tried again. ``rate_found`` (only with ``rate="auto"``): the pace the
    limiter settled on, requests per second, at the end.
    that this one tried again. ``new`` (``--new-only`` runs): of the selected ids, those
    the lake did not hold before this run (the others count as ``skipped``).
    """

    run_id: str
    shard: str
    selected: int
    skipped: int
    fetched: int
    not_found: int
    failed: int
    batches: int
    requests: int
    retries: int
    throttled: int
    elapsed_s: float
    done: bool
    report: str | None
    retried_failed: int = 0
    busy: bool = False
    error: str | None = None
    rate_found: float | None = None
    new: int | None = None  # --new-only: selected ids that no earlier run had landed

    def as_dict(self) -> dict[str, Any]:
        """The summary as a JSON-serialisable dict, fields in the documented order.

        ``retried_failed``, ``busy``, ``error`` and ``rate_found`` are present only when
        they apply.
        """
        data = asdict(self)
        if not self.retried_failed:
            del data["retried_failed"]
        if not self.busy:
            del data["busy"]
        if self.error is None:
            del data["error"]
        if self.rate_found is None:
            del data["rate_found"]
        if self.new is None:
            del data["new"]
        return data

    def to_json(self) -> str:
        """The summary as one line of JSON."""
        return orjson.dumps(self.as_dict()).decode()

    def to_text(self) -> str:
        """The summary as aligned ``field: value`` lines, for people."""
        return "\n".join(f"{key:>14}: {value}" for key, value in self.as_dict().items())


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Progress so far, for progress bars and log lines."""

    total: int
    fetched: int
    not_found: int
    failed: int
    requests: int
    throttled: int
    elapsed_s: float

    @property
    def completed(self) -> int:
        return self.fetched + self.not_found + self.failed


class Progress(Protocol):
    """Receives a :class:`Snapshot` about twice a second."""

    def update(self, snapshot: Snapshot) -> None: ...


def marked(summary: Summary, exc: BaseException, *, reason: str | None = None) -> Summary:
    """``summary`` of an invocation that ``exc`` stopped: ``busy`` for RunBusy, else
    ``error`` (``reason``, default ``exc``'s message on one line, unless already set).

    The one place that sets them: the run when it raises, the CLI and the Lambda handler
    when they pass a summary on (applying it twice changes nothing).
    """
    from tmdb_ingest.errors import RunBusy

    if isinstance(exc, RunBusy):
        return replace(summary, busy=True, done=False)
    return replace(summary, error=summary.error or reason or one_line(exc), done=False)


def one_line(exc: BaseException) -> str:
    """An exception's message on one line (a summary's ``error``), or its type's name."""
    return " ".join(str(exc).split()) or type(exc).__name__
