"""The README's first hour and each example's docstring, run as written in a shell.

Only what cannot be the same on a shared test machine is changed: the fixed ports (8765
for the emulator, 5050 for moto) become free ones, and a `sleep` that waits for a server
started with `&` becomes a wait until its port answers. Each script runs in an empty
folder with no TMDB_* or AWS_* variables but its own, and ends every server it started.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "examples"

pytestmark = pytest.mark.slow


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def readme_block(title: str, index: int = 0) -> str:
    """The ``index``-th fenced block of the README section ``## {title}``."""
    section = ROOT.joinpath("README.md").read_text().split(f"## {title}\n", 1)[1]
    section = section.split("\n## ", 1)[0]
    return re.findall(r"^```\n(.*?)^```$", section, re.M | re.S)[index]


def docstring_block(path: Path) -> str:
    """The shell block (after ``::``) of an example's docstring."""
    doc = path.read_text().split('"""', 2)[1]
    block = doc.split("::\n\n", 1)[1].split("\n\n", 1)[0]
    return "\n".join(line.removeprefix("    ") for line in block.splitlines())


def run_shell(script: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    """Run ``script`` in bash with this repo's Python first on PATH and fresh ports."""
    ports = {"8765": str(free_port()), "5050": str(free_port())}
    for fixed, free in ports.items():
        script = re.sub(rf"\b{fixed}\b", free, script)
    wait = " && ".join(
        f"until (echo > /dev/tcp/127.0.0.1/{p}) 2>/dev/null; do sleep 0.1; done"
        for p in ports.values()
    )

    def ready(match: re.Match[str]) -> str:
        started = match.group(1)
        used = [p for p in ports.values() if p in started]
        loops = [w for w in wait.split(" && ") if any(p in w for p in used)]
        return started + " " + " && ".join(loops)

    script = re.sub(r"^(.*&) sleep \d+", ready, script, flags=re.M)
    script = re.sub(r"^(.*[^&]&)$", ready, script, flags=re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TMDB_", "AWS_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    env["PYTHONPATH"] = str(ROOT)
    guarded = "set -e\ntrap 'kill $(jobs -p) 2>/dev/null || true' EXIT\n" + script
    return subprocess.run(
        ["bash", "-c", guarded], cwd=cwd, env=env, capture_output=True, text=True,
        timeout=timeout, check=False,
    )  # fmt: skip


def test_the_readme_first_hour_works_as_written(tmp_path: Path) -> None:
    """Emulator, sample, run, status and DuckDB: the lake is read and the numbers add up."""
    block = readme_block("The first hour")
    lines = block.splitlines()
    assert lines[0].startswith("python3 -m venv .venv")  # the install: done by the test setup
    done = run_shell("\n".join(lines[1:]), tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    out = done.stdout
    assert "done: True" in out
    assert "fetched: 127" in out and "not_found: 6" in out  # noqa: PT018
    assert re.search(r"^all +133 +127 +6 +0 +0 +2 .* yes$", out, re.M), out
    assert re.search(r"│ +127 │ +\d+ │", out), out  # DuckDB read the 127 movies
    assert "TMDB_API_KEY=test-api-key" in out  # the key the README exports is the emulator's

    s3 = run_shell(readme_block("The first hour", 1), tmp_path)
    assert s3.returncode == 0, s3.stderr[-3000:]
    summary = json.loads(next(ln for ln in s3.stdout.splitlines() if ln.startswith("{")))
    assert (summary["done"], summary["fetched"], summary["not_found"]) == (True, 127, 6)
    assert summary["report"].startswith("s3://my-lake/Raw/TMDB/_state/")


def examples_with_a_block() -> list[Path]:
    return sorted(p for p in EXAMPLES.glob("*.py") if "::\n\n" in p.read_text())


def test_every_example_is_run_by_a_test() -> None:
    """A new example without a test is caught here."""
    tested = {p.name for p in examples_with_a_block()} | {"lambda_chain_demo.py"}
    assert tested == {p.name for p in EXAMPLES.glob("*.py")}


@pytest.mark.parametrize("example", examples_with_a_block(), ids=lambda p: p.name)
def test_each_example_runs_as_its_docstring_says(example: Path, tmp_path: Path) -> None:
    """The docstring's commands, pasted into a shell: exit 0 and a done summary last."""
    script = docstring_block(example).replace("examples/", f"{EXAMPLES}/")
    done = run_shell(script, tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    # the last JSON line: the emulator, stopped on the way out, prints its counts after it
    last = json.loads([ln for ln in done.stdout.splitlines() if ln.startswith("{")][-1])
    assert last.get("done", last.get("summary", {}).get("done")) is True


def test_the_lambda_chain_demo_runs_as_its_docstring_says(tmp_path: Path) -> None:
    """`python examples/lambda_chain_demo.py --movies N --seconds S` ends done, exit 0."""
    done = subprocess.run(
        [sys.executable, str(EXAMPLES / "lambda_chain_demo.py"), "--movies", "2000",
         "--seconds", "6"],
        cwd=tmp_path, env={**os.environ, "PYTHONPATH": str(ROOT)}, capture_output=True,
        text=True, timeout=240, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert '"done":true' in done.stdout
