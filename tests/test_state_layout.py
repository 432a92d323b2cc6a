"""Where a run's state lives (outside the data prefix; old runs where they were) and what
the loader counts as landed, whatever the data files' format."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path
from typing import Any

import orjson
import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.test_selection import HEADER, row
from tmdb_ingest.api import ingest_csv
from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.emulator import EmulatorConfig
from tmdb_ingest.land.formats import JSON_ARRAY, FileFormat
from tmdb_ingest.land.sinks import LocalSink
from tmdb_ingest.run.layout import legacy_state_root
from tmdb_ingest.run.state import RunState

DAY = dt.date(2026, 11, 30)
PREFIX = "Raw/TMDB/JSON"


async def open_state(
    root: Path,
    *,
    state_root: str | None = None,
    file_format: FileFormat = JSON_ARRAY,
    selected: int | None = None,
) -> RunState:
    return await RunState.open(
        LocalSink(root),
        prefix=PREFIX,
        run_id="r1",
        shard=Shard(1, 2),
        today=DAY,
        state_root=state_root,
        file_format=file_format,
        selected=selected,
    )


def keys(root: Path) -> list[str]:
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


async def test_state_lives_beside_the_data_prefix_not_inside_it(tmp_path: Path) -> None:
    """By default run.json, manifests, outcomes, checkpoint and report go under
    Raw/TMDB/_state; under Raw/TMDB/JSON there are only data files."""
    state = await open_state(tmp_path)
    await state.write_batch("r1-1of2-t-00001", ["tt0000001"], b"[{}]\n")
    await state.write_outcomes("r1-1of2-t-00002", [])
    await state.save()
    assert state.layout.run_root == "Raw/TMDB/_state/r1"
    assert [k for k in keys(tmp_path) if k.startswith(f"{PREFIX}/")] == [
        f"{PREFIX}/2026/11/30/r1-1of2-t-00001.json"
    ]
    assert (tmp_path / "Raw/TMDB/_state/r1/run.json").is_file()
    assert (tmp_path / "Raw/TMDB/_state/r1/shard-1-of-2/checkpoint.json").is_file()


async def test_an_explicit_state_prefix_is_used(tmp_path: Path) -> None:
    """Settings.state_prefix places the state anywhere outside the data prefix."""
    settings = Settings(state_prefix="_ops/tmdb_state")
    state = await open_state(tmp_path, state_root=settings.state_prefix)
    assert state.layout.meta_key == "_ops/tmdb_state/r1/run.json"
    assert (tmp_path / "_ops/tmdb_state/r1/run.json").is_file()


async def test_a_run_with_state_in_the_old_place_resumes_there(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A run started when state lived in {prefix}/_state keeps its state there: what it
    landed counts, one line says so, and nothing is written in the new place."""
    old = await open_state(tmp_path, state_root=legacy_state_root(PREFIX))
    await old.write_batch("r1-1of2-t-00001", ["tt0000001", "tt0000002"], b"[{},{}]\n")
    await old.save()
    before = keys(tmp_path)
    with caplog.at_level(logging.INFO, logger="tmdb_ingest"):
        resumed = await open_state(tmp_path)
    assert resumed.layout.run_root == f"{PREFIX}/_state/r1"
    assert resumed.landed_ids() == {"tt0000001", "tt0000002"}
    assert keys(tmp_path) == before
    assert not (tmp_path / "Raw/TMDB/_state").exists()
    assert [r.message for r in caplog.records if "old place" in r.message] == [
        f"run r1 keeps its state in the old place {PREFIX}/_state/ (new runs use Raw/TMDB/_state/)"
    ]


