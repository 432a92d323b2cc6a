"""`tmdb-ingest run`'s exit code says how the run ended: done, done with failures, or not done."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tmdb_ingest.cli import main
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread

KEY = "test-api-key"
# Retries that give up at once: a broken id is `failed` after two quick attempts.
QUICK = ["--max-attempts", "2", "--backoff-initial", "0", "--backoff-max", "0", "--rate", "500"]


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "movies.csv"
    generate_movies_csv(path, movies=3000, seed=7)
    return path


def emulator(monkeypatch: pytest.MonkeyPatch, broken_rate: float) -> EmulatorThread:
    monkeypatch.setenv("TMDB_API_KEY", KEY)
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
    return EmulatorThread(EmulatorConfig(broken_rate=broken_rate, seed=3))


@pytest.fixture
def broken_tmdb(monkeypatch: pytest.MonkeyPatch) -> Iterator[EmulatorThread]:
    """An emulator where about a tenth of the ids answer 500 to every request."""
    with emulator(monkeypatch, 0.1) as emu:
        yield emu


def run(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, dict[str, Any]]:
    code = main(["run", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out.strip().splitlines()[-1])


@pytest.mark.slow
def test_a_done_run_with_failed_ids_exits_5_and_the_next_one_tries_them_again(
    csv: Path, broken_tmdb: EmulatorThread, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Failed ids make a done run exit 5 (not 0); the same command retries exactly those."""
    argv = [str(csv), "--out-dir", str(tmp_path), "--tmdb-url", broken_tmdb.url, *QUICK]
    code, first = run(argv, capsys)
    assert first["done"] is True
    assert first["failed"] > 0
    assert code == 5
    report = [json.loads(line) for line in Path(first["report"]).read_text().splitlines()]
    assert sum(e["outcome"] == "failed" for e in report) == first["failed"]
    code, second = run(argv, capsys)
    assert code == 5
    assert second["retried_failed"] == second["failed"] == first["failed"]
    assert second["fetched"] == 0


@pytest.mark.slow
def test_a_done_run_without_failed_ids_exits_0(
    csv: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Not found ids are a final answer, not a failure: exit 0."""
    with emulator(monkeypatch, 0.0) as tmdb:
        code, summary = run(
            [str(csv), "--out-dir", str(tmp_path), "--tmdb-url", tmdb.url, *QUICK], capsys
        )
    assert (summary["done"], summary["failed"], code) == (True, 0, 0)
    assert summary["not_found"] > 0


def test_run_help_lists_exit_code_5(capsys: pytest.CaptureFixture[str]) -> None:
    """`run --help` ends with the exit codes, 5 among them."""
    assert main(["run", "--help"]) == 0
    epilog = capsys.readouterr().out.split("exit codes:")[1]
    assert "\n  5       done, but some ids failed" in epilog
