"""The ``tmdb-ingest`` argument parser and the configuration reference, both built from
:data:`tmdb_ingest.config.settings.OPTIONS`.

Every flag's argparse default is ``None``, so a flag the user did not type leaves the
environment (and then the default) in charge: :func:`flags_given` returns only what
was typed, for ``Settings.from_env(flags=...)``. Building the parser imports nothing
heavy: the emulator's own options are parsed by the emulator's parser, only when the
``emulate`` command runs.
"""

from __future__ import annotations

import argparse
from typing import Any

from tmdb_ingest.config.credentials import SECRET_VARIABLES
from tmdb_ingest.config.settings import OPTIONS, Option
from tmdb_ingest.fetch.network import NETWORK_DOC

__all__ = ["DESCRIPTION", "EXIT_CODES", "build_parser", "configuration_markdown", "flags_given"]

DESCRIPTION = """\
Pull movie details from TMDB into S3 (or a folder) as JSON files of at most 100 movies:
select IMDb ids from movies.csv, fetch them at TMDB's rate limit, land them exactly once,
and resume where a stopped run left off.

Every run option can also be set by an environment variable (listed in `run --help`);
a flag wins over the environment, the environment over the default."""

EXIT_CODES = (
    ("0", "done"),
    ("1", "fatal at run time (key rejected, TMDB unreachable, bucket missing or denied)"),
    ("2", "bad usage, input or configuration, found before any request"),
    ("3", "stopped by the time budget with work left: run the same command again"),
    ("4", "busy: another invocation holds this run and shard; nothing was done"),
    ("5", "done, but some ids failed (see the report): the same command tries them again"),
    ("130/143", "stopped by SIGINT/SIGTERM, state saved: run the same command again"),
)

_SECTIONS = {
    "output": "where the lake is",
    "selection": "what to select",
    "rate": "how fast",
    "run": "which run, which part of it, how long",
    "tmdb": "TMDB",
    "tuning": "tuning: timeouts, retries, uploads, lease",
}


def _typed(option: Option) -> Any:
    def parse(text: str) -> Any:
        try:
            return option.parse(text)
        except ValueError as exc:
            message = str(exc).removeprefix(f"{option.name}: ")
            raise argparse.ArgumentTypeError(message) from None

    parse.__name__ = option.name
    return parse


def _help(option: Option) -> str:
    text = f"{option.help} (default: {option.default_text}"
    text += f"; env {option.env})" if option.env else ")"
    return text.replace("%", "%%")


def _add_options(
    parser: argparse.ArgumentParser, command: str, *, without: frozenset[str] = frozenset()
) -> None:
    """Add ``command``'s options (less those named in ``without``) to ``parser``."""
    groups: dict[str, Any] = {}
    for option in OPTIONS:
        if option.flag is None or command not in option.commands or option.name in without:
            continue
        if option.section not in groups:
            group = parser.add_argument_group(_SECTIONS[option.section])
            groups[option.section] = group
            if option.section == "output" and command in ("run", "status"):
                groups["sink"] = group.add_mutually_exclusive_group()
        target = groups["sink" if option.name in ("bucket", "out_dir") else option.section]
        target.add_argument(
            option.flag, dest=option.name, type=_typed(option), default=None,
            metavar=option.metavar, help=_help(option),
        )  # fmt: skip


def _run_epilog() -> str:
    lines = ["credentials (environment only, never flags):"]
    lines += [f"  {o.env:<24}{o.help}" for o in OPTIONS if o.secret and o.env]
    lines += [f"  {name:<24}{text}" for name, text in SECRET_VARIABLES.items()]
    lines += ["", "exit codes:"]
    lines += [f"  {code:<8}{meaning}" for code, meaning in EXIT_CODES]
    return "\n".join(lines)


