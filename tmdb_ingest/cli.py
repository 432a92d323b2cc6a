"""The ``tmdb-ingest`` command: arguments -> settings -> library call -> summary, exit code.

Thin on purpose: no retry, rate or batching logic lives here. Exit codes (design.md):
0 done, 3 stopped by the time budget with work left, 2 bad usage/input/configuration
(found before any request), 1 fatal at run time, with a one-line reason.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import orjson

from tmdb_ingest.errors import ConfigError, FatalError, InputError, TmdbIngestError
from tmdb_ingest.settings import DEFAULT_PREFIX, DEFAULT_TMDB_URL, Settings, Shard

EXIT_DONE, EXIT_FATAL, EXIT_USAGE, EXIT_BUDGET = 0, 1, 2, 3


def _genres(text: str) -> tuple[str, ...]:
    return tuple(g for g in (part.strip() for part in text.split(",")) if g)


def _selection_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("csv", metavar="CSV", help="movies.csv: a path or s3://bucket/key")
    p.add_argument(
        "--genres", type=_genres, default=("Sci-Fi", "Fantasy"), help="default: Sci-Fi,Fantasy"
    )
    p.add_argument(
        "--votes-above", type=int, default=1000, help="keep movies with more votes (default 1000)"
    )
    p.add_argument(
        "--s3-endpoint-url",
        default=os.environ.get("AWS_ENDPOINT_URL_S3"),
        help="default: $AWS_ENDPOINT_URL_S3",
    )


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(prog="tmdb-ingest", description=__doc__.splitlines()[0])
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    select = sub.add_parser("select", help="print the selected IMDb ids, one per line")
    _selection_args(select)

    run = sub.add_parser("run", help="fetch the selected movies from TMDB and land them in S3")
    _selection_args(run)
    sink = run.add_mutually_exclusive_group(required=True)
    sink.add_argument("--bucket", help="S3 bucket to write to")
    sink.add_argument("--out-dir", type=Path, help="write the same layout to a local folder")
    run.add_argument("--prefix", default=DEFAULT_PREFIX, help=f"default: {DEFAULT_PREFIX}")
    run.add_argument("--rate", type=float, default=40.0, help="requests per second (default 40)")
    run.add_argument("--concurrency", type=int, default=20, help="requests in flight (default 20)")
    run.add_argument("--batch-size", type=int, default=100, help="movies per file (default 100)")
    run.add_argument(
        "--run-id", help="resume this run; default: derived from the inputs and the date"
    )
    run.add_argument(
        "--shard", type=str, default="0/1", help="I/N: only shard I of N (default 0/1)"
    )
    run.add_argument(
        "--time-budget", type=float, help="seconds; stop in time, save, exit 3 if work is left"
    )
    run.add_argument(
        "--tmdb-url",
        default=os.environ.get("TMDB_URL", DEFAULT_TMDB_URL),
        help="default: $TMDB_URL or TMDB's",
    )
    run.add_argument("--language", help="e.g. en-US")
    run.add_argument("--append-to-response", type=_genres, default=(), help="e.g. credits,videos")
    run.add_argument(
        "--json", action="store_true", help="print the summary as JSON on the last line"
    )

    from tmdb_ingest.emulator.cli import add_arguments as add_emulator_arguments

    emulate = sub.add_parser("emulate", help="serve the TMDB emulator")
    add_emulator_arguments(emulate)

    sub.add_parser("demo", help="the whole job on the emulator and a local S3 (moto)")
    return parser


def _settings(args: argparse.Namespace) -> Settings:
    return Settings.from_env(
        bucket=args.bucket,
        out_dir=args.out_dir,
        prefix=args.prefix,
        s3_endpoint_url=args.s3_endpoint_url or None,
        genres=args.genres,
        votes_above=args.votes_above,
        rate=args.rate,
        concurrency=args.concurrency,
        batch_size=args.batch_size,
        run_id=args.run_id,
        shard=Shard.parse(args.shard),
        time_budget=args.time_budget,
        tmdb_url=args.tmdb_url,
        language=args.language,
        append_to_response=args.append_to_response,
    )


def _cmd_select(args: argparse.Namespace) -> int:
    from tmdb_ingest.selection import select_ids

    selection = select_ids(
        args.csv,
        genres=args.genres,
        votes_above=args.votes_above,
        s3_endpoint_url=args.s3_endpoint_url,
    )
    out = sys.stdout
    out.write("".join(f"{i}\n" for i in selection.ids))
    out.flush()
    print(f"{len(selection.ids)} ids selected", file=sys.stderr)
    if selection.invalid_ids:
        print(f"{selection.invalid_ids} malformed ids skipped", file=sys.stderr)
    return EXIT_DONE


def _cmd_run(args: argparse.Namespace) -> int:
    from tmdb_ingest.logs import configure_logging
    from tmdb_ingest.pipeline import ingest_csv
    from tmdb_ingest.progress import progress_for

    settings = _settings(args)
    settings.require_sink()
    settings.require_credentials()
    configure_logging(settings.secrets(), verbose=args.verbose)
    with progress_for(sys.stderr) as progress:
        summary = asyncio.run(ingest_csv(args.csv, settings, progress=progress))
    if args.json:
        sys.stdout.write(orjson.dumps(summary.as_dict()).decode() + "\n")
    else:
        for key, value in summary.as_dict().items():
            print(f"{key:>10}: {value}")
    return EXIT_DONE if summary.done else EXIT_BUDGET


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(message)s")
    try:
        if args.command == "select":
            return _cmd_select(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "emulate":
            from tmdb_ingest.emulator.cli import run as run_emulator

            return run_emulator(args)
        from tmdb_ingest.demo import run_demo

        return run_demo()
    except (ConfigError, InputError) as exc:
        print(f"tmdb-ingest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except FatalError as exc:
        print(f"tmdb-ingest: fatal: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except TmdbIngestError as exc:
        print(f"tmdb-ingest: error: {exc}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print("tmdb-ingest: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
