"""Keep a lake current: fetch again the movies TMDB changed since the last refresh.

Shows :func:`tmdb_ingest.refresh` on a lake in a local folder (``Settings(out_dir=...)``;
``bucket=`` for S3). It reads TMDB's change list from the day after the lake's bookmark
(the first time: the day the lake's oldest movie was fetched) to ``--until`` (default
today), fetches each changed movie of the lake once, lands it beside the first load,
and moves the bookmark. Run it every day; run it again the same day and it asks TMDB
for nothing. The TMDB endpoint and key come from ``TMDB_URL`` and ``TMDB_API_KEY``.

Against the emulator::

    tmdb-ingest sample movies.csv
    tmdb-ingest emulate --port 8765 --catalogue movies.csv &
    export TMDB_URL=http://127.0.0.1:8765/3 TMDB_API_KEY=test-api-key
    python examples/ingest_to_folder.py movies.csv ./raw-zone
    python examples/refresh_lake.py ./raw-zone     # today: nothing changed since the load

Days later (``emulate --today`` moves the emulator's date), the same last command fetches
again the movies of the lake that changed in between.

It prints one line on what changed, then the summary as one JSON object on the last line.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import json
import sys
from pathlib import Path

from tmdb_ingest import Settings, refresh


def main(argv: list[str] | None = None) -> int:
    """Parse the arguments, refresh; 0 when every changed movie was landed or reported."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out_dir", type=Path, help="the folder that holds the lake")
    parser.add_argument("--until", type=dt.date.fromisoformat, default=None, help="YYYY-MM-DD")
    args = parser.parse_args(argv)

    settings = Settings.from_env(out_dir=args.out_dir)
    summary = asyncio.run(refresh(settings, until=args.until))
    print(
        f"{summary.since}..{summary.until}: {summary.changed} movies changed at TMDB, "
        f"{summary.in_lake} of them in the lake, {summary.fetched} fetched again "
        f"({summary.pages} change-list pages)"
    )
    print(json.dumps(summary.as_dict()))
    return 0 if summary.done else 3


if __name__ == "__main__":
    sys.exit(main())
