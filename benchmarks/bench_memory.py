"""Peak memory of a full-catalogue run (244,000 ids), measured in a child process.

The TMDB emulator runs in its own process (``python -m tmdb_ingest emulate``: no latency,
no limit, 5% missing ids), so the measured process holds only the client. Each variant is
a fresh child process (``python -m benchmarks.bench_memory --child MODE ...``) that
reports its own peak RSS when it is done (``VmHWM`` from ``/proc/self/status``; not
``ru_maxrss``, which on Linux carries the parent's peak across fork and exec):

- ``ids only``: imports everything the run imports and holds the 244,000 ids, nothing
  more; the floor that any approach pays;
- ``ours``: :func:`tmdb_ingest.api.ingest` at ``rate=2000``, ``concurrency=50``,
  landing to a :class:`~tmdb_ingest.land.sinks.LocalSink` in a temporary folder;
- ``naive``: the same requests (aiohttp, 50 at a time), every parsed answer gathered in
  one list, then written as files of 100: how a straightforward port of the original
  job would scale it up.

A second section measures the selection alone: ``tmdb-ingest select`` (the CLI's
``main``, output to ``/dev/null``) on the full-size movies.csv and on one four times its
size (976,000 movies, generated once into ``data/``), next to the previous reader (one
lazy polars scan of the whole file, 3 columns), each in a fresh child process. The
target: the peak at 4x within 15% of the peak at 1x.

Run standalone with ``python -m benchmarks.bench_memory`` (``BENCH_MEMORY_N`` sets the
size, ``BENCH_MEMORY_NAIVE=0`` skips the naive variant, ``BENCH_SELECTION_SIZES=1`` skips
the 4x file); :func:`run` appends the markdown sections.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks._common import API_KEY, env_int, free_port, valid_ids

FULL_N = 244_000
RATE = 2000.0
CONCURRENCY = 50
LAMBDA_MB = 256
ROOT = Path(__file__).resolve().parent.parent


# -- the child: one measured variant ------------------------------------------------------


def _peak_mb() -> float:
    # VmHWM, the peak RSS of this process image. Not ru_maxrss: on Linux it survives
    # fork + exec, so a child would report its parent's peak when that is higher.
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


async def _ours(ids: list[str], url: str, out: Path) -> dict[str, int]:
    from tmdb_ingest.api import ingest
    from tmdb_ingest.config.settings import Settings
    from tmdb_ingest.land.sinks import LocalSink

    settings = Settings(
        tmdb_url=url, api_key=API_KEY, rate=RATE, concurrency=CONCURRENCY, run_id="bench-memory"
    )
    summary = await ingest(ids, settings, sink=LocalSink(out))
    return {
        "fetched": summary.fetched,
        "not_found": summary.not_found,
        "failed": summary.failed,
        "batches": summary.batches,
        "requests": summary.requests,
    }


async def _naive(ids: list[str], url: str, out: Path) -> dict[str, int]:
    import aiohttp
    import orjson

    limit = asyncio.Semaphore(CONCURRENCY)
    results: list[object] = []
    not_found = 0

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as session:

        async def one(imdb_id: str) -> None:
            nonlocal not_found
            async with (
                limit,
                session.get(f"{url}/movie/{imdb_id}", params={"api_key": API_KEY}) as resp,
            ):
                if resp.status == 200:
                    results.append(await resp.json())
                else:
                    not_found += 1

        await asyncio.gather(*(one(i) for i in ids))
    batches = 0
    for start in range(0, len(results), 100):
        (out / f"batch-{batches:05d}.json").write_bytes(orjson.dumps(results[start : start + 100]))
        batches += 1
    return {"fetched": len(results), "not_found": not_found, "failed": 0, "batches": batches}


def child_cli(csv: str, url: str) -> None:
    """The whole command, `tmdb-ingest run CSV --genres '*' --votes-above -1`, in this
    process; print one JSON line with its peak RSS and the summary's counts."""
    import contextlib
    import io

    from tmdb_ingest.cli import main

    os.environ["TMDB_API_KEY"] = API_KEY
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-mem-cli-") as tmp:
        argv = ["run", csv, "--out-dir", tmp, "--genres", "*", "--votes-above", "-1"]
        argv += ["--tmdb-url", url, "--rate", f"{RATE:g}", "--concurrency", str(CONCURRENCY)]
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main([*argv, "--json"])
        if code != 0:
            raise SystemExit(f"tmdb-ingest run exited {code}")
        summary = json.loads(out.getvalue().strip().splitlines()[-1])
    elapsed = time.perf_counter() - started
    counts = {k: summary[k] for k in ("fetched", "not_found", "failed", "batches", "requests")}
    print(json.dumps({"mode": "cli", "peak_mb": _peak_mb(), "elapsed_s": elapsed, **counts}))


