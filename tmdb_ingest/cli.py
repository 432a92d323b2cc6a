"""The ``tmdb-ingest`` command: arguments -> settings -> library call -> summary, exit code.

Thin on purpose: no retry, rate or batching logic lives here, and the parser is built
from the option table (``cli_parser``). Settings come from the flags the user typed,
then the same ``TMDB_INGEST_*`` variables the Lambda reads (secret sources included),
then the defaults. Exit codes: 0 done, 1 fatal at run time, 2 bad usage/input/
configuration (found before any request), 3 stopped by the time budget with work left,
4 busy (another invocation holds the run), 5 done but some ids failed (they are in the
report; the next invocation of the run tries them again), 130 / 143 stopped by SIGINT /
SIGTERM with the state saved; fatal and busy stops print one line on stderr and, with
``--json``, the summary so far on stdout.
"""

from __future__ import annotations

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
from tmdb_ingest.summary import Summary, marked, one_line

if TYPE_CHECKING:
    from tmdb_ingest.run.stopping import StopRequest

EXIT_DONE, EXIT_FATAL, EXIT_USAGE, EXIT_BUDGET, EXIT_BUSY, EXIT_SIGINT = 0, 1, 2, 3, 4, 130
EXIT_FAILED = 5  # done, but some ids failed: a script that checks the code sees them
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
        _check_out_dir(settings)
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
    except asyncio.CancelledError:  # a third Ctrl-C: cancelled, no summary
        print(f"tmdb-ingest: {_INTERRUPTED}", file=sys.stderr, flush=True)
        return EXIT_SIGINT
    print(summary.to_json() if args.json else summary.to_text(), flush=True)
    if stop.signal is not None and not summary.done:
        print(f"tmdb-ingest: {stop.reason}: {_INTERRUPTED}", file=sys.stderr, flush=True)
        return 128 + stop.signal
    return exit_code(summary)


def exit_code(summary: Summary) -> int:
    """0 done, 5 done with failed ids, 3 work left (the budget ran out)."""
    if not summary.done:
        return EXIT_BUDGET
    return EXIT_FAILED if summary.failed else EXIT_DONE


def _cmd_emulate(argv: list[str]) -> int:
    import argparse

    from tmdb_ingest.emulator.cli import add_arguments, run

    parser = argparse.ArgumentParser(
        prog="tmdb-ingest emulate", description="The TMDB emulator.", allow_abbrev=False
    )
    add_arguments(parser)
    return run(parser.parse_args(argv))


def _cmd_sample(args: Namespace) -> int:
    from pathlib import Path

    from tmdb_ingest.emulator.sample import generate_movies_csv
    from tmdb_ingest.selection.reader import select_ids

    out = Path(args.out)
    if out.is_dir():
        raise ConfigError("OUT.csv", f"{out} is a folder; give the name of the file to write")
    if not out.parent.is_dir():
        raise ConfigError("OUT.csv", f"no folder {out.parent} to write {out.name} in")
    sample = generate_movies_csv(out, movies=args.movies, seed=args.seed)
    selected = len(select_ids(out).ids)
    print(
        f"wrote {out}: {sample.rows} rows, {sample.movies} movies; the default selection "
        f"(Sci-Fi or Fantasy, more than 1000 votes) picks {selected} of them",
        file=sys.stderr,
    )
    return EXIT_DONE


def _check_out_dir(settings: Settings) -> None:
    """--out-dir names a folder to write into: an existing file is a usage error (exit 2)."""
    out = settings.out_dir
    if out is not None and out.exists() and not out.is_dir():
        raise ConfigError("--out-dir", f"{out} is a file, not a folder; name a folder for the lake")


def _stopped(args: Namespace, exc: TmdbIngestError, label: str) -> None:
    """One line on stderr; with --json, the summary so far (busy or error set) on stdout."""
    print(f"tmdb-ingest: {label}: {one_line(exc)}", file=sys.stderr, flush=True)
    if getattr(args, "json", False) and isinstance(exc.summary, Summary):
        print(marked(exc.summary, exc).to_json(), flush=True)


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code."""
    started_at = time.monotonic()  # the time budget counts from here (loop clock = monotonic)
    parser = build_parser()
    try:  # argparse exits (2 for bad usage, 0 for --help): return the code instead
        args, extra = parser.parse_known_args(argv)
        if extra and args.command != "emulate":
            # the subcommand's usage, not the top level's: that is where the flag is missing
            args.command_parser.error(f"unrecognized arguments: {' '.join(extra)}")
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
        if args.command == "sample":
            return _cmd_sample(args)
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
