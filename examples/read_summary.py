"""Run the job, then read what it returns: the summary fields and the report lines.

Shows how to use the :class:`tmdb_ingest.api.Summary` that :func:`ingest_csv`
returns (``selected``, ``fetched``, ``not_found``, ``failed``, ``done``, ...) and the
report it points to: one JSON line per id that is not in a data file, with ``imdb_id``,
``outcome`` (``not_found`` or ``failed``) and ``reason``. Writes to a local folder (the
report is then a path); endpoints and key come from ``TMDB_URL`` and ``TMDB_API_KEY``.

Run it against the emulator::

    tmdb-ingest emulate --port 8765 &
    export TMDB_URL=http://127.0.0.1:8765/3 TMDB_API_KEY=test-api-key
    tmdb-ingest sample movies.csv
    python examples/read_summary.py movies.csv ./raw-zone

It prints the summary field by field, the report's lines grouped by outcome, and last
one JSON object: ``summary`` and ``report`` (the parsed report lines).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections import Counter
from pathlib import Path

from tmdb_ingest.api import Summary, ingest_csv
from tmdb_ingest.config.settings import Settings


def read_report(summary: Summary) -> list[dict[str, str]]:
    """The report's lines, parsed (empty when every id landed in a data file)."""
    if summary.report is None:
        return []
    text = Path(summary.report).read_text(encoding="utf-8")
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, run, explain the outcome; 0 when every id was resolved."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("csv", help="movies.csv: a path or an s3:// URI")
    parser.add_argument("out_dir", type=Path, help="the folder to write to")
    args = parser.parse_args(argv)

    summary = asyncio.run(ingest_csv(args.csv, Settings.from_env(out_dir=args.out_dir)))
    for name, value in summary.as_dict().items():
        print(f"{name:>10}: {value}")
    accounted = summary.skipped + summary.fetched + summary.not_found + summary.failed
    print(f"accounted for {accounted} of {summary.selected} selected ids")

    report = read_report(summary)
    by_outcome = Counter(entry["outcome"] for entry in report)
    for outcome, count in sorted(by_outcome.items()):
        reasons = Counter(e["reason"] for e in report if e["outcome"] == outcome)
        print(f"{outcome}: {count} ids ({', '.join(f'{r}: {n}' for r, n in reasons.items())})")
    print(json.dumps({"summary": summary.as_dict(), "report": report}))
    return 0 if summary.done else 3


if __name__ == "__main__":
    sys.exit(main())
