"""Selection speed on a full-size movies.csv: ``select_ids`` next to plain baselines.

The file (244,000 movies, about 1.05 million rows, 140 MB) is generated once by
:mod:`tmdb_ingest.emulator.sample` into ``data/movies-full.csv`` (gitignored) and reused.
Each method runs the same query (``Sci-Fi`` or ``Fantasy``, more than 1000 votes, unique
sorted valid ids) and must return the same ids:

- ``select_ids``: the project's reader (8 MB pieces split at line ends, polars per
  piece, 3 columns, only the matching ids kept);
- ``polars scan_csv``: one lazy scan of the whole file (the previous reader);
- ``polars read_csv``: the same filter on an eager polars read of the whole file;
- ``csv module``: Python's ``csv`` reader row by row, the way the original job read it.

A second table times whole processes, start to exit: ``tmdb-ingest select`` (imports
included) next to a script that only imports ``csv`` and ``re`` and loops.

Run standalone with ``python -m benchmarks.bench_selection``; :func:`run` appends the same
markdown section to a report list for a combined benchmark run.
"""

from __future__ import annotations

import csv
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import polars as pl

from benchmarks._common import print_section
from tmdb_ingest.emulator.sample import FULL_SIZE_MOVIES, generate_movies_csv
from tmdb_ingest.ids import is_imdb_id
from tmdb_ingest.selection.reader import select_ids
from tmdb_ingest.selection.scan import _genre_pattern

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_PATH = ROOT / "data" / "movies-full.csv"
GENRES = ("Sci-Fi", "Fantasy")
VOTES_ABOVE = 1000


def ensure_full_size_file(path: Path = DEFAULT_PATH, *, movies: int = FULL_SIZE_MOVIES) -> Path:
    """Return ``path``, generating the full-size sample there first if it is missing."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        sample = generate_movies_csv(path, movies=movies, seed=0)
        took = time.perf_counter() - started
        print(f"generated {path}: {sample.rows:,} rows in {took:.1f} s", file=sys.stderr)
    return path


def ensure_sized_file(multiple: int) -> Path:
    """The full-size file (1) or one ``multiple`` times its size, generated once in data/."""
    if multiple == 1:
        return ensure_full_size_file()
    path = DEFAULT_PATH.with_name(f"movies-{multiple}x.csv")
    return ensure_full_size_file(path, movies=multiple * FULL_SIZE_MOVIES)


def _with_project(path: Path) -> list[str]:
    return select_ids(path, genres=GENRES, votes_above=VOTES_ABOVE).ids


def _with_csv_module(path: Path) -> list[str]:
    wanted = set(GENRES)
    found: set[str] = set()
    with path.open(encoding="utf-8-sig", newline="") as fh:
        reader = csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE)
        header = next(reader)
        i_id, i_genre, i_votes = (header.index(c) for c in ("id", "genero", "numeroVotos"))
        for row in reader:
            if len(row) <= max(i_id, i_genre, i_votes):
                continue
            votes = row[i_votes]
            if not votes.isdigit() or int(votes) <= VOTES_ABOVE:
                continue
            if wanted.isdisjoint(row[i_genre].split(",")):
                continue
            found.add(row[i_id])
    return sorted(i for i in found if is_imdb_id(i))


def _with_polars_lazy(path: Path) -> list[str]:
    ids = (
        pl.scan_csv(
            path,
            separator="|",
            quote_char=None,
            null_values=["\\N"],
            infer_schema=False,
            truncate_ragged_lines=True,
        )
        .select("id", "genero", "numeroVotos")
        .filter(
            (pl.col("numeroVotos").cast(pl.Int64, strict=False) > VOTES_ABOVE)
            & pl.col("genero").str.contains(_genre_pattern(GENRES))
        )
        .select(pl.col("id").unique().drop_nulls())
        .collect()
        .get_column("id")
        .to_list()
    )
    return sorted(i for i in ids if is_imdb_id(i))


# The baseline process: only csv and re imported, the same rules as ids.is_imdb_id.
_CSV_SCRIPT = """
import csv, re, sys
wanted = {"Sci-Fi", "Fantasy"}
valid = re.compile(r"tt[0-9]{7,10}")
found = set()
with open(sys.argv[1], encoding="utf-8-sig", newline="") as fh:
    reader = csv.reader(fh, delimiter="|", quoting=csv.QUOTE_NONE)
    header = next(reader)
    i_id, i_genre, i_votes = (header.index(c) for c in ("id", "genero", "numeroVotos"))
    for row in reader:
        if len(row) <= max(i_id, i_genre, i_votes):
            continue
        votes = row[i_votes]
        if not votes.isdigit() or int(votes) <= 1000:
            continue
        if wanted.isdisjoint(row[i_genre].split(",")):
            continue
        found.add(row[i_id])