def child(mode: str, n: int, url: str) -> None:
    """Run one variant in this process; print one JSON line with its peak RSS."""
    import aiohttp  # noqa: F401 - the floor includes what every variant imports
    import orjson  # noqa: F401

    import tmdb_ingest.api  # noqa: F401

    ids = valid_ids(n)
    started = time.perf_counter()
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="bench-mem-") as tmp:
        if mode == "ours":
            counts = asyncio.run(_ours(ids, url, Path(tmp)))
        elif mode == "naive":
            counts = asyncio.run(_naive(ids, url, Path(tmp)))
        elif mode != "ids":
            raise SystemExit(f"unknown mode {mode!r}")
    elapsed = time.perf_counter() - started
    print(json.dumps({"mode": mode, "n": n, "peak_mb": _peak_mb(), "elapsed_s": elapsed, **counts}))


def child_select(mode: str, csv: str) -> None:
    """Select from ``csv`` in this process; print one JSON line with its peak RSS."""
    started = time.perf_counter()
    if mode == "select":
        from tmdb_ingest.cli import main as cli

        with open(os.devnull, "w") as null, contextlib.redirect_stdout(null):
            code = cli(["select", csv])
        if code != 0:
            raise SystemExit(f"tmdb-ingest select exited {code}")
    elif mode == "scan":
        import polars as pl

        from tmdb_ingest.selection.reader import DEFAULT_GENRES, DEFAULT_VOTES_ABOVE
        from tmdb_ingest.selection.scan import _genre_pattern

        # The previous reader: one lazy scan of the whole file (polars maps the file).
        pl.scan_csv(
            csv,
            separator="|",
            quote_char=None,
            null_values=["\\N"],
            infer_schema=False,
            truncate_ragged_lines=True,
        ).select("id", "genero", "numeroVotos").filter(
            (pl.col("numeroVotos").cast(pl.Int64, strict=False) > DEFAULT_VOTES_ABOVE)
            & pl.col("genero").str.contains(_genre_pattern(DEFAULT_GENRES))
        ).select(pl.col("id").unique()).collect()
    else:
        raise SystemExit(f"unknown mode {mode!r}")
    elapsed = time.perf_counter() - started
    print(json.dumps({"mode": mode, "peak_mb": _peak_mb(), "elapsed_s": elapsed}))


# -- the parent: emulator process, one child per variant ----------------------------------


@dataclass(frozen=True)
class Result:
    """One variant's measurements."""

    name: str
    peak_mb: float
    elapsed_s: float
    fetched: int | None
    not_found: int | None


