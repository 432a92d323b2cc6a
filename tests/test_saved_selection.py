"""The run's selection saved with the run, and read instead of movies.csv on resume."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.s3proxy import S3FaultProxy
from tests.test_selection import HEADER, row
from tmdb_ingest.config.settings import Settings
from tmdb_ingest.errors import InputError
from tmdb_ingest.land.sinks import LocalSink, S3Sink
from tmdb_ingest.run.layout import LakeLayout
from tmdb_ingest.run.state import derive_run_id
from tmdb_ingest.selection.saved import (
    InputIdentity,
    RunSelection,
    _decode,
    _encode,
    index_digest,
    input_identity,
)
from tmdb_ingest.selection.saved import resolve_selection as resolve_only

DAY = dt.date(2026, 12, 1)


def csv_bytes(*rows: str) -> bytes:
    """A movies.csv with the real header and the given rows."""
    return ("\n".join([HEADER, *rows]) + "\n").encode()


FIRST = csv_bytes(row("tt0000002"), row("tt0000001"), row("tt0000003", "Drama"), row("tt12"))
MORE = csv_bytes(row("tt0000002"), row("tt0000001"), row("tt0000004", "Fantasy"))


async def resolve_selection(
    csv: str | os.PathLike[str], settings: Settings, sink: Any, *, day: dt.date
) -> RunSelection:
    """Resolve, then save what is to be saved: what an invocation does once it holds its lease."""
    got = await resolve_only(csv, settings, sink, day=day)
    await got.save(sink)
    return got


def selection_key(settings: Settings, run_id: str) -> str:
    return LakeLayout.of(settings.prefix, settings.state_prefix).selection_key(run_id)


def index_key(settings: Settings, identity: InputIdentity, day: dt.date) -> str:
    lake = LakeLayout.of(settings.prefix, settings.state_prefix)
    return lake.input_key(index_digest(settings, identity, day))


def rewrite_keeping_identity(path: Path, content: bytes) -> None:
    """Replace the file's bytes (same length) and put its mtime back: a stat cannot tell."""
    assert len(content) == path.stat().st_size
    before = path.stat()
    path.write_bytes(content)
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))


async def test_first_invocation_saves_selection_and_index(tmp_path: Path) -> None:
    """The first invocation reads the CSV, derives the run id, saves the ids and the index."""
    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    settings = Settings(out_dir=tmp_path / "out")
    sink = LocalSink(tmp_path / "out")

    got = await resolve_selection(csv, settings, sink, day=DAY)

    assert got.ids == ["tt0000001", "tt0000002"]
    assert (got.resumed, got.rows, got.invalid_ids, got.source) == (False, 4, 1, str(csv))
    assert got.run_id == derive_run_id(got.ids, settings, DAY)
    saved = await sink.get(selection_key(settings, got.run_id))
    assert saved is not None
    assert selection_key(settings, got.run_id).startswith(f"Raw/TMDB/_state/{got.run_id}/")
    # One line per id after the header: the step from the previous id (1, then 1 more).
    assert gzip.decompress(saved).split(b"\n")[1:] == [b"1", b"1", b""]
    identity = await input_identity(csv, settings)
    assert identity == InputIdentity(
        source=str(csv), size=len(FIRST), mtime_ns=csv.stat().st_mtime_ns
    )
    assert await sink.get(index_key(settings, identity, DAY)) is not None


async def test_resume_without_run_id_uses_the_saved_selection(tmp_path: Path) -> None:
    """A resumed invocation finds its run by the index and does not read the CSV.

    Proof: the CSV's bytes are replaced by garbage of the same length with the same mtime;
    reading it would fail, yet the resume returns the original ids and run id.
    """
    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    settings = Settings(out_dir=tmp_path / "out")
    sink = LocalSink(tmp_path / "out")
    first = await resolve_selection(csv, settings, sink, day=DAY)

    rewrite_keeping_identity(csv, b"\x00" * len(FIRST))
    resumed = await resolve_selection(csv, settings, sink, day=DAY)
    assert resumed.resumed is True
    assert (resumed.ids, resumed.run_id) == (first.ids, first.run_id)
    assert (resumed.rows, resumed.invalid_ids) == (None, None)

    # The control: once the identity changes, the garbage is read, and fails.
    os.utime(csv, ns=(0, 1))
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        await resolve_selection(csv, settings, sink, day=DAY)


