"""A real lake reader on what a run landed: DuckDB reads the data prefix as a table.

The run writes to moto's S3 over HTTP. DuckDB's S3 support (the httpfs extension) is
downloaded from the internet on first use and is not there offline, so the objects are
copied with boto3, key for key, into a folder, and DuckDB reads that folder with a glob
over the data prefix, as it would read ``s3://bucket/Raw/TMDB/JSON/**``: it picks the
array or line layout from the content and gunzips by the ``.gz`` name, like Athena,
Glue and Spark.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_s3
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.server import Emulator, EmulatorConfig

PREFIX = "Raw/TMDB/JSON"
LAYOUT = {"json": "array", "ndjson": "newline_delimited"}


def download(s3: Any, bucket: str, into: Path) -> list[str]:
    """Copy every object of ``bucket`` to ``into``/key; return the keys."""
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        for item in page.get("Contents", []):
            path = into / item["Key"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(s3.get_object(Bucket=bucket, Key=item["Key"])["Body"].read())
            keys.append(item["Key"])
    return keys


def expected_figures(emu: Emulator, selected: list[str]) -> tuple[int, int, int]:
    """(movies, sum of budget, sum of revenue) of the bodies the emulator serves."""
    movies = [json.loads(b) for i in selected if (b := emu.expected_body(i)) is not None]
    return len(movies), sum(m["budget"] for m in movies), sum(m["revenue"] for m in movies)


@pytest.mark.parametrize(
    ("kind", "compress"), [("json", None), ("ndjson", None), ("ndjson", "gzip"), ("json", "gzip")]
)
async def test_duckdb_reads_the_data_prefix_as_one_table_of_movies(
    emulator_factory: EmulatorFactory,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    tmp_path: Path,
    kind: str,
    compress: str | None,
) -> None:
    """DuckDB's row count and sums of budget and revenue over a glob of the data prefix
    equal the emulator's own figures; the glob sees only data files (no state), and the
    schema it infers has TMDB's columns."""
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.1, seed=11))
    selected = ids(230)
    settings = Settings(
        bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        tmdb_url=emu.url,
        api_key="test-api-key",
        rate=400,
        batch_size=40,
        format=kind,
        compress=compress,
    )
    summary = await ingest(selected, settings)
    assert summary.done
    read_s3(s3, bucket).assert_exactly_once(selected)

    download(s3, bucket, tmp_path)
    data = (tmp_path / PREFIX).as_posix()
    db = duckdb.connect()
    try:
        files = [
            row[0] for row in db.execute("SELECT file FROM glob(?)", [f"{data}/**"]).fetchall()
        ]
        extension = ".json.gz" if compress else ".json"
        assert len(files) == summary.batches
        assert all(f.endswith(extension) for f in files), files
        table = f"read_json('{data}/**', format='{LAYOUT[kind]}', filename=true)"
        count, budget, revenue, per_file = db.execute(
            f"SELECT count(*), sum(budget), sum(revenue), count(DISTINCT filename) FROM {table}"  # noqa: S608
        ).fetchone() or (None, None, None, None)
        columns = {row[0] for row in db.execute(f"DESCRIBE SELECT * FROM {table}").fetchall()}  # noqa: S608
        landed_ids = {row[0] for row in db.execute(f"SELECT imdb_id FROM {table}").fetchall()}  # noqa: S608
    finally:
        db.close()
    assert (count, budget, revenue) == expected_figures(emu, selected)
    assert per_file == summary.batches
    assert landed_ids == {i for i in selected if not emu.is_missing(i)}
    assert {"id", "imdb_id", "title", "budget", "revenue", "genres", "release_date"} <= columns


@pytest.mark.parametrize(("kind", "compress"), [("ndjson", "gzip"), ("json", None)])
async def test_data_objects_have_their_content_type_and_no_content_encoding(
    emulator_factory: EmulatorFactory,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    kind: str,
    compress: str | None,
) -> None:
    """Gzipped files are stored as gzip bytes (no Content-Encoding, so no reader gunzips
    them behind the name's back); the content type says what the bytes are."""
    emu = await emulator_factory(EmulatorConfig(seed=12))
    settings = Settings(
        bucket=bucket,
        s3_endpoint_url=s3_endpoint,
        tmdb_url=emu.url,
        api_key="test-api-key",
        rate=400,
        format=kind,
        compress=compress,
    )
    await ingest(ids(30), settings)
    landed = read_s3(s3, bucket)
    assert landed.other == []
    [key] = landed.raw
    head = s3.head_object(Bucket=bucket, Key=key)
    assert "ContentEncoding" not in head
    expected = "application/gzip" if compress else "application/json"
    assert head["ContentType"] == expected
    assert landed.raw[key].startswith(b"\x1f\x8b") == (compress == "gzip")
