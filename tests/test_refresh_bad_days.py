"""A refresh on bad days: SIGKILL, two at once, a stop, TMDB failing or refusing the key."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.changes import ChangeHistory
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import AuthError
from tmdb_ingest.lake.index import LakeIndex
from tmdb_ingest.land.sinks import LocalSink
from tmdb_ingest.run.layout import LakeLayout

pytestmark = pytest.mark.slow

DAY0 = dt.date(2026, 11, 20)
DAY3 = DAY0 + dt.timedelta(days=3)
LAKE = ids(240)
CATALOGUE = frozenset(LAKE)
KEYS = LakeLayout.of("Raw/TMDB/JSON")
KEY = "test-api-key"


def settings(tmdb_url: str, out_dir: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url, "api_key": KEY, "rate": 400, "concurrency": 10,
        "batch_size": 25, "backoff_initial": 0.01, "backoff_max": 0.05, "out_dir": out_dir,
    }  # fmt: skip
    base.update(changes)
    return Settings(**base)


def emulator_config(**changes: Any) -> EmulatorConfig:
    base: dict[str, Any] = {
        "seed": 5, "catalogue": CATALOGUE, "change_rate": 0.1, "today": DAY0, "missing_rate": 0,
    }  # fmt: skip
    base.update(changes)
    return EmulatorConfig(**base)


def expected_changed() -> set[str]:
    history = ChangeHistory(CATALOGUE, 5, 0.1)
    days = [DAY0 + dt.timedelta(days=k) for k in range(4)]
    return {i for i in LAKE if any(history.changed_on(i, d) for d in days)}


def refreshed(out: Path) -> Counter[str]:
    """How many times each movie is in a refresh's data files."""
    landed = read_dir(out)
    return Counter(
        m["imdb_id"] for key, movies in landed.files.items() if "-refresh-" in key for m in movies
    )


def bookmark(out: Path) -> str | None:
    path = out / KEYS.bookmark_key
    return json.loads(path.read_bytes())["until"] if path.exists() else None


@pytest.fixture
def tmdb() -> Iterator[EmulatorThread]:
    with EmulatorThread(emulator_config()) as emu:
        yield emu


@pytest.fixture
def lake(tmdb: EmulatorThread, tmp_path: Path) -> Path:
    """A lake loaded on DAY0; the emulator then three days later."""
    out = tmp_path / "out"
    summary = asyncio.run(ingest(LAKE, settings(tmdb.url, out), today=DAY0))
    assert summary.done
    tmdb.set_today(DAY3)
    return out


def refresh_argv(tmdb: EmulatorThread, out: Path, *more: str) -> list[str]:
    argv = [sys.executable, "-m", "tmdb_ingest", "refresh", "--out-dir", str(out)]
    return [*argv, "--tmdb-url", tmdb.url, "--until", str(DAY3), "--batch-size", "4", *more]


def env() -> dict[str, str]:
    # a short lease: a new process waits out a killed one's (TTL + skew)
    return {
        **os.environ, "TMDB_API_KEY": KEY, "TMDB_INGEST_LEASE_TTL": "3",
        "TMDB_INGEST_LEASE_SKEW": "0.5",
    }  # fmt: skip


def wait_for_refresh_files(proc: subprocess.Popen[Any], out: Path, at_least: int = 1) -> None:
    for _ in range(600):
        if proc.poll() is not None or sum(refreshed(out).values()) >= at_least:
            return
        time.sleep(0.05)


