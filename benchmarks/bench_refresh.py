"""Keeping a whole-catalogue lake current: ``refresh`` and ``run --new-only`` requests.

The lake holds the whole catalogue of the full-size movies.csv (about 243,000 movies in
2,430 data files of 100), built directly in moto's S3 (its own process): the data files'
keys, a compacted index segment, and the bookmark at the day before. Fetching them all
would take 101 minutes at 40 requests per second, and says nothing about a refresh.

The emulator (its own process, 150 ms median latency, a limit of 50/s) serves the change
history of that catalogue (``--catalogue``) at TMDB's scale: about 0.5% of it changed a
day, and three other ids for each (new movies, other catalogues), about 5,000 ids and 50
pages a day, a quarter of them in the lake. Measured, each in a fresh ``tmdb-ingest``
process:

- ``refresh`` over one day: change-list pages and movie requests, against the floor
  (pages + changed movies of the lake) and against a full re-run of the lake; its peak
  RSS; its time from the process's start to its first movie request;
- the same ``refresh`` again the same day: movie requests (target 0);
- ``run --new-only`` of the whole catalogue (``--genres '*' --votes-above -1``) from a
  movies.csv with 300 new movies appended: requests (target 300 + 0).

Run standalone with ``python -m benchmarks.bench_refresh``; :func:`run` appends a
markdown section.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from benchmarks._common import EmulatorProcess, moto_process, print_section
from benchmarks.bench_selection import ensure_full_size_file

ROOT = Path(__file__).resolve().parent.parent
BUCKET = "bench-refresh"
PREFIX = "Raw/TMDB/JSON"
STATE = "Raw/TMDB/_state"
LOADED = dt.date(2026, 11, 19)
TODAY = dt.date(2026, 11, 20)
NEW_MOVIES = 300
_ARTIST = "actor|\\N|A B|1980|\\N|actor|\\N"  # generoArtista .. titulosMaisConhecidos

# A child process that runs the CLI and reports its own peak RSS on its last stderr line.
# VmHWM, not getrusage's ru_maxrss: that one keeps the forking parent's peak across exec.
_CHILD = """
import json, sys
from tmdb_ingest.cli import main
code = main(sys.argv[1:])
with open("/proc/self/status") as status:
    hwm = next(int(line.split()[1]) for line in status if line.startswith("VmHWM:"))
print(json.dumps({"maxrss_mb": hwm / 1024, "code": code}), file=sys.stderr)
sys.exit(code)
"""


def _catalogue(csv: Path) -> list[str]:
    from tmdb_ingest.emulator.cli import catalogue_from_csv

    return sorted(catalogue_from_csv(csv))


def _build_lake(s3: Any, ids: list[str]) -> int:
    """Write the lake's data file keys, one index segment and the bookmark; return files."""
    import gzip

    from tmdb_ingest.lake.index import IndexFile

    stamp = f"{LOADED:%Y%m%d}T090000Z"
    folder = f"{PREFIX}/{LOADED:%Y/%m/%d}"
    files = []
    for n, start in enumerate(range(0, len(ids), 100)):
        name = f"{stamp}-run-{LOADED:%Y%m%d}-bench-0of1-000000000000-{n + 1:05d}"
        movies = tuple((i, int(i[2:])) for i in ids[start : start + 100])
        files.append(IndexFile(name, f"{folder}/{name}.json", str(LOADED), None, (), movies))
    # The data files' bodies are never read by a refresh: a stand-in body each.
    with ThreadPoolExecutor(16) as pool:
        list(pool.map(lambda f: s3.put_object(Bucket=BUCKET, Key=f.key, Body=b"[]\n"), files))
    segment = gzip.compress(b"".join(f.to_json() + b"\n" for f in files))
    s3.put_object(
        Bucket=BUCKET, Key=f"{STATE}/_lake/index/segments/{stamp}-bench.jsonl.gz", Body=segment
    )
    # as a lake whose first refresh has run: every data file has its record
    s3.put_object(Bucket=BUCKET, Key=f"{STATE}/_lake/index/complete.json", Body=b"{}")
    bookmark = {"until": str(LOADED), "since": str(LOADED), "at": f"{LOADED}T09:00:00+00:00"}
    s3.put_object(
        Bucket=BUCKET, Key=f"{STATE}/_lake/refresh/bookmark.json", Body=json.dumps(bookmark)
    )
    return len(files)


