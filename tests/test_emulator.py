"""The TMDB emulator, over real TCP with aiohttp: auth, bodies, rate limit, faults, counters."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import jsonschema
import orjson
import pytest
from multidict import CIMultiDictProxy

from tests.fixtures_emulator import EmulatorFactory
from tmdb_ingest.emulator import (
    ALL_FAULTS,
    Emulator,
    EmulatorConfig,
    EmulatorStats,
    EmulatorThread,
    bodies,
)

DATA = Path(__file__).parent / "data"
KEY = {"api_key": "test-api-key"}
IDS = [f"tt{n:07d}" for n in range(76750, 76800)]


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    """A plain client session, closed after the test."""
    async with aiohttp.ClientSession() as s:
        yield s


def present_ids(emu: Emulator, n: int) -> list[str]:
    """The first ``n`` ids of IDS that the emulator has a movie for."""
    return [i for i in IDS if not emu.is_missing(i)][:n]


async def get(
    session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[int, bytes, CIMultiDictProxy[str]]:
    """GET ``url``; the status, body bytes and headers."""
    kwargs.setdefault("params", KEY)
    async with session.get(url, **kwargs) as resp:
        return resp.status, await resp.read(), resp.headers


# -- auth ------------------------------------------------------------------------------


async def test_api_key_query_parameter_gets_the_movie(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """A valid api_key answers 200 with exactly the expected body as JSON."""
    imdb_id = present_ids(emulator, 1)[0]
    async with session.get(f"{emulator.url}/movie/{imdb_id}", params=KEY) as resp:
        assert resp.status == 200
        assert resp.content_type == "application/json"
        body = await resp.read()
    assert body == emulator.expected_body(imdb_id)
    assert orjson.loads(body)["imdb_id"] == imdb_id


async def test_bearer_token_gets_the_movie(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """The read access token as Authorization: Bearer answers 200."""
    imdb_id = present_ids(emulator, 1)[0]
    headers = {"Authorization": "Bearer test-access-token"}
    status, body, _ = await get(
        session, f"{emulator.url}/movie/{imdb_id}", params={}, headers=headers
    )
    assert (status, body) == (200, emulator.expected_body(imdb_id))


@pytest.mark.parametrize(
    ("params", "headers", "code"),
    [
        ({}, {}, 7),
        ({"api_key": "wrong"}, {}, 7),
        ({}, {"Authorization": "Bearer wrong"}, 7),
        ({}, {"Authorization": "test-access-token"}, 7),
        ({"api_key": "suspended-key"}, {}, 10),
        ({}, {"Authorization": "Bearer suspended-key"}, 10),
    ],
)
async def test_bad_or_suspended_credentials_get_401(
    emulator: Emulator,
    session: aiohttp.ClientSession,
    params: dict[str, str],
    headers: dict[str, str],
    code: int,
) -> None:
    """A missing or wrong key answers 401 code 7; the suspended key answers 401 code 10."""
    status, body, _ = await get(
        session, f"{emulator.url}/movie/tt0076759", params=params, headers=headers
    )
    assert status == 401
    error = orjson.loads(body)
    assert error["success"] is False
    assert error["status_code"] == code
    assert error["status_message"]
    assert emulator.stats.by_status == {401: 1}


# -- not found -------------------------------------------------------------------------


async def test_missing_and_malformed_ids_get_404_code_34(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """An id the seed marks missing, a malformed id and an unknown path answer 404 code 34."""
    missing = next(f"tt{n:07d}" for n in range(1, 10_000) if emulator.is_missing(f"tt{n:07d}"))
    assert emulator.expected_body(missing) is None
    for url in (
        f"{emulator.url}/movie/{missing}",
        f"{emulator.url}/movie/tt123",
        f"{emulator.url}/movie/nm0000001",
        f"{emulator.url}/nowhere",
    ):
        status, body, _ = await get(session, url)
        assert status == 404, url
        assert orjson.loads(body) == {
            "success": False,
            "status_code": 34,
            "status_message": "The resource you requested could not be found.",
        }


def test_missing_rate_is_a_deterministic_share_of_ids() -> None:
    """is_missing marks about missing_rate of ids, the same ones every time, and none at 0."""
    ids = [f"tt{n:07d}" for n in range(5000)]
    missing = [i for i in ids if bodies.is_missing(i, 0, 0.05)]
    assert 150 < len(missing) < 350
    assert missing == [i for i in ids if bodies.is_missing(i, 0, 0.05)]
    assert missing != [i for i in ids if bodies.is_missing(i, 1, 0.05)]
    assert not any(bodies.is_missing(i, 0, 0.0) for i in ids)
    assert bodies.is_missing("tt12", 0, 0.0)


# -- bodies ----------------------------------------------------------------------------


async def test_bodies_are_byte_identical_per_id_and_seed(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """One id and seed give the same bytes on every request and server; another seed differs."""
    first = await emulator_factory(EmulatorConfig(seed=7, missing_rate=0.0))
    second = await emulator_factory(EmulatorConfig(seed=7, missing_rate=0.0))
    other = await emulator_factory(EmulatorConfig(seed=8, missing_rate=0.0))
    for imdb_id in IDS[:5]:
        answers = [
            (await get(session, f"{emu.url}/movie/{imdb_id}"))[1] for emu in (first, first, second)
        ]
        assert answers[0] == answers[1] == answers[2] == first.expected_body(imdb_id)
        assert (await get(session, f"{other.url}/movie/{imdb_id}"))[1] != answers[0]
        assert orjson.loads(answers[0])["id"] == int(imdb_id[2:])


def test_bodies_hold_non_ascii_text() -> None:
    """Every body carries non-ASCII characters, encoded as raw UTF-8, not \\u escapes."""
    for imdb_id in IDS:
        text = bodies.movie_details_bytes(imdb_id, 0).decode("utf-8")
        assert any(ord(c) > 127 for c in text), imdb_id
        assert "\\u" not in text


def test_bodies_have_the_keys_and_types_of_tmdb_movie_details() -> None:
    """Bodies have exactly TMDB's top-level keys, in its order, with the same JSON types."""
    example = json.loads((DATA / "movie-details.json").read_text(encoding="utf-8"))
    seen_collection = seen_no_collection = False
    for imdb_id in IDS:
        body = orjson.loads(bodies.movie_details_bytes(imdb_id, 0))
        assert list(body) == list(example)
        for key, value in example.items():
            if key == "belongs_to_collection" and body[key] is None:
                seen_no_collection = True
                continue
            seen_collection |= key == "belongs_to_collection"
            assert type(body[key]) is type(value), key
    assert seen_collection
    assert seen_no_collection