def last_json(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


def test_a_refresh_killed_midway_and_run_again_lands_each_changed_movie_once(
    tmdb: EmulatorThread, lake: Path
) -> None:
    argv = refresh_argv(tmdb, lake, "--rate", "20")
    proc = subprocess.Popen(argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_refresh_files(proc, lake, at_least=8)
        assert proc.poll() is None, "the refresh ended before it could be killed"
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    partly = refreshed(lake)
    assert 0 < sum(partly.values()) < len(expected_changed())
    assert bookmark(lake) is None  # killed: the bookmark did not move
    final = subprocess.run(
        [*argv, "--json"], env=env(), capture_output=True, text=True, timeout=120
    )
    assert final.returncode == 0, final.stderr
    summary = last_json(final.stdout)
    assert summary["done"] is True
    assert summary["skipped"] >= sum(partly.values())
    counts = refreshed(lake)
    assert set(counts) == expected_changed()
    assert set(counts.values()) == {1}
    assert bookmark(lake) == str(DAY3)
    # the lake index too: one entry per data file that landed, the killed one's included
    files = asyncio.run(LakeIndex(LocalSink(lake), KEYS).files())
    entries = Counter(i for f in files for i, _ in f.movies)
    landed = Counter(m["imdb_id"] for movies in read_dir(lake).files.values() for m in movies)
    assert entries == landed
    assert {f.key for f in files} == set(read_dir(lake).files)


def test_two_refreshes_at_once_one_exits_4_having_written_nothing(
    tmdb: EmulatorThread, lake: Path
) -> None:
    argv = refresh_argv(tmdb, lake, "--rate", "10")
    first = subprocess.Popen(argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(600):
            if (lake / KEYS.refresh_lease_key).exists():
                break
            time.sleep(0.05)
        requests_before = tmdb.stats.requests
        second = subprocess.run(
            [*argv, "--json"], env=env(), capture_output=True, text=True, timeout=120
        )
        assert second.returncode == 4, second.stderr
        assert "busy" in second.stderr
        summary = last_json(second.stdout)
        assert summary["busy"] is True
        assert (summary["requests"], summary["fetched"], summary["batches"]) == (0, 0, 0)
        assert first.poll() is None  # the first was still working all along
        assert tmdb.stats.requests >= requests_before
    finally:
        assert first.wait(timeout=120) == 0
    counts = refreshed(lake)
    assert set(counts) == expected_changed()
    assert set(counts.values()) == {1}


def test_a_stopped_refresh_leaves_the_bookmark_and_the_same_command_resumes(
    tmdb: EmulatorThread, lake: Path
) -> None:
    argv = refresh_argv(tmdb, lake, "--rate", "20")
    proc = subprocess.Popen(argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_for_refresh_files(proc, lake, at_least=4)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130
    finally:
        proc.kill()
        proc.wait()
        assert proc.stderr is not None
        proc.stderr.close()
    assert bookmark(lake) is None
    final = subprocess.run(argv, env=env(), capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    assert bookmark(lake) == str(DAY3)
    assert set(refreshed(lake).values()) == {1}


async def test_the_change_list_is_retried_on_5xx_and_429_like_a_movie(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    from tmdb_ingest.lake.refresh import refresh

    emu = await emulator_factory(emulator_config())
    await ingest(LAKE, settings(emu.url, tmp_path), today=DAY0)
    faulty = emulator_config(
        today=DAY3, fault_rate=0.3, faults=("500_json", "503_json", "502_json"), limit=30
    )
    emu.config = faulty
    emu.reset_stats()
    summary = await refresh(settings(emu.url, tmp_path, rate=60), until=DAY3)
    assert summary.done
    assert summary.throttled > 0
    assert summary.retries > 0
    assert emu.stats.by_route["changes"] > summary.pages  # pages were asked again
    assert set(refreshed(tmp_path)) == expected_changed()
    assert bookmark(tmp_path) == str(DAY3)


async def test_a_rejected_key_on_the_change_list_is_fatal_and_the_bookmark_stays(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    from tmdb_ingest.lake.refresh import refresh

    emu = await emulator_factory(emulator_config())
    await ingest(LAKE, settings(emu.url, tmp_path), today=DAY0)
    emu.set_today(DAY3)
    emu.reset_stats()
    with pytest.raises(AuthError):
        await refresh(settings(emu.url, tmp_path, api_key="wrong-key"), until=DAY3)
    assert emu.stats.requests == 1  # fatal at once, not retried
    assert bookmark(tmp_path) is None
    assert refreshed(tmp_path) == Counter()
