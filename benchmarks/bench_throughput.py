"""Throughput at TMDB's rate: our pipeline next to aiolimiter and a sequential loop.

Every variant runs against its own fresh TMDB emulator (about 150 ms median latency,
lognormal; a server limit of 50 requests per second; 5% missing ids), served from its
own process (``python -m tmdb_ingest emulate``), so that its arrival time stamps are
not delayed by the client holding the interpreter lock; its counters come from its
``/_emulator/stats`` endpoint.
Data lands in a :class:`~tmdb_ingest.land.sinks.LocalSink` in a temporary folder.

- ours: :func:`tmdb_ingest.api.ingest` at ``rate=40``, ``concurrency=20``, with
  its :class:`~tmdb_ingest.fetch.rate.fixed.RateLimiter`;
- the same pipeline with ``aiolimiter.AsyncLimiter(1, 1 / rate)`` injected (strict but
  late: it loses throughput);
- the same pipeline with ``aiolimiter.AsyncLimiter(rate, 1)`` (bursty: more than
  ``rate`` requests can land in one second);
- the original job's approach: one ``requests.get`` at a time, batches of 100 written
  as they fill; measured on fewer ids and extrapolated from its requests per second.

Run standalone with ``python -m benchmarks.bench_throughput`` (``BENCH_THROUGHPUT_N``
and ``BENCH_SEQUENTIAL_N`` set the sizes); :func:`run` appends a markdown section.
"""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import requests
from aiolimiter import AsyncLimiter

from benchmarks._common import API_KEY, EmulatorProcess, env_int, print_section, valid_ids
from tmdb_ingest.api import Summary, ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.land.sinks import LocalSink

RATE = 40.0
CONCURRENCY = 20
SERVER_LIMIT = 50.0
LATENCY_MS = 150.0
DEFAULT_N = 3000
DEFAULT_SEQUENTIAL_N = 200


def emulator_args() -> list[str]:
    """The emulator every variant runs against (in its own process)."""
    return [
        *("--latency-ms", str(LATENCY_MS), "--limit", str(SERVER_LIMIT)),
        *("--missing-rate", "0.05", "--seed", "1"),
    ]


class AioLimiterAdapter:
    """``aiolimiter.AsyncLimiter`` behind the interface :class:`TmdbClient` expects.

    aiolimiter has no shared pause, so ``on_throttle`` does nothing: after a 429 only the
    retrying worker waits (tenacity's backoff), which is how a plain limiter behaves.
    """

    def __init__(self, max_rate: float, time_period: float) -> None:
        self._limiter = AsyncLimiter(max_rate, time_period)
        self.max_rate = max_rate / time_period
        self.rate = self.max_rate

    async def acquire(self) -> float:
        await self._limiter.acquire()
        return asyncio.get_running_loop().time()

    def on_answer(self, sent_at: float) -> None:
        return None

    def on_throttle(self, sent_at: float, retry_after: float | None) -> None:
        return None


@dataclass(frozen=True)
class Result:
    """One variant's measurements."""

    name: str
    n: int
    elapsed_s: float
    completed: int
    requests: int
    throttled: int
    max_in_window: int
    max_in_flight: int
    measured_n: int

    @classmethod
    def measured(
        cls, name: str, *, n: int, measured_n: int, elapsed_s: float, completed: int,
        stats: dict[str, Any],
    ) -> Result:  # fmt: skip
        """A result whose server-side counts come from the emulator's stats."""
        return cls(
            name=name,
            n=n,
            elapsed_s=elapsed_s,
            completed=completed,
            requests=stats["requests"],
            throttled=stats["throttled"],
            max_in_window=stats["max_in_window"],
            max_in_flight=stats["max_in_flight"],
            measured_n=measured_n,
        )

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed_s

    @property
    def ids_per_s(self) -> float:
        return self.completed / self.elapsed_s

    @property
    def projected_s(self) -> float:
        """Time for ``n`` ids at the measured pace (the measured time when measured_n == n)."""
        return self.elapsed_s * self.n / self.measured_n


async def _ingest(ids: list[str], url: str, out: Path, limiter: object | None) -> Summary:
    settings = Settings(
        tmdb_url=url, api_key=API_KEY, rate=RATE, concurrency=CONCURRENCY, run_id="bench"
    )
    # Made inside the loop: an AsyncLimiter belongs to the loop that first uses it.
    made = limiter() if callable(limiter) else None
    return await ingest(ids, settings, sink=LocalSink(out), limiter=made)  # type: ignore[arg-type]


