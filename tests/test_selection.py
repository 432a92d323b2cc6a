"""movies.csv -> selected ids: the filter, the id checks and every input error."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from tmdb_ingest.cli import main
from tmdb_ingest.errors import ConfigError, InputError
from tmdb_ingest.s3 import input_message
from tmdb_ingest.selection.reader import (
    Selection,
    read_ids_file,
    select_ids,
    select_ids_async,
)

HEADER = (
    "id|tituloPincipal|tituloOriginal|anoLancamento|tempoMinutos|genero|notaMedia|numeroVotos"
    "|generoArtista|personagem|nomeArtista|anoNascimento|anoFalecimento|profissao"
    "|titulosMaisConhecidos"
)


def row(
    movie_id: str,
    genres: str = "Sci-Fi",
    votes: str = "5000",
    *,
    title: str = "A Title",
    character: str = "Himself",
) -> str:
    """One data row in the real schema; only id, genre, votes and free text vary."""
    return (
        f"{movie_id}|{title}|{title}|1999|120|{genres}|7.1|{votes}"
        f"|actor|{character}|Some One|1960|\\N|actor,producer|tt0000001,tt0000002"
    )


def write(tmp_path: Path, *rows: str, header: str = HEADER, name: str = "movies.csv") -> Path:
    """Write a movies.csv with a header and the given rows (LF line endings)."""
    path = tmp_path / name
    path.write_bytes(("\n".join([header, *rows]) + "\n").encode())
    return path


def test_default_selection_is_scifi_or_fantasy_with_more_than_1000_votes(tmp_path: Path) -> None:
    """The defaults keep Sci-Fi or Fantasy movies with strictly more than 1000 votes."""
    path = write(
        tmp_path,
        row("tt0000001", "Action,Sci-Fi", "5000"),
        row("tt0000002", "Fantasy", "1001"),
        row("tt0000003", "Drama", "90000"),
        row("tt0000004", "Sci-Fi", "1000"),
        row("tt0000005", "Adventure,Fantasy,Sci-Fi", "12"),
    )
    selection = select_ids(path)
    assert selection == Selection(
        ids=["tt0000001", "tt0000002"], rows=5, invalid_ids=0, source=str(path)
    )


def test_votes_threshold_is_strictly_greater(tmp_path: Path) -> None:
    """Exactly ``votes_above`` votes is not enough; one more is."""
    path = write(tmp_path, row("tt0000999", votes="1000"), row("tt0001001", votes="1001"))
    assert select_ids(path).ids == ["tt0001001"]
    assert select_ids(path, votes_above=999).ids == ["tt0000999", "tt0001001"]
    with pytest.raises(
        InputError,
        match="no movie matches genres Sci-Fi,Fantasy with more "
        "than 1001 votes; its 2 rows hold genres Sci-Fi; votes from 1000 to 1001",
    ):
        select_ids(path, votes_above=1001)


def test_quotes_and_commas_in_free_text_do_not_break_rows(tmp_path: Path) -> None:
    """``"`` and ``,`` in titles and characters are plain text, not quoting."""
    path = write(
        tmp_path,
        row("tt0190332", title="Crouching Tiger, Hidden Dragon", character='"Jen" Yu'),
        row("tt0088763", title='Back to the "Future', character='"Doc" Brown'),
        row("tt0000003", title='"', character='","'),
    )
    selection = select_ids(path)
    assert selection.ids == ["tt0000003", "tt0088763", "tt0190332"]
    assert selection.rows == 3


def test_null_genre_and_null_votes_never_match(tmp_path: Path) -> None:
    """``\\N`` in ``genero`` or ``numeroVotos`` means null, and null does not match."""
    path = write(
        tmp_path,
        row("tt0000001", "\\N", "5000"),
        row("tt0000002", "Sci-Fi", "\\N"),
        row("tt0000003", "Sci-Fi", "5000"),
    )
    assert select_ids(path).ids == ["tt0000003"]


def test_non_numeric_votes_count_as_null(tmp_path: Path) -> None:
    """Votes that are not an integer (``1,234``, ``many``, empty, ``12.5``) never match."""
    path = write(
        tmp_path,
        row("tt0000001", votes="1,234"),
        row("tt0000002", votes="many"),
        row("tt0000003", votes=""),
        row("tt0000004", votes="12.5"),
        row("tt0000005", votes="2000"),
    )
    selection = select_ids(path, votes_above=10)
    assert selection.ids == ["tt0000005"]
    assert selection.rows == 5


