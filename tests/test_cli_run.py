"""`tmdb-ingest run` end to end: exit codes, the JSON summary, secrets, and SIGKILL resume."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import read_dir, read_s3
from tmdb_ingest.cli import main
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.selection.reader import select_ids
from tmdb_ingest.testing import LocalTmdb, local_tmdb

SUMMARY_FIELDS = [
    "run_id", "shard", "selected", "skipped", "fetched", "not_found", "failed", "batches",
    "requests", "retries", "throttled", "elapsed_s", "done", "report",
]  # fmt: skip
KEY = "test-api-key"

pytestmark = pytest.mark.slow  # every test here runs the emulator over TCP, some a subprocess


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "movies.csv"
    generate_movies_csv(path, movies=5000, seed=5)
    return path


@pytest.fixture
def tmdb(monkeypatch: pytest.MonkeyPatch) -> Iterator[LocalTmdb]:
    with local_tmdb(latency_ms=10) as emu:
        assert emu.api_key is not None
        monkeypatch.setenv("TMDB_API_KEY", emu.api_key)
        monkeypatch.delenv("TMDB_ACCESS_TOKEN", raising=False)
        yield emu


def last_json_line(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


def test_run_prints_the_json_summary_last_and_exits_0(
    csv: Path, tmdb: LocalTmdb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """`run --json` exits 0 and prints exactly the documented fields on the last line."""
    out = tmp_path / "out"
    argv = ["run", str(csv), "--out-dir", str(out), "--tmdb-url", tmdb.url, "--rate", "200"]
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    summary = last_json_line(captured.out)
    assert code == 0
    assert list(summary) == SUMMARY_FIELDS
    assert summary["done"] is True
    selected = select_ids(csv).ids
    assert summary["selected"] == len(selected)
    read_dir(out).assert_exactly_once(selected)
    assert KEY not in captured.out + captured.err


def test_run_to_s3_with_a_time_budget_exits_3_then_resumes_to_0(
    csv: Path,
    tmdb: LocalTmdb,
    s3: Any,
    bucket: str,
    s3_endpoint: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """A budget too short for the job exits 3; the same command again finishes with exit 0."""
    argv = ["run", str(csv), "--bucket", bucket, "--s3-endpoint-url", s3_endpoint]
    argv += ["--tmdb-url", tmdb.url, "--rate", "20", "--json"]
    # 130 ids at 20/s need 6.5 s: a 3 s budget stops early (when, against the budget, is
    # checked on virtual time in test_lander, not by the wall clock here)
    assert main([*argv, "--time-budget", "3"]) == 3
    first = last_json_line(capsys.readouterr().out)
    assert first["done"] is False
    assert first["requests"] < first["selected"]
    assert main([*argv, "--rate", "400"]) == 0
    second = last_json_line(capsys.readouterr().out)
    assert second["run_id"] == first["run_id"]
    assert second["skipped"] == first["fetched"] + first["not_found"] + first["failed"]
    read_s3(s3, bucket).assert_exactly_once(select_ids(csv).ids)


def test_a_rejected_key_exits_1_with_one_line_and_no_secret(
    csv: Path, tmdb: LocalTmdb, tmp_path: Path, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A wrong key exits 1 with a one-line reason, no traceback, the key nowhere."""
    secret = "wrong-key-0123456789"
    monkeypatch.setenv("TMDB_API_KEY", secret)
    code = main(["run", str(csv), "--out-dir", str(tmp_path), "--tmdb-url", tmdb.url])
    captured = capsys.readouterr()
    assert code == 1
    fatal = [line for line in captured.err.splitlines() if line.startswith("tmdb-ingest:")]
    assert len(fatal) == 1 and "rejected" in fatal[0]  # noqa: PT018
    assert "Traceback" not in captured.err
    assert secret not in captured.out + captured.err
    assert tmdb.stats.requests == 1  # the first request goes alone


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--rate", "0"], "--rate: must be in 0.1..10000, got 0"),
        (["--batch-size", "0"], "--batch-size: must be in 1..10000, got 0"),
        (["--shard", "5/4"], "--shard"),
        (["--run-id", "bad id!"], "--run-id"),
    ],
)
def test_bad_options_exit_2_before_any_request(
    argv: list[str], message: str, csv: Path, tmdb: LocalTmdb, tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A bad setting exits 2 with a message naming the flag, and TMDB is never asked."""
    code = main(["run", str(csv), "--out-dir", str(tmp_path), "--tmdb-url", tmdb.url, *argv])
    assert code == 2
    assert message in capsys.readouterr().err
    assert tmdb.stats.requests == 0


def test_a_bad_csv_exits_2_before_any_request(
    tmdb: LocalTmdb, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A comma-delimited file exits 2 with a one-line error before any request."""
    bad = tmp_path / "movies.csv"
    bad.write_text("id,genero,numeroVotos\ntt0076759,Sci-Fi,5000\n")
    code = main(["run", str(bad), "--out-dir", str(tmp_path / "o"), "--tmdb-url", tmdb.url])
    err = capsys.readouterr().err
    assert code == 2
    assert "delimit" in err and "Traceback" not in err  # noqa: PT018
    assert tmdb.stats.requests == 0


def test_missing_credentials_exit_2(
    csv: Path, tmdb: LocalTmdb, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Without TMDB_API_KEY or TMDB_ACCESS_TOKEN the run exits 2 and says what to set."""
    monkeypatch.delenv("TMDB_API_KEY")
    code = main(["run", str(csv), "--out-dir", str(tmp_path), "--tmdb-url", tmdb.url])
    assert code == 2
    assert "TMDB_API_KEY" in capsys.readouterr().err


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_sigkill_at_random_moments_then_rerun_ends_exactly_once(
    seed: int, csv: Path, tmdb: LocalTmdb, tmp_path: Path
) -> None:
    """Killing the process with SIGKILL at random moments, then re-running, lands every id
    exactly once."""
    rng = random.Random(seed)
    out = tmp_path / "out"
    # a short lease: each new process waits out the killed one's (TTL + skew)
    env = {**os.environ, "TMDB_API_KEY": KEY}
    env.update(TMDB_INGEST_LEASE_TTL="3", TMDB_INGEST_LEASE_SKEW="0.5")
    argv = [sys.executable, "-m", "tmdb_ingest", "run", str(csv), "--out-dir", str(out)]
    argv += ["--tmdb-url", tmdb.url, "--rate", "60", "--batch-size", "7", "--run-id", "kill"]
    for _ in range(4):
        landed_before = len(list(out.glob("Raw/TMDB/JSON/2*/*/*/*.json")))
        proc = subprocess.Popen(argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            # a random moment after this process has started landing (start-up time and
            # the wait for the killed one's lease vary)
            for _ in range(600):
                landed = len(list(out.glob("Raw/TMDB/JSON/2*/*/*/*.json")))
                if proc.poll() is not None or landed > landed_before:
                    break
                time.sleep(0.05)
            proc.wait(timeout=rng.uniform(0.0, 1.5))
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGKILL)
        finally:
            proc.wait()
            assert proc.stderr is not None
            proc.stderr.close()
    final = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    summary = last_json_line(final.stdout)
    assert summary["done"] is True
    assert summary["skipped"] > 0  # the killed runs had landed part of the work
    read_dir(out).assert_exactly_once(select_ids(csv).ids)


def _start_and_wait_for_landing(argv: list[str], env: dict[str, str], out: Path) -> Any:
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    for _ in range(600):
        if proc.poll() is not None or any(out.glob("Raw/TMDB/JSON/2*/*/*/*.json")):
            break
        time.sleep(0.05)
    assert proc.poll() is None, "the run ended before it could be interrupted"
    return proc


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_stops_cleanly_and_the_same_command_resumes(
    signum: int, code: int, csv: Path, tmdb: LocalTmdb, tmp_path: Path
) -> None:
    """SIGINT/SIGTERM: the partial file lands, the state is saved, one line, exit 130/143;
    no traceback, no unretrieved task exception; the same command then finishes once."""
    out = tmp_path / "out"
    env = {**os.environ, "TMDB_API_KEY": KEY}
    argv = [sys.executable, "-m", "tmdb_ingest", "run", str(csv), "--out-dir", str(out)]
    argv += ["--tmdb-url", tmdb.url, "--rate", "60", "--batch-size", "7", "--json"]
    proc = _start_and_wait_for_landing(argv, env, out)
    proc.send_signal(signum)
    stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == code, stderr
    assert "Traceback" not in stderr
    assert "never retrieved" not in stderr
    lines = [line for line in stderr.splitlines() if line.startswith("tmdb-ingest:")]
    assert lines == [f"tmdb-ingest: {signal.Signals(signum).name}: interrupted; the state "
                     "is saved and the same command resumes"]  # fmt: skip
    summary = last_json_line(stdout)
    assert summary["done"] is False
    assert summary["fetched"] > 0
    partial = read_dir(out)
    assert sum(partial.data_ids.values()) == summary["fetched"]  # the partial file landed
    final = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    resumed = last_json_line(final.stdout)
    assert resumed["skipped"] == summary["fetched"] + summary["not_found"]
    read_dir(out).assert_exactly_once(select_ids(csv).ids)


def test_a_second_ctrl_c_stops_at_once_and_exactly_once_still_holds(
    csv: Path, tmdb: LocalTmdb, tmp_path: Path
) -> None:
    """Two SIGINTs in a row: exit 130 without waiting; a re-run still lands every id once."""
    out = tmp_path / "out"
    env = {**os.environ, "TMDB_API_KEY": KEY}
    argv = [sys.executable, "-m", "tmdb_ingest", "run", str(csv), "--out-dir", str(out)]
    argv += ["--tmdb-url", tmdb.url, "--rate", "60", "--batch-size", "7"]
    proc = _start_and_wait_for_landing(argv, env, out)
    proc.send_signal(signal.SIGINT)
    proc.send_signal(signal.SIGINT)
    _stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "never retrieved" not in stderr
    final = subprocess.run([*argv, "--json"], env=env, capture_output=True, text=True, timeout=120)
    assert final.returncode == 0, final.stderr
    read_dir(out).assert_exactly_once(select_ids(csv).ids)


@pytest.mark.slow
def test_a_second_ctrl_c_still_prints_the_json_summary(csv: Path, tmp_path: Path) -> None:
    """Ctrl-C while requests are in flight (3 s each), then Ctrl-C again: the run stops
    without waiting for them, exit 130, and `--json` still prints the summary (not done)."""
    out = tmp_path / "out"
    env = {**os.environ, "TMDB_API_KEY": KEY}
    with local_tmdb(latency_ms=3000) as slow:
        argv = [sys.executable, "-m", "tmdb_ingest", "run", str(csv), "--out-dir", str(out)]
        argv += ["--tmdb-url", slow.url, "--rate", "60", "--batch-size", "7", "--json"]
        proc = _start_and_wait_for_landing(argv, env, out)
        proc.send_signal(signal.SIGINT)
        time.sleep(0.3)  # a second, separate Ctrl-C (two at once are one signal)
        proc.send_signal(signal.SIGINT)
        stdout, stderr = proc.communicate(timeout=60)
    assert proc.returncode == 130, stderr
    assert "Traceback" not in stderr
    assert "SIGINT again: stopping at once" in stderr
    summary = last_json_line(stdout)
    assert summary["done"] is False
    assert summary["fetched"] > 0
