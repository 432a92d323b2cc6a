"""``tmdb-ingest demo``: the whole job, end to end, on this machine alone.

Generates a sample movies.csv, starts the TMDB emulator (about 150 ms median latency,
a server limit of 50 requests per second, some missing ids) and moto's S3 server,
runs the real pipeline at the default rate, prints the summary and the objects written,
then moves the emulator's date three days on and refreshes the lake from TMDB's change
list (only the changed movies are fetched again), and stops everything it started, also
when something fails.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import sys
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson

from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import ConfigError
from tmdb_ingest.logs import configure_logging
from tmdb_ingest.summary import Summary

DEMO_BUCKET = "tmdb-ingest-demo"
DEMO_KEY = "test-api-key"


# The demo loads the lake "three days ago" and refreshes it today; its emulator changes a
# larger share of its catalogue a day than TMDB (5%, not 0.5%), so the refresh has
# something to show on a small sample.
_DAYS_LATER = 3
_CHANGE_RATE = 0.05


@contextmanager
def local_services(
    seed: int, *, catalogue: frozenset[str] = frozenset(), today: dt.date | None = None
) -> Iterator[tuple[str, EmulatorThread]]:
    """Start moto's S3 server and the TMDB emulator on 127.0.0.1; yield (S3 URL, emulator).

    The emulator answers like TMDB at its documented pace (about 150 ms median latency,
    a limit of 50 requests per second, 5% missing ids). moto accepts any credentials:
    dummy ones are set for this process, so that a real AWS profile of the user's is
    never used (nor needed). Both are stopped on exit, also when the body raises.
    """
    try:
        from moto.server import ThreadedMotoServer
    except ImportError:
        raise ConfigError(
            "demo", "needs moto's S3 server: pip install 'tmdb-ingest[demo]' (or run make demo)"
        ) from None

    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        os.environ[name] = "demo"
    os.environ["AWS_DEFAULT_REGION"] = "us-east-1"
    os.environ.pop("AWS_PROFILE", None)
    os.environ.pop("AWS_SESSION_TOKEN", None)
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # moto's request log
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    moto.start()
    try:
        host, port = moto.get_host_and_port()
        config = EmulatorConfig(
            latency_ms=150, limit=50, missing_rate=0.05, seed=seed,
            catalogue=catalogue, change_rate=_CHANGE_RATE, today=today,
        )  # fmt: skip
        with EmulatorThread(config) as emulator:
            yield f"http://{host}:{port}", emulator
    finally:
        moto.stop()


def run_demo(movies: int = 8000, seed: int = 7) -> int:
    """Run the demo; return 0 when every selected movie landed or was reported."""
    with tempfile.TemporaryDirectory(prefix="tmdb-ingest-demo-") as tmp:
        csv = Path(tmp) / "movies.csv"
        sample = generate_movies_csv(csv, movies=movies, seed=seed)
        print(f"1. sample catalogue: {sample.rows} rows, {sample.movies} movies -> {csv}")
        from tmdb_ingest.emulator.cli import catalogue_from_csv

        now = dt.datetime.now(dt.UTC).date()
        load_day = now - dt.timedelta(days=_DAYS_LATER)
        catalogue = catalogue_from_csv(csv)
        with local_services(seed, catalogue=catalogue, today=load_day) as (s3_url, emulator):
            configure_logging((DEMO_KEY,))
            print(f"2. TMDB emulator at {emulator.url} (150 ms median, limit 50/s)")
            print(f"3. S3 (moto) at {s3_url}, bucket {DEMO_BUCKET}")
            settings = Settings.from_env(
                {},  # the demo's own settings, whatever the shell's TMDB_INGEST_* say
                bucket=DEMO_BUCKET,
                s3_endpoint_url=s3_url,
                tmdb_url=emulator.url,
                api_key=DEMO_KEY,
            )
            return asyncio.run(_run(csv, settings, s3_url, emulator, load_day, now))


async def _run(
    csv: Path,
    settings: Settings,
    s3_url: str,
    emulator: EmulatorThread,
    load_day: dt.date,
    now: dt.date,
) -> int:
    from aiobotocore.session import get_session

    from tmdb_ingest.api import ingest_csv
    from tmdb_ingest.progress import progress_for

    async with get_session().create_client("s3", endpoint_url=s3_url) as s3:
        await s3.create_bucket(Bucket=DEMO_BUCKET)
        rate, concurrency = settings.rate.per_second, settings.concurrency
        print(f"4. running at {rate:g} requests/s, {concurrency} in flight ...")
        max_in_window: Callable[[float], int] = emulator.stats.max_in_window
        with progress_for(sys.stderr) as progress:
            summary = await ingest_csv(csv, settings, progress=progress, today=load_day)
        print("5. summary:")
        print("   " + orjson.dumps(summary.as_dict()).decode())
        ideal = summary.requests / settings.rate.per_second
        print(
            f"   {summary.requests} requests in {summary.elapsed_s:.1f} s "
            f"(ideal at the rate: {ideal:.1f} s); busiest second at the server: "
            f"{max_in_window(1.0)} requests"
        )
        print("6. objects written:")
        paginator = s3.get_paginator("list_objects_v2")
        first_data = None
        async for page in paginator.paginate(Bucket=DEMO_BUCKET):
            for item in page.get("Contents", []):
                print(f"   s3://{DEMO_BUCKET}/{item['Key']}  {item['Size']:>8} bytes")
                if first_data is None and "/_state/" not in item["Key"]:
                    first_data = item["Key"]
        if first_data is not None:
            response = await s3.get_object(Bucket=DEMO_BUCKET, Key=first_data)
            async with response["Body"] as stream:
                movies = orjson.loads(await stream.read())
            print(f"7. the first movies of {first_data.rsplit('/', 1)[-1]}:")
            for movie in movies[:3]:
                print(
                    f"   {movie['imdb_id']}  {movie['title'][:40]:<40} "
                    f"budget {movie['budget']:>11,}  revenue {movie['revenue']:>13,}"
                )
        refreshed = await _refresh(settings, emulator, now)
    return 0 if summary.done and refreshed.done else 3


async def _refresh(settings: Settings, emulator: EmulatorThread, now: dt.date) -> Summary:
    """Step 8: the emulator some days later, and a refresh of the lake."""
    from tmdb_ingest.lake.refresh import refresh

    emulator.set_today(now)
    print(f"8. {_DAYS_LATER} days later ({now}): refresh from TMDB's change list ...")
    summary = await refresh(settings, until=now)
    print("   " + orjson.dumps(summary.as_dict()).decode())
    print(
        f"   {summary.pages} change-list pages, {summary.changed} movies changed at TMDB, "
        f"{summary.in_lake} of them in the lake, {summary.fetched} fetched again "
        f"({summary.requests} requests, {summary.elapsed_s:.1f} s); bookmark -> {summary.until}"
    )
    return summary
