"""Time to the first request of a resumed run: the saved selection next to reading the CSV.

The full-size movies.csv (140 MB, 244,000 movies; :mod:`benchmarks.bench_selection`
generates it) is uploaded to moto's S3 server, which runs in its own process. For the
default selection and for the whole catalogue (``--genres '*' --votes-above -1``):

- ``first``: :func:`~tmdb_ingest.selection.saved.resolve_selection` with nothing saved:
  HeadObject, the CSV downloaded and read, the selection and the index saved;
- ``resume``: the same call again: HeadObject and two small GETs, no CSV;
- ``resume, fresh process``: a new interpreter that imports what it needs and resumes,
  timed from the parent (interpreter start to exit), the closest to a resumed
  invocation's time to its first request; it also reports whether polars was imported.

Run standalone with ``python -m benchmarks.bench_resume``; :func:`run` appends a markdown
section.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

from benchmarks._common import moto_process, print_section
from benchmarks.bench_selection import ensure_full_size_file

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-resume"
KEY = "in/movies.csv"
DAY = dt.date(2026, 12, 1)
SELECTIONS = (
    ("default (Sci-Fi or Fantasy, > 1000 votes)", ("Sci-Fi", "Fantasy"), 1000),
    ("whole catalogue (`*`, -1)", ("*",), -1),
)

_FRESH = """
import asyncio, datetime as dt, json, sys, time
started = time.perf_counter()
from tmdb_ingest.selection.saved import resolve_selection
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.land.sinks import S3Sink
settings = Settings(**json.loads(sys.argv[1]))
async def main():
    async with S3Sink(settings.bucket, endpoint_url=settings.s3_endpoint_url) as sink:
        return await resolve_selection(sys.argv[2], settings, sink, day=dt.date(2026, 12, 1))
got = asyncio.run(main())
print(json.dumps({"resumed": got.resumed, "ids": len(got.ids), "polars": "polars" in sys.modules,
                  "in_process_s": time.perf_counter() - started}))
"""


async def _resolve(uri: str, overrides: dict[str, object]) -> tuple[float, int, bool, int]:
    from tmdb_ingest.config.settings import Settings
    from tmdb_ingest.land.sinks import S3Sink
    from tmdb_ingest.run.layout import LakeLayout
    from tmdb_ingest.selection.saved import resolve_selection

    settings = Settings(**overrides)  # type: ignore[arg-type]
    async with S3Sink(BUCKET, endpoint_url=settings.s3_endpoint_url) as sink:
        started = time.perf_counter()
        got = await resolve_selection(uri, settings, sink, day=DAY)
        took = time.perf_counter() - started
        await got.save(sink)  # what the run does once it holds its lease
        lake = LakeLayout.of(settings.prefix, settings.state_prefix)
        saved = await sink.get(lake.selection_key(got.run_id))
    return took, len(got.ids), got.resumed, len(saved or b"")


def run(report: list[str], *, repeats: int = 3) -> None:
    """Time first and resumed selections; append a markdown section to ``report``."""
    import boto3

    csv = ensure_full_size_file()
    size_mb = csv.stat().st_size / 1e6
    uri = f"s3://{BUCKET}/{KEY}"
    lines: list[str] = []
    with moto_process() as url:
        client = boto3.client("s3", endpoint_url=url, region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        client.upload_file(str(csv), BUCKET, KEY)
        client.close()
        for n, (label, genres, votes) in enumerate(SELECTIONS):
            overrides: dict[str, object] = {
                "bucket": BUCKET,
                "s3_endpoint_url": url,
                "genres": genres,
                "votes_above": votes,
                "state_prefix": f"_bench/{n}",
            }
            first, count, resumed, saved_bytes = asyncio.run(_resolve(uri, overrides))
            assert not resumed, "the first invocation found a saved selection"
            again: list[float] = []
            for _ in range(repeats):
                took, _count, resumed, _ = asyncio.run(_resolve(uri, overrides))
                assert resumed, "the resume read the CSV"
                again.append(took)
            fresh: list[float] = []
            info: dict[str, object] = {}
            for _ in range(repeats):
                started = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-c", _FRESH, json.dumps(overrides), uri],
                    capture_output=True,
                    text=True,
                    check=True,
                    cwd=ROOT,
                )
                fresh.append(time.perf_counter() - started)
                info = json.loads(done.stdout.strip().splitlines()[-1])
            assert info["resumed"], info
            assert info["ids"] == count, info
            print(
                f"resume {label}: first {first:.2f} s, resume {min(again):.3f} s, "
                f"fresh process {min(fresh):.2f} s",
                file=sys.stderr,
            )
            lines.append(
                f"| {label} | {count:,} | {saved_bytes / 1024:.0f} | {first:.2f} "
                f"| {min(again):.3f} ({statistics.median(again):.3f}) "
                f"| {min(fresh):.2f} | {'yes' if info['polars'] else 'no'} |"
            )
    report += [
        "## Resume: time to the first request",
        "",
        f"Full-size synthetic movies.csv ({size_mb:.0f} MB) in moto's S3 server (its own "
        "process, on this machine); `resolve_selection` with an `S3Sink` on the same server. "
        "*first*: nothing saved (HeadObject, download, read, save); *resume*: the saved "
        f"selection (HeadObject and two small GETs), best (median) of {repeats}; *fresh "
        "process*: interpreter start, imports and the resume, best of "
        f"{repeats}. Target: a resume under 1 s.",
        "",
        "| selection | ids | saved (KB) | first (s) | resume (s) | resume, fresh process (s) "
        "| polars imported on resume |",
        "|---|---:|---:|---:|---:|---:|:---:|",
        *lines,
        "",
    ]


def main() -> None:
    """Print the markdown section."""
    print_section(run)


if __name__ == "__main__":
    main()
