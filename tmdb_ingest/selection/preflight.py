"""Look at movies.csv before polars does: is it a non-empty, UTF-8, ``|`` delimited file
with the columns the selection reads?

Every problem is an :class:`~tmdb_ingest.errors.InputError` with a one-line message
naming the file: not found, not a regular file, empty, gzip or binary, not UTF-8, an
empty first line, another delimiter, missing columns, a header and no rows. Only the
first 64 KiB are read.
"""

from __future__ import annotations

import codecs
from pathlib import Path

from tmdb_ingest.errors import InputError

__all__ = ["BOM", "REQUIRED_COLUMNS", "preflight"]

REQUIRED_COLUMNS: tuple[str, ...] = ("id", "genero", "numeroVotos")
BOM = codecs.BOM_UTF8

_SNIFF_BYTES = 64 * 1024
_OTHER_DELIMITERS = ((",", "','"), (";", "';'"), ("\t", "tab"))


def preflight(path: Path, name: str) -> None:
    """Fail fast, with a message naming ``name``, on a file polars should not even scan."""
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise InputError(f"{name}: file not found") from None
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None
    if not path.is_file():
        raise InputError(f"{name}: not a regular file")
    if size == 0:
        raise InputError(f"{name}: file is empty (0 bytes); expected a '|' delimited movies.csv")
    try:
        with path.open("rb") as fh:
            head = fh.read(_SNIFF_BYTES)
    except OSError as exc:
        raise InputError(f"{name}: cannot read: {exc.strerror or exc}") from None

    if head.startswith(b"\x1f\x8b"):
        raise InputError(f"{name}: not a UTF-8 text file (looks gzip-compressed; decompress it)")
    if b"\x00" in head:
        raise InputError(f"{name}: not a UTF-8 text file (binary data, NUL bytes)")
    try:
        # Incremental: the sniffed chunk may end inside a multi-byte character.
        text = codecs.getincrementaldecoder("utf-8")().decode(head.removeprefix(BOM))
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{name}: not a UTF-8 text file (invalid byte at offset {exc.start})"
        ) from None

    header, _, rest = text.partition("\n")
    header = header.rstrip("\r")
    if not header.strip():
        raise InputError(f"{name}: the first line is empty; expected the '|' delimited header")
    if "|" not in header:
        for delimiter, label in _OTHER_DELIMITERS:
            if delimiter in header:
                raise InputError(
                    f"{name}: expected '|' delimited columns, but the header looks "
                    f"{label} delimited: {_preview(header)}"
                )
    columns = header.split("|")
    missing = [c for c in REQUIRED_COLUMNS if c not in columns]
    if missing:
        raise InputError(
            f"{name}: missing column(s) {', '.join(missing)}; header is {_preview(header)}"
        )
    whole_file_read = size <= len(head)
    if whole_file_read and not rest.strip():
        raise InputError(f"{name}: has a header but no data rows")


def _preview(header: str, limit: int = 120) -> str:
    shown = header if len(header) <= limit else header[:limit] + "..."
    return repr(shown)
