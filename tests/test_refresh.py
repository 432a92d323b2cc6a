"""``refresh``: the lake's changed movies fetched again, once, and the bookmark moved."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.changes import ChangeHistory
from tmdb_ingest.emulator.server import Emulator, EmulatorConfig
from tmdb_ingest.lake.refresh import read_bookmark, refresh
from tmdb_ingest.land.sinks import LocalSink
from tmdb_ingest.run.layout import LakeLayout

pytestmark = pytest.mark.slow

DAY0 = dt.date(2026, 11, 20)
LAKE = ids(160)
CATALOGUE = frozenset(LAKE) | frozenset(ids(40, start=7000))  # some movies not in the lake
KEYS = LakeLayout.of("Raw/TMDB/JSON")


def settings(tmdb_url: str, out_dir: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url,
        "api_key": "test-api-key",
        "rate": 400,
        "concurrency": 10,
        "batch_size": 25,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "out_dir": out_dir,
    }
    base.update(changes)
    return Settings(**base)


def config(**changes: Any) -> EmulatorConfig:
    base: dict[str, Any] = {
        "seed": 5, "catalogue": CATALOGUE, "change_rate": 0.15, "today": DAY0,
        "missing_rate": 0.05,
    }  # fmt: skip
    base.update(changes)
    return EmulatorConfig(**base)


def changed_in_lake(emu: Emulator, since: dt.date, until: dt.date) -> set[str]:
    history = ChangeHistory(CATALOGUE, 5, 0.15)
    days = [since + dt.timedelta(days=k) for k in range((until - since).days + 1)]
    return {
        i for i in LAKE if not emu.is_missing(i) and any(history.changed_on(i, d) for d in days)
    }


def latest_versions(root: Path) -> dict[str, dict[str, Any]]:
    """Each movie's body from the data file whose key sorts last (the lake's current view)."""
    landed = read_dir(root)
    latest: dict[str, dict[str, Any]] = {}
    for key in sorted(landed.files):
        for movie in landed.files[key]:
            latest[movie["imdb_id"]] = movie
    return latest


async def test_a_refresh_fetches_each_changed_movie_of_the_lake_once(
    emulator_factory: EmulatorFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    emu = await emulator_factory(config())
    load = await ingest(LAKE, settings(emu.url, tmp_path), today=DAY0)
    assert load.done

    day3 = DAY0 + dt.timedelta(days=3)
    emu.set_today(day3)
    emu.reset_stats()
    first = await refresh(settings(emu.url, tmp_path), today=day3)
    expected = changed_in_lake(emu, DAY0, day3)
    assert 10 < len(expected) < len(LAKE)
    assert (first.since, first.until) == (str(DAY0), str(day3))
    assert first.in_lake == first.selected == first.fetched == len(expected)
    assert first.done
    assert first.changed > first.in_lake  # the list also names movies outside the lake
    assert emu.stats.by_route["movie"] == len(expected)  # each once, nothing else
    assert set(emu.stats.by_id) == expected
    assert emu.stats.by_route["changes"] == first.pages
    # GET /configuration before the change list and before the movies, the pages, the movies
    assert first.requests == 2 + first.pages + len(expected)
    assert (await read_bookmark(LocalSink(tmp_path), KEYS) or {})["until"] == str(day3)

    # the same day again: nothing new to read, no request at all
    emu.reset_stats()
    again = await refresh(settings(emu.url, tmp_path), today=day3)
    assert again.done
    assert (again.pages, again.in_lake, again.fetched, emu.stats.requests) == (0, 0, 0, 0)

    day6 = DAY0 + dt.timedelta(days=6)
    emu.set_today(day6)
    emu.reset_stats()
    second = await refresh(settings(emu.url, tmp_path), today=day6)
    assert second.since == str(day3 + dt.timedelta(days=1))
    assert set(emu.stats.by_id) == changed_in_lake(emu, day3 + dt.timedelta(days=1), day6)
    # the latest version of every movie is what TMDB serves now
    latest = latest_versions(tmp_path)
    assert set(latest) == {i for i in LAKE if not emu.is_missing(i)}
    for imdb_id, movie in latest.items():
        assert movie == json.loads(emu.expected_body(imdb_id) or b"null"), imdb_id

    # status shows the bookmark and the last refresh
    from tmdb_ingest.run.status import command

    capsys.readouterr()
    args = argparse.Namespace(out_dir=tmp_path, json=True)
    await asyncio.to_thread(command, args)
    shown = json.loads(capsys.readouterr().out)["refresh"]
    assert shown["bookmark"]["until"] == str(day6)
    assert (shown["last"]["since"], shown["last"]["in_lake"]) == (second.since, second.in_lake)
    await asyncio.to_thread(command, argparse.Namespace(out_dir=tmp_path, json=False))
    text = capsys.readouterr().out
    assert f"refresh bookmark: changes up to {day6}" in text
    assert f"{second.in_lake} in the lake" in text


async def test_each_movie_is_refreshed_with_what_it_was_first_fetched_with(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Movies loaded with credits are refreshed with credits, the others without."""
    emu = await emulator_factory(config())
    plain, rich = LAKE[:80], LAKE[80:]
    await ingest(plain, settings(emu.url, tmp_path), today=DAY0)
    await ingest(rich, settings(emu.url, tmp_path, append_to_response=("credits",)), today=DAY0)
    day3 = DAY0 + dt.timedelta(days=3)
    emu.set_today(day3)
    summary = await refresh(settings(emu.url, tmp_path), today=day3)
    assert summary.done
    assert len(summary.run_id.split(",")) == 2
    landed = read_dir(tmp_path)
    for key, movies in landed.files.items():
        if "/2026/11/23/" not in key:
            continue
        for movie in movies:
            assert ("credits" in movie) == (movie["imdb_id"] in rich), movie["imdb_id"]


