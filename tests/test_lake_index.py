"""The lake index: an entry for a movie if and only if its data file landed; compaction;
the one-time rebuild of a lake made before the index."""

from __future__ import annotations

import datetime as dt
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tmdb_ingest.api import ingest
from tmdb_ingest.config.settings import Settings, Shard
from tmdb_ingest.emulator.server import EmulatorConfig
from tmdb_ingest.lake.index import IndexRecorder, LakeIndex, rebuild
from tmdb_ingest.land.sinks import LocalSink
from tmdb_ingest.run.layout import LakeLayout
from tmdb_ingest.run.state import RunState

PREFIX = "Raw/TMDB/JSON"
KEYS = LakeLayout.of("Raw/TMDB/JSON")
DAY = dt.date(2026, 11, 30)


def settings(tmdb_url: str, out_dir: Path, **changes: Any) -> Settings:
    base: dict[str, Any] = {
        "tmdb_url": tmdb_url,
        "api_key": "test-api-key",
        "rate": 400,
        "concurrency": 10,
        "batch_size": 20,
        "backoff_initial": 0.01,
        "backoff_max": 0.05,
        "out_dir": out_dir,
    }
    base.update(changes)
    return Settings(**base)


def index_movies(files: list[Any]) -> list[tuple[str, int | None, str]]:
    return sorted((imdb, tmdb, f.key) for f in files for imdb, tmdb in f.movies)


async def open_state(root: Path, run_id: str = "r1") -> RunState:
    state = await RunState.open(
        LocalSink(root), prefix=PREFIX, run_id=run_id, shard=Shard(), today=DAY
    )
    state.index = IndexRecorder(KEYS, "fr-FR", ("credits",), today=lambda: DAY)
    return state


@pytest.mark.slow
async def test_the_index_holds_every_landed_movie_once_with_its_tmdb_id(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    """Two runs and two shards: the index equals the data files, movie for movie, and
    says what decided each movie's data."""
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.1, seed=2))
    first, second = ids(60), ids(40, start=5000)
    for shard in (Shard(0, 2), Shard(1, 2)):
        await ingest(first, settings(emu.url, tmp_path, shard=shard))
    await ingest(second, settings(emu.url, tmp_path, append_to_response=("credits",)))
    landed = read_dir(tmp_path)
    files = await LakeIndex(LocalSink(tmp_path), KEYS).files()
    expected = sorted(
        (m["imdb_id"], m["id"], key) for key, movies in landed.files.items() for m in movies
    )
    assert index_movies(files) == expected
    assert len(expected) == len({m[0] for m in expected})  # once each
    today = dt.datetime.now(dt.UTC).date().isoformat()
    assert {f.fetched for f in files} == {today}
    by_id = {imdb: f for f in files for imdb, _ in f.movies}
    assert all(by_id[i].append == () for i in first if i in by_id)
    assert all(by_id[i].append == ("credits",) for i in second if i in by_id)
    assert {f.language for f in files} == {None}


async def test_a_record_without_its_data_file_is_not_an_entry(tmp_path: Path) -> None:
    """A crash between the record and the data file: the record never counts; the data
    file that lands later under another name does."""
    state = await open_state(tmp_path)
    namer = state.layout.new_namer()
    dead, alive = namer.next(), namer.next()
    await state.index.write(state.sink, dead, state.layout.data_key(dead), ["tt0000001"], [1])
    await state.sink.put(state.layout.manifest_key(dead), b'["tt0000001"]')
    index = LakeIndex(LocalSink(tmp_path), KEYS)
    assert await index.files() == []
    key = await state.write_batch(alive, ["tt0000001"], b"[{}]\n", tmdb_ids=[1])
    files = await index.files()
    assert [(f.key, f.movies, f.language, f.append) for f in files] == [
        (key, (("tt0000001", 1),), "fr-FR", ("credits",))
    ]
    assert files[0].fetched == DAY.isoformat()


async def test_compaction_keeps_the_same_entries_and_later_records_add_to_it(
    tmp_path: Path,
) -> None:
    state = await open_state(tmp_path)
    namer = state.layout.new_namer()
    for n in range(3):
        await state.write_batch(namer.next(), [f"tt000000{n}"], b"[{}]\n", tmdb_ids=[n])
    index = LakeIndex(LocalSink(tmp_path), KEYS)
    before = await index.files()
    assert await index.compact() == 3
    assert await index.compact() == 0  # nothing new: no second segment
    segments = list((tmp_path / KEYS.segments_prefix).iterdir())
    assert len(segments) == 1
    assert await index.files() == before
    # the records it covers are gone: a reader lists only what landed since
    assert list((tmp_path / KEYS.records_prefix).iterdir()) == []
    await state.write_batch(namer.next(), ["tt0000009"], b"[{}]\n", tmdb_ids=[9])
    after = await index.files()
    assert index_movies(after) == sorted([*index_movies(before), ("tt0000009", 9, after[-1].key)])