def _start_emulator() -> tuple[subprocess.Popen[str], str]:
    port = free_port()
    process = subprocess.Popen(
        [
            *(sys.executable, "-m", "tmdb_ingest", "emulate", "--port", str(port)),
            *("--latency-ms", "0", "--missing-rate", "0.05"),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        cwd=ROOT,
    )
    assert process.stdout is not None
    line = process.stdout.readline()  # "TMDB emulator at http://...  (TMDB_URL=...)"
    if "TMDB emulator at" not in line:
        process.kill()
        process.wait()
        raise RuntimeError(f"the emulator did not start: {line.strip()!r}")
    return process, f"http://127.0.0.1:{port}/3"


def _run_child(mode: str, n: int, url: str, *, csv: str = "") -> dict[str, float]:
    completed = subprocess.run(
        [
            *(sys.executable, "-m", "benchmarks.bench_memory", "--child", mode),
            *("--n", str(n), "--url", url, "--csv", csv),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    if completed.returncode != 0:
        raise RuntimeError(f"child {mode} failed:\n{completed.stderr[-3000:]}")
    data: dict[str, float] = json.loads(completed.stdout.strip().splitlines()[-1])
    print(f"memory {mode}: {data}", file=sys.stderr)
    return data


def run(report: list[str], *, n: int | None = None, naive: bool | None = None) -> None:
    """Measure every variant; append a markdown section to ``report``."""
    n = n or env_int("BENCH_MEMORY_N", FULL_N)
    naive = bool(env_int("BENCH_MEMORY_NAIVE", 1)) if naive is None else naive
    modes = [
        ("ids", "baseline: imports + the ids only (the floor)"),
        ("ours", "ours: `ingest()` to a local folder"),
    ]
    if naive:
        modes.append(("naive", "baseline: gather every answer in a list, then write"))
    csv = ""
    if n >= FULL_N:
        from benchmarks.bench_selection import ensure_full_size_file

        csv = str(ensure_full_size_file())
        modes.append(("cli", "ours: the whole `tmdb-ingest run` from the full-size CSV"))
    results: list[Result] = []
    emulator, url = _start_emulator()
    try:
        for mode, name in modes:
            data = _run_child(mode, n, url, csv=csv)
            results.append(
                Result(
                    name=name,
                    peak_mb=data["peak_mb"],
                    elapsed_s=data["elapsed_s"],
                    fetched=int(data["fetched"]) if "fetched" in data else None,
                    not_found=int(data["not_found"]) if "not_found" in data else None,
                )
            )
    finally:
        emulator.terminate()
        try:
            emulator.wait(timeout=10)
        except subprocess.TimeoutExpired:
            emulator.kill()
            emulator.wait()
        if emulator.stdout is not None:
            emulator.stdout.close()

    floor = results[0].peak_mb
    report += [
        "## Memory: the whole catalogue in one process",
        "",
        f"{n:,} valid ids (the real catalogue has 244,000 movies), `rate={RATE:g}`, "
        f"`concurrency={CONCURRENCY}`, against the emulator in a separate process (no "
        "latency, no limit, 5% missing ids); each variant in a fresh child process, peak RSS "
        "(`VmHWM` of `/proc/self/status`, read by the child at its end). "
        f"Target for ours: fits a {LAMBDA_MB} MB Lambda.",
        "",
        f"| variant | peak RSS (MB) | above the floor (MB) | fits {LAMBDA_MB} MB | time (s) "
        "| ids/s | fetched | not found |",
        "|---|---:|---:|:---:|---:|---:|---:|---:|",
    ]
    for r in results:
        done = (r.fetched or 0) + (r.not_found or 0)
        speed = f"{done / r.elapsed_s:,.0f}" if r.fetched is not None else "-"
        report.append(
            f"| {r.name} | {r.peak_mb:.0f} | {r.peak_mb - floor:.0f} "
            f"| {'yes' if r.peak_mb < LAMBDA_MB else 'no'} | {r.elapsed_s:.1f} | {speed} "
            f"| {'-' if r.fetched is None else f'{r.fetched:,}'} "
            f"| {'-' if r.not_found is None else f'{r.not_found:,}'} |"
        )
    report += [
        "",
        "Both the client and the emulator run on the same machine, so ids/s is bounded by "
        "its CPUs, not by TMDB; at TMDB's real rate (40/s) the pipeline's memory is the same "
        "or lower, since fewer answers are in flight. The speeds are not a race: ours runs "
        f"under its own limiter (`rate={RATE:g}`, with retries), the naive baseline has no "
        "limiter and no retries, and what it gains in speed it pays in memory.",
        "",
    ]
    # A quick run (a small n) measures the selection at 1x only: the 4x file is 570 MB.
    run_selection(report, sizes=(1,) if n < FULL_N else None)


def run_selection(report: list[str], *, sizes: tuple[int, ...] | None = None) -> None:
    """Peak RSS of ``tmdb-ingest select`` at each multiple of the full-size file."""
    from benchmarks.bench_selection import ensure_sized_file

    if sizes is None:
        raw = os.environ.get("BENCH_SELECTION_SIZES", "1,4")
        sizes = tuple(int(x) for x in raw.split(",") if x.strip())
    rows: list[tuple[str, int, float, float, float]] = []
    for multiple in sizes:
        csv = ensure_sized_file(multiple)
        size_mb = csv.stat().st_size / 1e6
        for mode, name in (
            ("select", "ours: `tmdb-ingest select` (8 MB pieces)"),
            ("scan", "baseline: one lazy polars scan of the whole file (the previous reader)"),
        ):
            data = _run_child(mode, 0, "", csv=str(csv))
            rows.append((name, multiple, size_mb, data["peak_mb"], data["elapsed_s"]))
    report += [
        "## Memory: the selection alone",
        "",
        "Default selection (Sci-Fi or Fantasy, more than 1000 votes) from the synthetic "
        "movies.csv at 1x (244,000 movies) and 4x its size; each variant in a fresh child "
        "process, peak RSS (`VmHWM`) including the interpreter and imports. Target for ours: "
        "the 4x peak within 15% of the 1x peak.",
        "",
        "| variant | file | size (MB) | peak RSS (MB) | vs 1x | time (s) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    first: dict[str, float] = {}
    for name, multiple, size_mb, peak, elapsed in rows:
        first.setdefault(name, peak)
        report.append(
            f"| {name} | {multiple}x | {size_mb:.0f} | {peak:.0f} "
            f"| {peak / first[name] - 1:+.0%} | {elapsed:.2f} |"
        )
    report.append("")


def main(argv: list[str] | None = None) -> None:
    """Print the markdown sections, or run one variant with ``--child``."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_memory")
    parser.add_argument("--child", choices=("ids", "ours", "naive", "cli", "select", "scan"))
    parser.add_argument("--n", type=int, default=None)
    parser.add_argument("--url", default="")
    parser.add_argument("--csv", default="")
    parser.add_argument("--selection-only", action="store_true")
    args = parser.parse_args(argv)
    if args.child in ("select", "scan"):
        child_select(args.child, args.csv)
        return
    if args.child == "cli":
        child_cli(args.csv, args.url)
        return
    if args.child:
        child(args.child, args.n or FULL_N, args.url)
        return
    if args.selection_only:
        report: list[str] = []
        run_selection(report)
        print("\n".join(report))
        return
    report = []
    run(report, n=args.n)
    print("\n".join(report))


if __name__ == "__main__":
    main()
