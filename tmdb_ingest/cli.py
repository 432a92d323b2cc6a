"""The ``tmdb-ingest`` command: arguments -> settings -> library call -> summary, exit code.

Thin on purpose: no retry, rate or batching logic lives here. Exit codes (design.md):
0 done, 3 stopped by the time budget with work left, 2 bad usage/input/configuration
(found before any request), 1 fatal at run time, with a one-line reason.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import tmdb_ingest
from tmdb_ingest import status
from tmdb_ingest.errors import ConfigError, FatalError, InputError, TmdbIngestError
from tmdb_ingest.logs import redact
from tmdb_ingest.settings import DEFAULT_GENRES, DEFAULT_PREFIX, DEFAULT_TMDB_URL, Settings, Shard
from tmdb_ingest.summary import Summary

EXIT_DONE, EXIT_FATAL, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3


def _names(text: str) -> tuple[str, ...]:
    return tuple(g for g in (part.strip() for part in text.split(",")) if g)


Options = list[tuple[str, dict[str, Any]]]
# fmt: off
_SELECTION: Options = [
    ("--genres", {"type": _names, "default": DEFAULT_GENRES, "help": "Sci-Fi,Fantasy; *: any"}),
    ("--votes-above", {"type": int, "default": 1000, "help": "more votes than (1000); -1 any"}),
    ("--s3-endpoint-url", {"help": "default $AWS_ENDPOINT_URL_S3"}),
]
_RUN: Options = [
    ("--prefix", {"default": DEFAULT_PREFIX, "help": DEFAULT_PREFIX}),
    ("--rate", {"type": float, "default": 40.0, "help": "requests per second (40)"}),
    ("--concurrency", {"type": int, "default": 20, "help": "requests in flight (20)"}),
    ("--batch-size", {"type": int, "default": 100, "help": "movies per file (100)"}),
    ("--run-id", {"help": "resume this run (default: from the inputs and the date)"}),
    ("--shard", {"default": "0/1", "help": "I/N: only shard I of N (0/1)"}),
    ("--time-budget", {"type": float, "help": "seconds; stop and save in time, exit 3"}),
    ("--tmdb-url", {"help": "default $TMDB_URL, else TMDB's own"}),
    ("--language", {"help": "e.g. en-US"}),
    ("--append-to-response", {"type": _names, "default": (), "help": "e.g. credits,videos"}),
    ("--json", {"action": "store_true", "help": "the summary as JSON on the last line"}),
]
# fmt: on


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    from tmdb_ingest.emulator.cli import add_arguments as add_emulator_arguments

    parser = argparse.ArgumentParser(prog="tmdb-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    select = sub.add_parser("select", help="print the selected IMDb ids, one per line")
    run = sub.add_parser("run", help="fetch the selected movies from TMDB and land them in S3")
    for command in (select, run):
        command.add_argument("csv", metavar="CSV", help="movies.csv: a path or s3://bucket/key")
        for flag, options in _SELECTION:
            command.add_argument(flag, **options)
    sink = run.add_mutually_exclusive_group(required=True)
    sink.add_argument("--bucket", help="the S3 bucket to write to")
    sink.add_argument("--out-dir", type=Path, help="write the same layout to a local folder")
    for flag, options in _RUN:
        run.add_argument(flag, **options)
    status.add_arguments(sub.add_parser("status", help="where a run stands, from its state"))
    add_emulator_arguments(sub.add_parser("emulate", help="serve the TMDB emulator"))
    sub.add_parser("demo", help="the whole job on the emulator and a local S3 (moto)")
    return parser


def _cmd_select(args: argparse.Namespace) -> int:
    from tmdb_ingest.selection import select_ids

    options = {k: getattr(args, k) for k in ("genres", "votes_above", "s3_endpoint_url")}
    selection = select_ids(args.csv, **options)
    print("".join(f"{i}\n" for i in selection.ids), end="", flush=True)
    print(f"{len(selection.ids)} ids selected", file=sys.stderr)
    if selection.invalid_ids:
        print(f"{selection.invalid_ids} malformed ids skipped", file=sys.stderr)
    return EXIT_DONE


def _cmd_run(args: argparse.Namespace) -> int:
    from tmdb_ingest.logs import configure_logging
    from tmdb_ingest.pipeline import ingest_csv
    from tmdb_ingest.progress import progress_for

    names = "bucket out_dir prefix genres votes_above rate concurrency batch_size run_id"
    names += " time_budget tmdb_url language append_to_response"
    settings = Settings.from_env(
        **{name: getattr(args, name) for name in names.split()},
        s3_endpoint_url=args.s3_endpoint_url or None,
        shard=Shard.parse(args.shard),
    )
    configure_logging(settings.secrets(), verbose=args.verbose)
    try:
        with progress_for(sys.stderr) as progress:
            started = tmdb_ingest._STARTED_AT  # the budget counts from start-up
            summary = asyncio.run(
                ingest_csv(args.csv, settings, progress=progress, started_at=started)
            )
    except FatalError as exc:
        if args.json and isinstance(exc.summary, Summary):
            print(exc.summary.to_json(), flush=True)
        raise
    print(summary.to_json() if args.json else summary.to_text(), flush=True)
    return EXIT_DONE if summary.done else EXIT_BUDGET


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    args = build_parser().parse_args(argv)
    # environment defaults are read now, not when the module was imported
    if getattr(args, "csv", None) is not None:
        args.s3_endpoint_url = args.s3_endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3")
    if args.command == "run":
        args.tmdb_url = args.tmdb_url or os.environ.get("TMDB_URL") or DEFAULT_TMDB_URL
    try:
        if args.command == "select":
            return _cmd_select(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "status":
            return status.command(args)
        if args.command == "emulate":
            from tmdb_ingest.emulator.cli import run as run_emulator

            return run_emulator(args)
        from tmdb_ingest.demo import run_demo

        return run_demo()
    except (ConfigError, InputError) as exc:
        print(f"tmdb-ingest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except TmdbIngestError as exc:
        print(f"tmdb-ingest: fatal: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except Exception as exc:  # a bug: one line, and never a secret (messages can hold URLs)
        secrets = [os.environ.get(n, "") for n in ("TMDB_API_KEY", "TMDB_ACCESS_TOKEN")]
        message = redact(f"{type(exc).__name__}: {exc}", secrets)
        print(f"tmdb-ingest: internal error: {message}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("tmdb-ingest: interrupted; run the same command again to resume", file=sys.stderr)
        return 130
