"""Bad days over real TCP: TMDB not there, persistent failures repaired by a re-run, stops."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.server import EmulatorConfig
from tmdb_ingest.errors import TmdbUnreachable
from tmdb_ingest.run.stopping import StopRequest

KEY = "test-api-key"


def settings(tmdb_url: str, out_dir: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url,
        "api_key": KEY,
        "out_dir": out_dir,
        "rate": 400,
        "concurrency": 10,
        "batch_size": 20,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
    }
    base.update(changes)
    return Settings(**base)


def closed_port() -> int:
    """A port on 127.0.0.1 that nothing listens on."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
async def html_404_server() -> AsyncIterator[str]:
    """A web server that is not TMDB: every path is a 404 HTML page (a proxy, a wrong URL)."""

    async def not_found(request: web.Request) -> web.Response:
        return web.Response(
            status=404, text="<html><h1>Not Found</h1></html>", content_type="text/html"
        )

    app = web.Application()
    app.router.add_route("GET", "/{tail:.*}", not_found)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/3"
    finally:
        await runner.cleanup()


async def test_nothing_listening_is_fatal_before_any_id_is_reported(tmp_path: Path) -> None:
    """A closed port stops the run with TmdbUnreachable; no id is reported failed."""
    url = f"http://127.0.0.1:{closed_port()}/3"
    with pytest.raises(TmdbUnreachable, match="did not answer") as caught:
        await ingest(ids(50), settings(url, tmp_path))
    message = str(caught.value)
    assert "--tmdb-url" in message
    assert "connection error" in message
    summary = caught.value.summary
    assert summary is not None
    assert summary.done is False
    assert summary.failed == summary.not_found == summary.fetched == 0
    assert summary.requests == 3  # the first id, tried a few times, alone
    assert summary.error == message
    landed = read_dir(tmp_path)
    assert not landed.report
    assert not landed.files


@pytest.mark.slow
async def test_a_server_answering_404_html_is_not_tmdb(
    html_404_server: str, tmp_path: Path
) -> None:
    """404s without TMDB's body are never `not_found`: the run is fatal, nothing reported."""
    with pytest.raises(TmdbUnreachable, match="404 that is not TMDB's") as caught:
        await ingest(ids(50), settings(html_404_server, tmp_path))
    summary = caught.value.summary
    assert summary is not None
    assert summary.not_found == summary.failed == 0
    assert not read_dir(tmp_path).report


async def test_failed_ids_land_on_a_healthy_rerun_exactly_once(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Ids that failed (persistent 500s) are tried again by the next invocation and land."""
    selected = ids(400)
    broken = await emulator_factory(EmulatorConfig(broken_rate=0.05, missing_rate=0.05, seed=3))
    conf = settings(broken.url, tmp_path, run_id="repair", max_attempts=2)
    first = await ingest(selected, conf)
    assert first.failed > 5  # about 5% of 400
    assert first.done  # every id is in a data file or the report
    before = read_dir(tmp_path)
    failed = {e["imdb_id"] for e in before.report if e["outcome"] == "failed"}
    assert len(failed) == first.failed
    before.assert_exactly_once(selected)

    healthy = await emulator_factory(EmulatorConfig(missing_rate=0.05, seed=3))
    second = await ingest(selected, conf.replace(tmdb_url=healthy.url))
    assert second.retried_failed == len(failed)
    # The configuration check, then only the failed ids were asked for again.
    assert second.requests == 1 + len(failed)
    assert second.failed == 0
    assert second.done
    after = read_dir(tmp_path)
    after.assert_exactly_once(selected)  # an id is never both landed and reported
    assert {e["outcome"] for e in after.report} == {"not_found"}
    gone = {i for i in failed if healthy.is_missing(i)}  # TMDB has no movie for these
    assert failed - gone <= set(after.data_ids)  # every other one landed
    assert gone <= set(after.report_ids)
    assert "retried_failed" in second.as_dict()

    third = await ingest(selected, conf.replace(tmdb_url=healthy.url))
    assert third.requests == 0  # not_found is final
    assert "retried_failed" not in third.as_dict()


async def test_a_stop_request_lands_what_was_fetched_and_the_rerun_finishes(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """StopRequest (what SIGINT/SIGTERM send) ends the run cleanly; the same run resumes."""
    selected = ids(600)
    emu = await emulator_factory(EmulatorConfig(latency_ms=20))
    conf = settings(emu.url, tmp_path, run_id="stopped", rate=200)
    stop = StopRequest()
    asyncio.get_running_loop().call_later(1.0, stop.request, "SIGTERM")
    first = await ingest(selected, conf, stop=stop)
    assert not first.done
    assert 0 < first.fetched + first.not_found < len(selected)
    partial = read_dir(tmp_path)
    partial.assert_exactly_once(set(partial.data_ids) | set(partial.report_ids))
    second = await ingest(selected, conf)
    assert second.done
    assert second.skipped == first.fetched + first.not_found
    read_dir(tmp_path).assert_exactly_once(selected)