def test_genres_match_whole_names_only(tmp_path: Path) -> None:
    """``Music`` matches the genre ``Music`` but not ``Musical``, and no substring matches."""
    path = write(
        tmp_path,
        row("tt0000001", "Drama,Musical", "5000"),
        row("tt0000002", "Music", "5000"),
        row("tt0000003", "Comedy,Music,Romance", "5000"),
        row("tt0000004", "Musical,Music", "5000"),
        row("tt0000005", "NotMusic", "5000"),
        row("tt0000006", "Sci-Fiction", "5000"),
    )
    assert select_ids(path, genres=["Music"]).ids == ["tt0000002", "tt0000003", "tt0000004"]
    assert select_ids(path, genres=["Musical"]).ids == ["tt0000001", "tt0000004"]
    with pytest.raises(InputError, match="no movie matches genres Sci-Fi,Fantasy"):
        select_ids(path)  # Sci-Fiction is not Sci-Fi


def test_custom_genres_and_votes(tmp_path: Path) -> None:
    """Any list of IMDb genres and any threshold work; names match in any case."""
    path = write(
        tmp_path,
        row("tt0000001", "Film-Noir", "50"),
        row("tt0000002", "Drama,Horror", "10"),
        row("tt0000003", "Reality-TV", "51"),
        row("tt0000004", "Film.Noir", "5000"),
        row("tt0000005", "Sci (Fi) & Co.,War", "5000"),
        row("tt0000006", "Sci  Fi  Co,War", "5000"),
    )
    assert select_ids(path, genres=("Film-Noir", "Horror"), votes_above=9).ids == [
        "tt0000001",
        "tt0000002",
    ]
    assert select_ids(path, genres="Film-Noir,Reality-TV", votes_above=50).ids == ["tt0000003"]
    assert select_ids(path, genres=["film-noir"], votes_above=9).ids == ["tt0000001"]  # any case
    with pytest.raises(ConfigError, match=r"unknown genre 'Sci \(Fi\) & Co.'"):
        select_ids(path, genres=["Sci (Fi) & Co."])  # not one of IMDb's names


def test_bad_genre_arguments_are_config_errors(tmp_path: Path) -> None:
    """An empty genre list or a name containing ',' is rejected before reading the file."""
    path = write(tmp_path, row("tt0000001"))
    with pytest.raises(ConfigError, match="genres"):
        select_ids(path, genres=[])
    with pytest.raises(ConfigError, match="genres"):
        select_ids(path, genres=["Sci-Fi,Fantasy"])


def test_duplicates_collapse_and_ids_are_sorted(tmp_path: Path) -> None:
    """One row per artist repeats a movie; each id is returned once, in sorted order."""
    path = write(
        tmp_path,
        *[row("tt0000300")] * 3,
        row("tt0000100"),
        *[row("tt0000200")] * 2,
        row("tt0000100"),
    )
    selection = select_ids(path)
    assert selection.ids == ["tt0000100", "tt0000200", "tt0000300"]
    assert selection.rows == 7


def test_seven_and_eight_digit_ids(tmp_path: Path) -> None:
    """``tt`` + 7 and ``tt`` + 8 digits are both valid ids, sorted as strings."""
    path = write(tmp_path, row("tt10872600"), row("tt0076759"), row("tt1234567"))
    assert select_ids(path).ids == ["tt0076759", "tt10872600", "tt1234567"]


def test_malformed_ids_are_skipped_and_counted(tmp_path: Path) -> None:
    """Malformed ids among matching rows are counted once each and never returned."""
    malformed = ["tt123", "nm0000001", "tt0076759 ", " tt0076759", "TT0076759", "tt12345678901"]
    path = write(
        tmp_path,
        row("tt0076759"),
        *[row(m) for m in malformed],
        row("tt123"),  # a duplicate malformed id counts once
        row("tt0/../x"),
        row(""),  # an empty id
        row("nm0000002", "Drama"),  # malformed, but does not match: not counted
    )
    selection = select_ids(path)
    assert selection.ids == ["tt0076759"]
    assert selection.invalid_ids == len(malformed) + 2
    assert all(i.startswith("tt") and i[2:].isdigit() for i in selection.ids)


def test_bom_and_crlf_are_accepted(tmp_path: Path) -> None:
    """A UTF-8 byte-order mark and Windows line endings read like a plain file."""
    path = tmp_path / "movies.csv"
    lines = [HEADER, row("tt0000002", votes="1001"), row("tt0000001", votes="5000")]
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join(lines).encode() + b"\r\n")
    selection = select_ids(path)
    assert selection.ids == ["tt0000001", "tt0000002"]
    assert selection.rows == 2


