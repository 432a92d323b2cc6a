"""``python -m benchmarks`` (``make bench``): every benchmark, then ``docs/benchmarks.md``.

Each benchmark runs ours side by side with its baselines in the same run, on this
machine. ``--quick`` runs small sizes (a smoke test of the benchmarks themselves; its
numbers are not the documented ones). Sizes can also be set with ``BENCH_THROUGHPUT_N``,
``BENCH_SEQUENTIAL_N``, ``BENCH_MEMORY_N``, ``BENCH_MEMORY_NAIVE=0`` and ``BENCH_TLS_N``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import time
from pathlib import Path

from benchmarks import (
    bench_bad_days,
    bench_formats,
    bench_lambda,
    bench_memory,
    bench_rate,
    bench_refresh,
    bench_resume,
    bench_selection,
    bench_throughput,
    bench_tls,
)
from benchmarks._common import machine_lines

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = (
    "throughput",
    "memory",
    "selection",
    "resume",
    "formats",
    "rate",
    "bad_days",
    "lambda",
    "refresh",
    "tls",
)


def main(argv: list[str] | None = None) -> int:
    """Run the benchmarks; write the markdown page; return the exit code."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke test")
    parser.add_argument(
        "--only", default=",".join(BENCHMARKS), help=f"comma-separated: {','.join(BENCHMARKS)}"
    )
    parser.add_argument(
        "--out", type=Path, default=ROOT / "docs" / "benchmarks.md", help="the page to write"
    )
    args = parser.parse_args(argv)
    only = [name.strip() for name in args.only.split(",") if name.strip()]
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        parser.error(f"--only: unknown benchmarks {unknown}; choose from {','.join(BENCHMARKS)}")

    command = "python -m benchmarks" + (" --quick" if args.quick else "")
    if args.only != ",".join(BENCHMARKS):
        command += f" --only {args.only}"
    started = time.perf_counter()
    sections: list[str] = []
    if "throughput" in only:
        if args.quick:
            bench_throughput.run(sections, n=400, sequential_n=40)
        else:
            bench_throughput.run(sections)
    if "memory" in only:
        bench_memory.run(sections, n=20_000 if args.quick else None)
    if "selection" in only:
        bench_selection.run(sections, repeats=1 if args.quick else 3)
    if "resume" in only:
        bench_resume.run(sections, repeats=1 if args.quick else 3)
    if "formats" in only:
        bench_formats.run(sections, n=1_000 if args.quick else 10_000)
    if "rate" in only:
        bench_rate.run(sections, png=args.out.parent / "rate-auto.png")
    if "bad_days" in only:
        bench_bad_days.run(sections)
    if "lambda" in only:
        bench_lambda.run(sections, timeout=60 if args.quick else None)
    if "refresh" in only:
        bench_refresh.run(sections)
    if "tls" in only:
        bench_tls.run(sections, n=200 if args.quick else None)
    took = time.perf_counter() - started

    page = [
        "# Benchmarks",
        "",
        "Measured on this machine by `make bench`, ours side by side with the baselines in "
        "the same run. Regenerate with:",
        "",
        "```",
        f"{command}    # `make bench` runs `.venv/bin/python -m benchmarks`",
        "```",
        "",
        f"Run on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC, {took / 60:.1f} minutes in all.",
        "",
        *machine_lines(),
        "",
    ]
    if args.quick:
        page += ["**Quick run: small sizes, not the documented numbers.**", ""]
    if args.only != ",".join(BENCHMARKS) and args.out.exists():
        # A partial run replaces its own sections and keeps the others' measurements.
        sections = _splice(args.out.read_text(encoding="utf-8"), sections)
        run_on = page.index(next(line for line in page if line.startswith("Run on ")))
        page[run_on] = (
            f"The last partial run (`{command}`) on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} "
            "UTC replaced its own sections; the others keep the measurements of earlier runs, "
            "with the machine as it was then. `make bench` runs them all."
        )
    page += sections
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(page).rstrip() + "\n", encoding="utf-8")
    print(f"wrote {args.out} ({took:.0f} s)", file=sys.stderr)
    return 0


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """The page's "## " sections by heading, in order (what precedes the first is dropped)."""
    found: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in lines:
        if line.startswith("## "):
            current = found.setdefault(line, [])
        if current is not None:
            current.append(line)
    return found


def _splice(old_page: str, new: list[str]) -> list[str]:
    """The old page's sections with those of ``new`` replacing (or added after) them."""
    merged = _sections(old_page.splitlines())
    for heading, lines in _sections("\n".join(new).splitlines()).items():
        merged[heading] = lines
    # Each section ends with a blank line, so the next heading stays a heading.
    return [
        line for lines in merged.values() for line in (lines if lines[-1] == "" else [*lines, ""])
    ]


if __name__ == "__main__":
    sys.exit(main())
