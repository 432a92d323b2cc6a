"""The emulator's change history: /movie/changes in TMDB's shape, bodies that follow the date."""

from __future__ import annotations

import argparse
import datetime as dt
from pathlib import Path

import aiohttp
import orjson
import pytest

from tests.fixtures_emulator import EmulatorFactory
from tmdb_ingest.emulator import EmulatorConfig
from tmdb_ingest.emulator.changes import HISTORY_START, ChangeHistory
from tmdb_ingest.emulator.cli import add_arguments, config_from_args

KEY = {"api_key": "test-api-key"}
CATALOGUE = frozenset(f"tt{n:07d}" for n in range(100_000, 100_400))
DAY = dt.date(2026, 11, 20)


def history(**kwargs: float) -> ChangeHistory:
    return ChangeHistory(CATALOGUE, seed=3, rate=kwargs.pop("rate", 0.2), **kwargs)


def test_history_is_fixed_by_its_inputs_and_moves_by_day() -> None:
    """Same seed, catalogue and rate: the same list; another day: another list."""
    a, b = history(), history()
    assert a.changed_ids(DAY) == b.changed_ids(DAY)
    assert a.changed_ids(DAY) != a.changed_ids(DAY + dt.timedelta(days=1))
    ours = {i for i, _ in a.changed_ids(DAY) if i < 20_000_000}
    assert ours == {int(i[2:]) for i in CATALOGUE if a.changed_on(i, DAY)}
    # about rate x catalogue of ours, three others for each of ours
    assert 40 <= len(ours) <= 120
    assert len(a.changed_ids(DAY)) == len(ours) * 4
    assert history(rate=0.2).changed_ids(DAY) != ChangeHistory(CATALOGUE, 4, 0.2).changed_ids(DAY)


def test_nothing_changes_before_the_history_starts_or_outside_the_catalogue() -> None:
    h = history(rate=1.0)
    assert not h.changed_on("tt0100000", HISTORY_START - dt.timedelta(days=1))
    assert h.changed_on("tt0100000", HISTORY_START)
    assert not h.changed_on("tt9999999", DAY)
    assert h.last_change("tt9999999", DAY) is None


def test_a_body_shows_the_latest_change_up_to_its_date() -> None:
    """Before a change day the old values, from it on the new ones; types stay TMDB's."""
    h = history()
    imdb_id = next(i for i in sorted(CATALOGUE) if h.changed_on(i, DAY))
    before = h.body(imdb_id, DAY - dt.timedelta(days=1), seed=3)
    after = h.body(imdb_id, DAY, seed=3)
    assert before != after
    assert after["vote_count"] > before["vote_count"]
    assert isinstance(after["vote_count"], int)
    assert isinstance(after["popularity"], float)
    assert list(after) == list(before)
    unchanged = next(i for i in sorted(CATALOGUE) if not h.changed_on(i, DAY))
    assert h.body(unchanged, DAY, 3) == h.body(unchanged, DAY - dt.timedelta(days=1), 3)


def test_a_range_lists_each_id_once_and_pages_by_100() -> None:
    h = history(rate=0.3)
    start, end = DAY - dt.timedelta(days=6), DAY
    first = h.page(start, end, 1, today=DAY)
    ids = []
    for page in range(1, first["total_pages"] + 1):
        answer = h.page(start, end, page, today=DAY)
        assert len(answer["results"]) <= 100
        ids += [r["id"] for r in answer["results"]]
    assert len(ids) == len(set(ids)) == first["total_results"]
    per_day: set[int] = set()
    for k in range(7):
        per_day |= {i for i, _ in h.changed_ids(start + dt.timedelta(days=k))}
    assert set(ids) == per_day
    assert first["total_pages"] == -(-len(ids) // 100) > 1
    # the days after the emulator's date have no changes yet
    assert h.page(DAY, DAY + dt.timedelta(days=3), 1, today=DAY) == h.page(DAY, DAY, 1, DAY)


def test_emulate_takes_today_and_a_catalogue(tmp_path: Path) -> None:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    csv = tmp_path / "movies.csv"
    csv.write_text("id|x\ntt0100001|a\ntt0100001|b\nnm0000001|c\ntt0100002|d\n", encoding="utf-8")
    config = config_from_args(
        parser.parse_args(
            ["--today", "2026-12-03", "--catalogue", str(csv), "--change-rate", "0.5"]
        )
    )
    assert config.today == dt.date(2026, 12, 3)
    assert config.catalogue == {"tt0100001", "tt0100002"}
    assert config.change_rate == 0.5
    with pytest.raises(SystemExit):
        parser.parse_args(["--today", "12/03/2026"])


@pytest.mark.slow
async def test_movie_changes_over_tcp_in_tmdb_shape(emulator_factory: EmulatorFactory) -> None:
    """TMDB's shape and limits; the bodies served follow the emulator's date."""
    emu = await emulator_factory(
        EmulatorConfig(seed=3, catalogue=CATALOGUE, change_rate=0.2, today=DAY, missing_rate=0)
    )
    async with aiohttp.ClientSession() as session:
        params = {**KEY, "start_date": "2026-11-20", "end_date": "2026-11-20", "page": "1"}
        async with session.get(f"{emu.url}/movie/changes", params=params) as resp:
            assert resp.status == 200
            answer = orjson.loads(await resp.read())
        assert set(answer) == {"results", "page", "total_pages", "total_results"}
        assert answer["page"] == 1
        assert answer["total_results"] == len(history().changed_ids(DAY))
        assert all(set(r) == {"id", "adult"} for r in answer["results"])
        assert len(answer["results"]) == 100

        too_long = {**params, "start_date": "2026-11-01", "end_date": "2026-11-16"}
        async with session.get(f"{emu.url}/movie/changes", params=too_long) as resp:
            assert resp.status == 422
            body = orjson.loads(await resp.read())
        assert body["success"] is False
        assert isinstance(body["status_code"], int)
        assert "14 days" in body["status_message"]
        ok = {**params, "start_date": "2026-11-01", "end_date": "2026-11-15"}
        async with session.get(f"{emu.url}/movie/changes", params=ok) as resp:
            assert resp.status == 200

        async with session.get(f"{emu.url}/movie/changes") as resp:
            assert resp.status == 401  # auth applies as to movies

        imdb_id = next(i for i in sorted(CATALOGUE) if history().changed_on(i, DAY))
        async with session.get(f"{emu.url}/movie/{imdb_id}", params=KEY) as resp:
            today_body = await resp.read()
        assert today_body == emu.expected_body(imdb_id)
        emu.set_today(DAY - dt.timedelta(days=1))
        async with session.get(f"{emu.url}/movie/{imdb_id}", params=KEY) as resp:
            yesterday_body = await resp.read()
        assert yesterday_body == emu.expected_body(imdb_id) != today_body
        assert orjson.loads(yesterday_body)["vote_count"] < orjson.loads(today_body)["vote_count"]
    assert emu.stats.by_route["changes"] == 4
    assert emu.stats.by_route["movie"] == 2


def test_removed_movies_are_missing_from_their_change_day() -> None:
    h = ChangeHistory(CATALOGUE, seed=3, rate=0.2, removal_rate=1.0)
    imdb_id = next(i for i in sorted(CATALOGUE) if h.changed_on(i, DAY))
    first = next(
        HISTORY_START + dt.timedelta(days=k)
        for k in range(400)
        if h.changed_on(imdb_id, HISTORY_START + dt.timedelta(days=k))
    )
    assert not h.removed_by(imdb_id, first - dt.timedelta(days=1))
    assert h.removed_by(imdb_id, first)
