"""Size of the landed data in each file format, on the emulator's movie bodies.

10,000 movie-details bodies (the emulator's, shaped like TMDB's, with non-ASCII text)
are cut into files of 100, as a run would, and encoded by :class:`FileFormat` in each
format: the bytes that would be stored in S3, and the CPU time to encode them (what a
Lambda pays per file). Every encoding is decoded back and checked against the bodies.

Run standalone with ``python -m benchmarks.bench_formats``; :func:`run` appends the same
markdown section to a report list for a combined benchmark run.
"""

from __future__ import annotations

import gzip
import json
import sys
import time

from benchmarks._common import print_section
from tmdb_ingest.emulator.bodies import movie_details_bytes
from tmdb_ingest.land.formats import FileFormat

FORMATS = (
    ("json", None),
    ("ndjson", None),
    ("ndjson", "gzip"),
    ("json", "gzip"),
)


def _decode(file_format: FileFormat, data: bytes) -> list[object]:
    if file_format.compress == "gzip":
        data = gzip.decompress(data)
    if file_format.format == "json":
        movies: list[object] = json.loads(data)
        return movies
    return [json.loads(line) for line in data.splitlines()]


def measure(
    n: int = 10_000, batch_size: int = 100
) -> tuple[int, list[tuple[str, str, int, float]]]:
    """(raw body bytes, [(format, extension, stored bytes, encode seconds)])."""
    bodies = [movie_details_bytes(f"tt{1_000_000 + k:07d}") for k in range(n)]
    batches = [bodies[i : i + batch_size] for i in range(0, n, batch_size)]
    raw = sum(len(b) for b in bodies)
    results = []
    for kind, compress in FORMATS:
        file_format = FileFormat(kind, compress)
        started = time.process_time()
        files = [file_format.encode(batch) for batch in batches]
        took = time.process_time() - started
        for batch, data in zip(batches, files, strict=True):
            if _decode(file_format, data) != [json.loads(b) for b in batch]:
                raise AssertionError(f"{kind}/{compress} does not decode to its bodies")
        name = kind + (f" + {compress}" if compress else "")
        results.append((name, file_format.extension, sum(len(f) for f in files), took))
        print(f"{name}: {results[-1][2]:,} bytes", file=sys.stderr)
    return raw, results


def run(report: list[str], *, n: int = 10_000, batch_size: int = 100) -> None:
    """Measure every format; append a markdown section to ``report``."""
    raw, results = measure(n, batch_size)
    files = -(-n // batch_size)
    plain = results[0][2]
    report += [
        "## Data file formats: bytes in S3",
        "",
        f"{n:,} movie-details bodies from the emulator ({raw / n:,.0f} bytes each on "
        f"average, {raw / 1e6:.2f} MB in all), {files} files of {batch_size}; each format "
        "decoded back and checked against the bodies. Encode time is CPU time for all "
        "files, in this process. The emulator's overviews are one short sentence from a "
        "small template, so its bodies compress better than TMDB's real ones will: take the "
        "gzip ratio as a best case.",
        "",
        "| format | file name | MB | bytes per movie | vs json | encode (ms per file) |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for name, extension, size, took in results:
        report.append(
            f"| {name} | `{extension}` | {size / 1e6:.2f} | {size / n:,.0f} "
            f"| {size / plain:.2f} | {took / files * 1000:.2f} |"
        )
    report.append("")


def main() -> None:
    print_section(run)


if __name__ == "__main__":
    main()
