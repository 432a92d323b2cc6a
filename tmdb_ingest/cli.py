"""The ``tmdb-ingest`` command: arguments -> settings -> library call -> summary, exit code.

Thin on purpose: no retry, rate or batching logic lives here, and the parser is built
from the option table (``cli_parser``). Settings come from the flags the user typed,
then the same ``TMDB_INGEST_*`` variables the Lambda reads (secret sources included),
then the defaults. Exit codes: 0 done, 1 fatal at run time, 2 bad usage/input/
configuration (found before any request), 3 stopped by the time budget with work left,
4 busy (another invocation holds the run), 130 / 143 stopped by SIGINT / SIGTERM with the
state saved; fatal and busy stops print one line on stderr and, with ``--json``, the
summary so far on stdout.
"""

from __future__ import annotations

import dataclasses
import os
import sys
import time
from argparse import Namespace
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from tmdb_ingest.cli_parser import build_parser, flags_given
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.errors import ConfigError, InputError, RunBusy, TmdbIngestError
from tmdb_ingest.logs import redact
from tmdb_ingest.summary import Summary

if TYPE_CHECKING:
    from tmdb_ingest.run.stopping import StopRequest

EXIT_DONE, EXIT_FATAL, EXIT_USAGE, EXIT_BUDGET, EXIT_BUSY, EXIT_SIGINT = 0, 1, 2, 3, 4, 130
_INTERRUPTED = "interrupted; the state is saved and the same command resumes"


def _cmd_select(args: Namespace) -> int:
    from tmdb_ingest.selection.reader import select_ids

    settings = Settings.from_env(flags=flags_given(args))
    selection = select_ids(
        args.csv,
        genres=settings.genres,
        votes_above=settings.votes_above,
        s3_endpoint_url=settings.s3_endpoint_url,
    )
    print("".join(f"{i}\n" for i in selection.ids), end="", flush=True)
    print(f"{len(selection.ids)} ids selected", file=sys.stderr)
    if selection.invalid_ids:
        print(f"{selection.invalid_ids} malformed ids skipped", file=sys.stderr)
    return EXIT_DONE


async def _run(args: Namespace, stop: StopRequest) -> Summary:
    from tmdb_ingest.api import ingest_csv
    from tmdb_ingest.config.credentials import credentials_from_env
    from tmdb_ingest.logs import configure_logging
    from tmdb_ingest.progress import progress_for
    from tmdb_ingest.run.stopping import stop_on_signals

    with stop_on_signals(stop):
        credentials = await credentials_from_env(os.environ)
        settings = Settings.from_env(flags=flags_given(args), **credentials)
        settings.require_sink()
        configure_logging(settings.secrets(), verbose=args.verbose)
        with progress_for(sys.stderr) as progress:
            return await ingest_csv(
                args.csv,
                settings,
                progress=progress,
                started_at=args.started_at,
                stop=stop,
                new_only=args.new_only,
            )


async def _refresh(args: Namespace, stop: StopRequest) -> Summary:
    from tmdb_ingest.config.credentials import credentials_from_env
    from tmdb_ingest.lake.refresh import refresh
    from tmdb_ingest.logs import configure_logging
    from tmdb_ingest.progress import progress_for
    from tmdb_ingest.run.stopping import stop_on_signals

    with stop_on_signals(stop):
        credentials = await credentials_from_env(os.environ)
        settings = Settings.from_env(flags=flags_given(args), **credentials)
        settings.require_sink()
        configure_logging(settings.secrets(), verbose=args.verbose)
        with progress_for(sys.stderr) as progress:
            return await refresh(
                settings,
                since=args.since,
                until=args.until,
                progress=progress,
                started_at=args.started_at,
                stop=stop,
            )