def test_crlf_with_votes_as_last_column(tmp_path: Path) -> None:
    """With CRLF, a vote count in the last column is still read as a number."""
    path = tmp_path / "three.csv"
    path.write_bytes(b"id|genero|numeroVotos\r\ntt0000001|Sci-Fi|1001\r\ntt0000002|Fantasy|9\r\n")
    assert select_ids(path).ids == ["tt0000001"]


def test_ragged_rows_are_truncated_or_padded(tmp_path: Path) -> None:
    """Extra fields are dropped, missing ones are null; neither fails the file."""
    path = write(
        tmp_path,
        row("tt0000001") + "|extra|fields",
        "tt0000002|only two",
        row("tt0000003"),
        "",  # a blank line is not a row
        row("\\N", "\\N", "\\N"),  # but a row of nulls is
        "",
    )
    selection = select_ids(path)
    assert selection.ids == ["tt0000001", "tt0000003"]
    assert selection.rows == 4


def test_only_the_needed_columns_are_required(tmp_path: Path) -> None:
    """A file with just id, genero and numeroVotos, in any order, is enough."""
    path = write(
        tmp_path, "Fantasy|tt0000007|2000", "Drama|tt0000008|2000", header="genero|id|numeroVotos"
    )
    assert select_ids(path).ids == ["tt0000007"]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", r"empty \(0 bytes\)"),
        (HEADER.encode() + b"\n", "header but no data rows"),
        (HEADER.encode() + b"\r\n\r\n\n", "header but no data rows"),
        (HEADER.encode(), "header but no data rows"),
        (HEADER.replace("|", ",").encode() + b"\ntt0000001,a\n", "looks ',' delimited"),
        (HEADER.replace("|", ";").encode() + b"\ntt0000001;a\n", "looks ';' delimited"),
        (HEADER.replace("|", "\t").encode() + b"\ntt0000001\ta\n", "looks tab delimited"),
        (
            HEADER.replace("|genero|", "|genre|").replace("numeroVotos", "votes").encode()
            + b"\nx\n",
            "missing column.*genero, numeroVotos",
        ),
        (b"movie|genero|numeroVotos\ntt0000001|Sci-Fi|5000\n", "missing column.*id"),
        (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR", "not a UTF-8 text file"),
        (HEADER.encode() + b"\ntt0000001|T\xe9l\xe9|x\n", "not a UTF-8 text file"),
        (b"\x1f\x8b\x08\x00\x00\x00\x00\x00", "not a UTF-8 text file.*gzip"),
        (b"\xef\xbb\xbf\r\n" + HEADER.encode(), "first line is empty"),
    ],
    ids=[
        "empty",
        "header-only",
        "header-and-blank-lines",
        "header-no-newline",
        "comma",
        "semicolon",
        "tab",
        "missing-columns",
        "missing-id",
        "binary",
        "latin-1",
        "gzip",
        "bom-and-blank-first-line",
    ],
)
def test_unusable_files_raise_input_error_naming_the_file(
    tmp_path: Path, content: bytes, message: str
) -> None:
    """Each unusable file raises one ``InputError`` line naming the file and the problem."""
    path = tmp_path / "bad.csv"
    path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        select_ids(path)
    text = str(caught.value)
    assert text.startswith(str(path))
    assert "\n" not in text


def test_bad_utf8_after_the_first_chunk_is_an_input_error(tmp_path: Path) -> None:
    """Invalid UTF-8 far into the file (past the sniffed chunk) is still a clear error."""
    good = "\n".join(row(f"tt{n:07d}") for n in range(2000))
    path = tmp_path / "late.csv"
    path.write_bytes(f"{HEADER}\n{good}\n".encode() + row("tt0000001").encode() + b"\xff\xfe\n")
    assert path.stat().st_size > 64 * 1024
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        select_ids(path)


def test_missing_file_is_an_input_error(tmp_path: Path) -> None:
    """A path that does not exist raises ``InputError`` naming it."""
    missing = tmp_path / "nope.csv"
    with pytest.raises(InputError, match=r"nope\.csv: file not found"):
        select_ids(missing)
    with pytest.raises(InputError, match="not a regular file"):
        select_ids(tmp_path)


