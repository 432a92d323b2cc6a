"""Data file formats: JSON array or NDJSON, optionally gzipped, bodies kept byte for byte."""

from __future__ import annotations

import gzip
import json

import pytest

from tmdb_ingest.config.settings import Settings
from tmdb_ingest.emulator.bodies import movie_details_bytes
from tmdb_ingest.errors import ConfigError
from tmdb_ingest.land.formats import Batcher, FileFormat

BODIES = [movie_details_bytes(f"tt{n:07d}") for n in (111, 222, 333)]
# a pretty-printed body: its line breaks are whitespace between tokens; the "\n" inside the
# string is an escape (two bytes), which must survive as it is
PRETTY = (
    b'{\r\n  "imdb_id": "tt0000444",\n  "overview": "line one\\nline two",\n  "budget": 1.50e3\n}'
)


def test_json_is_one_array_of_the_bodies_as_sent() -> None:
    """The default format joins the raw bodies into one JSON array, each byte for byte."""
    data = FileFormat().encode(BODIES)
    assert data == b"[" + b",\n".join(BODIES) + b"]\n"
    assert json.loads(data) == [json.loads(b) for b in BODIES]


def test_ndjson_is_one_body_per_line_byte_for_byte() -> None:
    """NDJSON writes each raw body on its own line, unchanged, and ends with a newline."""
    data = FileFormat("ndjson").encode(BODIES)
    assert data.split(b"\n") == [*BODIES, b""]


def test_ndjson_keeps_a_body_with_line_breaks_on_one_line() -> None:
    """Line breaks between tokens become spaces; values (numbers, escapes) stay as sent."""
    data = FileFormat("ndjson").encode([BODIES[0], PRETTY, BODIES[1]])
    lines = data.split(b"\n")
    assert len(lines) == 4
    assert lines[-1] == b""
    assert lines[0] == BODIES[0]
    assert lines[2] == BODIES[1]
    assert json.loads(lines[1]) == json.loads(PRETTY)
    assert b'"line one\\nline two"' in lines[1]
    assert b"1.50e3" in lines[1]


@pytest.mark.parametrize("kind", ["json", "ndjson"])
def test_gzip_is_the_plain_bytes_compressed_and_the_same_every_time(kind: str) -> None:
    """Gzipped files decompress to the plain encoding, and the same movies give the same bytes
    (no timestamp in the header), so a retried upload writes an identical object."""
    plain = FileFormat(kind).encode(BODIES)
    packed = FileFormat(kind, "gzip").encode(BODIES)
    assert packed[:2] == b"\x1f\x8b"
    assert gzip.decompress(packed) == plain
    assert FileFormat(kind, "gzip").encode(list(BODIES)) == packed
    assert len(packed) < len(plain) / 2


@pytest.mark.parametrize(
    ("kind", "compress", "extension", "content_type"),
    [
        ("json", None, ".json", "application/json"),
        ("ndjson", None, ".json", "application/x-ndjson"),
        ("json", "gzip", ".json.gz", "application/gzip"),
        ("ndjson", "gzip", ".json.gz", "application/gzip"),
    ],
)
def test_names_and_content_types(
    kind: str, compress: str | None, extension: str, content_type: str
) -> None:
    """Files end in .json (.json.gz gzipped): readers pick the layout from the content and
    decompress by the name; the content type says what the stored bytes are."""
    file_format = FileFormat.from_settings(Settings(format=kind, compress=compress))
    assert (file_format.extension, file_format.content_type) == (extension, content_type)


@pytest.mark.parametrize(
    ("kind", "compress", "field"), [("csv", None, "format"), ("json", "zstd", "compress")]
)
def test_an_unknown_format_or_compression_names_the_option(
    kind: str, compress: str | None, field: str
) -> None:
    """FileFormat refuses what it cannot write, naming the option."""
    with pytest.raises(ConfigError, match=field):
        FileFormat(kind, compress)


def test_batcher_cuts_full_batches_and_flushes_the_rest() -> None:
    """Every batch_size movies make a batch; flush() returns the partial one, then None."""
    batcher = Batcher(2)
    assert batcher.add("tt0000001", BODIES[0]) is None
    full = batcher.add("tt0000002", BODIES[1])
    assert full is not None
    assert full.ids == ["tt0000001", "tt0000002"]
    assert batcher.add("tt0000003", BODIES[2]) is None
    partial = batcher.flush()
    assert partial is not None
    assert partial.ids == ["tt0000003"]
    assert partial.encode(FileFormat("ndjson")) == BODIES[2] + b"\n"
    assert batcher.flush() is None
