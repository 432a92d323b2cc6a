"""Raw TMDB bodies -> the bytes of one data file, in the run's :class:`FileFormat`.

A body is accepted only if it is one JSON object (checked by the client); files are built
by joining the raw bytes, so every movie lands exactly as TMDB sent it, field for field,
with no re-encoding of numbers or text. Two formats:

- ``json`` (the default): one JSON array per file, ``[{...},\\n{...}]``.
- ``ndjson``: one object per line, what Athena's JSON SerDe, Glue, Spark and DuckDB's
  line readers expect. A body that holds a line break would split its movie over two
  lines, so its CR and LF bytes become spaces: a strict JSON parser (the client's) only
  accepts them as whitespace between tokens, never inside a string, and UTF-8 never uses
  those bytes inside a multi-byte character, so every value stays byte for byte.

Both are named ``.json`` (``.json.gz`` gzipped). Spark writes its JSON Lines files as
``part-*.json``, and Athena, Glue, Spark and DuckDB pick the array or line layout from
the content, not the name; what they do read from the name is the compression: ``.gz``
makes them gunzip. So no ``Content-Encoding`` header is set (a reader that honours it,
such as a browser or ``aws s3 cp``, would hand over the data already decompressed under a
``.gz`` name); the ``Content-Type`` says what the bytes are: ``application/json``,
``application/x-ndjson``, or ``application/gzip``.
"""

from __future__ import annotations

import gzip
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from tmdb_ingest.config.values import check_file_format

if TYPE_CHECKING:
    from tmdb_ingest.config.settings import Settings

__all__ = ["DATA_EXTENSIONS", "JSON_ARRAY", "Batch", "Batcher", "FileFormat"]

# Every name a data file can end with, longest first (for stripping it off a key).
DATA_EXTENSIONS = (".ndjson.gz", ".json.gz", ".ndjson", ".json")
# gzip level 6 (zlib's default): most of level 9's ratio on JSON at a fraction of its CPU.
_GZIP_LEVEL = 6


@dataclass(frozen=True, slots=True)
class FileFormat:
    """How a batch becomes a data file: its bytes, its name's extension, its content type."""

    format: str = "json"  # "json" (one array per file) or "ndjson" (one object per line)
    compress: str | None = None  # None or "gzip"

    def __post_init__(self) -> None:
        check_file_format(self.format, self.compress)

    @classmethod
    def from_settings(cls, settings: Settings) -> FileFormat:
        """The format ``settings.format`` and ``settings.compress`` name."""
        return cls(settings.format, settings.compress)

    @property
    def extension(self) -> str:
        """``.json``, or ``.json.gz`` when gzipped (see the module docstring for why)."""
        return ".json.gz" if self.compress == "gzip" else ".json"

    @property
    def content_type(self) -> str:
        """What the stored bytes are (no Content-Encoding: readers go by the extension)."""
        if self.compress == "gzip":
            return "application/gzip"
        return "application/x-ndjson" if self.format == "ndjson" else "application/json"

    def encode(self, bodies: Sequence[bytes]) -> bytes:
        """The data file's bytes for raw JSON object ``bodies``, in order."""
        if self.format == "ndjson":
            data = b"".join(_one_line(body) + b"\n" for body in bodies)
        else:
            data = b"[" + b",\n".join(body.strip() for body in bodies) + b"]\n"
        if self.compress == "gzip":
            # mtime=0: the same movies give the same bytes, so a retried PUT is identical
            return gzip.compress(data, compresslevel=_GZIP_LEVEL, mtime=0)
        return data


JSON_ARRAY = FileFormat()


def _one_line(body: bytes) -> bytes:
    body = body.strip()
    if b"\n" in body or b"\r" in body:
        body = body.replace(b"\r", b" ").replace(b"\n", b" ")
    return body


@dataclass(slots=True)
class Batch:
    """Up to ``batch_size`` fetched movies, in the order they arrived."""

    ids: list[str] = field(default_factory=list)
    bodies: list[bytes] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.ids)

    def encode(self, file_format: FileFormat = JSON_ARRAY) -> bytes:
        """The data file's bytes."""
        return file_format.encode(self.bodies)


class Batcher:
    """Collects fetched bodies and cuts a :class:`Batch` every ``batch_size`` movies."""

    def __init__(self, batch_size: int) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.batch_size = batch_size
        self._current = Batch()

    def add(self, imdb_id: str, body: bytes) -> Batch | None:
        """Add one movie; return the batch it completed, if any."""
        self._current.ids.append(imdb_id)
        self._current.bodies.append(body)
        if len(self._current) >= self.batch_size:
            full, self._current = self._current, Batch()
            return full
        return None

    def flush(self) -> Batch | None:
        """Return the partial batch (or None when empty) and start a new one."""
        if not self._current.ids:
            return None
        partial, self._current = self._current, Batch()
        return partial
