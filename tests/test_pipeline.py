"""The whole pipeline over real TCP: the TMDB emulator and moto's S3 server."""

from __future__ import annotations

import datetime as dt
import itertools
import json
import logging
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir, read_s3
from tests.s3proxy import S3FaultProxy
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.emulator.server import ALL_FAULTS, EmulatorConfig
from tmdb_ingest.errors import AuthError, SinkError
from tmdb_ingest.run.state import shard_of

KEY = "test-api-key"
# A fixed run date (not today's, which would change under a test run across UTC midnight,
# and the run id and keys with it).
DAY = dt.date(2025, 6, 15)


def settings(tmdb_url: str, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url,
        "api_key": KEY,
        "rate": 400,
        "concurrency": 10,
        "batch_size": 50,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    base.update(changes)
    return Settings(**base)


async def test_every_id_lands_once_in_full_batches_with_bodies_as_sent(
    emulator_factory: EmulatorFactory, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """Every selected id is in exactly one data file or the report; files hold batch_size
    movies except one; each landed body is byte for byte what the emulator sent."""
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.1, seed=3))
    selected = ids(333)
    summary = await ingest(
        selected, settings(emu.url, bucket=bucket, s3_endpoint_url=s3_endpoint), today=DAY
    )
    landed = read_s3(s3, bucket)
    landed.assert_exactly_once(selected)
    sizes = sorted(len(movies) for movies in landed.files.values())
    assert sizes[:-1] == [] or all(n == 50 for n in sizes[1:])
    assert sum(n != 50 for n in sizes) <= 1
    missing = {i for i in selected if emu.is_missing(i)}
    assert set(landed.report_ids) == missing
    assert all(e["outcome"] == "not_found" and e["reason"] for e in landed.report)
    for key, raw in landed.raw.items():
        for movie, text in zip(landed.files[key], json.loads(raw), strict=True):
            expected = emu.expected_body(movie["imdb_id"])
            assert expected is not None
            assert json.loads(expected) == text
        assert all(emu.expected_body(m["imdb_id"]) in raw for m in landed.files[key])
    assert summary.done
    assert summary.selected == 333
    assert summary.fetched == 333 - len(missing)
    assert summary.not_found == len(missing)
    assert summary.batches == len(landed.files)
    assert summary.report is not None
    assert summary.report.startswith(f"s3://{bucket}/")
    assert "/_state/" in summary.report
    assert all(key.split("/")[3:6] == ["2025", "06", "15"] for key in landed.files)