async def test_resume_from_s3_reads_no_csv_object(
    tmp_path: Path, s3: object, bucket: str, s3_endpoint: str
) -> None:
    """Over S3 the resume costs one HeadObject on the CSV and no GetObject of it."""
    s3.put_object(Bucket=bucket, Key="in/movies.csv", Body=FIRST)  # type: ignore[attr-defined]
    csv_path = f"/{bucket}/in/movies.csv"
    async with S3FaultProxy(s3_endpoint, lambda method, path, attempt: None) as proxy:
        settings = Settings(bucket=bucket, s3_endpoint_url=proxy.url)
        async with S3Sink(bucket, endpoint_url=s3_endpoint) as sink:
            first = await resolve_selection(f"s3://{bucket}/in/movies.csv", settings, sink, day=DAY)
            assert first.resumed is False
            assert proxy.attempts[("GET", csv_path)] == 1

            resumed = await resolve_selection(
                f"s3://{bucket}/in/movies.csv", settings, sink, day=DAY
            )
            assert resumed.resumed is True
            assert (resumed.ids, resumed.run_id) == (first.ids, first.run_id)
            assert proxy.attempts[("GET", csv_path)] == 1  # not read again
            assert proxy.attempts[("HEAD", csv_path)] == 2

            identity = await input_identity(f"s3://{bucket}/in/movies.csv", settings)
            assert identity.size == len(FIRST)
            assert identity.etag


async def test_changed_s3_object_starts_a_new_derived_run(
    s3: object, bucket: str, s3_endpoint: str
) -> None:
    """Without --run-id, a new object (new ETag) is read again and gets its own run id."""
    uri = f"s3://{bucket}/movies.csv"
    s3.put_object(Bucket=bucket, Key="movies.csv", Body=FIRST)  # type: ignore[attr-defined]
    settings = Settings(bucket=bucket, s3_endpoint_url=s3_endpoint)
    async with S3Sink(bucket, endpoint_url=s3_endpoint) as sink:
        first = await resolve_selection(uri, settings, sink, day=DAY)
        s3.put_object(Bucket=bucket, Key="movies.csv", Body=MORE)  # type: ignore[attr-defined]
        second = await resolve_selection(uri, settings, sink, day=DAY)
    assert second.resumed is False
    assert second.ids == ["tt0000001", "tt0000002", "tt0000004"]
    assert second.run_id != first.run_id


async def test_changed_input_under_an_explicit_run_id_is_an_input_error(tmp_path: Path) -> None:
    """Other ids under the same --run-id: InputError naming the run and both counts."""
    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    settings = Settings(out_dir=tmp_path / "out", run_id="nightly")
    sink = LocalSink(tmp_path / "out")
    first = await resolve_selection(csv, settings, sink, day=DAY)
    assert (first.run_id, first.resumed) == ("nightly", False)

    csv.write_bytes(MORE)
    os.utime(csv, ns=(0, 10**18))
    with pytest.raises(InputError) as caught:
        await resolve_selection(csv, settings, sink, day=DAY)
    message = str(caught.value)
    assert message == (
        f"{csv} changed since run nightly started: 2 ids then, 3 now; "
        "use a new --run-id or restore the file"
    )


async def test_same_content_rewritten_under_an_explicit_run_id_goes_on(tmp_path: Path) -> None:
    """A new mtime with the same ids reads the CSV once, goes on, and saves the new identity."""
    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    settings = Settings(out_dir=tmp_path / "out", run_id="nightly")
    sink = LocalSink(tmp_path / "out")
    first = await resolve_selection(csv, settings, sink, day=DAY)

    csv.write_bytes(FIRST)
    os.utime(csv, ns=(0, 10**18))
    again = await resolve_selection(csv, settings, sink, day=DAY)
    assert (again.ids, again.run_id, again.resumed) == (first.ids, "nightly", False)

    rewrite_keeping_identity(csv, b"\x00" * len(FIRST))  # the next one must not read it
    third = await resolve_selection(csv, settings, sink, day=DAY)
    assert (third.ids, third.resumed) == (first.ids, True)


async def test_changed_parameters_under_an_explicit_run_id(tmp_path: Path) -> None:
    """Other genres or votes under the same --run-id: the same ids go on, others fail."""
    csv = tmp_path / "movies.csv"
    csv.write_bytes(csv_bytes(row("tt0000001", "Sci-Fi", "5000"), row("tt0000002", "Drama")))
    sink = LocalSink(tmp_path / "out")
    settings = Settings(out_dir=tmp_path / "out", run_id="r1")
    await resolve_selection(csv, settings, sink, day=DAY)

    same = await resolve_selection(csv, settings.replace(votes_above=10), sink, day=DAY)
    assert (same.ids, same.resumed) == (["tt0000001"], False)
    with pytest.raises(InputError, match=r"selection of run r1 changed.*--genres Drama"):
        await resolve_selection(csv, settings.replace(genres=("Drama",)), sink, day=DAY)


