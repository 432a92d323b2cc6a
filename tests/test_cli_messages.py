"""What a newcomer reads: errors that point the right way, help that says the right thing."""

from __future__ import annotations

import io
import json
import logging
from pathlib import Path

import pytest

from tmdb_ingest.cli import main
from tmdb_ingest.emulator.sample import HEADER, generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.progress import LogProgress, TerminalProgress
from tmdb_ingest.summary import Snapshot, Summary

NOWHERE = "http://127.0.0.1:9/3"  # nothing listens: a request would fail the test's point


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TMDB_API_KEY", "test-api-key")
    monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
    for name in ("TMDB_INGEST_BUCKET", "TMDB_INGEST_OUT_DIR", "TMDB_URL"):
        monkeypatch.delenv(name, raising=False)


def test_an_out_dir_that_is_a_file_is_exit_2_naming_it(
    tmp_path: Path, key: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--out-dir ./movies.csv` is a usage error (2) that names the file, not a fatal one (1)."""
    csv = tmp_path / "movies.csv"
    generate_movies_csv(csv, movies=50)
    code = main(["run", str(csv), "--out-dir", str(csv), "--tmdb-url", NOWHERE])
    err = capsys.readouterr().err
    assert code == 2
    reason = f"{csv} is a file, not a folder; name a folder for the lake"
    assert err == f"tmdb-ingest: error: --out-dir: {reason}\n"


@pytest.mark.parametrize(
    ("argv", "unknown"),
    [
        (["run", "movies.csv", "--out-dir", "x", "--rat", "5"], "--rat 5"),
        (["run", "movies.csv", "--out", "x"], "--out x"),
        (["select", "movies.csv", "--genre", "Drama"], "--genre Drama"),
        (["status", "--buck", "my-lake"], "--buck my-lake"),
    ],
)
def test_abbreviations_are_errors_with_the_subcommands_usage(
    argv: list[str], unknown: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--rat 5` is not `--rate 5`: exit 2, and the usage shown is the subcommand's."""
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"usage: tmdb-ingest {argv[0]} ")
    assert err.endswith(f"tmdb-ingest {argv[0]}: error: unrecognized arguments: {unknown}\n")


def test_a_bad_value_prints_the_subcommands_usage(capsys: pytest.CaptureFixture[str]) -> None:
    """A value argparse rejects is reported under the subcommand's usage too."""
    assert main(["run", "movies.csv", "--out-dir", "x", "--format", "csv"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("usage: tmdb-ingest run ")
    assert "tmdb-ingest run: error: argument --format: expected json or ndjson" in err


def test_status_help_does_not_speak_of_writing(capsys: pytest.CaptureFixture[str]) -> None:
    """`status` only reads: its --bucket is the lake's bucket, not one to write to."""
    assert main(["status", "--help"]) == 0
    help_text = " ".join(capsys.readouterr().out.split())
    assert "--bucket NAME the S3 bucket of the lake" in help_text
    assert "write" not in help_text


def test_sample_writes_the_generators_file_and_says_what_it_holds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`tmdb-ingest sample OUT.csv --movies N` is the generator's file, with its counts."""
    out = tmp_path / "movies.csv"
    assert main(["sample", str(out), "--movies", "300"]) == 0
    expected = generate_movies_csv(tmp_path / "expected.csv", movies=300)
    assert out.read_bytes() == expected.path.read_bytes()
    assert out.read_text().splitlines()[0] == HEADER
    err = capsys.readouterr().err
    assert err.startswith(f"wrote {out}: {expected.rows} rows, 300 movies; the default selection")


def test_sample_into_a_folder_is_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["sample", str(tmp_path)]) == 2
    assert f"{tmp_path} is a folder" in capsys.readouterr().err


# --- the progress line after a wait: rate and ETA count from the first request ---


def snapshots_after_a_wait(wait: float) -> list[Snapshot]:
    """A run that waited ``wait`` s for a lease, then sent 10 requests a second."""
    shots = [Snapshot(100, 0, 0, 0, 0, 0, t / 2) for t in range(int(wait * 2) + 1)]
    shots += [Snapshot(100, 10 * t, 0, 0, 10 * t, 0, wait + t) for t in range(1, 6)]
    return shots


def test_the_progress_line_does_not_count_the_lease_wait() -> None:
    """After 30 s waiting and 5 s at 10 req/s: 10.0 req/s and 5 s left, not 1.4 and 3 min."""
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    for shot in snapshots_after_a_wait(30.0):
        bar.update(shot)
    last = stream.getvalue().split("\r")[-1]
    assert "50/100 fetched 50 not found 0 failed 0 | 10.0 req/s | 429s 0 | ETA 00:05" in last


def test_the_progress_log_line_does_not_count_the_lease_wait(
    caplog: pytest.LogCaptureFixture,
) -> None:
    progress = LogProgress(every=35.0)
    with caplog.at_level(logging.INFO, logger="tmdb_ingest"):
        for shot in snapshots_after_a_wait(30.0):
            progress.update(shot)
    assert caplog.messages[-1].endswith("| 10.0 req/s | 429s 0 | ETA 00:05")


def test_without_a_wait_the_rate_counts_from_the_start() -> None:
    stream = io.StringIO()
    bar = TerminalProgress(stream)
    for shot in snapshots_after_a_wait(0.0):
        bar.update(shot)
    assert "| 10.0 req/s |" in stream.getvalue().split("\r")[-1]


# --- --rate auto says the rate it found ---


def test_rate_found_is_in_the_summary_only_when_set() -> None:
    fields = dict(
        run_id="r", shard="0/1", selected=1, skipped=0, fetched=1, not_found=0, failed=0,
        batches=1, requests=1, retries=0, throttled=0, elapsed_s=1.0, done=True, report=None,
    )  # fmt: skip
    assert "rate_found" not in Summary(**fields).as_dict()  # type: ignore[arg-type]
    assert Summary(**fields, rate_found=38.5).as_dict()["rate_found"] == 38.5  # type: ignore[arg-type]


@pytest.mark.slow
def test_rate_auto_reports_the_rate_it_settled_on(
    tmp_path: Path, key: None, capsys: pytest.CaptureFixture[str]
) -> None:
    """`--rate auto --json` has `rate_found`, within the ceiling; a fixed rate has none."""
    csv = tmp_path / "movies.csv"
    generate_movies_csv(csv, movies=3000, seed=4)
    with EmulatorThread(EmulatorConfig(limit=30)) as tmdb:
        base = ["run", str(csv), "--tmdb-url", tmdb.url, "--json"]
        code = main([*base, "--out-dir", str(tmp_path / "a"), "--rate", "auto", "--max-rate", "60"])
        auto = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert code == 0
        assert 0 < auto["rate_found"] <= 60
        assert list(auto)[-1] == "rate_found"
        assert main([*base, "--out-dir", str(tmp_path / "b"), "--rate", "100"]) == 0
        fixed = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
        assert "rate_found" not in fixed
