"""The polars scan of movies.csv: the matching ids, in pieces, in bounded memory.

The file is read in pieces of a few MB split at line ends, each parsed by polars for only
the ``id``, ``genero`` and ``numeroVotos`` columns: memory is bounded by the piece and the
result, not by the file, in about the time of one lazy polars scan of the whole file
(docs/benchmarks.md). polars is imported on first use.

:func:`scan` finds the rows and the matching ids; :func:`holdings` says what a file
holds (its genres, its range of votes), for the message of a selection that is empty.
Both raise :class:`~tmdb_ingest.errors.InputError` naming the file when polars cannot
read it. Call :func:`~tmdb_ingest.selection.preflight.preflight` first.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import IO, TYPE_CHECKING, TypeVar

from tmdb_ingest.config.values import ANY_GENRE
from tmdb_ingest.errors import InputError
from tmdb_ingest.selection.preflight import BOM, REQUIRED_COLUMNS

if TYPE_CHECKING:
    import polars as pl

__all__ = ["Holdings", "holdings", "scan"]

# The piece polars parses at a time; see _pieces and docs/benchmarks.md.
_PIECE_BYTES = 8 * 1024 * 1024
T = TypeVar("T")


def _genre_pattern(genres: Sequence[str]) -> str:
    # Whole names only: a name between the start or a comma and a comma or the end.
    # Measured on the full-size file, this regex is faster than str.split(",") followed
    # by list.contains (0.13 s vs 0.22 s) or list.eval(is_in) (0.19 s).
    # polars' own escaper: the pattern runs in Rust's regex engine, not Python's re.
    import polars as pl

    names = "|".join(pl.escape_regex(g) for g in genres)
    return rf"(?:^|,)\s*(?:{names})\s*(?:,|$)"


def _matches(genres: Sequence[str], votes_above: int) -> pl.Expr:
    import polars as pl

    # "*" as a genre and a negative votes_above switch those filters off (nulls included):
    # `--genres '*' --votes-above -1` selects the whole catalogue.
    matches = pl.lit(True)
    if votes_above >= 0:
        matches = matches & (pl.col("numeroVotos").cast(pl.Int64, strict=False) > votes_above)
    if ANY_GENRE not in genres:
        matches = matches & pl.col("genero").str.contains(_genre_pattern(genres))
    return matches


def _pieces(fh: IO[bytes], size: int, head: bytes) -> Iterator[bytes]:
    """Yield the rest of ``fh`` in pieces of about ``size`` bytes, each after ``head``.

    Each piece ends at a line end, so a row is never split across two pieces: the bytes
    after a block's last newline are carried into the next piece, and a line longer than
    ``size`` makes a longer piece. The last piece may lack the final newline. A newline
    byte never occurs inside a UTF-8 multi-byte character, so every piece is valid UTF-8
    when the file is.
    """
    carry = b""
    while block := fh.read(size):
        end = block.rfind(b"\n")
        if end < 0:
            carry += block
            continue
        yield b"".join((head, carry, block[: end + 1]))
        carry = block[end + 1 :]
    if carry:
        yield head + carry


def _each_piece(path: Path, query: Callable[[pl.DataFrame], T]) -> Iterator[T]:
    """``query`` of every piece of the file at ``path``, as frames of the three columns.

    One worker thread parses a piece while this thread reads the next one (both release
    the interpreter lock), so at most two pieces are held at a time.
    """
    import polars as pl

    with path.open("rb") as fh:
        header = fh.readline().removeprefix(BOM).rstrip(b"\r\n").decode("utf-8")
        names = header.split("|")
        # Each piece is parsed under a header line of positional names: polars takes the
        # width of a header-less piece from its first row, which may be ragged, and
        # positional names cannot repeat. The first occurrence of a column is the one read.
        positions = [names.index(c) for c in REQUIRED_COLUMNS]
        head = "|".join(f"c{i}" for i in range(len(names))).encode() + b"\n"
        schema = {f"c{i}": pl.String for i in range(len(names))}
        renames = {f"c{i}": c for i, c in zip(positions, REQUIRED_COLUMNS, strict=True)}

        def parse(piece: bytes) -> T:
            frame = pl.read_csv(
                piece,
                has_header=True,
                schema=schema,
                columns=positions,
                separator="|",
                quote_char=None,  # free text holds '"' and ','; the file has no quoting
                null_values=["\\N"],
                truncate_ragged_lines=True,
                encoding="utf8",
                raise_if_empty=False,
                # Keep "" apart from \N so that a blank line (every field "") can be told
                # from a row whose id, genre and votes are all \N.
                empty_string_is_null=False,
            ).rename(renames)
            return query(frame)

        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="selection") as pool:
            pending: Future[T] | None = None
            for piece in _pieces(fh, _PIECE_BYTES, head):
                parsing = pool.submit(parse, piece)
                del piece  # held by the worker only, freed as soon as it is parsed
                if pending is not None:
                    yield pending.result()
                pending = parsing
            if pending is not None:
                yield pending.result()


def _read(path: Path, name: str, work: Callable[[], T]) -> T:
    """``work()``, with what polars or the file system raise as an InputError naming ``name``."""
    import polars as pl

    try:
        return work()
    except pl.exceptions.PolarsError as exc:
        message = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if "utf-8" in message.lower() or "utf8" in message.lower():
            raise InputError(f"{name}: not a UTF-8 text file ({message})") from None
        raise InputError(f"{name}: cannot be read as a '|' delimited file: {message}") from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not a UTF-8 text file (invalid byte at offset {exc.start})"
        ) from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None


def scan(
    path: Path, name: str, genres: Sequence[str], votes_above: int
) -> tuple[int, set[str | None]]:
    """Return (data rows, distinct ids of the matching rows) of the file at ``path``."""
    import polars as pl

    columns = [pl.col(c) for c in REQUIRED_COLUMNS]
    # A blank line reads as a row of empty fields; it is not a data row.
    is_row = pl.any_horizontal([c.is_null() | (c != "") for c in columns])
    selected = [
        is_row.sum().alias("rows"),
        columns[0].filter(_matches(genres, votes_above)).unique().implode(),
    ]

    def query(frame: pl.DataFrame) -> tuple[int, list[str | None]]:
        result = frame.select(selected)
        return int(result["rows"][0]), result["id"][0].to_list()

    def work() -> tuple[int, set[str | None]]:
        rows = 0
        found: set[str | None] = set()
        for count, ids in _each_piece(path, query):
            rows += count
            found.update(ids)
        return rows, found

    return _read(path, name, work)


@dataclass(frozen=True, slots=True)
class Holdings:
    """What a movies.csv holds: its genre names and its range of votes (None: no votes)."""

    genres: tuple[str, ...]
    votes: tuple[int, int] | None

    def __str__(self) -> str:
        genres = ", ".join(self.genres) or "no genre names"
        if self.votes is None:
            return f"genres {genres}; no vote counts"
        low, high = self.votes
        return f"genres {genres}; votes from {low} to {high}"


def holdings(path: Path, name: str) -> Holdings:
    """The genres and the votes range of the file at ``path`` (one more scan of it)."""
    import polars as pl

    def query(frame: pl.DataFrame) -> tuple[list[str], int | None, int | None]:
        votes = pl.col("numeroVotos").cast(pl.Int64, strict=False)
        result = frame.select(
            pl.col("genero").str.split(",").explode().str.strip_chars().unique().implode(),
            votes.min().alias("low"),
            votes.max().alias("high"),
        )
        return result["genero"][0].to_list(), result["low"][0], result["high"][0]

    def work() -> Holdings:
        genres: set[str] = set()
        lows: list[int] = []
        highs: list[int] = []
        for names, low, high in _each_piece(path, query):
            genres.update(g for g in names if g)
            lows += [] if low is None else [low]
            highs += [] if high is None else [high]
        votes = (min(lows), max(highs)) if lows else None
        return Holdings(tuple(sorted(genres)), votes)

    return _read(path, name, work)
