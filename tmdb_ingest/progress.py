"""Progress display: a one-line bar on a terminal, plain periodic log lines otherwise."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from tmdb_ingest.summary import Progress, Snapshot

__all__ = ["LogProgress", "TerminalProgress", "progress_for"]

log = logging.getLogger("tmdb_ingest")


def _eta(s: Snapshot) -> str:
    rate = s.completed / s.elapsed_s if s.elapsed_s > 0 else 0.0
    if rate <= 0 or s.total <= s.completed:
        return "--:--"
    left = int((s.total - s.completed) / rate)
    return f"{left // 60:02d}:{left % 60:02d}"


def _line(s: Snapshot) -> str:
    rate = s.requests / s.elapsed_s if s.elapsed_s > 0 else 0.0
    return (
        f"{s.completed}/{s.total} fetched {s.fetched} not found {s.not_found} "
        f"failed {s.failed} | {rate:.1f} req/s | 429s {s.throttled} | ETA {_eta(s)}"
    )


class TerminalProgress:
    """Redraws one line on a terminal: a bar, counts, request rate and ETA."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width

    def update(self, snapshot: Snapshot) -> None:
        share = snapshot.completed / snapshot.total if snapshot.total else 1.0
        filled = int(share * self.width)
        bar = "#" * filled + "-" * (self.width - filled)
        self.stream.write(f"\r[{bar}] {share:6.1%} {_line(snapshot)}\x1b[K")
        self.stream.flush()

    def close(self) -> None:
        self.stream.write("\n")
        self.stream.flush()


class LogProgress:
    """Logs a plain progress line every ``every`` seconds (for files, pipes, CloudWatch)."""

    def __init__(self, every: float = 10.0) -> None:
        self.every = every
        self._next = every

    def update(self, snapshot: Snapshot) -> None:
        if snapshot.elapsed_s >= self._next:
            self._next = snapshot.elapsed_s + self.every
            log.info("progress %s", _line(snapshot))

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
