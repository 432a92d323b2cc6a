"""The sample movies.csv generator: deterministic, the real schema, the real file's traps."""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path

import pytest

from tmdb_ingest.emulator.sample import HEADER, generate_movies_csv, iter_rows, main
from tmdb_ingest.selection.reader import select_ids

REAL_HEADER = (
    "id|tituloPincipal|tituloOriginal|anoLancamento|tempoMinutos|genero|notaMedia|numeroVotos"
    "|generoArtista|personagem|nomeArtista|anoNascimento|anoFalecimento|profissao"
    "|titulosMaisConhecidos"
)
MOVIES = 2000


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2,000-movie sample with seed 0, shared by the tests of this module."""
    path = tmp_path_factory.mktemp("sample") / "movies.csv"
    generate_movies_csv(path, movies=MOVIES, seed=0)
    return path


@pytest.fixture(scope="module")
def rows(sample: Path) -> list[list[str]]:
    """The sample's data rows, split on ``|``."""
    lines = sample.read_text(encoding="utf-8").splitlines()
    return [line.split("|") for line in lines[1:]]


def test_same_seed_same_bytes_other_seed_other_bytes(tmp_path: Path, sample: Path) -> None:
    """The same movies and seed write the same bytes; another seed writes another file."""
    again = generate_movies_csv(tmp_path / "again.csv", movies=MOVIES, seed=0)
    assert again.path.read_bytes() == sample.read_bytes()
    other = generate_movies_csv(tmp_path / "other.csv", movies=MOVIES, seed=1)
    assert other.path.read_bytes() != sample.read_bytes()


def test_header_is_the_real_one_and_every_row_has_15_fields(
    sample: Path, rows: list[list[str]]
) -> None:
    """The header is the real file's (typo included) and each row has its 15 fields."""
    assert HEADER == REAL_HEADER
    assert sample.read_text(encoding="utf-8").split("\n", 1)[0] == REAL_HEADER
    assert {len(r) for r in rows} == {15}


def test_counts_returned_match_the_file(tmp_path: Path) -> None:
    """The returned stats are the rows and movies in the file, 1 to 8 rows per movie."""
    result = generate_movies_csv(tmp_path / "m.csv", movies=300, seed=7)
    lines = result.path.read_text(encoding="utf-8").splitlines()
    assert result.rows == len(lines) - 1
    assert result.movies == 300
    assert 300 <= result.rows <= 8 * 300
    assert list(iter_rows(300, 7)) == lines[1:]
    assert not (tmp_path / "m.csv.partial").exists()


def test_movie_level_columns_repeat_identically(rows: list[list[str]]) -> None:
    """Each movie has 1 to 8 rows, consecutive, all with the same movie-level columns."""
    by_movie: dict[str, set[tuple[str, ...]]] = {}
    per_movie = Counter(r[0] for r in rows)
    for r in rows:
        by_movie.setdefault(r[0], set()).add(tuple(r[:8]))
    valid = [m for m in by_movie if re.fullmatch(r"tt\d{7,8}", m)]
    assert all(len(by_movie[m]) == 1 for m in valid)
    assert all(1 <= per_movie[m] <= 8 for m in valid)
    assert len(valid) > 0.99 * MOVIES


def test_traps_are_present(rows: list[list[str]]) -> None:
    """Quotes, commas, nulls in every column, 7/8-digit ids, Music/Musical, 1000/1001 votes."""
    ids = {r[0] for r in rows}
    titles = {r[1] for r in rows}
    characters = {r[9] for r in rows}
    genres = [set() if r[5] == "\\N" else set(r[5].split(",")) for r in rows]
    votes = {r[7] for r in rows}
    assert any("," in t for t in titles)
    assert any('"' in t for t in titles)
    assert any('"' in c for c in characters)
    assert any(re.fullmatch(r"tt\d{7}", i) for i in ids)
    assert any(re.fullmatch(r"tt\d{8}", i) for i in ids)
    assert any(not re.fullmatch(r"tt\d{7,10}", i) for i in ids)
    assert any("Music" in g for g in genres)
    assert any("Musical" in g for g in genres)
    assert any("Music" in g and "Musical" not in g for g in genres)
    assert {"1000", "1001", "\\N"} <= votes
    for column in range(15):
        assert any(r[column] == "\\N" for r in rows), REAL_HEADER.split("|")[column]
    assert sum(1 for g in genres if g & {"Sci-Fi", "Fantasy"}) > 0.03 * len(rows)


def test_default_selection_is_sizeable_and_strict(sample: Path, rows: list[list[str]]) -> None:
    """The default selection finds dozens of ids, none with exactly 1000 votes."""
    selection = select_ids(sample)
    assert 30 <= len(selection.ids) <= 250
    assert selection.rows == len(rows)
    assert selection.invalid_ids >= 0
    votes_of = {r[0]: r[7] for r in rows}
    assert all(int(votes_of[i]) > 1000 for i in selection.ids)
    at_threshold = {
        r[0] for r in rows if r[7] == "1000" and {"Sci-Fi", "Fantasy"} & set(r[5].split(","))
    }
    assert at_threshold, "the sample should have Sci-Fi/Fantasy movies with exactly 1000 votes"
    assert not at_threshold & set(selection.ids)


def test_cli_writes_a_sample(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``python -m tmdb_ingest.emulator.sample OUT --movies N --seed S`` writes the file."""
    out = tmp_path / "cli.csv"
    assert main([str(out), "--movies", "50", "--seed", "3"]) == 0
    assert (
        out.read_bytes()
        == generate_movies_csv(tmp_path / "lib.csv", movies=50, seed=3).path.read_bytes()
    )
    assert "50 movies" in capsys.readouterr().err
