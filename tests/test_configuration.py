"""Configuration: one option table behind Settings, the environment and the CLI flags;
precedence, error labels, help, the reference doc, exit codes of stops, and start-up
imports."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import boto3
import pytest

import tmdb_ingest
from tmdb_ingest import api as pipeline
from tmdb_ingest.cli import main
from tmdb_ingest.cli_parser import EXIT_CODES, build_parser, configuration_markdown
from tmdb_ingest.config import settings
from tmdb_ingest.config.credentials import SECRET_VARIABLES
from tmdb_ingest.config.settings import OPTIONS, Settings, Shard
from tmdb_ingest.config.values import Rate
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import ConfigError, RunBusy, SinkError
from tmdb_ingest.selection import reader as selection
from tmdb_ingest.summary import Summary

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """No option variable of the developer's shell leaks into these tests."""
    for option in OPTIONS:
        if option.env:
            monkeypatch.delenv(option.env, raising=False)
    for name in SECRET_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMDB_API_KEY", "config-test-key")


@pytest.fixture(scope="module")
def csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("csv") / "movies.csv"
    generate_movies_csv(path, movies=300, seed=2)
    return path


def summary(**changes: Any) -> Summary:
    counts = ("selected", "skipped", "fetched", "not_found", "failed", "batches", "requests")
    fields: dict[str, Any] = dict.fromkeys((*counts, "retries", "throttled"), 0)
    fields.update(run_id="run-x", shard="0/1", elapsed_s=0.1, done=True, report=None)
    return Summary(**{**fields, **changes})


@pytest.fixture
def seen(monkeypatch: pytest.MonkeyPatch) -> list[Settings]:
    """Replace the pipeline by a spy: the CLI's settings are recorded, nothing is fetched."""
    calls: list[Settings] = []

    async def spy(csv: str, settings: Settings, **_kwargs: Any) -> Summary:
        calls.append(settings)
        return summary()

    monkeypatch.setattr(pipeline, "ingest_csv", spy)
    return calls


# --- the table --------------------------------------------------------------------------


def test_the_table_covers_every_settings_field_with_its_default() -> None:
    """Each Settings field has exactly one option, and Settings() takes its default from it."""
    fields = {f.name: f for f in dataclasses.fields(Settings)}
    assert sorted(o.name for o in OPTIONS) == sorted(fields)
    defaults = Settings()
    for option in OPTIONS:
        assert getattr(defaults, option.name) == option.default, option.name
    flags = [o.flag for o in OPTIONS if o.flag]
    envs = [o.env for o in OPTIONS if o.env]
    assert len(flags) == len(set(flags))
    assert len(envs) == len(set(envs))


def test_selection_takes_its_defaults_from_settings() -> None:
    """The selection defaults are the settings' own objects, not a second copy."""
    assert selection.DEFAULT_GENRES is settings.DEFAULT_GENRES
    assert settings.OPTION["votes_above"].default == selection.DEFAULT_VOTES_ABOVE


@pytest.mark.parametrize(
    ("name", "text", "value"),
    [
        ("rate", "5", Rate.fixed(5)),
        ("rate", "auto", Rate.auto(max=50)),
        ("max_rate", "45", 45.0),
        ("format", "ndjson", "ndjson"),
        ("compress", "gzip", "gzip"),
        ("compress", "none", None),
        ("state_prefix", "Raw/TMDB/_ingest", "Raw/TMDB/_ingest"),
        ("lease_ttl", "12", 12.0),
        ("genres", "Drama, Horror", ("Drama", "Horror")),
        ("shard", "2/4", Shard(2, 4)),
        ("out_dir", "/tmp/lake", Path("/tmp/lake")),
        ("tmdb_url", "http://127.0.0.1:1/3", "http://127.0.0.1:1/3"),
        ("s3_endpoint_url", "http://127.0.0.1:2", "http://127.0.0.1:2"),
    ],
)
def test_every_variable_is_read_by_from_env(name: str, text: str, value: Any) -> None:
    """Settings.from_env reads each option's variable and parses it."""
    env = {settings.OPTION[name].env or "": text}
    assert getattr(Settings.from_env(env), name) == value


# --- precedence, through the command line ------------------------------------------------