def test_bodies_validate_against_tmdb_openapi_schema() -> None:
    """Bodies of many ids validate against the movie-details 200 schema from tmdb-api.json."""
    schema = json.loads((DATA / "movie-details.schema.json").read_text(encoding="utf-8"))
    # TMDB sends null for a movie in no collection; its OpenAPI description omits that.
    schema["properties"]["belongs_to_collection"]["type"] = ["object", "null"]
    validator = jsonschema.Draft202012Validator(schema)
    for imdb_id in IDS:
        body = orjson.loads(bodies.movie_details_bytes(imdb_id, 3))
        errors = [e.message for e in validator.iter_errors(body)]
        assert errors == [], imdb_id
    # The check can fail: a wrongly typed field is caught.
    assert not validator.is_valid({**body, "budget": "lots"})


async def test_append_to_response_adds_objects_and_language_is_accepted(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """append_to_response=credits,external_ids adds those objects; language changes nothing."""
    imdb_id = present_ids(emulator, 1)[0]
    params = {**KEY, "append_to_response": "credits,external_ids", "language": "fr-FR"}
    status, body, _ = await get(session, f"{emulator.url}/movie/{imdb_id}", params=params)
    assert status == 200
    assert body == emulator.expected_body(imdb_id, ["credits", "external_ids"])
    movie = orjson.loads(body)
    assert movie["credits"]["id"] == movie["id"]
    assert movie["credits"]["cast"]
    assert movie["external_ids"]["imdb_id"] == imdb_id
    plain = orjson.loads(emulator.expected_body(imdb_id) or b"")
    assert {k: v for k, v in movie.items() if k not in ("credits", "external_ids")} == plain


async def test_find_by_imdb_id_lists_the_movie_summary(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """find?external_source=imdb_id answers TMDB's find shape; an unknown id gives empty lists."""
    example = json.loads(json.loads((DATA / "find-by-imdb-id.json").read_text(encoding="utf-8")))
    imdb_id = present_ids(emulator, 1)[0]
    params = {**KEY, "external_source": "imdb_id"}
    status, body, _ = await get(session, f"{emulator.url}/find/{imdb_id}", params=params)
    assert status == 200
    found = orjson.loads(body)
    assert list(found) == list(example)
    [movie] = found["movie_results"]
    assert list(movie) == list(example["movie_results"][0])
    assert movie["id"] == orjson.loads(emulator.expected_body(imdb_id) or b"")["id"]

    missing = next(i for i in (f"tt{n:07d}" for n in range(1, 10_000)) if emulator.is_missing(i))
    status, body, _ = await get(session, f"{emulator.url}/find/{missing}", params=params)
    assert (status, orjson.loads(body)["movie_results"]) == (200, [])

    status, body, _ = await get(session, f"{emulator.url}/find/{imdb_id}")
    assert status == 422
    assert orjson.loads(body)["status_code"] == 5


# -- rate limit ------------------------------------------------------------------------


@pytest.mark.parametrize(("retry_after", "header"), [("always", "1"), ("never", None)])
async def test_over_the_limit_gets_429_code_25(
    emulator_factory: EmulatorFactory,
    session: aiohttp.ClientSession,
    retry_after: str,
    header: str | None,
) -> None:
    """Past `limit` requests in one second, answers are 429 code 25, with Retry-After as set."""
    emu = await emulator_factory(EmulatorConfig(limit=5, retry_after=retry_after, missing_rate=0))  # type: ignore[arg-type]
    answers = await asyncio.gather(*(get(session, f"{emu.url}/movie/{i}") for i in IDS[:8]))
    throttled = [(body, headers) for status, body, headers in answers if status == 429]
    assert sorted(status for status, _, _ in answers) == [200] * 5 + [429] * 3
    for body, headers in throttled:
        error = orjson.loads(body)
        assert error["status_code"] == 25
        assert error["success"] is False
        assert "over the allowed limit of (5)" in error["status_message"]
        assert headers.get("Retry-After") == header
    assert emu.stats.throttled == 3
    assert emu.stats.by_status == {200: 5, 429: 3}


async def test_limit_window_frees_up_after_a_second(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """A throttled client is admitted again once a second has passed since the admitted ones."""
    emu = await emulator_factory(EmulatorConfig(limit=2, missing_rate=0))
    statuses = [(await get(session, f"{emu.url}/movie/{i}"))[0] for i in IDS[:3]]
    assert statuses == [200, 200, 429]
    await asyncio.sleep(1.05)
    assert (await get(session, f"{emu.url}/movie/{IDS[3]}"))[0] == 200


async def test_mixed_retry_after_sends_the_header_on_some_429s(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """With retry_after='mixed' some 429s carry Retry-After and some do not."""
    emu = await emulator_factory(EmulatorConfig(limit=1, retry_after="mixed", missing_rate=0))
    answers = [await get(session, f"{emu.url}/movie/{i}") for i in IDS[:30]]
    headers = {h.get("Retry-After") for status, _, h in answers if status == 429}
    assert headers == {"1", None}


# -- faults ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "status", "codes"),
    [
        ("500_json", 500, {11}),
        ("502_json", 502, {43}),
        ("503_json", 503, {9, 46}),
        ("504_json", 504, {24}),
    ],
)
async def test_json_error_faults(
    emulator_factory: EmulatorFactory,
    session: aiohttp.ClientSession,
    kind: str,
    status: int,
    codes: set[int],
) -> None:
    """A JSON error fault answers its status with a TMDB error body of the right code."""
    emu = await emulator_factory(EmulatorConfig(fault_rate=1.0, faults=(kind,), missing_rate=0))
    got, body, _ = await get(session, f"{emu.url}/movie/{IDS[0]}")
    assert got == status
    error = orjson.loads(body)
    assert error["success"] is False
    assert error["status_code"] in codes
    assert emu.stats.faults == {kind: 1}


async def test_503_html_fault_answers_html(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """The 503_html fault answers 503 with an HTML page labelled text/html."""
    emu = await emulator_factory(EmulatorConfig(fault_rate=1.0, faults=("503_html",)))
    async with session.get(f"{emu.url}/movie/{IDS[0]}", params=KEY) as resp:
        assert resp.status == 503
        assert resp.content_type == "text/html"
        assert b"<html>" in await resp.read()


async def test_bad_json_fault_answers_200_with_a_non_json_body(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """The bad_json fault answers 200 with a body that does not parse as JSON."""
    emu = await emulator_factory(EmulatorConfig(fault_rate=1.0, faults=("bad_json",)))
    status, body, _ = await get(session, f"{emu.url}/movie/{IDS[0]}")
    assert status == 200
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(body)


async def test_reset_fault_closes_the_connection_without_an_answer(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """The reset fault drops the connection: the client gets a connection error, no status."""
    emu = await emulator_factory(EmulatorConfig(fault_rate=1.0, faults=("reset",)))
    with pytest.raises(aiohttp.ClientConnectionError):
        await get(session, f"{emu.url}/movie/{IDS[0]}")
    # aiohttp's client retries a GET once when the server disconnects, so count at least one.
    assert emu.stats.faults["reset"] >= 1
    assert emu.stats.requests == emu.stats.faults["reset"]
    assert emu.stats.by_status == {}


async def test_truncated_fault_sends_half_the_promised_body(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """The truncated fault promises the full Content-Length, sends half and hangs up."""
    emu = await emulator_factory(
        EmulatorConfig(fault_rate=1.0, faults=("truncated",), missing_rate=0)
    )
    async with session.get(f"{emu.url}/movie/{IDS[0]}", params=KEY) as resp:
        assert resp.status == 200
        assert resp.content_length == len(emu.expected_body(IDS[0]) or b"")
        with pytest.raises(aiohttp.ClientPayloadError):
            await resp.read()


async def test_stall_fault_outlasts_a_client_timeout(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """A stall longer than the client's timeout times out; the handler is not left running."""
    emu = await emulator_factory(EmulatorConfig(fault_rate=1.0, faults=("stall",), stall_s=5.0))
    with pytest.raises(asyncio.TimeoutError):
        await get(session, f"{emu.url}/movie/{IDS[0]}", timeout=aiohttp.ClientTimeout(total=0.2))
    for _ in range(50):
        if emu.stats.in_flight == 0:
            break
        await asyncio.sleep(0.01)
    assert emu.stats.in_flight == 0
    assert emu.stats.faults == {"stall": 1}


async def test_short_stall_then_answers_normally(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """A stall shorter than the client's patience ends in the normal answer."""
    emu = await emulator_factory(
        EmulatorConfig(fault_rate=1.0, faults=("stall",), stall_s=0.1, missing_rate=0)
    )
    started = time.monotonic()
    status, body, _ = await get(session, f"{emu.url}/movie/{IDS[0]}")
    assert time.monotonic() - started >= 0.1
    assert (status, body) == (200, emu.expected_body(IDS[0]))


async def test_faults_are_deterministic_per_id_and_attempt(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """Two servers with one seed inject the same faults for the same ids and attempts."""
    config = EmulatorConfig(fault_rate=0.5, faults=("500_json", "502_json", "504_json"), seed=3)
    first, second = await emulator_factory(config), await emulator_factory(config)
    runs = []
    for emu in (first, second):
        runs.append([(await get(session, f"{emu.url}/movie/{i}"))[0] for i in IDS[:20] * 2])
    assert runs[0] == runs[1]
    assert {200, 404} & set(runs[0])
    assert {500, 502, 504} & set(runs[0])
    assert first.stats.faults == second.stats.faults


def test_config_rejects_unknown_fault_kinds_and_bad_rates() -> None:
    """EmulatorConfig names the bad field: an unknown fault kind or a rate outside [0, 1]."""
    with pytest.raises(ValueError, match="faults"):
        EmulatorConfig(faults=("explode",))
    with pytest.raises(ValueError, match="fault_rate"):
        EmulatorConfig(fault_rate=1.5)
    assert set(EmulatorConfig().faults) == set(ALL_FAULTS)


# -- counters --------------------------------------------------------------------------


async def test_latency_and_max_in_flight(
    emulator_factory: EmulatorFactory, session: aiohttp.ClientSession
) -> None:
    """Concurrent slow requests overlap: max_in_flight counts them, in_flight returns to 0."""
    emu = await emulator_factory(EmulatorConfig(latency_ms=150, latency_sigma=0.0, missing_rate=0))
    started = time.monotonic()
    answers = await asyncio.gather(*(get(session, f"{emu.url}/movie/{i}") for i in IDS[:10]))
    assert time.monotonic() - started >= 0.15
    assert [status for status, _, _ in answers] == [200] * 10
    assert emu.stats.max_in_flight == 10
    assert emu.stats.in_flight == 0


async def test_counters_track_requests_ids_and_arrivals(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """requests, by_id, by_status, arrivals and max_in_window count arrivals; reset_stats clears."""
    ids = [IDS[0], IDS[0], IDS[1]]
    for imdb_id in ids:
        await get(session, f"{emulator.url}/movie/{imdb_id}")
    stats = emulator.stats
    assert stats.requests == 3
    assert stats.by_id == {IDS[0]: 2, IDS[1]: 1}
    assert sum(stats.by_status.values()) == 3
    assert len(stats.arrivals) == 3
    assert stats.max_in_window(1.0) == 3
    emulator.reset_stats()
    assert emulator.stats.requests == 0
    assert emulator.stats.by_id == {}


def test_max_in_window_is_a_sliding_half_open_window() -> None:
    """max_in_window finds the busiest window [t, t + w) anywhere, not only on whole seconds."""
    stats = EmulatorStats(arrivals=[1.05, 0.0, 0.1, 0.5, 0.99, 1.09, 3.0])
    assert stats.max_in_window(1.0) == 5  # [0.1, 1.1): 0.1, 0.5, 0.99, 1.05, 1.09
    assert stats.max_in_window(0.1) == 2
    assert EmulatorStats(arrivals=[0.0, 1.0]).max_in_window(1.0) == 1
    assert EmulatorStats().max_in_window() == 0


# -- thread and command line ------------------------------------------------------------


@pytest.mark.slow
def test_emulator_thread_serves_sync_code_and_stops() -> None:
    """EmulatorThread serves from a background thread and joins it on exit, also after an error."""
    runner = EmulatorThread(EmulatorConfig(missing_rate=0))

    def use_then_fail() -> None:
        with runner as emu:
            request = urllib.request.Request(  # noqa: S310 - a local http URL
                f"{emu.url}/movie/{IDS[0]}", headers={"Authorization": "Bearer test-access-token"}
            )
            with urllib.request.urlopen(request, timeout=5) as resp:  # noqa: S310
                assert resp.read() == emu.expected_body(IDS[0])
            assert emu.stats.by_status == {200: 1}
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        use_then_fail()
    assert runner._thread is None
    with pytest.raises(OSError, match="refused"):
        urllib.request.urlopen(f"{runner.url}/movie/{IDS[0]}", timeout=2)  # noqa: S310


@pytest.mark.slow
def test_emulate_command_serves_until_sigint() -> None:
    """`tmdb-ingest emulate --port 0` prints its URL, serves, and exits 0 with stats on SIGINT."""
    proc = subprocess.Popen(
        [sys.executable, "-m", "tmdb_ingest", "emulate", "--port", "0", "--missing-rate", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        url = line.split()[3]
        assert url.startswith("http://127.0.0.1:"), line
        assert url.endswith("/3"), line
        assert "TMDB_API_KEY=test-api-key" in line
        with urllib.request.urlopen(f"{url}/movie/{IDS[0]}?api_key=test-api-key", timeout=5) as r:  # noqa: S310
            assert r.status == 200
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err
    assert "requests: 1 (200: 1)" in out


async def test_counters_are_served_for_other_processes(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """/_emulator/stats reports the same counters as the in-process stats object."""
    ids = present_ids(emulator, 3)
    for imdb_id in ids:
        await get(session, f"{emulator.url}/movie/{imdb_id}")
    await get(session, f"{emulator.url}/movie/{ids[0]}", params={"api_key": "nope"})
    root = emulator.url.removesuffix("/3")
    status, body, _ = await get(session, f"{root}/_emulator/stats", params={})
    stats = orjson.loads(body)
    assert status == 200
    assert stats["requests"] == 4
    assert stats["by_status"] == {"200": 3, "401": 1}
    assert stats["max_in_window"] == emulator.stats.max_in_window(1.0) == 4
    assert stats["max_in_flight"] >= 1


async def test_configuration_answers_tmdbs_shape_and_wrong_paths_get_404_code_34(
    emulator: Emulator, session: aiohttp.ClientSession
) -> None:
    """/3/configuration validates against TMDB's schema; without /3, or under /4, is a 404."""
    schema = json.loads((DATA / "configuration.schema.json").read_text(encoding="utf-8"))
    status, body, _ = await get(session, f"{emulator.url}/configuration")
    assert status == 200
    config = orjson.loads(body)
    jsonschema.Draft202012Validator(schema).validate(config)
    assert set(config["images"]) >= {"base_url", "secure_base_url", "poster_sizes"}
    status, _, _ = await get(session, f"{emulator.url}/configuration", params={"api_key": "x"})
    assert status == 401  # a run's first request proves the key too
    root = emulator.url.removesuffix("/3")
    imdb_id = present_ids(emulator, 1)[0]
    for path in ("/configuration", "/4/configuration", f"/movie/{imdb_id}", "/3/configuraton"):
        status, body, _ = await get(session, f"{root}{path}")
        assert (status, orjson.loads(body)["status_code"]) == (404, 34), path