class _Version(argparse.Action):
    """``--version``: the version is read from the package metadata only when asked for."""

    def __init__(self, option_strings: list[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, **kwargs)

    def __call__(self, parser: argparse.ArgumentParser, *_args: Any, **_kwargs: Any) -> None:
        from tmdb_ingest import __version__

        print(f"{parser.prog} {__version__}")
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    """The parser of every subcommand; ``-v`` is accepted before or after the command."""
    formatter = argparse.RawDescriptionHelpFormatter
    # allow_abbrev=False everywhere: `--rat 5` or `--out x` must be an error, not a guess
    parser = argparse.ArgumentParser(
        prog="tmdb-ingest", description=DESCRIPTION, formatter_class=formatter,
        allow_abbrev=False,
    )  # fmt: skip
    parser.add_argument("--version", action=_Version, help="print the version and exit")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    common = argparse.ArgumentParser(add_help=False, allow_abbrev=False)
    # SUPPRESS: a subcommand without -v must not reset a -v given before it
    common.add_argument(
        "-v", "--verbose", action="store_true", default=argparse.SUPPRESS, help="debug logging"
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    select = sub.add_parser(
        "select", parents=[common], allow_abbrev=False,
        help="print the selected IMDb ids, one per line",
        description="Print the selected IMDb ids on stdout, sorted; the count on stderr.",
    )  # fmt: skip
    run = sub.add_parser(
        "run", parents=[common], formatter_class=formatter, epilog=_run_epilog(),
        allow_abbrev=False,
        help="fetch the selected movies from TMDB and land them in S3 or a folder",
        description="Fetch the selected movies from TMDB and land them, exactly once.\n"
        "Each option's environment variable is named in its help; a flag wins over it.",
    )  # fmt: skip
    for command, name in ((select, "select"), (run, "run")):
        command.add_argument("csv", metavar="CSV", help="movies.csv: a path or s3://bucket/key")
        _add_options(command, name)
    run.add_argument("--json", action="store_true", help="the summary as JSON on the last line")
    run.add_argument(
        "--new-only",
        action="store_true",
        help="skip the ids the lake already holds, from any run (the lake index says which)",
    )
    refresh = sub.add_parser(
        "refresh", parents=[common], formatter_class=formatter, epilog=_run_epilog(),
        help="fetch again the movies of the lake that TMDB changed (its change list)",
        description="Read TMDB's change list from the day after the lake's bookmark to "
        "--until, fetch again\nevery changed movie of the lake (once, with the language and "
        "appended responses it was\nfirst fetched with), land it as a run does, then move "
        "the bookmark. The same command resumes.",
    )  # fmt: skip
    _add_options(refresh, "run", without=_NOT_FOR_REFRESH)
    refresh.add_argument(
        "--since", type=_date, default=None, metavar="YYYY-MM-DD",
        help="the first day to read (default: the day after the bookmark; the first time, "
        "the earliest fetch date in the lake)",
    )  # fmt: skip
    refresh.add_argument(
        "--until", type=_date, default=None, metavar="YYYY-MM-DD",
        help="the last day to read (default: today, UTC)",
    )  # fmt: skip
    refresh.add_argument("--json", action="store_true", help="the summary as JSON on the last line")
    index = sub.add_parser(
        "index", parents=[common], help="the lake index: `index rebuild` for a lake made before it",
        description="rebuild: index the data files that have no index record (a lake made "
        "before the index),\nreading each of them once; resumable, with progress.",
    )  # fmt: skip
    index.add_argument("action", choices=("rebuild",), help="rebuild: index the unindexed files")
    _add_options(index, "status", without=frozenset({"run_id"}))
    status = sub.add_parser(
        "status", parents=[common], allow_abbrev=False,
        help="where a run stands, per shard, read from its state",
        description="Where a run stands, per shard: selected, landed, not found, failed, "
        "left, files, started, last invocation, done. Reads only the run's state.",
    )  # fmt: skip
    _add_options(status, "status")
    status.add_argument("--json", action="store_true", help="one JSON object, not a table")
    # the emulator parses its own options (see tmdb_ingest.emulator.cli), so that building
    # this parser does not import aiohttp.web
    sub.add_parser(
        "emulate", parents=[common], add_help=False, allow_abbrev=False,
        help="serve the TMDB emulator (emulate --help for its options)",
    )  # fmt: skip
    demo = sub.add_parser(
        "demo", parents=[common], allow_abbrev=False,
        help="the whole job on the emulator and a local S3 (moto)",
    )  # fmt: skip
    sample = sub.add_parser(
        "sample", parents=[common], allow_abbrev=False,
        help="write a movies.csv to try things on (the emulator knows its ids)",
        description="Write a synthetic movies.csv in the real file's shape (pipe-delimited, "
        "\\N for null, one row per artist), deterministic for a given --movies and --seed. "
        "The emulator answers for its ids; about 6%% of the movies are Sci-Fi or Fantasy.",
    )  # fmt: skip
    sample.add_argument("out", metavar="OUT.csv", help="the file to write")
    sample.add_argument(
        "--movies", type=_count, default=5000, metavar="N",
        help="distinct movies (default 5000: about 21,000 rows, 133 selected by default; "
        "the real file: 244000)",
    )  # fmt: skip
    sample.add_argument(
        "--seed", type=int, default=0, help="another seed, another file (default 0)"
    )
    # a subcommand's own errors (an unknown flag) print that subcommand's usage
    for command in (select, run, status, demo, sample):
        command.set_defaults(command_parser=command)
    return parser


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# The run options that do not apply to a refresh: it selects from the lake, not a CSV.
_NOT_FOR_REFRESH = frozenset({"genres", "votes_above", "run_id", "shard"})


def _date(text: str) -> Any:
    import datetime as dt

    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date, YYYY-MM-DD") from None


def flags_given(args: argparse.Namespace) -> dict[str, Any]:
    """The options the user typed, by field name (argparse leaves the others None)."""
    return {o.name: v for o in OPTIONS if (v := getattr(args, o.name, None)) is not None}


def configuration_markdown() -> str:
    """docs/configuration.md: every option with its flag, variable and default."""
    lines = [
        "# Configuration reference",
        "",
        "<!-- Generated from tmdb_ingest/config/settings.py (OPTIONS) by",
        "     `python -m tmdb_ingest.cli_parser > docs/configuration.md`; a test checks it. -->",
        "",
        "One table of options (`tmdb_ingest.config.settings.OPTIONS`) gives the `Settings` fields,",
        "their defaults, the `tmdb-ingest` flags and the environment variables. The CLI and",
        "the Lambda handler read the same variables. Precedence, highest first: a flag, the",
        "environment variable, the default (the Lambda handler has no flags; its event may",
        "set `run_id` and `shard`, and the output bucket defaults to the CSV's). An empty",
        "variable counts as unset. An error names what you typed: `--batch-size: must be in",
        "1..10000, got 0`, or `TMDB_INGEST_BATCH_SIZE=0: must be in 1..10000, got 0`.",
    ]
    for section, title in _SECTIONS.items():
        lines += ["", f"## {title[0].upper()}{title[1:]}", ""]
        lines += ["| setting | flag | environment variable | default | meaning |"]
        lines += ["|---|---|---|---|---|"]
        for o in (o for o in OPTIONS if o.section == section):
            flag = f"`{o.flag} {o.metavar}`" if o.flag else "(none)"
            env = f"`{o.env}`" if o.env else "(none)"
            default = o.default_text if o.shown else f"`{o.default_text}`"
            cells = (f"`{o.name}`", flag, env, default, o.help)
            lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    lines += ["", "## Secret sources", ""]
    lines += [
        "When neither `TMDB_API_KEY` nor `TMDB_ACCESS_TOKEN` is set, the credential is read",
        "from AWS (CLI and Lambda alike; the value is a raw key, a raw token, or JSON with",
        "`api_key` and/or `access_token`). A value still holding a placeholder such as",
        "`REPLACE_ME` is a configuration error naming the source, before any request.",
        "",
        "| environment variable | meaning |",
        "|---|---|",
    ]
    lines += [f"| `{name}` | {text} |" for name, text in SECRET_VARIABLES.items()]
    lines += ["", *NETWORK_DOC]
    lines += ["", "## Exit codes of `tmdb-ingest run`", "", "| code | meaning |", "|---|---|"]
    lines += [f"| {code} | {meaning} |" for code, meaning in EXIT_CODES]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    print(configuration_markdown(), end="")
