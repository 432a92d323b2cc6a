"""The runnable examples in examples/, run as a user would against the emulator and moto."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tmdb_ingest.emulator import Emulator
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.selection.reader import select_ids

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"
# A broad selection, so that a 300-movie sample yields a few hundred ids, some missing.
GENRES = "Drama,Comedy,Action,Sci-Fi,Fantasy,Documentary,Horror,Thriller,Romance,Crime"
VOTES_ABOVE = 10


@pytest.fixture(scope="module")
def movies_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 300-movie sample movies.csv."""
    path = tmp_path_factory.mktemp("examples") / "movies.csv"
    generate_movies_csv(path, movies=300, seed=11)
    return path


@pytest.fixture(scope="module")
def selected(movies_csv: Path) -> list[str]:
    """The ids the examples select from the sample."""
    ids = select_ids(movies_csv, genres=GENRES.split(","), votes_above=VOTES_ABOVE).ids
    assert len(ids) > 50
    return ids


async def run_example(
    name: str, *args: str, emulator: Emulator, s3_endpoint: str | None = None
) -> tuple[list[str], Any]:
    """Run ``examples/{name}`` in a subprocess; return its stdout lines and last-line JSON."""
    env = {
        **os.environ,
        "TMDB_URL": emulator.url,
        "TMDB_API_KEY": "test-api-key",
        "TMDB_INGEST_GENRES": GENRES,
        "TMDB_INGEST_VOTES_ABOVE": str(VOTES_ABOVE),
        "TMDB_INGEST_RATE": "1000",
        "PYTHONPATH": str(ROOT),
    }
    if s3_endpoint is not None:
        env["AWS_ENDPOINT_URL_S3"] = s3_endpoint
    # In a thread: the emulator serves from this test's event loop meanwhile.
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, str(EXAMPLES / name), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    return lines, json.loads(lines[-1])


def expected_split(emulator: Emulator, ids: list[str]) -> tuple[set[str], set[str]]:
    """(ids TMDB has, ids it answers 404 for) according to the emulator."""
    missing = {i for i in ids if emulator.is_missing(i)}
    assert missing, "the sample should include some missing ids"
    return set(ids) - missing, missing


def movies_in(files: list[bytes]) -> list[dict[str, Any]]:
    """Every movie object in the given data files."""
    return [movie for body in files for movie in json.loads(body)]


