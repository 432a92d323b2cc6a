"""One lake, one format: a run whose format differs from the data under its prefix is exit 2."""

from __future__ import annotations

import gzip
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tmdb_ingest.cli import main
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import ConfigError
from tmdb_ingest.land.formats import FileFormat
from tmdb_ingest.land.lake_format import check_lake_format
from tmdb_ingest.land.sinks import LocalSink, S3Sink
from tmdb_ingest.run.layout import LakeLayout
from tmdb_ingest.testing import MemorySink

PREFIX = "Raw/TMDB/JSON"
MARKER = LakeLayout.of(PREFIX).format_key
DAY = f"{PREFIX}/2026/12/01"
ARRAY = b'[{"id": 1, "imdb_id": "tt0000001"}]\n'
LINES = b'{"id": 1, "imdb_id": "tt0000001"}\n'


def settings(**changes: Any) -> tuple[LakeLayout, FileFormat]:
    """The lake and the format of a run with these settings, as ingest() checks them."""
    conf = Settings(out_dir=Path("unused"), **changes)
    return LakeLayout.of(conf.prefix, conf.state_prefix), FileFormat.from_settings(conf)


async def put(sink: Any, key: str, body: bytes) -> None:
    await sink.put(key, body)


async def test_the_first_run_records_its_format_and_the_same_format_passes(
    tmp_path: Path,
) -> None:
    """An empty prefix takes the run's format; the same format again reads one object."""
    sink = LocalSink(tmp_path)
    await check_lake_format(sink, *settings(format="ndjson", compress="gzip"))
    marker = json.loads((tmp_path / MARKER).read_bytes())
    assert marker == {"prefix": PREFIX, "format": "ndjson", "compress": "gzip"}
    await check_lake_format(sink, *settings(format="ndjson", compress="gzip"))


@pytest.mark.parametrize(
    ("body", "name", "lake"),
    [
        (ARRAY, "a.json", "json"),
        (LINES, "a.json", "ndjson"),
        (gzip.compress(LINES, mtime=0), "a.json.gz", "ndjson + gzip"),
        (gzip.compress(ARRAY, mtime=0), "a.json.gz", "json + gzip"),
    ],
    ids=["json", "ndjson", "ndjson+gzip", "json+gzip"],  # the same on every xdist worker
)
async def test_data_of_another_format_is_refused_naming_the_prefix_and_both_formats(
    tmp_path: Path, body: bytes, name: str, lake: str
) -> None:
    """Data landed before the marker existed is read to tell its format (no marker needed)."""
    sink = LocalSink(tmp_path)
    await put(sink, f"{DAY}/{name}", body)
    other = {"json": "ndjson", "ndjson": "json"}[lake.split()[0]]
    with pytest.raises(ConfigError) as caught:
        await check_lake_format(sink, *settings(format=other))
    message = str(caught.value)
    assert f"{tmp_path / PREFIX} already holds {lake} data files" in message
    assert f"would add {other} files" in message
    assert caught.value.field == "format"
    assert not (tmp_path / MARKER).exists()
    same = lake.split(" + ")
    await check_lake_format(sink, *settings(format=same[0], compress="gzip" if same[1:] else None))
    assert (tmp_path / MARKER).exists()


async def test_a_marker_without_data_does_not_bind_the_next_run(tmp_path: Path) -> None:
    """A first run that landed nothing (a rejected key) leaves the prefix free."""
    sink = LocalSink(tmp_path)
    await check_lake_format(sink, *settings(format="json"))
    await check_lake_format(sink, *settings(format="ndjson"))
    assert json.loads((tmp_path / MARKER).read_bytes())["format"] == "ndjson"


async def test_state_kept_in_the_data_prefix_is_not_data(tmp_path: Path) -> None:
    """Old runs kept their state in {prefix}/_state: those JSON files say nothing."""
    sink = LocalSink(tmp_path)
    await put(sink, f"{PREFIX}/_state/run-1/run.json", b'{"run_id": "run-1"}')
    await check_lake_format(sink, *settings(format="ndjson"))


