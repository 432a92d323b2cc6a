"""Progress display: a one-line bar on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tmdb_ingest.summary import Progress, Snapshot

__all__ = ["LogProgress", "TerminalProgress", "progress_for"]

log = logging.getLogger("tmdb_ingest")


class _Rates:
    """Request rate and ETA counted from the first request, not from the start.

    An invocation can wait before it sends anything (another invocation's lease, up to
    TTL + skew): counted from the start, that wait would lower the rate and stretch the
    ETA. The base is the last snapshot before any request (snapshots come about twice a
    second, so the base is at most half a second early).
    """

    def __init__(self) -> None:
        self.base: Snapshot | None = None

    def line(self, s: Snapshot) -> str:
        if self.base is None or (self.base.requests == 0 and s.requests == 0):
            self.base = s
        elapsed = s.elapsed_s - self.base.elapsed_s
        rate = (s.requests - self.base.requests) / elapsed if elapsed > 0 else 0.0
        return (
            f"{s.completed}/{s.total} fetched {s.fetched} not found {s.not_found} "
            f"failed {s.failed} | {rate:.1f} req/s | 429s {s.throttled} | "
            f"ETA {self._eta(s, elapsed)}"
        )

    def _eta(self, s: Snapshot, elapsed: float) -> str:
        assert self.base is not None
        done = s.completed - self.base.completed
        if elapsed <= 0 or done <= 0 or s.total <= s.completed:
            return "--:--"
        left = int((s.total - s.completed) * elapsed / done)
        return f"{left // 60:02d}:{left % 60:02d}"


class TerminalProgress:
    """Redraws one line on a terminal: a bar, counts, request rate and ETA."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self._rates = _Rates()

    def update(self, snapshot: Snapshot) -> None:
        share = snapshot.completed / snapshot.total if snapshot.total else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {share:6.1%} {self._rates.line(snapshot)}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class LogProgress:
    """Logs a plain progress line every ``every`` seconds (for files, pipes, CloudWatch)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._next = every
        self._rates = _Rates()

    def update(self, snapshot: Snapshot) -> None:
        line = self._rates.line(snapshot)  # every snapshot: the base is the last before requests
        if snapshot.elapsed_s >= self._next:
            self._next = snapshot.elapsed_s + self.every
            log.info("progress %s", line)

    def close(self) -> None:
        return None


@contextmanager
def progress_for(stream: TextIO) -> Iterator[Progress]:
    """A bar when ``stream`` is a terminal, log lines otherwise."""
    progress: TerminalProgress | LogProgress = (
        TerminalProgress(stream) if stream.isatty() else LogProgress()
    )
    try:
        yield progress
    finally:
        progress.close()