async def test_select_and_ingest_s3_lands_every_found_movie_in_the_bucket(
    emulator: Emulator,
    s3_endpoint: str,
    s3: Any,
    bucket: str,
    movies_csv: Path,
    selected: list[str],
) -> None:
    """select_and_ingest_s3.py lands each found movie once in S3 and reports the missing ones."""
    _, summary = await run_example(
        "select_and_ingest_s3.py",
        str(movies_csv),
        "--bucket",
        bucket,
        emulator=emulator,
        s3_endpoint=s3_endpoint,
    )
    found, missing = expected_split(emulator, selected)
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    data_keys = [k for k in keys if k.startswith("Raw/TMDB/JSON/") and "/_" not in k]
    movies = movies_in([s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in data_keys])
    assert sorted(m["imdb_id"] for m in movies) == sorted(found)
    assert summary["done"] is True
    assert (summary["fetched"], summary["not_found"], summary["failed"]) == (
        len(found),
        len(missing),
        0,
    )
    assert len(data_keys) == summary["batches"] == -(-len(found) // 100)
    assert summary["report"].startswith(f"s3://{bucket}/Raw/TMDB/_state/")


async def test_ingest_to_folder_writes_the_bucket_layout_locally(
    emulator: Emulator, tmp_path: Path, movies_csv: Path, selected: list[str]
) -> None:
    """ingest_to_folder.py writes every found movie, byte for byte, under Raw/TMDB/JSON/."""
    out = tmp_path / "raw-zone"
    lines, summary = await run_example(
        "ingest_to_folder.py", str(movies_csv), str(out), emulator=emulator
    )
    found, missing = expected_split(emulator, selected)
    files = [
        p
        for p in sorted((out / "Raw" / "TMDB" / "JSON").rglob("*.json"))
        if "_state" not in p.parts
    ]
    movies = movies_in([p.read_bytes() for p in files])
    assert sorted(m["imdb_id"] for m in movies) == sorted(found)
    expected = json.loads(emulator.expected_body(movies[0]["imdb_id"]) or b"null")
    assert movies[0] == expected
    assert (summary["fetched"], summary["not_found"]) == (len(found), len(missing))
    assert sum(": " in line and line.endswith(" movies") for line in lines) == len(files)


async def test_custom_sink_receives_data_and_state(
    emulator: Emulator, movies_csv: Path, selected: list[str]
) -> None:
    """custom_sink.py's in-memory sink holds every found movie and counts the bytes written."""
    _, result = await run_example("custom_sink.py", str(movies_csv), emulator=emulator)
    found, missing = expected_split(emulator, selected)
    assert result["movies"] == result["fetched"] == len(found)
    assert result["not_found"] == len(missing)
    assert result["data_files"] == result["batches"] == -(-len(found) // 100)
    assert result["objects"] > result["data_files"]  # manifests, outcomes, report too
    assert result["bytes"] > 1000 * len(found) * 0.5
    assert result["report"].startswith("memory://Raw/TMDB/_state/")


async def test_read_summary_reports_each_missing_id_once(
    emulator: Emulator, tmp_path: Path, movies_csv: Path, selected: list[str]
) -> None:
    """read_summary.py prints the summary fields and one report line per missing id."""
    lines, result = await run_example(
        "read_summary.py", str(movies_csv), str(tmp_path / "out"), emulator=emulator
    )
    found, missing = expected_split(emulator, selected)
    summary, report = result["summary"], result["report"]
    assert summary["selected"] == len(selected)
    assert sorted(e["imdb_id"] for e in report) == sorted(missing)
    assert {e["outcome"] for e in report} == {"not_found"}
    assert f"accounted for {len(selected)} of {len(selected)} selected ids" in lines
    assert f"  selected: {len(selected)}" in lines
    assert summary["fetched"] == len(found)


@pytest.mark.slow
async def test_refresh_lake_fetches_again_what_changed_since_the_load(
    emulator_factory: Any, tmp_path: Path, selected: list[str]
) -> None:
    """refresh_lake.py, three days after a load, lands each changed movie of the lake once
    with its current body, and a second run the same day asks for nothing."""
    import datetime as dt

    from tmdb_ingest.api import ingest
    from tmdb_ingest.config.settings import Settings
    from tmdb_ingest.emulator import EmulatorConfig
    from tmdb_ingest.emulator.changes import ChangeHistory

    day0, day3 = dt.date(2026, 11, 20), dt.date(2026, 11, 23)
    config = EmulatorConfig(catalogue=frozenset(selected), change_rate=0.2, today=day0)
    emu = await emulator_factory(config)
    out = tmp_path / "lake"
    load = Settings(out_dir=out, tmdb_url=emu.url, api_key="test-api-key", rate=1000)
    assert (await ingest(selected, load, today=day0)).done
    emu.set_today(day3)
    history = ChangeHistory(frozenset(selected), 0, 0.2)
    changed = {
        i
        for i in selected
        if not emu.is_missing(i)
        and any(history.changed_on(i, day0 + dt.timedelta(days=k)) for k in range(4))
    }
    lines, summary = await run_example(
        "refresh_lake.py", str(out), "--until", str(day3), emulator=emu
    )
    assert summary["done"] is True
    assert (summary["since"], summary["until"]) == (str(day0), str(day3))
    assert summary["in_lake"] == summary["fetched"] == len(changed) > 0
    assert f"{len(changed)} of them in the lake" in lines[0]
    _, again = await run_example("refresh_lake.py", str(out), "--until", str(day3), emulator=emu)
    assert (again["pages"], again["fetched"], again["requests"]) == (0, 0, 0)