async def test_async_selection_of_a_local_file(tmp_path: Path) -> None:
    """``select_ids_async`` gives the same answer as ``select_ids`` inside a running loop."""
    path = write(tmp_path, row("tt0000002"), row("tt0000001"), row("tt0000003", "Drama"))
    assert await select_ids_async(path) == select_ids(path)


def test_s3_source_is_downloaded_and_selected(
    tmp_path: Path, s3: object, bucket: str, s3_endpoint: str
) -> None:
    """An ``s3://`` source is read from S3 (moto) and gives the same ids as the local file."""
    path = write(tmp_path, row("tt0000002"), row("tt0000001"), row("tt0000003", "Drama"))
    s3.put_object(Bucket=bucket, Key="in/movies.csv", Body=path.read_bytes())  # type: ignore[attr-defined]
    uri = f"s3://{bucket}/in/movies.csv"
    selection = select_ids(uri, s3_endpoint_url=s3_endpoint)
    assert selection == Selection(ids=["tt0000001", "tt0000002"], rows=3, invalid_ids=0, source=uri)
    assert asyncio.run(select_ids_async(uri, s3_endpoint_url=s3_endpoint)) == selection


async def test_s3_source_from_inside_an_event_loop(
    tmp_path: Path, s3: object, bucket: str, s3_endpoint: str
) -> None:
    """Inside a running loop, ``select_ids_async`` reads S3; ``select_ids`` refuses clearly."""
    path = write(tmp_path, row("tt0000009"))
    s3.put_object(Bucket=bucket, Key="movies.csv", Body=path.read_bytes())  # type: ignore[attr-defined]
    uri = f"s3://{bucket}/movies.csv"
    assert (await select_ids_async(uri, s3_endpoint_url=s3_endpoint)).ids == ["tt0000009"]
    with pytest.raises(RuntimeError, match="select_ids_async"):
        select_ids(uri, s3_endpoint_url=s3_endpoint)


def test_s3_errors_are_input_errors_naming_the_uri(
    s3: object, bucket: str, s3_endpoint: str
) -> None:
    """A missing key or bucket, an empty object or a bad URI raise ``InputError``."""
    missing_key = f"s3://{bucket}/no/such.csv"
    with pytest.raises(InputError, match=f"^{missing_key}: no such key"):
        select_ids(missing_key, s3_endpoint_url=s3_endpoint)
    missing_bucket = f"s3://{bucket}-missing/movies.csv"
    with pytest.raises(InputError, match=f"^{missing_bucket}: no such bucket"):
        select_ids(missing_bucket, s3_endpoint_url=s3_endpoint)
    s3.put_object(Bucket=bucket, Key="empty.csv", Body=b"")  # type: ignore[attr-defined]
    with pytest.raises(InputError, match=f"^s3://{bucket}/empty.csv: file is empty"):
        select_ids(f"s3://{bucket}/empty.csv", s3_endpoint_url=s3_endpoint)
    with pytest.raises(InputError, match="expected s3://bucket/key"):
        select_ids(f"s3://{bucket}", s3_endpoint_url=s3_endpoint)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        ({"Error": {"Code": "AccessDenied"}}, "access denied"),
        ({"Error": {"Code": "403"}, "ResponseMetadata": {"HTTPStatusCode": 403}}, "access denied"),
        ({"Error": {"Code": "404"}}, "no such key"),
        ({"Error": {"Code": "NoSuchBucket"}}, "no such bucket"),
        ({"Error": {"Code": "SlowDown", "Message": "Please reduce"}}, "Please reduce"),
    ],
)
def test_s3_error_codes_map_to_clear_messages(response: dict[str, Any], expected: str) -> None:
    """S3 error codes (denied, missing key or bucket, others) become one line naming the URI."""
    message = input_message("s3://b/k.csv", ClientError(response, "GetObject"))  # type: ignore[arg-type]
    assert message.startswith("s3://b/k.csv: ")
    assert expected in message


