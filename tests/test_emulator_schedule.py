"""The emulator's moving ceiling (``limit_schedule`` / ``--limit-schedule``)."""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import AsyncIterator

import aiohttp
import orjson
import pytest

from tests.fixtures_emulator import EmulatorFactory
from tmdb_ingest.emulator import Emulator, EmulatorConfig
from tmdb_ingest.emulator.cli import add_arguments, config_from_args

IDS = [f"tt{n:07d}" for n in range(1, 20)]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as s:
        yield s


async def status_of(session: aiohttp.ClientSession, url: str) -> tuple[int, bytes]:
    async with session.get(url, params={"api_key": "test-api-key"}) as resp:
        return resp.status, await resp.read()


def test_limit_at_follows_the_schedule_from_the_first_request() -> None:
    """Before the first step the plain limit holds; each step holds from its time on."""
    emu = Emulator(EmulatorConfig(limit=45, limit_schedule=((30, 25), (90, 45))))
    assert [emu.limit_at(t) for t in (0, 29.9, 30, 89.9, 90, 500)] == [45, 45, 25, 25, 45, 45]
    assert Emulator(EmulatorConfig()).limit_at(10) is None


@pytest.mark.parametrize("schedule", [((30, 25), (10, 45)), ((-1, 25),), ((5, 0),)])
def test_a_bad_schedule_is_refused(schedule: tuple[tuple[float, float], ...]) -> None:
    """Steps out of order, before the start or with a limit that is not positive are refused."""
    with pytest.raises(ValueError, match="limit_schedule"):
        EmulatorConfig(limit=45, limit_schedule=schedule)


def test_cli_option_parses_seconds_and_limits() -> None:
    """--limit-schedule 30:25,90:45 becomes ((30, 25), (90, 45)); a malformed one exits."""
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    config = config_from_args(
        parser.parse_args(["--limit", "45", "--limit-schedule", "30:25,90:45"])
    )
    assert config.limit_schedule == ((30.0, 25.0), (90.0, 45.0))
    assert config_from_args(parser.parse_args([])).limit_schedule == ()
    with pytest.raises(SystemExit):
        parser.parse_args(["--limit-schedule", "30-25"])


async def test_a_later_step_lowers_the_limit_over_http(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """With limit 5 dropping to 2 after 60 s, a burst 60 s after the first request gets two
    200s and 429s naming the new limit."""
    emu = await emulator_factory(EmulatorConfig(limit=5, limit_schedule=((60, 2),), missing_rate=0))
    assert (await status_of(session, f"{emu.url}/movie/{IDS[0]}"))[0] == 200
    # Move the schedule's origin back instead of waiting a minute.
    assert emu._first_arrival is not None
    emu._first_arrival -= 61
    emu._admitted.clear()
    answers = await asyncio.gather(*(status_of(session, f"{emu.url}/movie/{i}") for i in IDS[1:6]))
    assert sorted(status for status, _ in answers) == [200, 200, 429, 429, 429]
    messages = {orjson.loads(body)["status_message"] for status, body in answers if status == 429}
    assert all("allowed limit of (2)" in m for m in messages)