async def test_a_window_tmdb_refuses_is_a_clear_error_and_the_bookmark_stays(
    emulator_factory: EmulatorFactory, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tmdb_ingest.errors import FatalError
    from tmdb_ingest.lake import change_list

    emu = await emulator_factory(config())
    await ingest(LAKE, settings(emu.url, tmp_path), today=DAY0)
    # a client that asks more than TMDB allows: 422, said once, not retried
    monkeypatch.setattr(change_list, "WINDOW_DAYS", 20)
    emu.reset_stats()
    with pytest.raises(FatalError, match=r"2026-11-20\.\.2026-12-09.*422") as raised:
        await refresh(settings(emu.url, tmp_path), today=DAY0 + dt.timedelta(days=30))
    assert raised.value.summary is not None
    assert emu.stats.by_route["changes"] == 1
    assert await read_bookmark(LocalSink(tmp_path), KEYS) is None


async def test_a_wrong_path_is_fatal_before_the_change_list_and_the_bookmark_stays(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A --tmdb-url that is not TMDB's v3 API (TMDB's 404 for every unknown path) stops the
    refresh on its first request, naming the URL; no page is read, the bookmark stays."""
    from tmdb_ingest.errors import TmdbUnreachable

    emu = await emulator_factory(config())
    await ingest(LAKE, settings(emu.url, tmp_path), today=DAY0)
    emu.reset_stats()
    wrong = emu.url.removesuffix("/3") + "/4"
    with pytest.raises(TmdbUnreachable, match=r"not TMDB's v3 API at http://\S+/4") as raised:
        await refresh(settings(wrong, tmp_path), today=DAY0 + dt.timedelta(days=3))
    assert raised.value.summary is not None
    assert not raised.value.summary.done
    assert emu.stats.by_route.get("changes", 0) == 0
    assert emu.stats.requests == 1
    assert await read_bookmark(LocalSink(tmp_path), KEYS) is None