async def test_another_day_or_other_settings_derive_another_run(tmp_path: Path) -> None:
    """The index covers the day and the settings: each change reads the CSV afresh."""
    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    settings = Settings(out_dir=tmp_path / "out")
    sink = LocalSink(tmp_path / "out")
    first = await resolve_selection(csv, settings, sink, day=DAY)
    next_day = await resolve_selection(csv, settings, sink, day=DAY + dt.timedelta(days=1))
    assert (next_day.resumed, next_day.ids) == (False, first.ids)
    assert next_day.run_id != first.run_id
    for changed in (
        settings.replace(batch_size=50),
        settings.replace(language="pt-BR"),
        settings.replace(append_to_response=("credits",)),
        settings.replace(votes_above=10),
    ):
        assert (await resolve_selection(csv, changed, sink, day=DAY)).resumed is False
        assert (await resolve_selection(csv, changed, sink, day=DAY)).resumed is True


async def test_unreadable_saved_selection_reads_the_csv_again(tmp_path: Path) -> None:
    """A truncated or corrupt saved selection is not trusted: the CSV is read again."""
    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    settings = Settings(out_dir=tmp_path / "out")
    sink = LocalSink(tmp_path / "out")
    first = await resolve_selection(csv, settings, sink, day=DAY)
    key = selection_key(settings, first.run_id)
    saved = await sink.get(key)
    assert saved is not None
    for broken in (b"not gzip", gzip.compress(gzip.decompress(saved).rsplit(b"\n", 2)[0])):
        await sink.put(key, broken)
        again = await resolve_selection(csv, settings, sink, day=DAY)
        assert (again.ids, again.run_id, again.resumed) == (first.ids, first.run_id, False)
    assert await sink.get(key) == saved  # saved again, byte for byte


async def test_missing_inputs_are_input_errors(
    tmp_path: Path, s3: object, bucket: str, s3_endpoint: str
) -> None:
    """A missing file or object is an InputError naming it, before anything is saved."""
    sink = LocalSink(tmp_path / "out")
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        await resolve_selection(tmp_path / "nope.csv", Settings(), sink, day=DAY)
    uri = f"s3://{bucket}/no/such.csv"
    with pytest.raises(InputError, match=f"^{uri}: no such key"):
        await resolve_selection(uri, Settings(s3_endpoint_url=s3_endpoint), sink, day=DAY)
    assert not (tmp_path / "out").exists()


@pytest.mark.slow
def test_resume_imports_no_polars(tmp_path: Path) -> None:
    """A resumed invocation never imports polars (a fresh process checks its modules)."""
    import asyncio

    csv = tmp_path / "movies.csv"
    csv.write_bytes(FIRST)
    out = tmp_path / "out"
    asyncio.run(resolve_selection(csv, Settings(out_dir=out), LocalSink(out), day=DAY))
    code = textwrap.dedent(
        f"""
        import asyncio, datetime as dt, sys
        from tmdb_ingest.selection.saved import resolve_selection
        from tmdb_ingest.config.settings import Settings
        from tmdb_ingest.land.sinks import LocalSink
        got = asyncio.run(resolve_selection(
            {str(csv)!r}, Settings(out_dir={str(out)!r}), LocalSink({str(out)!r}),
            day=dt.date({DAY.year}, {DAY.month}, {DAY.day}),
        ))
        print(got.resumed, len(got.ids), "polars" in sys.modules)
        """
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.split() == ["True", "2", "False"]


def test_saved_ids_round_trip_in_order_with_every_width() -> None:
    """Ids of 7 to 10 digits, sorted as strings, come back exactly, in the same order."""
    import random

    rng = random.Random(7)
    ids = sorted(
        {f"tt{rng.randrange(10**w):0{w}d}" for w in (7, 8, 9, 10) for _ in range(500)}
        | {"tt0000000", "tt9999999", "tt10000000"}
    )
    identity = InputIdentity(source="s3://b/k.csv", size=1, etag='"e"')
    body = _encode("run-x", identity, {"genres": ["*"], "votes_above": -1}, ids)
    saved = _decode(body)
    assert saved is not None
    assert (saved.ids, saved.run_id, saved.identity) == (ids, "run-x", identity)
    assert _decode(body[:-8]) is None  # a truncated object is not trusted