class RecordingSink(LocalSink):
    """A local folder that remembers the key of every write."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.written: list[str] = []

    async def put(self, key: str, body: bytes, **options: Any) -> str:
        self.written.append(key)
        return await super().put(key, body, **options)


async def test_an_old_run_keeps_its_lease_checkpoint_and_selection_in_the_old_place(
    tmp_path: Path, emulator_factory: EmulatorFactory
) -> None:
    """ingest_csv resuming a run whose run.json is only in {prefix}/_state writes all of its
    state there (the saved selection, the lease, the checkpoint): nothing to the new root."""
    csv = tmp_path / "movies.csv"
    csv.write_text("\n".join([HEADER, row("tt0000001"), row("tt0000002")]) + "\n")
    out = tmp_path / "out"
    old_root = f"{legacy_state_root(PREFIX)}/old-run"
    meta = {"run_id": "old-run", "date": "2026/11/30", "started": "2026-11-30T10:00:00+00:00"}
    (out / old_root).mkdir(parents=True)
    (out / old_root / "run.json").write_bytes(orjson.dumps(meta))
    emu = await emulator_factory(EmulatorConfig())
    settings = Settings(
        tmdb_url=emu.url, api_key="test-api-key", out_dir=out, run_id="old-run", rate=400
    )
    sink = RecordingSink(out)

    summary = await ingest_csv(csv, settings, sink=sink, today=DAY)

    assert summary.done
    # (the lake index is the lake's, not the run's: it stays under the lake's state root)
    lake_index = "Raw/TMDB/_state/_lake/index/"
    assert any(k.startswith(lake_index) for k in sink.written)
    state_writes = [k for k in sink.written if not k.startswith((f"{PREFIX}/2026/", lake_index))]
    assert {k.rsplit("/", 1)[-1] for k in state_writes} >= {
        "selection.txt.gz",
        "lease.json",
        "checkpoint.json",
    }
    assert all(k.startswith(f"{old_root}/") for k in state_writes), state_writes
    assert [p.name for p in (out / "Raw/TMDB/_state").iterdir()] == ["_lake"]


async def test_a_new_run_never_goes_to_the_old_place(tmp_path: Path) -> None:
    """Another run's state in the old place does not pull a new run there."""
    other = await RunState.open(
        LocalSink(tmp_path),
        prefix=PREFIX,
        run_id="r0",
        shard=Shard(),
        today=DAY,
        state_root=legacy_state_root(PREFIX),
    )
    assert other.layout.run_root == f"{PREFIX}/_state/r0"
    state = await open_state(tmp_path)
    assert state.layout.run_root == "Raw/TMDB/_state/r1"


@pytest.mark.parametrize(
    "written", [FileFormat("ndjson"), FileFormat("json", "gzip"), FileFormat("ndjson", "gzip")]
)
async def test_data_files_of_any_format_count_as_landed(
    tmp_path: Path, written: FileFormat
) -> None:
    """Without a checkpoint, a manifest counts when its data file exists under any of the
    format's names, also when the run is resumed with another format."""
    state = await open_state(tmp_path, file_format=written)
    name = f"{state.layout.name_base}-t-00001"  # data names begin with the run's stamp
    key = await state.write_batch(name, ["tt0000001"], written.encode([b"{}"]))
    assert key.endswith(written.extension)
    resumed = await open_state(tmp_path)  # no save(): nothing but manifests and data
    assert resumed.landed_ids() == {"tt0000001"}
    assert resumed.orphaned == set()
    assert resumed.layout.data_key("x").endswith("/x.json")


async def test_the_checkpoint_carries_the_selection_size_and_times(tmp_path: Path) -> None:
    """save() records how many ids the shard has and when it started and last saved;
    a later invocation keeps the first start; read() writes nothing."""
    first = await open_state(tmp_path, selected=7)
    await first.save()
    assert first.selected == 7
    assert first.started
    assert first.last_invocation
    second = await open_state(tmp_path, selected=9)
    assert second.started == first.started
    assert second.selected == 9
    before = keys(tmp_path)
    seen = await RunState.read(LocalSink(tmp_path), first.layout)
    assert (seen.selected, seen.started, seen.last_invocation) == (
        7,
        first.started,
        first.last_invocation,
    )
    assert keys(tmp_path) == before
