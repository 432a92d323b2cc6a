"""Two invocations of one run: the lease lets exactly one write (moto over HTTP, a folder)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir, read_s3
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import RunBusy

KEY = "test-api-key"


def settings(tmdb_url: str, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url,
        "api_key": KEY,
        "rate": 200,
        "concurrency": 10,
        "batch_size": 50,
        "run_id": "twice",
        "lease_ttl": 3.0,
        "lease_skew": 0.5,
    }
    base.update(changes)
    return Settings(**base)


async def test_two_invocations_started_together_land_every_movie_once(
    emulator_factory: EmulatorFactory, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """Of two invocations started at the same moment one runs, the other is busy having
    sent and written nothing; a third after both finds everything done."""
    emu = await emulator_factory(EmulatorConfig(latency_ms=20))
    selected = ids(800)
    conf = settings(emu.url, bucket=bucket, s3_endpoint_url=s3_endpoint)
    first, second = await asyncio.gather(
        ingest(selected, conf), ingest(selected, conf), return_exceptions=True
    )
    outcomes = [first, second]
    busy = [o for o in outcomes if isinstance(o, RunBusy)]
    done = [o for o in outcomes if not isinstance(o, BaseException)]
    assert len(busy) == 1, outcomes
    assert len(done) == 1, outcomes
    assert str(busy[0]).startswith("run twice shard 0/1 is held by ")
    summary = busy[0].summary
    assert summary is not None
    assert summary.busy is True
    assert summary.done is False
    assert summary.requests == 0
    assert summary.as_dict()["busy"] is True
    assert done[0].done
    assert emu.stats.requests == done[0].requests  # the busy one sent nothing

    third = await ingest(selected, conf)
    assert third.done
    assert third.requests == 0
    assert third.skipped == len(selected)
    assert emu.stats.requests <= 1.05 * len(selected)
    landed = read_s3(s3, bucket)
    landed.assert_exactly_once(selected)
    assert not [k for k in landed.other if k.endswith("lease.json")]  # released


@pytest.mark.slow
def test_a_second_command_while_the_first_runs_exits_4_busy(tmp_path: Path) -> None:
    """`tmdb-ingest run` twice on one folder: the second exits 4 with a one-line reason and a
    busy JSON summary, within about one lease TTL; the first finishes exactly once."""
    from tmdb_ingest.emulator.sample import generate_movies_csv
    from tmdb_ingest.selection.reader import select_ids

    csv = tmp_path / "movies.csv"
    generate_movies_csv(csv, movies=8000, seed=9)
    out = tmp_path / "out"
    with EmulatorThread(EmulatorConfig(latency_ms=10)) as tmdb:
        env = {**os.environ, "TMDB_API_KEY": KEY, "TMDB_INGEST_LEASE_TTL": "3"}
        argv = [sys.executable, "-m", "tmdb_ingest", "run", str(csv), "--out-dir", str(out)]
        argv += ["--tmdb-url", tmdb.url, "--rate", "40", "--batch-size", "7", "--json"]
        first = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            for _ in range(600):
                if first.poll() is not None or any(out.glob("Raw/TMDB/JSON/2*/*/*/*.json")):
                    break
                time.sleep(0.05)
            assert first.poll() is None, "the first run ended before the second started"
            requests_before = tmdb.stats.requests
            second = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60)
            assert first.poll() is None, "the first run must still hold the lease"
            requests_during = tmdb.stats.requests
        finally:
            _out, err_first = first.communicate(timeout=120)
    assert second.returncode == 4, second.stderr
    lines = [line for line in second.stderr.splitlines() if line.startswith("tmdb-ingest:")]
    assert len(lines) == 1
    assert lines[0].startswith("tmdb-ingest: busy: run ")
    assert " is held by " in lines[0]
    assert " until " in lines[0]
    summary = json.loads(second.stdout.strip().splitlines()[-1])
    assert summary["busy"] is True
    assert summary["done"] is False
    assert summary["requests"] == 0
    assert requests_during >= requests_before  # the first kept going meanwhile
    assert first.returncode == 0, err_first
    read_dir(out).assert_exactly_once(select_ids(csv).ids)


async def test_a_dead_holders_lease_that_outlasts_the_budget_makes_the_run_busy(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A lease left by a killed holder that expires after this invocation's budget: the
    run does not overrun its budget waiting, it is busy, having sent and written nothing."""
    import datetime as dt

    from tmdb_ingest.config.settings import Shard
    from tmdb_ingest.run.layout import LakeLayout
    from tmdb_ingest.run.lease import LeaseRecord

    emu = await emulator_factory(EmulatorConfig())
    now = dt.datetime.now(dt.UTC)
    stale = LeaseRecord(
        run_id="twice", shard="0/1", holder="killed/123", token="t0", epoch=1, renewal=3,
        started=now.isoformat(), expires=(now + dt.timedelta(seconds=60)).isoformat(),
    )  # fmt: skip
    key = LakeLayout.of("Raw/TMDB/JSON").lease_key("twice", Shard())
    (tmp_path / key).parent.mkdir(parents=True)
    (tmp_path / key).write_bytes(stale.to_json())
    conf = settings(emu.url, out_dir=tmp_path, time_budget=3.0, lease_ttl=30.0)
    # the lease expires in 60 s: "outlasts" shows the wait ended at the budget, not at expiry
    with pytest.raises(RunBusy, match="outlasts this invocation's time budget") as caught:
        await ingest(ids(50), conf)
    assert caught.value.summary is not None
    assert caught.value.summary.busy
    assert emu.stats.requests == 0
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.name != "lease.json"]
    assert written == []


