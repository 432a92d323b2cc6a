"""The current version of every movie, with SQL alone: DuckDB, the query of docs/athena.md,
on a lake after a load and two refreshes, equals what TMDB (the emulator) serves now."""

from __future__ import annotations

import datetime as dt
import json
import re
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.server import EmulatorConfig
from tmdb_ingest.lake.refresh import refresh

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
DAY0 = dt.date(2026, 11, 20)
LAKE = ids(300)


def documented_query() -> str:
    """The DuckDB query of docs/athena.md, as a user would copy it."""
    text = (ROOT / "docs" / "athena.md").read_text(encoding="utf-8")
    match = re.search(r"<!-- current-view-duckdb.*?-->\n```sql\n(.*?)```", text, re.S)
    assert match, "docs/athena.md lost its DuckDB current-view query"
    return match.group(1)


def settings(tmdb_url: str, out_dir: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url, "api_key": "test-api-key", "rate": 500, "concurrency": 10,
        "batch_size": 40, "backoff_initial": 0.01, "backoff_max": 0.05, "out_dir": out_dir,
    }  # fmt: skip
    base.update(changes)
    return Settings(**base)


@pytest.mark.parametrize(("kind", "compress"), [("json", None), ("ndjson", "gzip")])
async def test_the_current_view_is_what_tmdb_serves_now(
    emulator_factory: EmulatorFactory, tmp_path: Path, kind: str, compress: str | None
) -> None:
    emu = await emulator_factory(
        EmulatorConfig(catalogue=frozenset(LAKE), change_rate=0.1, today=DAY0, seed=8)
    )
    lake = settings(emu.url, tmp_path, format=kind, compress=compress)
    assert (await ingest(LAKE, lake, today=DAY0)).done
    refreshed = 0
    for days in (3, 7):
        day = DAY0 + dt.timedelta(days=days)
        emu.set_today(day)
        summary = await refresh(lake, today=day)
        assert summary.done
        assert summary.fetched > 0
        refreshed += summary.fetched
    landed = read_dir(tmp_path)
    versions = sum(len(m) for m in landed.files.values())
    assert versions == len({i for i in LAKE if not emu.is_missing(i)}) + refreshed

    glob = f"{tmp_path}/Raw/TMDB/JSON/**"
    query = documented_query().replace("s3://BUCKET/Raw/TMDB/JSON/**", glob)
    cursor = duckdb.connect().execute(query)
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    current = {row["imdb_id"]: row for row in rows}
    assert len(current) == len(rows)  # one row per movie
    expected = {i: json.loads(body) for i in LAKE if (body := emu.expected_body(i)) is not None}
    assert set(current) == set(expected)
    stale = 0
    for imdb_id, movie in expected.items():
        # field for field: DuckDB's values back as JSON (it reads release_date as a date)
        row = json.loads(json.dumps(current[imdb_id], default=str))
        assert row == movie, imdb_id
        # the first load's version differs for the movies that changed since
        first = next(
            m for k in sorted(landed.files) for m in landed.files[k] if m["imdb_id"] == imdb_id
        )
        stale += first != movie
    assert stale > 10  # the refreshes did change the answer
