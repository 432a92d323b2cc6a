"""HTTPS against plain HTTP at TMDB's rate: share of ideal and the client's CPU per 1,000 movies.

The same pipeline (:func:`tmdb_ingest.api.ingest`, ``rate=40``, ``concurrency=20``) runs
twice against the emulator in its own process with the throughput benchmark's settings
(150 ms median latency, a server limit of 50 per second, 5% missing ids): once over plain
HTTP, once over HTTPS with a certificate from a private CA made for the run (trusted
through ``SSL_CERT_FILE``, as a user with a private CA would). CPU is the benchmark
process's own (``time.process_time``): the client, its limiter, the landing in a local
folder; the emulator's CPU is in its own process and not counted.

Run standalone with ``python -m benchmarks.bench_tls`` (``BENCH_TLS_N`` sets the size);
:func:`run` appends a markdown section.
"""

from __future__ import annotations

import asyncio
import json
import os
import ssl
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from benchmarks._common import API_KEY, EmulatorProcess, env_int, print_section, valid_ids
from benchmarks.bench_throughput import CONCURRENCY, LATENCY_MS, RATE, SERVER_LIMIT, emulator_args
from tests.tls_certs import TlsFiles, make_tls_files
from tmdb_ingest.api import Summary, ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.land.sinks import LocalSink

DEFAULT_N = 2000


class TlsEmulatorProcess(EmulatorProcess):
    """The emulator process serving HTTPS; its counters are read over HTTPS too."""

    def __init__(self, tls: TlsFiles, *args: str) -> None:
        super().__init__(
            *args, "--tls-cert", str(tls.server_cert), "--tls-key", str(tls.server_key)
        )
        self.url = f"https://127.0.0.1:{self.port}/3"
        self._context = ssl.create_default_context(cafile=str(tls.ca_cert))

    def stats(self) -> dict[str, Any]:
        stats_url = f"https://127.0.0.1:{self.port}/_emulator/stats"
        with urllib.request.urlopen(stats_url, context=self._context) as answer:
            return dict(json.loads(answer.read()))


@dataclass(frozen=True)
class Result:
    """One variant's measurements (server-side counts from the emulator)."""

    name: str
    n: int
    elapsed_s: float
    cpu_s: float
    completed: int
    requests: int
    throttled: int
    max_in_window: int

    @property
    def share_of_ideal(self) -> float:
        return (self.n / RATE) / self.elapsed_s

    @property
    def cpu_per_1000(self) -> float:
        return self.cpu_s / self.completed * 1000


async def _ingest(ids: list[str], url: str, out: Path) -> Summary:
    settings = Settings(
        tmdb_url=url, api_key=API_KEY, rate=RATE, concurrency=CONCURRENCY, run_id="bench-tls"
    )
    return await ingest(ids, settings, sink=LocalSink(out))


def run_variant(name: str, ids: list[str], emulator: EmulatorProcess) -> Result:
    """Run :func:`ingest` on ``ids`` against ``emulator`` (entered here); measure it."""
    with tempfile.TemporaryDirectory(prefix="bench-tls-") as tmp, emulator as emu:
        cpu_started, started = time.process_time(), time.perf_counter()
        summary = asyncio.run(_ingest(ids, emu.url, Path(tmp)))
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        stats = emu.stats()
    result = Result(
        name=name,
        n=len(ids),
        elapsed_s=elapsed,
        cpu_s=cpu,
        completed=summary.fetched + summary.not_found,
        requests=stats["requests"],
        throttled=stats["throttled"],
        max_in_window=stats["max_in_window"],
    )
    print(f"{name}: {elapsed:.1f} s, CPU {cpu:.2f} s, {summary}", file=sys.stderr)
    return result


def run(report: list[str], *, n: int | None = None) -> None:
    """Run both variants; append a markdown section to ``report``."""
    n = n or env_int("BENCH_TLS_N", DEFAULT_N)
    ids = valid_ids(n)
    with tempfile.TemporaryDirectory(prefix="bench-tls-ca-") as folder:
        tls = make_tls_files(Path(folder), label="benchmark")
        plain = run_variant("plain HTTP", ids, EmulatorProcess(*emulator_args()))
        previous = os.environ.get("SSL_CERT_FILE")
        os.environ["SSL_CERT_FILE"] = str(tls.ca_cert)  # read when the session is made
        try:
            https = run_variant(
                "HTTPS (private CA in `SSL_CERT_FILE`)",
                ids,
                TlsEmulatorProcess(tls, *emulator_args()),
            )
        finally:
            if previous is None:
                del os.environ["SSL_CERT_FILE"]
            else:
                os.environ["SSL_CERT_FILE"] = previous
    report += [
        "## HTTPS against plain HTTP",
        "",
        f"{n:,} valid ids; client `rate={RATE:g}`, `concurrency={CONCURRENCY}`; the TMDB "
        f"emulator in its own process ({LATENCY_MS:g} ms median latency, server limit "
        f"{SERVER_LIMIT:g} per second, 5% missing ids), once over HTTP, once over HTTPS "
        "(TLS 1.3, an ECDSA P-256 certificate from a private CA named by `SSL_CERT_FILE`). "
        f"Ideal time: N / rate = {n / RATE:.1f} s. CPU is the client process's "
        "(`time.process_time`, the emulator's not counted). Data lands in a local folder.",
        "",
        "| variant | time for N (s) | share of ideal | requests | 429s | max in any 1 s "
        "| client CPU (s) | CPU per 1,000 movies (s) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in (plain, https):
        report.append(
            f"| {r.name} | {r.elapsed_s:.1f} | {r.share_of_ideal:.3f} | {r.requests:,} "
            f"| {r.throttled} | {r.max_in_window} | {r.cpu_s:.2f} | {r.cpu_per_1000:.3f} |"
        )
    extra = https.cpu_per_1000 - plain.cpu_per_1000
    report += [
        "",
        f"HTTPS costs {extra:+.3f} s of client CPU per 1,000 movies "
        f"({https.cpu_per_1000 / plain.cpu_per_1000:.2f}x plain HTTP); the share of ideal "
        f"moves from {plain.share_of_ideal:.3f} to {https.share_of_ideal:.3f}. Requests "
        "include the run's first one (`GET /configuration`).",
        "",
    ]


def main() -> None:
    """Print the markdown section for the TLS benchmark."""
    print_section(run)


if __name__ == "__main__":
    main()