@pytest.mark.parametrize(
    ("env", "flags", "rate"),
    [({}, [], Rate.fixed(40)), ({"TMDB_INGEST_RATE": "5"}, [], Rate.fixed(5)),
     ({"TMDB_INGEST_RATE": "5"}, ["--rate", "7"], Rate.fixed(7)),
     ({}, ["--rate", "auto"], Rate.auto(max=50)),
     ({"TMDB_INGEST_MAX_RATE": "45"}, ["--rate", "auto"], Rate.auto(max=45))],
)  # fmt: skip
def test_flags_win_over_the_environment_which_wins_over_defaults(
    env: dict[str, str], flags: list[str], rate: Any, csv: Path, tmp_path: Path,
    seen: list[Settings], monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """`TMDB_INGEST_RATE=5 tmdb-ingest run` runs at 5; a --rate flag overrides it."""
    for key, text in env.items():
        monkeypatch.setenv(key, text)
    assert main(["run", str(csv), "--out-dir", str(tmp_path), *flags]) == 0
    assert seen[-1].rate == rate


def test_the_cli_reads_every_run_variable(
    csv: Path, tmp_path: Path, seen: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The same TMDB_INGEST_* variables the Lambda reads configure `run`."""
    for key, text in {
        "TMDB_INGEST_BATCH_SIZE": "7", "TMDB_INGEST_FORMAT": "ndjson",
        "TMDB_INGEST_COMPRESS": "gzip", "TMDB_INGEST_STATE_PREFIX": "_ops/state",
        "TMDB_INGEST_GENRES": "Drama", "TMDB_INGEST_MAX_RATE": "44",
        "TMDB_INGEST_SHARD": "1/3", "TMDB_URL": "http://127.0.0.1:9/3",
    }.items():  # fmt: skip
        monkeypatch.setenv(key, text)
    assert main(["run", str(csv), "--out-dir", str(tmp_path)]) == 0
    got = seen[-1]
    assert (got.batch_size, got.format, got.compress) == (7, "ndjson", "gzip")
    assert (got.state_prefix, got.genres, got.max_rate) == ("_ops/state", ("Drama",), 44.0)
    assert (got.shard, got.tmdb_url) == (Shard(1, 3), "http://127.0.0.1:9/3")


def test_a_sink_flag_replaces_the_sink_variable(
    csv: Path, tmp_path: Path, seen: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """--out-dir with TMDB_INGEST_BUCKET set writes to the folder, not both."""
    monkeypatch.setenv("TMDB_INGEST_BUCKET", "env-bucket")
    assert main(["run", str(csv), "--out-dir", str(tmp_path)]) == 0
    assert (seen[-1].bucket, seen[-1].out_dir) == (None, tmp_path)


def test_the_sink_may_come_from_the_environment(
    csv: Path, tmp_path: Path, seen: list[Settings], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Without a sink flag, TMDB_INGEST_OUT_DIR names the sink; with neither it is exit 2."""
    monkeypatch.setenv("TMDB_INGEST_OUT_DIR", str(tmp_path))
    assert main(["run", str(csv)]) == 0
    assert seen[-1].out_dir == tmp_path
    monkeypatch.delenv("TMDB_INGEST_OUT_DIR")
    assert main(["run", str(csv)]) == 2


def test_select_reads_the_environment(
    csv: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """`select` takes genres and votes from the environment, under its flags."""
    monkeypatch.setenv("TMDB_INGEST_GENRES", "*")
    monkeypatch.setenv("TMDB_INGEST_VOTES_ABOVE", "-1")
    assert main(["select", str(csv)]) == 0
    everything = capsys.readouterr().out.split()
    assert everything == selection.select_ids(csv, genres=("*",), votes_above=-1).ids
    assert main(["select", str(csv), "--votes-above", "1000", "--genres", "Sci-Fi"]) == 0
    assert capsys.readouterr().out.split() == selection.select_ids(csv, genres=("Sci-Fi",)).ids


# --- errors name what the user typed -----------------------------------------------------


@pytest.mark.parametrize(
    ("env", "argv", "message"),
    [
        ({}, ["--batch-size", "0"], "tmdb-ingest: error: --batch-size: must be in 1..10000, got 0"),
        ({"TMDB_INGEST_BATCH_SIZE": "0"}, [],
         "tmdb-ingest: error: TMDB_INGEST_BATCH_SIZE=0: must be in 1..10000, got 0"),
        ({"TMDB_INGEST_RATE": "fast"}, [], "TMDB_INGEST_RATE=fast: expected a number or auto"),
        ({}, ["--rate", "fast"], "argument --rate: expected a number or auto, got 'fast'"),
        ({}, ["--format", "xml"], "argument --format: expected json or ndjson"),
        ({"TMDB_INGEST_SHARD": "5/4"}, [], "TMDB_INGEST_SHARD=5/4: I must be 0..N-1"),
        ({}, ["--state-prefix", "Raw/TMDB/JSON/_s"], "--state-prefix: must not lie inside"),
        ({"TMDB_INGEST_BUCKET": "Bad_Name"}, ["--prefix", "x"],
         "TMDB_INGEST_BUCKET=Bad_Name: not a valid S3 bucket name"),
    ],
)  # fmt: skip
def test_errors_name_the_flag_or_the_variable(
    env: dict[str, str], argv: list[str], message: str, csv: Path, tmp_path: Path,
    seen: list[Settings], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A bad value exits 2 with one line naming the flag or `VARIABLE=value` as typed."""
    for key, text in env.items():
        monkeypatch.setenv(key, text)
    sink = [] if "TMDB_INGEST_BUCKET" in env else ["--out-dir", str(tmp_path)]
    assert main(["run", str(csv), *sink, *argv]) == 2
    assert message in capsys.readouterr().err
    assert seen == []


def test_a_config_error_keeps_the_field_name() -> None:
    """Programs can still tell which field was wrong, whatever the label says."""
    with pytest.raises(ConfigError, match=r"^TMDB_INGEST_CONCURRENCY=0: ") as info:
        Settings.from_env({"TMDB_INGEST_CONCURRENCY": "0"})
    assert info.value.field == "concurrency"


def test_a_secret_variable_is_never_shown_in_an_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """A credential that fails its check is named by its variable, never shown."""
    monkeypatch.setattr(Settings, "__post_init__", _reject_api_key)
    with pytest.raises(ConfigError) as info:
        Settings.from_env({"TMDB_API_KEY": "hunter2-secret"})
    assert str(info.value).startswith("TMDB_API_KEY: ")
    assert "hunter2" not in str(info.value)


def _reject_api_key(self: Settings) -> None:
    raise ConfigError("api_key", "rejected for the test")


def test_a_placeholder_key_in_the_environment_exits_2(
    csv: Path, tmp_path: Path, seen: list[Settings], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """TMDB_API_KEY=REPLACE_ME is refused before any request, naming the variable."""
    monkeypatch.setenv("TMDB_API_KEY", "REPLACE_ME")
    assert main(["run", str(csv), "--out-dir", str(tmp_path)]) == 2
    assert "TMDB_API_KEY still holds the placeholder" in capsys.readouterr().err
    assert seen == []


def test_the_cli_reads_the_key_from_secrets_manager(
    csv: Path, tmp_path: Path, s3_endpoint: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """With TMDB_SECRET_ID (moto's Secrets Manager), `run` fetches with the stored key."""
    key = "sm-key-" + uuid.uuid4().hex
    name = f"tmdb-{uuid.uuid4().hex[:8]}"
    client = boto3.client("secretsmanager", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_secret(Name=name, SecretString=json.dumps({"api_key": key}))
    client.close()
    monkeypatch.delenv("TMDB_API_KEY")
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_endpoint)
    monkeypatch.setenv("TMDB_SECRET_ID", name)
    with EmulatorThread(EmulatorConfig(api_key=key)) as tmdb:
        argv = ["run", str(csv), "--out-dir", str(tmp_path), "--tmdb-url", tmdb.url]
        assert main([*argv, "--rate", "300", "--json"]) == 0
    out, err = capsys.readouterr()
    assert json.loads(out.splitlines()[-1])["fetched"] > 0
    assert key not in out + err


# --- the parser, the help, the doc -------------------------------------------------------


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    """--version prints the version pyproject.toml declares (and the installed metadata
    carries), and exits 0."""
    import importlib.metadata
    import tomllib

    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert importlib.metadata.version("tmdb-ingest") == declared
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"tmdb-ingest {declared}"
    assert tmdb_ingest.__version__ == declared


@pytest.mark.parametrize(
    ("argv", "verbose"),
    [(["-v", "select", "m.csv"], True), (["select", "m.csv", "-v"], True),
     (["select", "-v", "m.csv"], True), (["run", "m.csv", "--verbose"], True),
     (["select", "m.csv"], False)],
)  # fmt: skip
def test_verbose_anywhere_on_the_line(argv: list[str], verbose: bool) -> None:
    """-v counts before or after the subcommand."""
    assert build_parser().parse_args(argv).verbose is verbose


def test_run_help_lists_the_variables_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`run --help` names every option's variable, the secret sources and every exit code."""
    assert main(["run", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())  # argparse wraps lines
    for option in OPTIONS:
        assert option.env in text if option.env else True
        assert option.flag in text if option.flag else True
    for name in SECRET_VARIABLES:
        assert name in text
    for code in ("0", "1", "2", "3", "4", "130/143"):
        assert f" {code} " in text
    assert all(meaning in text for _, meaning in EXIT_CODES)


def test_top_level_help_is_a_description(capsys: pytest.CaptureFixture[str]) -> None:
    """The top-level help describes the tool and its commands, not an internal docstring."""
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    assert "Pull movie details from TMDB" in text
    assert "Thin on purpose" not in text
    for command in ("select", "run", "emulate", "demo"):
        assert command in text


def test_the_reference_doc_is_generated_from_the_table() -> None:
    """docs/configuration.md is exactly what the table renders, so it lists every option."""
    doc = (ROOT / "docs" / "configuration.md").read_text()
    assert doc == configuration_markdown(), (
        "regenerate: python -m tmdb_ingest.cli_parser > docs/configuration.md"
    )
    for option in OPTIONS:
        assert f"`{option.name}`" in doc
        assert f"`{option.env}`" in doc if option.env else True
    for name in SECRET_VARIABLES:
        assert f"`{name}`" in doc


# --- stops: busy and fatal ---------------------------------------------------------------


def test_busy_exits_4_with_one_line_and_the_busy_summary(
    csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """RunBusy exits 4: one line on stderr, and with --json the summary, busy: true."""

    async def held(*_args: Any, **_kwargs: Any) -> Summary:
        error = RunBusy("run run-x shard 0/1 is held by another\ninvocation")
        error.summary = summary(selected=9, done=False)
        raise error

    monkeypatch.setattr(pipeline, "ingest_csv", held)
    assert main(["run", str(csv), "--out-dir", str(tmp_path), "--json"]) == 4
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "tmdb-ingest: busy: run run-x shard 0/1 is held by another invocation"
    ]
    printed = json.loads(out.splitlines()[-1])
    assert (printed["busy"], printed["done"], printed["selected"]) == (True, False, 9)


def test_fatal_exits_1_with_the_error_in_the_json_summary(
    csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A FatalError exits 1 with one line; --json prints the summary with its error field."""

    async def broken(*_args: Any, **_kwargs: Any) -> Summary:
        error = SinkError("bucket lake: AccessDenied")
        error.summary = summary(done=False, fetched=3)
        raise error

    monkeypatch.setattr(pipeline, "ingest_csv", broken)
    assert main(["run", str(csv), "--out-dir", str(tmp_path), "--json"]) == 1
    out, err = capsys.readouterr()
    assert err.splitlines() == ["tmdb-ingest: fatal: bucket lake: AccessDenied"]
    printed = json.loads(out.splitlines()[-1])
    assert (printed["error"], printed["fetched"]) == ("bucket lake: AccessDenied", 3)


def test_interrupt_exits_130(
    csv: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Ctrl-C during a run exits 130 and says how to resume."""

    async def interrupted(*_args: Any, **_kwargs: Any) -> Summary:
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "ingest_csv", interrupted)
    assert main(["run", str(csv), "--out-dir", str(tmp_path)]) == 130
    assert "resume" in capsys.readouterr().err


# --- start-up imports --------------------------------------------------------------------

HEAVY = ("polars", "aiohttp", "aiobotocore", "botocore", "tmdb_ingest.emulator")


@pytest.mark.slow
@pytest.mark.parametrize(
    "code",
    [
        "import tmdb_ingest",
        "import tmdb_ingest.testing",
        "from tmdb_ingest.cli import main; main(['select', '--help'])",
        "from tmdb_ingest.cli import main; main(['run', '--help'])",
        "from tmdb_ingest.cli import main; main(['--help'])",
    ],
)
def test_start_up_imports_nothing_heavy(code: str) -> None:
    """The package and the parser of every command load without polars, aiohttp
    (web or client), aiobotocore or the emulator."""
    probe = f"{code}\nimport sys\nprint(sorted(sys.modules))"
    result = subprocess.run(
        [sys.executable, "-c", probe], capture_output=True, text=True, cwd=ROOT, timeout=60
    )
    assert result.returncode == 0, result.stderr
    loaded = result.stdout.splitlines()[-1]
    for name in HEAVY:
        assert f"'{name}'" not in loaded, name
    assert "'tmdb_ingest'" in loaded  # the probe saw the package, so the check means something


def test_lazy_public_names() -> None:
    """Every name in __all__ resolves, __all__ is sorted, and from-imports work."""
    from tmdb_ingest import Settings as FromPackage
    from tmdb_ingest import ingest

    assert tmdb_ingest.__all__ == sorted(tmdb_ingest.__all__)
    for name in tmdb_ingest.__all__:
        assert getattr(tmdb_ingest, name) is not None
    assert FromPackage is Settings
    assert ingest is pipeline.ingest
    with pytest.raises(AttributeError):
        tmdb_ingest.no_such_name  # noqa: B018