async def test_another_prefix_is_another_lake(tmp_path: Path) -> None:
    """Prefixes sharing a state root keep their formats apart."""
    sink = LocalSink(tmp_path)
    await put(sink, f"{DAY}/a.json", ARRAY)
    await check_lake_format(sink, *settings(format="json"))
    await check_lake_format(sink, *settings(format="ndjson", prefix="Raw/TMDB/NDJSON"))
    with pytest.raises(ConfigError):
        await check_lake_format(sink, *settings(format="ndjson"))


class _LateMarker(MemorySink):
    """A sink where another first run records its format between our read and our write."""

    def __init__(self, other: bytes) -> None:
        super().__init__()
        self.other = other
        self.hidden = True

    async def get(self, key: str) -> bytes | None:
        if key == MARKER and self.hidden:
            self.hidden = False
            self.objects[key] = self.other
            return None
        return await super().get(key)


async def test_two_first_runs_with_different_formats_one_is_refused() -> None:
    """The marker's If-None-Match decides between two first runs racing."""
    sink = _LateMarker(b'{"prefix": "Raw/TMDB/JSON", "format": "json", "compress": null}')
    with pytest.raises(ConfigError, match="already holds json data files"):
        await check_lake_format(sink, *settings(format="ndjson"))  # type: ignore[arg-type]


async def test_s3_data_of_another_format_is_refused(s3_endpoint: str, bucket: str) -> None:
    """The same on S3 (moto): the marker, then a refusal that names the bucket's prefix."""
    async with S3Sink(bucket, endpoint_url=s3_endpoint) as sink:
        await check_lake_format(sink, LakeLayout.of(PREFIX), FileFormat())
        await put(sink, f"{DAY}/a.json", ARRAY)
        with pytest.raises(ConfigError, match=f"s3://{bucket}/{PREFIX} already holds json"):
            await check_lake_format(sink, LakeLayout.of(PREFIX), FileFormat("json", "gzip"))


# --- through the command line, against the emulator ---


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "movies.csv"
    generate_movies_csv(path, movies=1500, seed=9)
    return path


@pytest.fixture
def tmdb(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorThread]:
    monkeypatch.setenv("TMDB_API_KEY", "test-api-key")
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
    with EmulatorThread(EmulatorConfig()) as emu:
        yield emu


@pytest.mark.slow
@pytest.mark.parametrize("where", ["out_dir", "bucket"])
def test_the_readme_mistake_is_exit_2_before_any_request(
    where: str, csv: Path, tmdb: EmulatorThread, tmp_path: Path,
    capsys: pytest.CaptureFixture[str], request: pytest.FixtureRequest,
) -> None:  # fmt: skip
    """`run --out-dir ./lake`, then the same with --format ndjson --compress gzip: exit 2."""
    if where == "bucket":
        name = request.getfixturevalue("bucket")
        sink = ["--bucket", name, "--s3-endpoint-url", request.getfixturevalue("s3_endpoint")]
        lake = f"s3://{name}/{PREFIX}"
    else:
        sink, lake = ["--out-dir", str(tmp_path / "lake")], f"{tmp_path / 'lake' / PREFIX}"
    argv = ["run", str(csv), *sink, "--tmdb-url", tmdb.url, "--rate", "500"]
    assert main(argv) == 0
    requests = tmdb.stats.requests
    capsys.readouterr()
    assert main([*argv, "--format", "ndjson", "--compress", "gzip"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if "tmdb-ingest" in line]
    assert len(err) == 1
    assert err[0].startswith(f"tmdb-ingest: error: --format/--compress: {lake} already holds json")
    assert "would add ndjson + gzip files" in err[0]
    assert tmdb.stats.requests == requests  # refused before any request
    elsewhere = ["--prefix", "Raw/TMDB/NDJSON", "--format", "ndjson", "--compress", "gzip"]
    assert main([*argv, *elsewhere]) == 0


async def test_an_old_run_resumed_in_the_legacy_place_is_checked_but_records_nothing(
    tmp_path: Path,
) -> None:
    """State in {prefix}/_state (an old run): refused on another format, and no marker."""
    sink = LocalSink(tmp_path)
    await put(sink, f"{DAY}/a.json", ARRAY)
    old = LakeLayout.of(PREFIX).legacy
    with pytest.raises(ConfigError, match="already holds json data files"):
        await check_lake_format(sink, old, FileFormat("ndjson"))
    await check_lake_format(sink, old, FileFormat())
    assert [p.name for p in tmp_path.rglob("*") if p.is_file()] == ["a.json"]
