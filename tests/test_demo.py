"""`tmdb-ingest demo`, as `make demo` runs it: the whole job on the emulator and moto."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest


@pytest.mark.slow
def test_the_demo_runs_the_whole_job_and_shows_what_landed() -> None:
    """The demo exits 0 with a done summary, lists the objects and shows landed movies."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "AWS_"))}
    result = subprocess.run(
        [sys.executable, "-m", "tmdb_ingest", "demo"],
        capture_output=True, text=True, timeout=300, env=env,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-3000:]
    lines = result.stdout.splitlines()
    summary_line = lines[lines.index("5. summary:") + 1]
    summary = json.loads(summary_line)
    assert summary["done"] is True
    assert summary["failed"] == 0
    assert summary["fetched"] + summary["not_found"] == summary["selected"] > 0
    data = [
        line for line in lines if "/Raw/TMDB/JSON/" in line and line.strip().startswith("s3://")
    ]
    assert len(data) == summary["batches"]
    assert any(line.startswith("7. the first movies of ") for line in lines)
    assert "Traceback" not in result.stderr
