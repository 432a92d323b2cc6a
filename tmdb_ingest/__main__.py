"""``python -m tmdb_ingest``: the same as the ``tmdb-ingest`` command."""

from tmdb_ingest.cli import main

raise SystemExit(main())
