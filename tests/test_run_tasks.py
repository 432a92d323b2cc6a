"""The run's own tasks (uploads, lease renewal) failing: the run ends as a fatal error,
promptly, with its state saved, and a re-run lands every id exactly once."""

from __future__ import annotations

import asyncio
import gc
import json
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures_emulator import EmulatorFactory
from tests.helpers import ids, read_dir
from tests.test_failures import settings
from tests.test_selection import HEADER, row
from tmdb_ingest.api import _long_lived_objects_frozen, ingest
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import FatalError, InternalError
from tmdb_ingest.run.lease import Lease
from tmdb_ingest.run.state import RunState
from tmdb_ingest.run.stopping import StopRequest
from tmdb_ingest.run.tasks import RunTasks


def _break_the_second_upload(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """RunState.write_batch raises a RuntimeError (a bug) from its second call on."""
    calls: list[str] = []
    real = RunState.write_batch

    async def write_batch(
        self: RunState, name: str, batch: list[str], data: bytes, **more: Any
    ) -> str:
        calls.append(name)
        if len(calls) >= 2:
            raise RuntimeError("injected upload bug")
        return await real(self, name, batch, data, **more)

    monkeypatch.setattr(RunState, "write_batch", write_batch)
    return calls


def _checkpoint(out: Path, run_id: str) -> dict[str, Any]:
    path = out / "Raw/TMDB/_state" / run_id / "shard-0-of-1/checkpoint.json"
    data: dict[str, Any] = json.loads(path.read_bytes())
    return data


@pytest.mark.slow
@pytest.mark.parametrize("budget", [None, 60.0])
async def test_a_bug_in_an_upload_ends_the_run_as_fatal_with_the_state_saved(
    emulator_factory: EmulatorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    budget: float | None,
) -> None:
    """An upload that raises a RuntimeError: the run raises InternalError (a FatalError)
    with its summary (error set, not done), never hangs, saves its checkpoint; a re-run
    lands every id exactly once."""
    selected = ids(300)
    emu = await emulator_factory(EmulatorConfig())
    conf = settings(emu.url, tmp_path, run_id="buggy", time_budget=budget)
    calls = _break_the_second_upload(monkeypatch)
    async with asyncio.timeout(30):  # a hang fails here instead of waiting forever
        with pytest.raises(InternalError, match="injected upload bug") as caught:
            await ingest(selected, conf)
    assert len(calls) >= 2
    summary = caught.value.summary
    assert summary is not None
    assert summary.done is False
    assert summary.error is not None
    assert "injected upload bug" in summary.error
    assert summary.fetched < len(selected)
    landed = read_dir(tmp_path)
    checkpoint = _checkpoint(tmp_path, "buggy")
    assert {i for batch in checkpoint["landed"].values() for i in batch} == set(landed.data_ids)
    monkeypatch.undo()
    again = await ingest(selected, conf)
    assert again.done
    read_dir(tmp_path).assert_exactly_once(selected)


@pytest.mark.slow
@pytest.mark.parametrize("budget", [None, 60.0])
async def test_a_bug_in_the_lease_renewal_ends_the_run_as_fatal_with_the_state_saved(
    emulator_factory: EmulatorFactory,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    budget: float | None,
) -> None:
    """The lease renewal raises a RuntimeError at its first try (after ttl/3 = 1 s): the run
    stops at once as InternalError with its summary, while the lease still counts, so the
    state is saved; a re-run lands every id exactly once."""

    async def renew_once(self: Lease) -> None:
        raise RuntimeError("injected renewal bug")

    monkeypatch.setattr(Lease, "_renew_once", renew_once)
    selected = ids(400)
    emu = await emulator_factory(EmulatorConfig())
    # 400 ids at 100/s take 4 s: the renewal fails mid-run
    conf = settings(emu.url, tmp_path, run_id="renewal", rate=100, lease_ttl=3.0,
                    time_budget=budget)  # fmt: skip
    async with asyncio.timeout(30):
        with pytest.raises(InternalError, match="the lease renewal failed") as caught:
            await ingest(selected, conf)
    summary = caught.value.summary
    assert summary is not None
    assert summary.done is False
    assert 0 < summary.fetched + summary.not_found < len(selected)
    assert summary.requests < len(selected)
    landed = read_dir(tmp_path)
    checkpoint = _checkpoint(tmp_path, "renewal")
    assert {i for batch in checkpoint["landed"].values() for i in batch} == set(landed.data_ids)
    assert not list(tmp_path.rglob("lease.json"))  # released on the way out
    monkeypatch.undo()
    again = await ingest(selected, settings(emu.url, tmp_path, run_id="renewal"))
    assert again.done
    read_dir(tmp_path).assert_exactly_once(selected)


@pytest.mark.slow
def test_a_bug_in_an_upload_exits_1_with_one_line_and_the_json_summary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Through the command line: exit 1, one `fatal:` line on stderr, the summary with its
    error on stdout."""
    from tmdb_ingest.cli import main

    csv = tmp_path / "movies.csv"
    csv.write_text("\n".join([HEADER, *(row(i) for i in ids(250))]) + "\n")
    _break_the_second_upload(monkeypatch)
    monkeypatch.setenv("TMDB_API_KEY", "test-api-key")
    with EmulatorThread(EmulatorConfig()) as emu:
        code = main(["run", str(csv), "--out-dir", str(tmp_path / "out"), "--tmdb-url",
                     emu.url, "--rate", "400", "--batch-size", "20", "--json"])  # fmt: skip
    out, err = capsys.readouterr()
    assert code == 1
    lines = [line for line in err.splitlines() if line.startswith("tmdb-ingest:")]
    assert len(lines) == 1
    assert lines[0].startswith("tmdb-ingest: fatal: uploading a data file")
    summary = json.loads(out.splitlines()[-1])
    assert summary["done"] is False
    assert "injected upload bug" in summary["error"]


async def test_a_task_that_fails_asks_the_run_to_stop_and_leaves_its_siblings_alone() -> None:
    """RunTasks: a task's RuntimeError becomes the stop's InternalError naming the task;
    the other task and the body go on; leaving cancels what still runs."""
    stop = StopRequest()
    sibling_cancelled = asyncio.Event()

    async def broken() -> None:
        raise RuntimeError("boom")

    async def forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            sibling_cancelled.set()

    async with RunTasks(stop) as tasks:
        tasks.create_task(forever(), name="the sibling")
        tasks.create_task(broken(), name="the broken one")
        await asyncio.sleep(0)
        await asyncio.sleep(0)
        assert isinstance(stop.error, InternalError)
        assert str(stop.error) == "the broken one failed: RuntimeError: boom"
        assert not sibling_cancelled.is_set()
    assert sibling_cancelled.is_set()
    assert isinstance(stop.error, FatalError)


def test_gc_stays_frozen_until_the_last_of_two_runs_side_by_side_ends() -> None:
    """gc.freeze is process-wide: the first run in freezes, the last one out unfreezes."""
    before = gc.get_freeze_count()
    with _long_lived_objects_frozen():
        with _long_lived_objects_frozen():
            assert gc.get_freeze_count() > before
        assert gc.get_freeze_count() > before  # the other run still runs
    assert gc.get_freeze_count() == before
