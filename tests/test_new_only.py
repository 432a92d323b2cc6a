"""``run --new-only``: the ids the lake already holds, from any run, are skipped."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.server import EmulatorConfig
from tmdb_ingest.summary import Summary

pytestmark = pytest.mark.slow


def settings(tmdb_url: str, out_dir: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url, "api_key": "test-api-key", "rate": 400, "concurrency": 10,
        "batch_size": 20, "backoff_initial": 0.01, "backoff_max": 0.05, "out_dir": out_dir,
    }  # fmt: skip
    base.update(changes)
    return Settings(**base)


async def test_new_only_fetches_only_what_no_run_landed(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emu = await emulator_factory(EmulatorConfig(missing_rate=0, seed=1))
    old, new = ids(100), ids(30, start=9000)
    first = await ingest(old[:60], settings(emu.url, tmp_path))
    await ingest(old[60:], settings(emu.url, tmp_path, batch_size=7))  # another run
    assert first.done
    emu.reset_stats()
    summary = await ingest([*old, *new], settings(emu.url, tmp_path), new_only=True)
    assert summary.done
    assert (summary.new, summary.skipped, summary.fetched) == (30, 100, 30)
    assert emu.stats.requests == 1 + 30  # GET /configuration, then the new ones, nothing else
    assert set(emu.stats.by_id) == set(new)
    assert json.loads(summary.to_json())["new"] == 30
    read_dir(tmp_path).assert_exactly_once([*old, *new])
    # resumed (the same run again): what it landed itself is not "held by the lake"
    again = await ingest([*old, *new], settings(emu.url, tmp_path), new_only=True)
    assert (again.new, again.skipped, again.fetched, again.done) == (30, 130, 0, True)


def test_new_is_only_in_the_summary_of_a_new_only_run() -> None:
    fields: dict[str, Any] = dict.fromkeys(
        ("selected", "skipped", "fetched", "not_found", "failed", "batches", "requests"), 0
    )
    fields.update(run_id="r", shard="0/1", retries=0, throttled=0, elapsed_s=0.0, done=True)
    assert "new" not in Summary(**fields, report=None).as_dict()
    assert Summary(**fields, report=None, new=3).as_dict()["new"] == 3
