"""`tmdb-ingest status`: where a run stands, per shard, from its state alone (moto, folder)."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids
from tmdb_ingest.api import ingest
from tmdb_ingest.cli import main
from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.emulator.server import EmulatorConfig
from tmdb_ingest.errors import ConfigError
from tmdb_ingest.land.sinks import LocalSink, S3Sink
from tmdb_ingest.run.layout import legacy_state_root
from tmdb_ingest.run.state import RunState
from tmdb_ingest.run.status import run_status
from tmdb_ingest.run.stopping import StopRequest

KEY = "test-api-key"
STATUS_FIELDS = [
    "shard", "selected", "landed", "not_found", "failed", "left", "files", "started",
    "last_invocation", "done",
]  # fmt: skip


def settings(tmdb_url: str, **changes: Any) -> Settings:
    base: dict[str, Any] = {"tmdb_url": tmdb_url, "api_key": KEY, "rate": 400, "batch_size": 20}
    base.update(changes)
    return Settings(**base)


async def test_a_run_stopped_by_its_time_budget_shows_work_left(
    emulator_factory: EmulatorFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A shard stopped before the end (as a time budget or a signal stops it) is not done,
    with ids left; the counts agree with the run's own summary; the CLI prints them as a
    table and as JSON."""
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.1, seed=4))
    stop = StopRequest()

    async def stop_after_60_requests() -> None:
        while emu.stats.requests < 60:
            await asyncio.sleep(0.005)
        stop.request("time budget")

    conf = settings(emu.url, out_dir=tmp_path, concurrency=4, run_id="budget")
    stopper = asyncio.create_task(stop_after_60_requests())
    summary = await ingest(ids(300), conf, stop=stop)
    stopper.cancel()
    assert not summary.done

    status = await run_status(LocalSink(tmp_path))
    assert status.run_id == "budget"
    assert not status.done
    [shard] = status.shards
    assert (shard.shard, shard.selected, shard.done) == ("0/1", 300, False)
    assert (shard.landed, shard.not_found, shard.failed) == (
        summary.fetched,
        summary.not_found,
        summary.failed,
    )
    assert shard.left == 300 - summary.fetched - summary.not_found - summary.failed > 0
    assert shard.files == summary.batches > 0
    assert shard.started is not None
    assert shard.last_invocation is not None

    assert await asyncio.to_thread(main, ["status", "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out.splitlines()
    assert text[0].startswith("run budget, started ")
    assert text[2].split() == [
        "shard", "selected", "landed", "not_found", "failed", "left", "files", "started",
        "last", "invocation", "done",
    ]  # fmt: skip
    row = text[3].split()
    counts = (300, shard.landed, shard.not_found, 0, shard.left, shard.files)
    assert row[:7] == ["0/1", *map(str, counts)]
    assert row[-1] == "no"

    assert (
        await asyncio.to_thread(
            main, ["status", "--out-dir", str(tmp_path), "--run-id", "budget", "--json"]
        )
        == 0
    )
    printed = json.loads(capsys.readouterr().out)
    assert printed["done"] is False
    assert list(printed["shards"][0]) == STATUS_FIELDS
    assert printed["shards"][0]["left"] == shard.left
    assert printed["totals"]["left"] == shard.left

    await ingest(ids(300), conf.replace(time_budget=None))
    finished = await run_status(LocalSink(tmp_path), run_id="budget")
    assert finished.done
    assert finished.shards[0].left == 0
    assert finished.shards[0].started == shard.started  # the first invocation's start


async def test_shards_on_s3_including_one_never_started(
    emulator_factory: EmulatorFactory,
    bucket: str,
    s3_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """On S3, each shard has its own row; a shard never started is listed as not done,
    with its selection unknown, until it has run; then the run is done."""
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.1, seed=5))
    selected = ids(120)
    base = settings(emu.url, bucket=bucket, s3_endpoint_url=s3_endpoint, run_id="sharded")
    first = await ingest(selected, base.replace(shard=Shard(0, 2)))
    argv = ["status", "--bucket", bucket, "--s3-endpoint-url", s3_endpoint, "--json"]

    assert await asyncio.to_thread(main, argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["run_id"] == "sharded"
    assert printed["state"] == f"s3://{bucket}/Raw/TMDB/_state/sharded/"
    zero, one = printed["shards"]
    assert (zero["shard"], zero["selected"], zero["done"]) == ("0/2", first.selected, True)
    assert (zero["landed"], zero["not_found"], zero["left"]) == (first.fetched, first.not_found, 0)
    assert (one["shard"], one["selected"], one["left"], one["done"]) == ("1/2", None, None, False)
    assert (one["landed"], one["files"], one["last_invocation"]) == (0, 0, None)
    assert printed["done"] is False
    assert printed["totals"]["selected"] is None

    second = await ingest(selected, base.replace(shard=Shard(1, 2)))
    async with S3Sink(bucket, endpoint_url=s3_endpoint) as sink:
        status = await run_status(sink, run_id="sharded")
    assert status.done
    assert status.totals() == {
        "selected": 120,
        "landed": first.fetched + second.fetched,
        "not_found": first.not_found + second.not_found,
        "failed": 0,
        "left": 0,
        "files": first.batches + second.batches,
    }


async def test_the_latest_run_is_shown_unless_one_is_named(tmp_path: Path) -> None:
    """Without a run id, status shows the run that started last, wherever its state is
    (a run in the old place inside the data prefix is found too)."""
    sink = LocalSink(tmp_path)
    day = dt.date(2026, 11, 30)
    old = await RunState.open(
        sink,
        prefix="Raw/TMDB/JSON",
        run_id="old-place",
        shard=Shard(),
        today=day,
        state_root=legacy_state_root("Raw/TMDB/JSON"),
    )
    new = await RunState.open(sink, prefix="Raw/TMDB/JSON", run_id="new", shard=Shard(), today=day)
    for state, started in ((old, "2026-11-30T10:00:00+00:00"), (new, "2026-11-30T09:00:00+00:00")):
        meta = {**state.meta, "started": started}
        await sink.put(state.layout.meta_key, orjson.dumps(meta))
        await state.save()
    assert (await run_status(sink)).run_id == "old-place"
    named = await run_status(sink, run_id="new")
    assert (named.run_id, named.started) == ("new", "2026-11-30T09:00:00+00:00")
    assert named.state == str(tmp_path / "Raw/TMDB/_state/new")


async def test_no_run_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An empty state root, or a run id that is not there, is an error naming where it looked."""
    with pytest.raises(ConfigError, match="no run found under"):
        await run_status(LocalSink(tmp_path))
    assert (
        await asyncio.to_thread(main, ["status", "--out-dir", str(tmp_path), "--run-id", "nope"])
        == 2
    )
    err = capsys.readouterr().err
    assert "no run 'nope' under" in err
    assert "Raw/TMDB/_state" in err