@pytest.mark.slow
async def test_a_lake_from_before_the_index_is_rebuilt_once_and_resumably(
    emulator_factory: EmulatorFactory, tmp_path: Path
) -> None:
    emu = await emulator_factory(EmulatorConfig(missing_rate=0.1, seed=2))
    await ingest(ids(70), settings(emu.url, tmp_path, append_to_response=("credits",)))
    sink = LocalSink(tmp_path)
    made = index_movies(await LakeIndex(sink, KEYS).files())
    shutil.rmtree(tmp_path / KEYS.lake_root)  # a lake from before the index
    assert await LakeIndex(sink, KEYS).files() == []
    seen: list[int] = []
    progress = await rebuild(
        sink, KEYS, PREFIX, progress=lambda p: seen.append(p.indexed_now), compact=False
    )
    assert progress.data_files == progress.indexed_now == 4
    assert progress.movies == len(made)
    assert seen == [1, 2, 3, 4]
    files = await LakeIndex(sink, KEYS).files()
    assert index_movies(files) == made
    assert {f.append for f in files} == {("credits",)}  # read from the bodies' keys
    # done: a refresh's rebuild (once=True) lists nothing any more
    assert (await rebuild(sink, KEYS, PREFIX, once=True)).data_files == 0
    # stopped half-way (no completion mark, two records written of four): the next
    # rebuild reads only the two files left
    (tmp_path / KEYS.complete_key).unlink()
    for record in sorted((tmp_path / KEYS.records_prefix).iterdir())[:2]:
        record.unlink()
    again = await rebuild(sink, KEYS, PREFIX)
    assert (again.indexed_before, again.indexed_now) == (2, 2)
    assert index_movies(await LakeIndex(sink, KEYS).files()) == made


async def test_a_record_whose_data_has_not_landed_survives_compaction(tmp_path: Path) -> None:
    state = await open_state(tmp_path)
    namer = state.layout.new_namer()
    await state.write_batch(namer.next(), ["tt0000001"], b"[{}]\n", tmdb_ids=[1])
    pending = namer.next()  # a writer between its record and its data file
    await state.index.write(state.sink, pending, state.layout.data_key(pending), ["tt2"], [2])
    index = LakeIndex(LocalSink(tmp_path), KEYS)
    assert await index.compact() == 1
    assert [p.name for p in (tmp_path / KEYS.records_prefix).iterdir()] == [f"{pending}.json"]
    await state.sink.put(state.layout.data_key(pending), b"[{}]\n")  # it lands later
    assert index_movies(await index.files())[-1][:2] in {("tt2", 2), ("tt0000001", 1)}
    assert {m[0] for m in index_movies(await index.files())} == {"tt0000001", "tt2"}


class _CompactingMidRead(LocalSink):
    """A sink that runs a compaction right after a reader first lists the segments."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.armed = True

    async def iter_keys(self, prefix: str):  # type: ignore[no-untyped-def, override]
        keys = [k async for k in super().iter_keys(prefix)]
        for key in keys:
            yield key
        if self.armed and prefix == KEYS.segments_prefix:
            self.armed = False
            await LakeIndex(LocalSink(self.root), KEYS).compact()


async def test_a_reader_racing_a_compaction_still_sees_every_landed_file(tmp_path: Path) -> None:
    """The compaction deletes the records its new segment covers; a reader that read the
    older segment notices the newer one and reads again, losing nothing."""
    state = await open_state(tmp_path)
    namer = state.layout.new_namer()
    await state.write_batch(namer.next(), ["tt0000001"], b"[{}]\n", tmdb_ids=[1])
    await LakeIndex(LocalSink(tmp_path), KEYS).compact()
    for n in range(2, 5):
        await state.write_batch(namer.next(), [f"tt000000{n}"], b"[{}]\n", tmdb_ids=[n])
    racing = _CompactingMidRead(tmp_path)
    files = await LakeIndex(racing, KEYS).files()
    assert not racing.armed  # the compaction did run in the middle of the read
    assert {m[0] for m in index_movies(files)} == {f"tt000000{n}" for n in range(1, 5)}


@pytest.mark.slow
async def test_index_rebuild_on_the_command_line(
    emulator_factory: EmulatorFactory, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import asyncio

    from tmdb_ingest.cli import main

    emu = await emulator_factory(EmulatorConfig(missing_rate=0, seed=2))
    await ingest(ids(45), settings(emu.url, tmp_path))
    shutil.rmtree(tmp_path / KEYS.lake_root)  # a lake from before the index
    capsys.readouterr()
    code = await asyncio.to_thread(main, ["index", "rebuild", "--out-dir", str(tmp_path)])
    assert code == 0
    assert "3 data files: 0 indexed before, 3 indexed now (45 movies)" in capsys.readouterr().out
    again = await asyncio.to_thread(main, ["index", "rebuild", "--out-dir", str(tmp_path)])
    assert again == 0
    assert "3 data files: 3 indexed before, 0 indexed now" in capsys.readouterr().out


def test_a_refresh_uses_its_language_only_for_files_whose_record_does_not_say() -> None:
    """Records rebuilt from data files cannot say their language: --language stands in."""
    from tmdb_ingest.lake.index import IndexFile
    from tmdb_ingest.lake.refresh import _changed_movies

    known = IndexFile("a", "k/a.json", "2026-11-20", "fr-FR", (), (("tt1", 1),))
    rebuilt = IndexFile("b", "k/b.json", "2026-11-20", None, ("credits",), (("tt2", 2),), False)
    assert IndexFile.from_json(rebuilt.to_json()) == rebuilt
    assert IndexFile.from_json(known.to_json()).language_known
    groups = _changed_movies([known, rebuilt], {1, 2}, "de-DE")
    assert {(s.language, s.append): ids for s, ids in groups.items()} == {
        ("fr-FR", ()): ["tt1"],
        ("de-DE", ("credits",)): ["tt2"],
    }
