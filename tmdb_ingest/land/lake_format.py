"""One lake, one format: a run refuses to add data files of another format to a prefix.

Readers take one layout per table or glob: DuckDB's ``read_json(format='array')`` fails
on NDJSON files and ``format='newline_delimited'`` on arrays; Athena's SerDe reads one
record per line. A prefix holding both is readable by neither, so :func:`check_lake_format`
raises :class:`~tmdb_ingest.errors.ConfigError` (CLI exit 2) before any request when the
run's ``--format``/``--compress`` differ from the data already under its prefix.

How the lake's format is known, cheaply: a small marker, ``LakeLayout.format_key``
(``{"prefix": ..., "format": ..., "compress": ...}``), one GET per
invocation. It is created with ``If-None-Match`` by the first run (two first runs racing
with different formats: one wins, the other is refused). The data stays the authority:
when there is no marker (a lake landed before it existed) or the marker disagrees with
the run, one data file is read to tell (its ``.gz`` name says the compression, its first
byte the layout: ``[`` an array, ``{`` one object per line); a marker left by a run that
landed nothing does not bind the next one. Keys under a ``_`` segment (run state kept in
the data prefix by old runs) are not data.

:func:`~tmdb_ingest.api.ingest` calls it once per invocation, once it holds the run's
lease (so that a busy invocation writes nothing) and before any request.
"""

from __future__ import annotations

import zlib

import orjson

from tmdb_ingest.errors import ConfigError, PreconditionFailed
from tmdb_ingest.land.formats import DATA_EXTENSIONS, FileFormat
from tmdb_ingest.land.sinks import Sink
from tmdb_ingest.run.layout import LakeLayout

__all__ = ["check_lake_format", "describe"]

_LABEL = "--format/--compress"


def describe(file_format: FileFormat) -> str:
    """How a person names a format: ``json``, ``ndjson``, ``ndjson + gzip``."""
    return file_format.format + (" + gzip" if file_format.compress else "")


def _flags(file_format: FileFormat) -> str:
    return f"--format {file_format.format}" + (" --compress gzip" if file_format.compress else "")


async def check_lake_format(sink: Sink, lake: LakeLayout, wanted: FileFormat) -> None:
    """Raise ConfigError if the data under ``lake.prefix`` is in another format than ``wanted``.

    Records ``wanted`` for the prefix when the prefix has no format yet, at
    ``lake.format_key``. Reads one small object when the marker agrees with the run; a
    data file when it does not (or is absent). A run whose state is in the legacy place
    (``{prefix}/_state``, an old run resumed) is checked against the data but records
    nothing: it writes only to its own old folder.
    """
    key, prefix = lake.format_key, lake.prefix
    raw = await sink.get(key)
    recorded = _parse(raw)
    if recorded == wanted:
        return
    found = await _format_of_data(sink, prefix)
    if found is not None and found != wanted:
        raise _refusal(sink, prefix, found, wanted)
    if lake.is_legacy:
        return
    chosen = found or wanted
    body = orjson.dumps({"prefix": prefix, "format": chosen.format, "compress": chosen.compress})
    if raw is not None:
        await sink.put(key, body)  # the marker was wrong about the data: the data wins
        return
    try:
        await sink.put(key, body, if_none_match=True)
    except PreconditionFailed:
        # Another first run recorded its format meanwhile (with other bytes): theirs holds.
        other = _parse(await sink.get(key))
        if other is not None and other != wanted:
            raise _refusal(sink, prefix, other, wanted) from None


def _parse(raw: bytes | None) -> FileFormat | None:
    if raw is None:
        return None
    try:
        data = orjson.loads(raw)
        return FileFormat(data["format"], data["compress"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ConfigError):
        return None  # damaged: the data decides, and the marker is written again


def _refusal(sink: Sink, prefix: str, found: FileFormat, wanted: FileFormat) -> ConfigError:
    error = ConfigError(
        _LABEL,
        f"{sink.uri(prefix)} already holds {describe(found)} data files and this run "
        f"would add {describe(wanted)} files; readers take one format per prefix. Run with "
        f"{_flags(found)}, or land {describe(wanted)} under another --prefix (or --out-dir)",
    )
    error.field = "format"
    return error


async def _format_of_data(sink: Sink, prefix: str) -> FileFormat | None:
    """The format of the first data file under ``prefix`` (None: no data file)."""
    async for key in sink.iter_keys(f"{prefix}/"):
        rest = key[len(prefix) + 1 :]
        if any(part.startswith("_") for part in rest.split("/")):
            continue
        if not key.endswith(DATA_EXTENSIONS):
            continue
        body = await sink.get(key)
        if body is None:  # deleted since it was listed
            continue
        gzipped = key.endswith(".gz")
        if gzipped:
            # the first bytes are enough: decompress no more than needed
            body = zlib.decompressobj(wbits=31).decompress(body, 4096)
        head = body.lstrip()[:1]
        layout = "json" if head == b"[" else "ndjson"
        return FileFormat(layout, "gzip" if gzipped else None)
    return None