sys.stdout.write("".join(i + "\\n" for i in sorted(found) if valid.fullmatch(i)))
"""


def _process_times(path: Path, repeats: int) -> list[tuple[str, float, int]]:
    """Best wall time of each whole process, and the ids it printed."""
    commands = [
        ("`tmdb-ingest select` (the CLI, imports included)", ["-m", "tmdb_ingest", "select"]),
        ("`python -c` csv-module loop (baseline)", ["-c", _CSV_SCRIPT]),
    ]
    results: list[tuple[str, float, int]] = []
    outputs: set[str] = set()
    for name, args in commands:
        best, out = float("inf"), ""
        for _ in range(repeats):
            started = time.perf_counter()
            done = subprocess.run(
                [sys.executable, *args, str(path)],
                capture_output=True,
                text=True,
                check=True,
                cwd=ROOT,
            )
            best = min(best, time.perf_counter() - started)
            out = done.stdout
        outputs.add(out)
        results.append((name, best, out.count("\n")))
        print(f"process {name}: best {best:.3f} s", file=sys.stderr)
    if len(outputs) != 1:
        raise AssertionError("the processes printed different ids")
    return results


def _with_polars_eager(path: Path) -> list[str]:
    frame = pl.read_csv(
        path,
        separator="|",
        quote_char=None,
        null_values=["\\N"],
        infer_schema=False,
        truncate_ragged_lines=True,
    )
    matched = frame.filter(
        (pl.col("numeroVotos").cast(pl.Int64, strict=False) > VOTES_ABOVE)
        & pl.col("genero").str.split(",").list.eval(pl.element().is_in(GENRES)).list.any()
    )
    ids = matched.get_column("id").unique().drop_nulls().to_list()
    return sorted(i for i in ids if is_imdb_id(i))


def _time(fn: Callable[[Path], list[str]], path: Path, repeats: int) -> tuple[list[float], int]:
    times: list[float] = []
    count = -1
    for _ in range(repeats):
        started = time.perf_counter()
        ids = fn(path)
        times.append(time.perf_counter() - started)
        count = len(ids)
    return times, count


def run(report: list[str], *, path: Path | None = None, repeats: int = 3) -> None:
    """Time every method on the full-size file; append a markdown section to ``report``."""
    source = ensure_full_size_file(path or DEFAULT_PATH)
    size_mb = source.stat().st_size / 1e6
    rows = select_ids(source).rows  # also warms the page cache for every method alike
    expected = _with_project(source)
    methods: list[tuple[str, Callable[[Path], list[str]]]] = [
        ("`select_ids` (8 MB pieces, polars per piece, 3 columns)", _with_project),
        ("polars lazy `scan_csv` of the whole file (the previous reader)", _with_polars_lazy),
        ("polars eager `read_csv` + same filter", _with_polars_eager),
        ("Python `csv` module, row by row (baseline)", _with_csv_module),
    ]
    results: list[tuple[str, float, float, int]] = []
    for name, fn in methods:
        if fn(source) != expected:
            raise AssertionError(f"{name} disagrees with select_ids")
        times, count = _time(fn, source, repeats)
        results.append((name, min(times), statistics.median(times), count))
        print(f"{name}: best {min(times):.3f} s", file=sys.stderr)

    baseline = results[-1][1]
    shown = source.relative_to(ROOT) if source.is_relative_to(ROOT) else source
    report += [
        "## Selection: movies.csv -> ids",
        "",
        f"Full-size synthetic file `{shown}`: "
        f"{rows:,} rows, {size_mb:.0f} MB, {FULL_SIZE_MOVIES:,} movies; default selection "
        f"(Sci-Fi or Fantasy, more than {VOTES_ABOVE} votes): {len(expected):,} ids. "
        f"Best and median of {repeats} runs, file in the page cache, {os.cpu_count()} CPUs.",
        "",
        "| method | best (s) | median (s) | rows/s | ids | vs baseline |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, best, median, count in results:
        report.append(
            f"| {name} | {best:.3f} | {median:.3f} | {rows / best / 1e6:.1f} M "
            f"| {count:,} | {baseline / best:.1f}x |"
        )
    processes = _process_times(source, repeats)
    report += [
        "",
        f"Whole processes, start to exit (best of {repeats}), ids printed to a pipe:",
        "",
        "| process | best (s) | ids | vs baseline |",
        "|---|---:|---:|---:|",
    ]
    for name, best, count in processes:
        report.append(f"| {name} | {best:.2f} | {count:,} | {processes[-1][1] / best:.1f}x |")
    report.append("")


def main() -> None:
    """Print the markdown section for the selection benchmark."""
    print_section(run)


if __name__ == "__main__":
    main()
