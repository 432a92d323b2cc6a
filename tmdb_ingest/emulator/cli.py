"""``tmdb-ingest emulate``: serve the TMDB emulator until Ctrl-C or SIGTERM."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import ssl
import sys
from pathlib import Path

from tmdb_ingest.emulator.server import ALL_FAULTS, Emulator, EmulatorConfig, EmulatorStats

__all__ = ["add_arguments", "catalogue_from_csv", "config_from_args", "run"]

_DEFAULTS = EmulatorConfig()


def _probability(text: str) -> float:
    value = float(text)
    if not 0.0 <= value <= 1.0:
        raise argparse.ArgumentTypeError(f"{text} is not a probability in [0, 1]")
    return value


def _faults(text: str) -> tuple[str, ...]:
    kinds = tuple(k for k in (part.strip() for part in text.split(",")) if k)
    unknown = sorted(set(kinds) - set(ALL_FAULTS))
    if unknown:
        raise argparse.ArgumentTypeError(
            f"unknown fault kinds {unknown}; allowed: {','.join(ALL_FAULTS)}"
        )
    return kinds


def _schedule(text: str) -> tuple[tuple[float, float], ...]:
    try:
        pairs = [part.split(":") for part in text.split(",") if part.strip()]
        return tuple((float(at), float(value)) for at, value in pairs)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r}: expected SECONDS:RPS pairs separated by commas, e.g. 30:25,90:45"
        ) from None


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: expected a date, YYYY-MM-DD") from None


def catalogue_from_csv(path: str | Path) -> frozenset[str]:
    """The IMDb ids of a movies.csv (its first column), for the change history."""
    from tmdb_ingest.errors import ConfigError
    from tmdb_ingest.ids import is_imdb_id

    if not Path(path).is_file():
        raise ConfigError("--catalogue", f"no file {path}: give a movies.csv")
    ids = set()
    with Path(path).open(encoding="utf-8", errors="replace") as lines:
        next(lines, None)  # the header
        for line in lines:
            imdb_id = line.split("|", 1)[0]
            if is_imdb_id(imdb_id):
                ids.add(imdb_id)
    return frozenset(ids)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add the emulator's options to ``parser``."""
    parser.add_argument("--host", default=_DEFAULTS.host, help="default: 127.0.0.1")
    parser.add_argument("--port", type=int, default=8765, help="default: 8765 (0: a free port)")
    parser.add_argument(
        "--latency-ms", type=float, default=0.0, metavar="MS", help="median latency (default 0)"
    )
    parser.add_argument(
        "--latency-sigma",
        type=float,
        default=_DEFAULTS.latency_sigma,
        help="lognormal sigma (default 0.5)",
    )
    parser.add_argument(
        "--limit",
        type=float,
        default=None,
        metavar="RPS",
        help="requests per second before 429 (default: none)",
    )
    parser.add_argument(
        "--limit-schedule",
        type=_schedule,
        default=(),
        metavar="S:RPS,...",
        help="move the limit during a run: RPS from S seconds after the first request "
        "(e.g. 30:25,90:45)",
    )
    parser.add_argument(
        "--retry-after",
        choices=("always", "never", "mixed"),
        default="always",
        help="send Retry-After on 429 (default always)",
    )
    parser.add_argument(
        "--missing-rate",
        type=_probability,
        default=_DEFAULTS.missing_rate,
        metavar="P",
        help="share of ids that are 404 (default 0.05)",
    )
    parser.add_argument(
        "--broken-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="share of ids that answer 500 to every request (default 0)",
    )
    parser.add_argument(
        "--fault-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="chance of a transient fault per request (default 0)",
    )
    parser.add_argument(
        "--faults",
        type=_faults,
        default=ALL_FAULTS,
        metavar="A,B",
        help=f"fault kinds (default all: {','.join(ALL_FAULTS)})",
    )
    parser.add_argument(
        "--stall-s",
        type=float,
        default=_DEFAULTS.stall_s,
        help="how long a stall lasts (default 30)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="fixes bodies, missing ids, faults, latency (default 0)"
    )
    parser.add_argument(
        "--today",
        type=_date,
        default=None,
        metavar="YYYY-MM-DD",
        help="the emulator's date: bodies show the changes up to it (default: today, UTC)",
    )
    parser.add_argument(
        "--catalogue",
        type=Path,
        default=None,
        metavar="CSV",
        help="a movies.csv whose movies change over time and are in /movie/changes "
        "(default: none, nothing changes)",
    )
    parser.add_argument(
        "--change-rate",
        type=_probability,
        default=_DEFAULTS.change_rate,
        metavar="P",
        help=f"share of the catalogue changed each day (default {_DEFAULTS.change_rate})",
    )
    parser.add_argument(
        "--removal-rate",
        type=_probability,
        default=0.0,
        metavar="P",
        help="share of changes that remove the movie: 404 from then on (default 0)",
    )
    parser.add_argument(
        "--api-key",
        default=_DEFAULTS.api_key,
        help=f"accepted api_key (default {_DEFAULTS.api_key})",
    )
    parser.add_argument(
        "--access-token",
        default=_DEFAULTS.access_token,
        help=f"accepted Bearer token (default {_DEFAULTS.access_token})",
    )
    parser.add_argument(
        "--tls-cert",
        metavar="FILE",
        help="serve HTTPS with this PEM certificate chain (with --tls-key)",
    )
    parser.add_argument("--tls-key", metavar="FILE", help="the PEM private key of --tls-cert")


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The :class:`EmulatorConfig` the parsed options describe."""
    return EmulatorConfig(
        api_key=args.api_key or None,
        access_token=args.access_token or None,
        latency_ms=args.latency_ms,
        latency_sigma=args.latency_sigma,
        limit=args.limit,
        limit_schedule=args.limit_schedule,
        retry_after=args.retry_after,
        missing_rate=args.missing_rate,
        broken_rate=args.broken_rate,
        fault_rate=args.fault_rate,
        faults=args.faults,
        stall_s=args.stall_s,
        seed=args.seed,
        host=args.host,
        port=args.port,
        today=args.today,
        catalogue=catalogue_from_csv(args.catalogue) if args.catalogue else frozenset(),
        change_rate=args.change_rate,
        removal_rate=args.removal_rate,
        tls_cert=args.tls_cert,
        tls_key=args.tls_key,
    )


def _format_stats(stats: EmulatorStats) -> str:
    statuses = ", ".join(f"{status}: {n}" for status, n in sorted(stats.by_status.items()))
    faults = ", ".join(f"{kind}: {n}" for kind, n in sorted(stats.faults.items())) or "none"
    return (
        f"requests: {stats.requests} ({statuses or 'none'}); throttled: {stats.throttled}; "
        f"max in flight: {stats.max_in_flight}; max per second: {stats.max_in_window(1.0)}; "
        f"faults: {faults}"
    )


async def _serve(config: EmulatorConfig) -> EmulatorStats:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        async with Emulator(config) as emu:
            auth = []
            if config.api_key:
                auth.append(f"TMDB_API_KEY={config.api_key}")
            if config.access_token:
                auth.append(f"TMDB_ACCESS_TOKEN={config.access_token}")
            print(
                f"TMDB emulator at {emu.url}  (TMDB_URL={emu.url} {' '.join(auth) or 'no auth'})"
                "; Ctrl-C to stop",
                flush=True,
            )
            await stop.wait()
            return emu.stats
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run(args: argparse.Namespace) -> int:
    """Serve until Ctrl-C or SIGTERM, then print the stats; return the exit code.

    0 after a clean stop, 2 for options the config rejects or a certificate or key that
    cannot be loaded, 1 when it cannot listen.
    """
    try:
        config = config_from_args(args)
    except ValueError as exc:
        print(f"tmdb-ingest emulate: error: {exc}", file=sys.stderr)
        return 2
    try:
        stats = asyncio.run(_serve(config))
    except (ssl.SSLError, FileNotFoundError) as exc:
        print(
            f"tmdb-ingest emulate: cannot load --tls-cert {config.tls_cert} / --tls-key "
            f"{config.tls_key}: {exc}",
            file=sys.stderr,
        )
        return 2
    except OSError as exc:
        print(
            f"tmdb-ingest emulate: cannot listen on {config.host}:{config.port}: {exc}",
            file=sys.stderr,
        )
        return 1
    print(_format_stats(stats), flush=True)
    return 0
