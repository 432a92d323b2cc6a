"""The library's typed face: what the README and the examples write passes mypy --strict,
and the settings take plain strings where users pass them."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from tmdb_ingest import Secret, Settings, ingest
from tmdb_ingest.config.values import Rate

ROOT = Path(__file__).resolve().parents[1]


def readme_library_example() -> str:
    """The Python block that follows "As a library:" in README.md."""
    text = (ROOT / "README.md").read_text()
    found = re.search(r"As a library:\s*```python\n(.*?)```", text, re.DOTALL)
    assert found, "README.md has no 'As a library:' python block"
    return found.group(1)


def mypy_strict(*paths: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "mypy", "--strict", "--no-incremental",
         "--python-version", "3.11", *map(str, paths)],
        capture_output=True, text=True, cwd=ROOT, timeout=300,
    )  # fmt: skip


@pytest.mark.slow
def test_the_readme_and_the_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """The README's library example and every script in examples/ type-check strictly."""
    snippet = tmp_path / "readme_example.py"
    snippet.write_text(readme_library_example())
    examples = sorted((ROOT / "examples").glob("*.py"))
    assert examples
    result = mypy_strict(snippet, *examples)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_mypy_strict_would_catch_a_wrong_type(tmp_path: Path) -> None:
    """The check above means something: a mistyped setting fails it."""
    snippet = tmp_path / "wrong.py"
    snippet.write_text("from tmdb_ingest import Settings\nSettings(bucket=3)\n")
    result = mypy_strict(snippet)
    assert result.returncode == 1
    assert 'Argument "bucket" to "Settings" has incompatible type "int"' in result.stdout


def test_settings_take_plain_strings_and_hold_the_value_types(tmp_path: Path) -> None:
    """api_key/access_token become Secrets, out_dir a Path, rate a Rate, genres a tuple."""
    settings = Settings(
        out_dir=str(tmp_path), api_key="k", access_token="t", rate="auto", genres=["drama"]
    )
    assert settings.api_key == Secret("k")
    assert settings.access_token == Secret("t")
    assert settings.out_dir == tmp_path
    assert settings.rate == Rate.auto(max=settings.max_rate)
    assert settings.genres == ("Drama",)
    assert "k'" not in repr(settings)  # the secret is held, never shown
    assert Settings(rate=12).rate == Rate.fixed(12)
    assert Settings(shard="1/4").shard.index == 1


def test_an_auto_rate_and_max_rate_are_one_ceiling() -> None:
    """`rate="auto"` takes max_rate; `Rate.auto(max=...)` sets it; replace keeps them one."""
    assert Settings(rate="auto", max_rate=45).rate == Rate.auto(max=45)
    given = Settings(rate=Rate.auto(max=33))
    assert given.max_rate == 33
    assert given.replace(max_rate=44).rate == Rate.auto(max=44)
    assert given.replace(rate=10).rate == Rate.fixed(10)


async def test_ingest_refuses_a_string_of_ids(tmp_path: Path) -> None:
    """`ingest("tt0000908", ...)` is a TypeError, not a run over the string's characters."""
    settings = Settings(out_dir=tmp_path, api_key="k")
    with pytest.raises(TypeError, match="ids must be an iterable of IMDb ids"):
        await ingest("tt0000908", settings)
    assert not tmp_path.exists() or not any(tmp_path.iterdir())  # nothing was written