def test_s3_temporary_file_is_removed(
    tmp_path: Path, s3: object, bucket: str, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The downloaded copy is deleted after the selection, and after a failure too."""
    monkeypatch.setattr("tempfile.tempdir", str(tmp_path / "tmp"))
    (tmp_path / "tmp").mkdir()
    path = write(tmp_path, row("tt0000001"))
    s3.put_object(Bucket=bucket, Key="ok.csv", Body=path.read_bytes())  # type: ignore[attr-defined]
    s3.put_object(Bucket=bucket, Key="bad.csv", Body=b"a,b\n1,2\n")  # type: ignore[attr-defined]
    select_ids(f"s3://{bucket}/ok.csv", s3_endpoint_url=s3_endpoint)
    with pytest.raises(InputError, match="delimited"):
        select_ids(f"s3://{bucket}/bad.csv", s3_endpoint_url=s3_endpoint)
    assert list((tmp_path / "tmp").iterdir()) == []


def test_read_ids_file(tmp_path: Path) -> None:
    """An ids file gives unique sorted ids; comments and blanks are skipped, junk is an error."""
    good = tmp_path / "ids.txt"
    good.write_text("# wanted\ntt0000002\n\n  tt0000001  \ntt0000002\ntt10872600\n")
    assert read_ids_file(good) == ["tt0000001", "tt0000002", "tt10872600"]
    bad = tmp_path / "bad.txt"
    bad.write_text("tt0000001\ntt12\n")
    with pytest.raises(InputError, match=r"bad\.txt:2: not an IMDb id"):
        read_ids_file(bad)


def test_cli_select_prints_ids_and_count(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``tmdb-ingest select`` prints ids one per line on stdout and the count on stderr."""
    path = write(
        tmp_path,
        row("tt0000002", "Music"),
        row("tt0000001", "Music"),
        row("tt0000003", "Musical"),
        row("tt12", "Music"),
    )
    assert main(["select", str(path), "--genres", "Music", "--votes-above", "10"]) == 0
    out, err = capsys.readouterr()
    assert out == "tt0000001\ntt0000002\n"
    assert "2 ids selected" in err
    assert "1 malformed ids skipped" in err


def test_cli_select_bad_file_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad file makes ``select`` exit 2 with a one-line message and no traceback."""
    path = tmp_path / "comma.csv"
    path.write_text("id,genero,numeroVotos\ntt0000001,Sci-Fi,5000\n")
    assert main(["select", str(path)]) == 2
    out, err = capsys.readouterr()
    assert out == ""
    assert err.count("\n") == 1
    assert "comma.csv" in err
    assert "looks ',' delimited" in err
    assert "Traceback" not in err


def test_any_genre_and_negative_votes_select_the_whole_catalogue(tmp_path: Path) -> None:
    """``*`` as the genre and ``votes_above=-1`` switch both filters off, nulls included."""
    path = write(
        tmp_path,
        row("tt0000001", "\\N", "\\N"),
        row("tt0000002", "Drama", "3"),
        row("tt0000003", "Sci-Fi", "5000"),
        row("tt0000003", "Sci-Fi", "5000"),
        row("tt12", "Drama", "3"),
    )
    everything = select_ids(path, genres=["*"], votes_above=-1)
    assert everything.ids == ["tt0000001", "tt0000002", "tt0000003"]
    assert everything.invalid_ids == 1
    assert select_ids(path, genres=["*"], votes_above=1000).ids == ["tt0000003"]
    assert select_ids(path, genres=["Drama"], votes_above=-1).ids == ["tt0000002"]


@pytest.mark.parametrize("piece_bytes", [1, 7, 64, 333, 4096])
def test_pieces_split_anywhere_give_the_same_selection(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, piece_bytes: int
) -> None:
    """Read in pieces of any size (rows, CRLF, blank and ragged rows astride a boundary,
    lines longer than a piece, no final newline), the selection is the one read whole."""
    rows = [
        row("tt0000001", votes="5000"),
        row("tt0000002", "Fantasy", "1001") + "|extra|fields",
        "tt0000003|too few",
        "",
        row("tt0000004", "Drama"),
        row("tt0000005", title="x" * 500),  # longer than most pieces
        row("\\N", "\\N", "\\N"),
        row("tt12"),
        row("tt0000001", votes="5000"),
        row("tt0000006", "Comedy,Sci-Fi", "7000"),
    ]
    path = tmp_path / "movies.csv"
    path.write_bytes(b"\xef\xbb\xbf" + "\r\n".join([HEADER, *rows]).encode())  # no final EOL
    whole = select_ids(path)
    assert whole.ids == ["tt0000001", "tt0000002", "tt0000005", "tt0000006"]
    assert (whole.rows, whole.invalid_ids) == (9, 1)
    monkeypatch.setattr("tmdb_ingest.selection.scan._PIECE_BYTES", piece_bytes)
    assert select_ids(path) == whole


def test_many_pieces_of_a_larger_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Thousands of rows read in many small pieces: every matching id, every row counted."""
    rows = [row(f"tt{n:07d}", "Sci-Fi" if n % 3 else "Drama", str(n)) for n in range(1, 5001)]
    path = write(tmp_path, *rows)
    monkeypatch.setattr("tmdb_ingest.selection.scan._PIECE_BYTES", 10_000)
    selection = select_ids(path)
    assert selection.rows == 5000
    assert selection.ids == [f"tt{n:07d}" for n in range(1001, 5001) if n % 3]


def test_bad_utf8_in_a_later_piece_is_an_input_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Invalid UTF-8 in any piece, not only the first, fails the file with a clear error."""
    good = "\n".join(row(f"tt{n:07d}") for n in range(50))
    path = tmp_path / "late.csv"
    path.write_bytes(f"{HEADER}\n{good}\n".encode() + row("tt0000001").encode() + b"\xff\n")
    monkeypatch.setattr("tmdb_ingest.selection.scan._PIECE_BYTES", 1000)
    with pytest.raises(InputError, match="not a UTF-8 text file"):
        select_ids(path)


@pytest.mark.slow
def test_selection_module_imports_polars_only_when_reading() -> None:
    """Importing the package (and the selection module) does not import polars."""
    import subprocess
    import sys

    code = "import sys, tmdb_ingest.selection.reader; print('polars' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


# --- IMDb's genre names, and selections of nothing ----------------------------------------


def test_genres_are_imdb_names_in_any_case(tmp_path: Path) -> None:
    """`sci-fi` and `SCI-FI` select what `Sci-Fi` does; the canonical spelling is matched."""
    path = write(tmp_path, row("tt0000001", "Sci-Fi", "5000"), row("tt0000002", "Drama", "5000"))
    assert select_ids(path, genres=["sci-fi"]).ids == ["tt0000001"]
    assert select_ids(path, genres="SCI-FI,drama").ids == ["tt0000001", "tt0000002"]


@pytest.mark.parametrize(
    ("typed", "closest"), [("SciFi", "Sci-Fi"), ("sci fi", "Sci-Fi"), ("Documentry", "Documentary")]
)
def test_an_unknown_genre_names_the_closest(tmp_path: Path, typed: str, closest: str) -> None:
    """A name that is not one of IMDb's 28 is a ConfigError naming it and the closest one."""
    path = write(tmp_path, row("tt0000001"))
    with pytest.raises(ConfigError, match=f"unknown genre '{typed}' \\(did you mean '{closest}'"):
        select_ids(path, genres=[typed, "Drama"])


def test_an_empty_selection_says_what_the_file_holds(tmp_path: Path) -> None:
    """No matching id: an InputError with what was asked, the genres present, the votes."""
    path = write(
        tmp_path,
        row("tt0000001", "Drama,Romance", "12"),
        row("tt0000002", "Western", "\\N"),
        row("tt0000003", "Drama", "90000"),
    )
    with pytest.raises(InputError) as info:
        select_ids(path, genres=["Horror"], votes_above=-1)
    assert str(info.value) == (
        f"{path}: no movie matches genres Horror with any votes; its 3 rows hold "
        "genres Drama, Romance, Western; votes from 12 to 90000"
    )
    malformed = write(tmp_path, row("tt12", "Horror", "5000"))
    with pytest.raises(InputError, match="1 matching rows had malformed ids"):
        select_ids(malformed, genres=["Horror"])


@pytest.mark.parametrize("command", ["select", "run"])
def test_the_cli_exits_2_on_a_mistyped_genre_or_an_empty_selection(
    tmp_path: Path, command: str, capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`select`/`run --genres SciFi` and a filter that selects nothing exit 2, before TMDB."""
    monkeypatch.setenv("TMDB_API_KEY", "selection-test-key-7f3a9c")  # redacted in logs
    monkeypatch.setenv("TMDB_URL", "http://127.0.0.1:9/3")  # nothing listens: no request
    path = write(tmp_path, row("tt0000001", "Sci-Fi", "5000"))
    sink = ["--out-dir", str(tmp_path / "lake")] if command == "run" else []
    assert main([command, str(path), *sink, "--genres", "SciFi"]) == 2
    err = capsys.readouterr().err
    assert "--genres: unknown genre 'SciFi' (did you mean 'Sci-Fi'?)" in err
    assert main([command, str(path), *sink, "--votes-above", "9000"]) == 2
    err = capsys.readouterr().err
    assert "no movie matches genres Sci-Fi,Fantasy with more than 9000 votes" in err
    assert "votes from 5000 to 5000" in err
    lake = tmp_path / "lake"
    assert not [p for p in lake.rglob("*") if p.is_file()]  # nothing was written either