async def test_a_busy_run_saves_no_selection(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """ingest_csv on a run whose lease another invocation holds: the selection read from the
    CSV is not saved (it is written only under the lease), nor the input index."""
    from tests.test_selection import HEADER, row
    from tmdb_ingest.api import ingest_csv

    emu = await emulator_factory(EmulatorConfig())
    csv = tmp_path / "movies.csv"
    csv.write_text("\n".join([HEADER, row("tt0000001"), row("tt0000002")]) + "\n")
    out = tmp_path / "out"
    lease = _live_foreign_lease(out, "twice", 60.0)
    conf = settings(emu.url, out_dir=out, run_id="twice", time_budget=2.0, lease_ttl=30.0)
    with pytest.raises(RunBusy):
        await ingest_csv(csv, conf)
    assert [p for p in out.rglob("*") if p.is_file()] == [lease]
    assert emu.stats.requests == 0


def _live_foreign_lease(out: Path, run_id: str, seconds: float) -> Path:
    """Write a lease of run ``run_id`` held by another, live invocation for ``seconds``."""
    import datetime as dt

    from tmdb_ingest.config.settings import Shard
    from tmdb_ingest.run.layout import LakeLayout
    from tmdb_ingest.run.lease import LeaseRecord

    now = dt.datetime.now(dt.UTC)
    record = LeaseRecord(
        run_id=run_id, shard="0/1", holder="other/1", token="t0", epoch=1, renewal=1,
        started=now.isoformat(), expires=(now + dt.timedelta(seconds=seconds)).isoformat(),
    )  # fmt: skip
    path = out / LakeLayout.of("Raw/TMDB/JSON").lease_key(run_id, Shard())
    path.parent.mkdir(parents=True)
    path.write_bytes(record.to_json())
    return path


async def test_a_stop_while_waiting_for_the_lease_ends_the_wait_with_nothing_done(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Asked to stop while it waits out another invocation's lease (here for a minute), the
    invocation ends then, not when the lease expires: nothing sent, nothing written, the
    other's lease untouched, a summary that is not done (the same command resumes)."""
    from tmdb_ingest.run.stopping import StopRequest

    emu = await emulator_factory(EmulatorConfig())
    lease = _live_foreign_lease(tmp_path, "twice", 60.0)
    before = lease.read_bytes()
    stop = StopRequest()
    asyncio.get_running_loop().call_later(0.5, stop.request, "SIGINT")
    async with asyncio.timeout(30):  # the lease would keep it waiting 60 s
        summary = await ingest(ids(50), settings(emu.url, out_dir=tmp_path, lease_ttl=30.0),
                               stop=stop)  # fmt: skip
    assert stop.reason == "SIGINT"
    assert summary.done is False
    assert summary.busy is False
    assert (summary.fetched, summary.requests, summary.batches) == (0, 0, 0)
    assert emu.stats.requests == 0
    assert lease.read_bytes() == before
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == [lease]


@pytest.mark.slow
def test_ctrl_c_while_waiting_for_the_lease_exits_130_at_once(tmp_path: Path) -> None:
    """`tmdb-ingest run` waiting out another invocation's lease: Ctrl-C ends it then, with
    exit 130 and the usual line, having sent and written nothing."""
    from tmdb_ingest.emulator.sample import generate_movies_csv

    csv = tmp_path / "movies.csv"
    generate_movies_csv(csv, movies=300, seed=3)
    out = tmp_path / "out"
    lease = _live_foreign_lease(out, "held", 120.0)
    before = lease.read_bytes()
    with EmulatorThread(EmulatorConfig()) as emu:
        env = {**os.environ, "TMDB_API_KEY": KEY}
        argv = [sys.executable, "-m", "tmdb_ingest", "run", str(csv), "--out-dir", str(out),
                "--tmdb-url", emu.url, "--run-id", "held", "--lease-ttl", "30", "--json", "-v",
                "--time-budget", "90"]  # fmt: skip
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                text=True)  # fmt: skip
        try:
            assert proc.stderr is not None
            seen = []
            for line in proc.stderr:
                seen.append(line)
                if "is held by other/1" in line:
                    break
            assert any("is held by other/1" in line for line in seen), seen
            proc.send_signal(signal.SIGINT)
            stdout, stderr = proc.communicate(timeout=30)  # the lease lasts 120 s
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        assert emu.stats.requests == 0
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "tmdb-ingest: SIGINT: interrupted" in stderr
    summary = json.loads(stdout.strip().splitlines()[-1])
    assert (summary["done"], summary["fetched"], summary["requests"]) == (False, 0, 0)
    assert [p for p in (out / "Raw/TMDB/JSON").rglob("*") if p.is_file()] == []
    assert lease.read_bytes() == before


async def test_a_stop_asked_before_the_lease_is_taken_does_nothing(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A stop requested before the invocation reaches the lease (a Ctrl-C while the CSV is
    read): no lease is taken, nothing is sent or written, and the summary is not done."""
    from tmdb_ingest.run.stopping import StopRequest

    emu = await emulator_factory(EmulatorConfig())
    stop = StopRequest()
    stop.request("SIGTERM")
    summary = await ingest(ids(50), settings(emu.url, out_dir=tmp_path), stop=stop)
    assert summary.done is False
    assert (summary.fetched, summary.requests) == (0, 0)
    assert emu.stats.requests == 0
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