def _cli(args: list[str], env: dict[str, str]) -> tuple[dict[str, Any], float, float]:
    """Run ``tmdb-ingest ARGS --json``; (its summary, peak RSS MB, start on the monotonic clock)."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-c", _CHILD, *args, "--json"],
        env=env, capture_output=True, text=True, timeout=1800, check=False,
    )  # fmt: skip
    if done.returncode != 0:
        raise RuntimeError(f"tmdb-ingest {args[0]} exited {done.returncode}: {done.stderr[-2000:]}")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    child = json.loads(done.stderr.strip().splitlines()[-1])
    return summary, float(child["maxrss_mb"]), started


def run(report: list[str]) -> None:
    """Measure refresh and --new-only on a whole-catalogue lake; append a markdown section."""
    import boto3

    csv = ensure_full_size_file()
    ids = _catalogue(csv)
    updated = csv.with_name("movies-plus-300.csv")
    if not updated.exists():
        rows = [
            f"tt{30_000_000 + k:08d}|New {k}|New {k}|2026|100|Drama|7.0|50|{_ARTIST}"
            for k in range(NEW_MOVIES)
        ]
        updated.write_bytes(csv.read_bytes() + ("\n".join(rows) + "\n").encode())
    emulate = ["--latency-ms", "150", "--limit", "50", "--missing-rate", "0"]
    emulate += ["--catalogue", str(csv), "--today", str(TODAY)]
    with moto_process() as s3_url, EmulatorProcess(*emulate) as emu:
        s3 = boto3.client("s3", endpoint_url=s3_url, region_name="us-east-1")
        s3.create_bucket(Bucket=BUCKET)
        built = time.perf_counter()
        n_files = _build_lake(s3, ids)
        built = time.perf_counter() - built
        env = {
            **os.environ, "TMDB_API_KEY": "test-api-key", "PYTHONPATH": str(ROOT),
            "AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
        }  # fmt: skip
        sink = ["--bucket", BUCKET, "--s3-endpoint-url", s3_url, "--tmdb-url", emu.url]
        refresh = ["refresh", *sink, "--until", str(TODAY)]

        before = emu.stats()
        first, rss, started = _cli(refresh, env)
        after = emu.stats()
        by_route = {
            k: after["by_route"].get(k, 0) - before["by_route"].get(k, 0) for k in after["by_route"]
        }
        pages, movies = by_route.get("changes", 0), by_route.get("movie", 0)
        first_movie = after["first_by_route"].get("movie")
        to_first = None if first_movie is None else first_movie - started
        floor = first["pages"] + first["in_lake"]

        again, rss_again, _ = _cli(refresh, env)
        after_again = emu.stats()
        movies_again = after_again["by_route"].get("movie", 0) - after["by_route"].get("movie", 0)
        pages_again = after_again["by_route"].get("changes", 0) - after["by_route"].get(
            "changes", 0
        )

        new_only = [
            "run",
            str(updated),
            *sink,
            "--new-only",
            "--genres",
            "*",
            "--votes-above",
            "-1",
        ]
        added, rss_new, _ = _cli(new_only, env)
        after_new = emu.stats()
        new_requests = after_new["requests"] - after_again["requests"]

    ratio = (pages + movies) / floor if floor else float("nan")
    lines = [
        "## Keeping the lake current: refresh and --new-only",
        "",
        "`python -m benchmarks --only refresh` (`benchmarks/bench_refresh.py`). A lake of the "
        f"whole catalogue, {len(ids):,} movies in {n_files:,} data files, built directly in "
        f"moto's S3 ({built:.0f} s: keys, one index segment, the bookmark at {LOADED}, as "
        "after a first refresh); the "
        "emulator at 150 ms median latency, limit 50/s, with the catalogue's change history "
        f"(`--catalogue`, about 0.5% of it changed a day, three other ids for each). Each "
        "command in a fresh `tmdb-ingest` process at the default rate (40/s).",
        "",
        "| | requests | floor | full re-run | peak RSS | first movie request |",
        "|---|---|---|---|---|---|",
        f"| `refresh` of {TODAY} | {pages} pages + {movies:,} movies = {pages + movies:,} "
        f"({ratio:.4f} x floor) | {first['pages']} + {first['in_lake']:,} = {floor:,} "
        f"| {len(ids):,} | {rss:.0f} MB "
        f"| {'n/a' if to_first is None else f'{to_first:.2f} s'} after the process started |",
        f"| `refresh` again, same day | {pages_again} pages + {movies_again} movies "
        f"| 0 | {len(ids):,} | {rss_again:.0f} MB | none |",
        f"| `run --new-only`, {NEW_MOVIES} new ids in the updated CSV | {new_requests:,} "
        f"| {NEW_MOVIES} + 0 | {len(ids) + NEW_MOVIES:,} | {rss_new:.0f} MB | |",
        "",
        f"- The change list of {TODAY} named {first['changed']:,} TMDB ids in "
        f"{first['pages']} pages; {first['in_lake']:,} of them are movies of the lake "
        f"({first['in_lake'] / max(1, first['changed']):.0%}). The refresh fetched "
        f"{first['fetched']:,} ({first['not_found']} not found, {first['failed']} failed) "
        f"in {first['elapsed_s']:.0f} s, {first['requests']:,} requests by its own count, "
        f"{first['throttled']} throttled; done: {first['done']}.",
        f"- The second refresh found the bookmark at {TODAY}: {again['pages']} pages, "
        f"{again['fetched']} fetched, done: {again['done']}.",
        f"- `--new-only`: {added['selected']:,} selected, {added['skipped']:,} skipped "
        f"(held by the lake), new: {added.get('new')}, fetched {added['fetched']}, "
        f"{added['requests']} requests, {added['elapsed_s']:.0f} s (reading the 140 MB CSV "
        "included).",
        "",
    ]
    report.extend(lines)


if __name__ == "__main__":
    print_section(run)