def _cmd_index(args: Namespace) -> int:
    import asyncio

    from tmdb_ingest.api import open_sink
    from tmdb_ingest.lake.index import rebuild
    from tmdb_ingest.logs import configure_logging
    from tmdb_ingest.run.layout import LakeLayout

    settings = Settings.from_env(flags=flags_given(args))
    settings.require_sink()
    configure_logging(settings.secrets(), verbose=args.verbose)

    async def work() -> str:
        async with open_sink(settings) as sink:
            await sink.check()
            done = await rebuild(
                sink, LakeLayout.of(settings.prefix, settings.state_prefix), settings.prefix
            )
        return (
            f"{done.data_files} data files: {done.indexed_before} indexed before, "
            f"{done.indexed_now} indexed now ({done.movies} movies)"
        )

    print(asyncio.run(work()), flush=True)
    return EXIT_DONE


def _cmd_run(args: Namespace, work: Any = None) -> int:
    import asyncio  # here, not at the top: the parser and `--help` do without it

    from tmdb_ingest.run.stopping import StopRequest

    stop = StopRequest()
    try:
        summary = asyncio.run((work or _run)(args, stop))
    except asyncio.CancelledError:  # a second Ctrl-C: stopped at once
        print(f"tmdb-ingest: {_INTERRUPTED}", file=sys.stderr, flush=True)
        return EXIT_SIGINT
    print(summary.to_json() if args.json else summary.to_text(), flush=True)
    if stop.signal is not None and not summary.done:
        print(f"tmdb-ingest: {stop.reason}: {_INTERRUPTED}", file=sys.stderr, flush=True)
        return 128 + stop.signal
    return EXIT_DONE if summary.done else EXIT_BUDGET


def _cmd_emulate(argv: list[str]) -> int:
    import argparse

    from tmdb_ingest.emulator.cli import add_arguments, run

    parser = argparse.ArgumentParser(prog="tmdb-ingest emulate", description="The TMDB emulator.")
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _stopped(args: Namespace, exc: TmdbIngestError, label: str) -> None:
    """One line on stderr; with --json, the summary so far (busy or error set) on stdout."""
    reason = " ".join(str(exc).split()) or type(exc).__name__
    print(f"tmdb-ingest: {label}: {reason}", file=sys.stderr, flush=True)
    if getattr(args, "json", False) and isinstance(exc.summary, Summary):
        summary = exc.summary
        if isinstance(exc, RunBusy):
            summary = dataclasses.replace(summary, busy=True, done=False)
        elif summary.error is None:
            summary = dataclasses.replace(summary, error=reason)
        print(summary.to_json(), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    started_at = time.monotonic()  # the time budget counts from here (loop clock = monotonic)
    parser = build_parser()
    try:  # argparse exits (2 for bad usage, 0 for --help): return the code instead
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "emulate":
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    args.started_at = started_at
    try:
        if args.command == "select":
            return _cmd_select(args)
        if args.command == "run":
            return _cmd_run(args)
        if args.command == "refresh":
            return _cmd_run(args, _refresh)
        if args.command == "index":
            return _cmd_index(args)
        if args.command == "status":
            from tmdb_ingest.run import status

            return status.command(args)
        if args.command == "emulate":
            return _cmd_emulate(extra)
        from tmdb_ingest.demo import run_demo

        return run_demo()
    except (ConfigError, InputError) as exc:
        print(f"tmdb-ingest: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except RunBusy as exc:
        _stopped(args, exc, "busy")
        return EXIT_BUSY
    except TmdbIngestError as exc:
        _stopped(args, exc, "fatal")
        return EXIT_FATAL
    except Exception as exc:  # a bug: one line, and never a secret (messages can hold URLs)
        secrets = [os.environ.get(n, "") for n in ("TMDB_API_KEY", "TMDB_ACCESS_TOKEN")]
        message = redact(f"{type(exc).__name__}: {exc}", secrets)
        print(f"tmdb-ingest: internal error: {message}", file=sys.stderr)
        return EXIT_FATAL
    except KeyboardInterrupt:
        print(f"tmdb-ingest: {_INTERRUPTED}", file=sys.stderr)
        return EXIT_SIGINT