def run_pipeline(name: str, ids: list[str], limiter: object | None = None) -> Result:
    """Run :func:`ingest` on ``ids`` against a fresh emulator; measure it."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-tp-") as tmp,
        EmulatorProcess(*emulator_args()) as emu,
    ):
        started = time.perf_counter()
        summary = asyncio.run(_ingest(ids, emu.url, Path(tmp), limiter))
        elapsed = time.perf_counter() - started
        result = Result.measured(
            name,
            n=len(ids),
            measured_n=len(ids),
            elapsed_s=elapsed,
            completed=summary.fetched + summary.not_found,
            stats=emu.stats(),
        )
    print(f"{name}: {elapsed:.1f} s, {result.rps:.1f} req/s, {summary}", file=sys.stderr)
    return result


def run_sequential(name: str, ids: list[str], n_for: int) -> Result:
    """The original job: one request at a time; batches of 100 written as they fill."""
    with (
        tempfile.TemporaryDirectory(prefix="bench-seq-") as tmp,
        EmulatorProcess(*emulator_args()) as emu,
    ):
        out = Path(tmp)
        batch: list[object] = []
        files = completed = 0
        started = time.perf_counter()
        for imdb_id in ids:
            response = requests.get(
                f"{emu.url}/movie/{imdb_id}", params={"api_key": API_KEY}, timeout=20
            )
            if response.status_code in (200, 404):
                completed += 1
            if response.status_code == 200:
                batch.append(response.json())
            if len(batch) == 100:
                (out / f"batch-{files}.json").write_bytes(orjson.dumps(batch))
                files, batch = files + 1, []
        if batch:
            (out / f"batch-{files}.json").write_bytes(orjson.dumps(batch))
        elapsed = time.perf_counter() - started
        result = Result.measured(
            name,
            n=n_for,
            measured_n=len(ids),
            elapsed_s=elapsed,
            completed=completed,
            stats=emu.stats(),
        )
    print(f"{name}: {elapsed:.1f} s, {result.rps:.1f} req/s", file=sys.stderr)
    return result


def run(report: list[str], *, n: int | None = None, sequential_n: int | None = None) -> None:
    """Run every variant; append a markdown section to ``report``."""
    n = n or env_int("BENCH_THROUGHPUT_N", DEFAULT_N)
    sequential_n = min(n, sequential_n or env_int("BENCH_SEQUENTIAL_N", DEFAULT_SEQUENTIAL_N))
    ids = valid_ids(n)
    ideal = n / RATE
    results = [
        run_pipeline("ours: `RateLimiter(40)` (absolute schedule + window cap)", ids),
        run_pipeline(
            "baseline: `AsyncLimiter(1, 1/40)` (strict)",
            ids,
            lambda: AioLimiterAdapter(1, 1 / RATE),
        ),
        run_pipeline(
            "baseline: `AsyncLimiter(40, 1)` (bursty)", ids, lambda: AioLimiterAdapter(RATE, 1)
        ),
        run_sequential(
            f"baseline: sequential loop, original job (measured on {sequential_n} ids)",
            ids[:sequential_n],
            n,
        ),
    ]
    report += [
        "## Throughput at TMDB's rate",
        "",
        f"{n:,} valid ids; client `rate={RATE:g}`, `concurrency={CONCURRENCY}`; TMDB emulator "
        f"in its own process: {LATENCY_MS:g} ms median latency (lognormal, sigma 0.5), "
        f"server limit {SERVER_LIMIT:g} requests in any 1 s (429 beyond), 5% missing ids. "
        f"Ideal time: N / rate = {ideal:.1f} s. Data lands in a local folder. "
        "Targets for ours: share of ideal >= 0.95, no 429, at most 40 requests in any 1 s "
        "window, at most 20 in flight.",
        "",
        "| variant | time for N (s) | ids/s | req/s | share of ideal | ids done | 429s "
        "| max in any 1 s | max in flight |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        extrapolated = r.measured_n != r.n
        shown_time = f"{r.projected_s:.1f}" + (" (extrapolated)" if extrapolated else "")
        done = f"{r.completed:,} / {r.measured_n:,}"
        report.append(
            f"| {r.name} | {shown_time} | {r.ids_per_s:.1f} | {r.rps:.1f} "
            f"| {ideal / r.projected_s:.3f} | {done} "
            f"| {r.throttled} | {r.max_in_window} | {r.max_in_flight} |"
        )
    report += ["", verdict(results[0], ideal)]
    report += [
        "",
        "Share of ideal = (N / rate) / time. Request counts, 429s, the 1 s window and the "
        "in-flight count are the emulator's own (server-side) measurements. A 429 is retried "
        "(the retries are extra requests), so every variant still completes every id.",
        "",
    ]


def verdict(ours: Result, ideal: float) -> str:
    """One line saying which of the targets ours met, measured by the server."""
    share = ideal / ours.projected_s
    checks = [
        (f"share of ideal {share:.3f} (>= 0.95)", share >= 0.95),
        (f"429s {ours.throttled} (0)", ours.throttled == 0),
        (f"max in any 1 s {ours.max_in_window} (<= {RATE:g})", ours.max_in_window <= RATE),
        (
            f"max in flight {ours.max_in_flight} (<= {CONCURRENCY})",
            ours.max_in_flight <= CONCURRENCY,
        ),
    ]
    parts = [f"{text}: {'met' if ok else '**missed**'}" for text, ok in checks]
    line = "Targets for ours: " + "; ".join(parts) + "."
    return line


def main() -> None:
    """Print the markdown section for the throughput benchmark."""
    print_section(run)


if __name__ == "__main__":
    main()