async def test_rate_and_concurrency_are_never_exceeded(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """The emulator never sees more than `rate` requests in a second or `concurrency` at once."""
    emu = await emulator_factory(EmulatorConfig(latency_ms=60, latency_sigma=0.6))
    summary = await ingest(ids(150), settings(emu.url, out_dir=tmp_path, rate=50, concurrency=4))
    assert summary.done
    assert emu.stats.max_in_window(1.0) <= 50
    assert emu.stats.max_in_flight <= 4
    assert summary.requests == emu.stats.requests


@pytest.mark.parametrize("fault", ALL_FAULTS)
async def test_each_fault_kind_loses_and_duplicates_nothing(
    fault: str, emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """With one kind of transient fault on 30% of requests every id still lands exactly once,
    and only valid bodies land."""
    emu = await emulator_factory(
        EmulatorConfig(fault_rate=0.3, faults=(fault,), stall_s=3.0, seed=11)
    )
    selected = ids(80)
    summary = await ingest(
        selected, settings(emu.url, out_dir=tmp_path, request_timeout=0.4, max_attempts=8)
    )
    landed = read_dir(tmp_path)
    landed.assert_exactly_once(selected)
    assert summary.failed == 0
    assert summary.retries > 0
    assert emu.stats.faults[fault] > 0
    for raw in landed.raw.values():
        assert isinstance(json.loads(raw), list)


@pytest.mark.parametrize("retry_after", ["always", "never"])
async def test_429_is_honoured_with_and_without_retry_after(
    retry_after: str, emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A server limit below our rate gives 429s; the run slows down and still lands everything."""
    emu = await emulator_factory(EmulatorConfig(limit=15, retry_after=retry_after))  # type: ignore[arg-type]
    selected = ids(70)
    summary = await ingest(
        selected, settings(emu.url, out_dir=tmp_path, rate=30, max_attempts=10, max_retry_wait=60)
    )
    read_dir(tmp_path).assert_exactly_once(selected)
    assert summary.throttled > 0
    assert summary.throttled == emu.stats.throttled
    assert summary.failed == 0


async def test_a_rejected_key_stops_after_one_request(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A 401 stops the run at once (not one request per id) with AuthError."""
    emu = await emulator_factory(EmulatorConfig())
    with pytest.raises(AuthError, match="rejected") as caught:
        await ingest(ids(200), settings(emu.url, out_dir=tmp_path, api_key="wrong-key-xyz"))
    assert emu.stats.requests == 1  # the first request goes alone
    assert "wrong-key-xyz" not in str(caught.value)
    summary = caught.value.summary
    assert summary is not None
    assert summary.done is False


async def test_malformed_ids_are_reported_and_never_sent(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Ids that are not tt + digits go to the report as failed and never reach the server."""
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.0))
    bad = ["tt12", "nm0000001", "tt0000001/../../x"]
    selected = ids(10) + bad
    summary = await ingest(selected, settings(emu.url, out_dir=tmp_path))
    landed = read_dir(tmp_path)
    landed.assert_exactly_once(selected)
    assert {e["imdb_id"] for e in landed.report if e["outcome"] == "failed"} == set(bad)
    assert not any(b in i for b in bad for i in emu.stats.by_id)
    assert summary.failed == 3
    assert summary.done


async def test_rerunning_the_same_run_skips_what_landed(
    emulator_factory: EmulatorFactory, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """A second invocation of the same run sends no request and duplicates nothing."""
    emu = await emulator_factory(EmulatorConfig())
    selected = ids(120)
    conf = settings(emu.url, bucket=bucket, s3_endpoint_url=s3_endpoint)
    first = await ingest(selected, conf)
    requests = emu.stats.requests
    second = await ingest(selected, conf)
    assert second.run_id == first.run_id
    assert emu.stats.requests == requests
    assert second.skipped == 120
    assert second.fetched == 0
    assert second.done
    read_s3(s3, bucket).assert_exactly_once(selected)


async def test_a_time_budget_stops_in_time_and_the_next_run_finishes_exactly_once(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """A short budget returns within it with done False; re-running completes the rest once."""
    emu = await emulator_factory(EmulatorConfig(latency_ms=100))
    selected = ids(300)
    conf = settings(emu.url, out_dir=tmp_path, rate=40, run_id="budget-run")
    # 300 ids at 40/s need 7.5 s: a 4 s budget ends the run early, with what it fetched
    # landed (when it stops, against the budget, is checked on virtual time in test_lander)
    first = await ingest(selected, conf.replace(time_budget=4.0))
    assert not first.done
    assert 0 < first.fetched + first.not_found < 300
    assert first.requests < 300
    second = await ingest(selected, conf)
    assert second.done
    assert second.skipped == first.fetched + first.not_found + first.failed
    read_dir(tmp_path).assert_exactly_once(selected)


async def test_shards_are_disjoint_and_cover_the_selection(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Three shards of one run land disjoint parts whose union is the selection, once."""
    emu = await emulator_factory(EmulatorConfig())
    selected = ids(240)
    seen: list[set[str]] = []
    before: set[str] = set()
    for index in range(3):
        conf = settings(emu.url, out_dir=tmp_path, run_id="sharded", shard=Shard(index, 3))
        summary = await ingest(selected, conf)
        assert summary.done
        assert summary.shard == f"{index}/3"
        landed = read_dir(tmp_path)
        now = set(landed.data_ids) | set(landed.report_ids)
        part = now - before  # what this shard's run landed or reported
        before = now
        assert summary.selected == len(part)
        assert part == {i for i in selected if shard_of(i, 3) == index}
        seen.append(part)
    assert all(len(part) > 40 for part in seen)  # a hash, not one shard taking everything
    assert not (seen[0] & seen[1])
    assert not (seen[1] & seen[2])
    assert not (seen[0] & seen[2])
    assert set().union(*seen) == set(selected)
    read_dir(tmp_path).assert_exactly_once(selected)
    assert Shard.parse("3/3") == Shard(0, 3)  # 1-based numbering names the same shards


async def test_s3_slowdown_and_500_after_landing_lose_and_duplicate_nothing(
    emulator_factory: EmulatorFactory, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """503 SlowDown, and 500 answers to PUTs that did land, neither lose nor duplicate ids."""
    emu = await emulator_factory(EmulatorConfig())

    first_puts = itertools.count()

    def decide(method: str, path: str, attempt: int) -> str | None:
        if method != "PUT" or attempt > 1:
            return None
        # every other first attempt, not hash(path) % 2: str hashes are salted per process
        # (and file names carry a random token), so the split, and whether both kinds occur
        # at all, would change from run to run
        return "slowdown" if next(first_puts) % 2 else "after"

    selected = ids(260)
    async with S3FaultProxy(s3_endpoint, decide) as proxy:
        summary = await ingest(
            selected,
            settings(emu.url, bucket=bucket, s3_endpoint_url=proxy.url, batch_size=20),
            today=DAY,
        )
    assert proxy.injected["slowdown"] > 0
    assert proxy.injected["after"] > 0
    landed = read_s3(s3, bucket)
    landed.assert_exactly_once(selected)
    assert summary.done
    assert summary.batches == len(landed.files)


async def test_a_missing_bucket_is_fatal_before_any_request(
    emulator_factory: EmulatorFactory, s3_endpoint: str
) -> None:
    """A bucket that does not exist stops the run with SinkError naming it, before TMDB is asked."""
    emu = await emulator_factory(EmulatorConfig())
    with pytest.raises(SinkError, match="no-such-bucket-here"):
        await ingest(
            ids(5), settings(emu.url, bucket="no-such-bucket-here", s3_endpoint_url=s3_endpoint)
        )
    assert emu.stats.requests == 0


async def test_access_denied_while_writing_stops_the_run_and_keeps_what_landed(
    emulator_factory: EmulatorFactory, s3: Any, bucket: str, s3_endpoint: str
) -> None:
    """An AccessDenied on a data write is fatal; what landed before stays, and a re-run
    (with access back) completes exactly once."""
    emu = await emulator_factory(EmulatorConfig())
    selected = ids(200)
    denied = {"on": True}
    writes = {"n": 0}

    def decide(method: str, path: str, attempt: int) -> str | None:
        if method == "PUT" and "/_state/" not in path:
            writes["n"] += 1
            if denied["on"] and writes["n"] > 2:
                return "denied"
        return None

    async with S3FaultProxy(s3_endpoint, decide) as proxy:
        conf = settings(
            emu.url, bucket=bucket, s3_endpoint_url=proxy.url, batch_size=20, run_id="denied"
        )
        with pytest.raises(SinkError, match="AccessDenied"):
            await ingest(selected, conf)
        assert len(read_s3(s3, bucket).files) >= 1
        denied["on"] = False
        summary = await ingest(selected, conf)
    assert summary.done
    read_s3(s3, bucket).assert_exactly_once(selected)


async def test_the_key_is_in_no_log_line_or_object(
    emulator_factory: EmulatorFactory, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """With faults, retries and debug logging, the API key appears in no log and no file."""
    secret = "k3y-that-must-never-leak-0042"
    emu = await emulator_factory(
        EmulatorConfig(api_key=secret, fault_rate=0.3, faults=("reset", "503_html", "bad_json"))
    )
    caplog.set_level(logging.DEBUG)
    await ingest(ids(60), settings(emu.url, out_dir=tmp_path, api_key=secret, max_attempts=8))
    assert secret not in caplog.text
    for path in tmp_path.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes()
    with pytest.raises(AuthError) as caught:
        await ingest(ids(5), settings(emu.url, out_dir=tmp_path / "x", api_key=secret + "-bad"))
    assert secret not in str(caught.value)
    assert secret not in caplog.text


async def test_an_unreachable_s3_endpoint_is_fatal_with_a_clear_reason(
    emulator_factory: EmulatorFactory,
) -> None:
    """An S3 endpoint where nothing listens stops the run with SinkError, before any request."""
    emu = await emulator_factory(EmulatorConfig())
    conf = settings(emu.url, bucket="some-bucket", s3_endpoint_url="http://127.0.0.1:9")
    with pytest.raises(SinkError, match="some-bucket"):
        await ingest(ids(5), conf)
    assert emu.stats.requests == 0


async def test_long_lived_objects_are_frozen_during_a_run_and_released_after(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """While a run fetches, the objects alive at its start are out of the GC's scans (a
    full collection over them stalled the loop ~20 ms); afterwards they are unfrozen."""
    import gc

    emu = await emulator_factory(EmulatorConfig())
    seen: list[int] = []

    class Watch:
        def update(self, snapshot: object) -> None:
            seen.append(gc.get_freeze_count())

    assert gc.get_freeze_count() == 0
    await ingest(ids(30), settings(emu.url, out_dir=tmp_path), progress=Watch())
    assert seen
    assert min(seen) > 1000  # modules, botocore's models, ...
    assert gc.get_freeze_count() == 0
