"""The Lambda handler's refresh event: ``{"refresh": {}}`` refreshes the lake in the bucket."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
from awslambdaric.lambda_context import LambdaContext

from tests.helpers import ids
from tmdb_ingest.emulator.changes import ChangeHistory
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import InputError
from tmdb_ingest.lambda_handler import handler, parse_refresh_event

DAY0 = dt.date(2026, 11, 20)
DAY3 = DAY0 + dt.timedelta(days=3)
LAKE = ids(120)
ENV_NAMES = (
    "TMDB_INGEST_PREFIX", "TMDB_INGEST_RATE", "TMDB_INGEST_GENRES", "TMDB_INGEST_VOTES_ABOVE",
    "TMDB_INGEST_SHARD", "TMDB_INGEST_RUN_ID", "TMDB_ACCESS_TOKEN", "TMDB_SECRET_ID",
    "TMDB_SECRET_PARAMETER",
)  # fmt: skip


def context(seconds: float) -> LambdaContext:
    return LambdaContext(uuid.uuid4().hex, None, None, int((time.time() + seconds) * 1000))


@pytest.fixture
def tmdb() -> Iterator[EmulatorThread]:
    config = EmulatorConfig(
        catalogue=frozenset(LAKE), change_rate=0.15, today=DAY0, missing_rate=0, seed=4
    )
    with EmulatorThread(config) as emu:
        yield emu


def test_parse_refresh_event() -> None:
    assert parse_refresh_event({"refresh": {}}) == (True, None)
    assert parse_refresh_event({"refresh": None}) == (True, None)
    assert parse_refresh_event({"refresh": {"until": "2026-12-03"}}) == (True, dt.date(2026, 12, 3))
    assert parse_refresh_event({"csv": "s3://b/k"}) == (False, None)
    with pytest.raises(InputError, match="until"):
        parse_refresh_event({"refresh": {"until": "tomorrow"}})
    with pytest.raises(InputError, match="refresh"):
        parse_refresh_event({"refresh": {"since": "2026-12-01"}})


@pytest.mark.slow
def test_the_refresh_event_refreshes_the_lake_and_moves_the_bookmark(
    s3_endpoint: str, s3: Any, bucket: str, tmdb: EmulatorThread, monkeypatch: pytest.MonkeyPatch
) -> None:
    import asyncio

    from tmdb_ingest.api import ingest
    from tmdb_ingest.config.settings import Settings

    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMDB_URL", tmdb.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("TMDB_API_KEY", "test-api-key")
    monkeypatch.setenv("TMDB_INGEST_BUCKET", bucket)
    monkeypatch.setenv("TMDB_INGEST_RATE", "300")
    load = Settings.from_env()
    assert asyncio.run(ingest(LAKE, load, today=DAY0)).done
    tmdb.set_today(DAY3)
    history = ChangeHistory(frozenset(LAKE), 4, 0.15)
    changed = {
        i for i in LAKE if any(history.changed_on(i, DAY0 + dt.timedelta(k)) for k in range(4))
    }

    result = handler({"refresh": {"until": str(DAY3)}}, context(60))
    assert result["done"] is True
    assert (result["since"], result["until"]) == (str(DAY0), str(DAY3))
    assert result["in_lake"] == result["fetched"] == len(changed) > 0
    raw = s3.get_object(Bucket=bucket, Key="Raw/TMDB/_state/_lake/refresh/bookmark.json")
    assert orjson.loads(raw["Body"].read())["until"] == str(DAY3)
    again = handler({"refresh": {"until": str(DAY3)}}, context(60))
    assert (again["done"], again["requests"]) == (True, 0)
