"""The Lambda handler, driven like the real runtime: awslambdaric's LambdaContext, whose
remaining time runs down with the wall clock, moto's server for S3, Secrets Manager and
SSM, and the TMDB emulator in a thread (the handler runs its own event loop)."""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import orjson
import pytest
from awslambdaric.lambda_context import LambdaContext

from tests.helpers import read_s3
from tmdb_ingest import lambda_handler
from tmdb_ingest.config.credentials import parse_secret
from tmdb_ingest.config.settings import Shard
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.errors import ConfigError, InputError, RunBusy
from tmdb_ingest.lambda_handler import IngestFailed, handler, parse_event, safety_margin
from tmdb_ingest.run.state import shard_of
from tmdb_ingest.selection.reader import select_ids
from tmdb_ingest.summary import Summary

ROOT = Path(__file__).resolve().parents[1]
SECRET = "lambda-secret-" + uuid.uuid4().hex  # distinctive, so a leak cannot hide
JWT = "eyJhbGciOiJIUzI1NiJ9.eyJhdWQiOiJ4In0.c2ln"  # the shape of TMDB's read access token
ENV_NAMES = (
    "TMDB_INGEST_BUCKET",
    "TMDB_INGEST_PREFIX",
    "TMDB_INGEST_RATE",
    "TMDB_INGEST_CONCURRENCY",
    "TMDB_INGEST_BATCH_SIZE",
    "TMDB_INGEST_GENRES",
    "TMDB_INGEST_VOTES_ABOVE",
    "TMDB_INGEST_SHARD",
    "TMDB_INGEST_RUN_ID",
    "TMDB_API_KEY",
    "TMDB_ACCESS_TOKEN",
    "TMDB_SECRET_ID",
    "TMDB_SECRET_PARAMETER",
)


def context(seconds: float) -> LambdaContext:
    """A runtime context whose deadline is ``seconds`` from now."""
    deadline_ms = int((time.time() + seconds) * 1000)
    return LambdaContext(uuid.uuid4().hex, None, None, deadline_ms)


def s3_event(bucket: str, key: str) -> dict[str, Any]:
    """An S3 put notification, key URL-encoded as S3 sends it."""
    from urllib.parse import quote_plus

    record = {
        "eventSource": "aws:s3",
        "eventName": "ObjectCreated:Put",
        "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key)}},
    }
    return {"Records": [record]}


def objects(s3: Any, bucket: str) -> dict[str, bytes]:
    """Every object in the bucket, by key."""
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=bucket).get("Contents", [])]
    return {k: s3.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def landed_and_reported(found: dict[str, bytes]) -> tuple[list[str], list[str]]:
    """(ids in data files, ids in reports), duplicates kept so they can be counted."""
    landed: list[str] = []
    reported: list[str] = []
    for key, body in found.items():
        if "/_state/" in key and key.endswith("/report.jsonl"):
            reported += [orjson.loads(line)["imdb_id"] for line in body.splitlines() if line]
        elif "/_" not in key and key.endswith(".json"):
            landed += [movie["imdb_id"] for movie in orjson.loads(body)]
    return landed, reported


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """The handler configures logging globally; put the levels and formatters back."""
    root, ours = logging.getLogger(), logging.getLogger("tmdb_ingest")
    saved = root.level, ours.level, [(h, h.formatter, list(h.filters)) for h in root.handlers]
    yield
    root.setLevel(saved[0])
    ours.setLevel(saved[1])
    for h, formatter, filters in saved[2]:
        h.setFormatter(formatter)
        h.filters[:] = filters


@pytest.fixture
def tmdb() -> Iterator[EmulatorThread]:
    """The emulator, with the test's distinctive key and a little latency."""
    with EmulatorThread(EmulatorConfig(api_key=SECRET, latency_ms=20, seed=3)) as emu:
        yield emu


@pytest.fixture
def env(s3_endpoint: str, tmdb: EmulatorThread, monkeypatch: pytest.MonkeyPatch) -> None:
    """A clean Lambda-like environment pointing at moto and the emulator, key in the env."""
    for name in ENV_NAMES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMDB_URL", tmdb.url)
    monkeypatch.setenv("AWS_ENDPOINT_URL_S3", s3_endpoint)
    monkeypatch.setenv("TMDB_API_KEY", SECRET)
    monkeypatch.setenv("TMDB_INGEST_BATCH_SIZE", "10")
    monkeypatch.setenv("TMDB_INGEST_RATE", "200")


@pytest.fixture
def csv_key(s3: Any, bucket: str, tmp_path: Path) -> tuple[str, list[str]]:
    """A sample catalogue uploaded under input/ (a space in the key); its selected ids."""
    path = tmp_path / "movies.csv"
    generate_movies_csv(path, movies=2200, seed=11)
    key = "input/movies 2024.csv"
    s3.upload_file(str(path), bucket, key)
    return key, select_ids(path).ids


def test_short_budget_stops_in_time_and_resumes_exactly_once(
    env: None, s3: Any, bucket: str, csv_key: tuple[str, list[str]], tmdb: EmulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """An S3 event with little time left returns done: false before the deadline, and
    invocations with the returned run_id finish the job: each id exactly once."""
    key, ids = csv_key
    monkeypatch.setenv("TMDB_INGEST_RATE", "5")
    monkeypatch.setenv("TMDB_INGEST_CONCURRENCY", "4")
    ctx = context(11.0)  # a budget of 9 s: not enough for ~60 ids at 5/s
    first = handler(s3_event(bucket, key), ctx)
    assert ctx.get_remaining_time_in_millis() > safety_margin(11.0) * 1000 - 1000
    assert first["done"] is False
    assert first["selected"] == len(ids)
    assert 0 < first["fetched"] + first["not_found"] < len(ids)
    run_id = first["run_id"]
    assert run_id.startswith("run-")

    rounds = [first]
    while not rounds[-1]["done"]:
        assert len(rounds) < 5
        event = {"csv": f"s3://{bucket}/{key}", "run_id": run_id}
        monkeypatch.setenv("TMDB_INGEST_RATE", "100")
        rounds.append(handler(event, context(60.0)))
        assert rounds[-1]["run_id"] == run_id
    last = rounds[-1]
    assert last["skipped"] == first["fetched"] + first["not_found"] + first["failed"]
    landed, reported = landed_and_reported(objects(s3, bucket))
    assert sorted(landed + reported) == ids  # every id once, in a data file or the report
    assert len(reported) == sum(r["not_found"] + r["failed"] for r in rounds)
    assert last["report"] is not None
    assert last["report"].startswith(f"s3://{bucket}/")


def test_csv_event_with_shard_processes_only_that_shard(
    env: None, s3: Any, bucket: str, csv_key: tuple[str, list[str]]
) -> None:
    """The {"csv", "shard"} form runs the ids of that shard and nothing else."""
    key, ids = csv_key
    mine = [i for i in ids if shard_of(i, 3) == 1]
    summary = handler({"csv": f"s3://{bucket}/{key}", "shard": "1/3"}, context(60.0))
    assert summary["done"] is True
    assert summary["shard"] == "1/3"
    assert summary["selected"] == len(mine)
    landed, reported = landed_and_reported(objects(s3, bucket))
    assert sorted(landed + reported) == mine


@pytest.mark.parametrize("source", ["secretsmanager", "ssm"])
@pytest.mark.parametrize("shape", ["raw", "json"])
def test_secret_from_aws_is_used_and_never_leaks(
    env: None, s3: Any, bucket: str, csv_key: tuple[str, list[str]], s3_endpoint: str,
    source: str, shape: str, monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """The key read from Secrets Manager or SSM (moto) authenticates, and appears in no
    log line, no output and no S3 object."""
    key, _ids = csv_key
    monkeypatch.delenv("TMDB_API_KEY")
    value = SECRET if shape == "raw" else orjson.dumps({"TMDB_API_KEY": SECRET}).decode()
    name = f"tmdb-{uuid.uuid4().hex[:8]}"
    client = boto3.client(source, endpoint_url=s3_endpoint, region_name="us-east-1")
    if source == "secretsmanager":
        client.create_secret(Name=name, SecretString=value)
        monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_endpoint)
        monkeypatch.setenv("TMDB_SECRET_ID", name)
    else:
        client.put_parameter(Name=f"/{name}", Value=value, Type="SecureString")
        monkeypatch.setenv("AWS_ENDPOINT_URL_SSM", s3_endpoint)
        monkeypatch.setenv("TMDB_SECRET_PARAMETER", f"/{name}")
    client.close()
    caplog.set_level(logging.INFO, logger="tmdb_ingest")
    summary = handler({"csv": f"s3://{bucket}/{key}"}, context(60.0))
    assert summary["done"] is True
    assert summary["fetched"] > 0
    assert "summary" in caplog.text  # the logs were captured, so the next check means something
    out, err = capsys.readouterr()
    for text in (caplog.text, out, err, repr(summary)):
        assert SECRET not in text
    for body in objects(s3, bucket).values():
        assert SECRET.encode() not in body


def test_rejected_key_raises_one_line_error_without_the_secret(
    env: None, bucket: str, csv_key: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    """A key TMDB rejects raises IngestFailed, one line with the summary, no secret."""
    wrong = "wrong-" + SECRET
    monkeypatch.setenv("TMDB_API_KEY", wrong)
    with pytest.raises(IngestFailed) as info:
        handler({"csv": f"s3://{bucket}/{csv_key[0]}"}, context(60.0))
    message = str(info.value)
    assert "\n" not in message
    assert '"run_id":"run-' in message
    assert '"done":false' in message
    assert wrong not in message
    assert wrong not in caplog.text
    assert "fatal:" in caplog.text


def test_warm_container_runs_twice(
    env: None, s3: Any, bucket: str, csv_key: tuple[str, list[str]], tmdb: EmulatorThread
) -> None:
    """Two invocations in one process both work; the second resumes the finished run."""
    event = {"csv": f"s3://{bucket}/{csv_key[0]}"}
    first = handler(event, context(60.0))
    requests = tmdb.stats.requests
    second = handler(event, context(60.0))
    assert first["done"]
    assert second["done"]
    assert second["run_id"] == first["run_id"]  # derived: same inputs, same day
    assert second["skipped"] == second["selected"] == len(csv_key[1])
    assert second["fetched"] == 0
    assert tmdb.stats.requests == requests


@pytest.mark.parametrize(
    ("event", "error", "match"),
    [
        ({}, InputError, "expected an S3 notification"),
        ([], InputError, "got list"),
        ({"Records": []}, InputError, "exactly one record"),
        ({"Records": [{"s3": {"bucket": {}}}]}, InputError, "exactly one record"),
        ({"csv": "/tmp/movies.csv"}, InputError, "s3://bucket/key"),
        ({"csv": "s3://bucket-only"}, InputError, "s3://bucket/key"),
        ({"csv": "s3://b/k.csv", "shard": "5/2"}, ConfigError, "shard"),
        ({"csv": "s3://b/k.csv", "run_id": 7}, ConfigError, "run_id"),
    ],
)
def test_bad_event_is_a_clear_error(event: Any, error: type[Exception], match: str) -> None:
    """A malformed event raises before anything is fetched, naming what is wrong."""
    with pytest.raises(error, match=match):
        handler(event, context(60.0))


def test_event_forms_parse() -> None:
    """S3 keys are URL-decoded; the csv form carries run_id and shard."""
    event = s3_event("b", "input/a b+c.csv")
    assert parse_event(event) == ("s3://b/input/a b+c.csv", None, None)
    assert parse_event({"csv": "s3://b/k.csv", "run_id": "r1", "shard": "2/4"}) == (
        "s3://b/k.csv",
        "r1",
        Shard(2, 4),
    )


def test_too_little_time_left_is_a_config_error(monkeypatch: pytest.MonkeyPatch) -> None:
    """An invocation with less than the margin plus one second left refuses to start."""
    for name in ENV_NAMES:  # refused before S3 or TMDB is asked: no servers needed
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("TMDB_API_KEY", SECRET)
    with pytest.raises(ConfigError, match="time_budget"):
        handler({"csv": "s3://b/k.csv"}, context(2.5))


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("abc123", {"api_key": "abc123"}),
        (JWT, {"access_token": JWT}),
        ('{"api_key": "k"}', {"api_key": "k"}),
        ('{"TMDB_ACCESS_TOKEN": "t", "TMDB_API_KEY": "k"}', {"api_key": "k", "access_token": "t"}),
    ],
)  # fmt: skip
def test_secret_shapes(value: str, expected: dict[str, str]) -> None:
    """A raw key, a raw JWT token, or JSON with the documented names are understood."""
    parsed = parse_secret(value, source="test")
    assert {k: v.get() for k, v in parsed.items()} == expected


@pytest.mark.parametrize("value", ["", "  ", "{not json hunter2", '{"password": "hunter2"}'])
def test_unusable_secret_is_a_config_error_without_the_value(value: str) -> None:
    """An empty, broken or unrecognised secret is a ConfigError that names the source only."""
    with pytest.raises(ConfigError, match="source-name") as info:
        parse_secret(value, source="source-name")
    assert "hunter2" not in str(info.value)


@pytest.mark.slow
def test_chain_demo_runs_to_completion() -> None:
    """examples/lambda_chain_demo.py, on a small sample, chains invocations until done."""
    result = subprocess.run(
        [sys.executable, str(ROOT / "examples" / "lambda_chain_demo.py"),
         "--movies", "8000", "--seconds", "6"],
        capture_output=True, text=True, timeout=120, cwd=ROOT,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stdout.splitlines() if line.startswith("invocation ")]
    assert len(lines) >= 2
    assert '"done": true' in lines[-1] or '"done":true' in lines[-1]


def json_lines(text: str) -> list[dict[str, Any]]:
    """Every line of ``text``, each parsed as one JSON object (a non-JSON line fails)."""
    return [orjson.loads(line) for line in text.splitlines() if line.strip()]


def test_log_lines_are_json_with_the_request_and_one_metrics_line(
    env: None, bucket: str, csv_key: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """Every line is JSON carrying the request id and cold start; the summary's fields are
    fields of the summary line; exactly one line per invocation holds EMF metrics whose
    values are the summary's."""
    monkeypatch.setattr(lambda_handler, "_cold_start", True)
    event = {"csv": f"s3://{bucket}/{csv_key[0]}"}
    contexts = [context(60.0), context(60.0)]
    results = []
    for ctx in contexts:
        capsys.readouterr()
        results.append(handler(event, ctx))
        lines = json_lines(capsys.readouterr().err)
        assert lines
        assert {line["request_id"] for line in lines} == {ctx.aws_request_id}
        assert {line["cold_start"] for line in lines} == {ctx is contexts[0]}
        (summary,) = [line for line in lines if line["message"].partition(":")[0] == "summary"]
        assert {k: summary[k] for k in results[-1]} == results[-1]
        (emf,) = [line for line in lines if "_aws" in line]
        (directive,) = emf["_aws"]["CloudWatchMetrics"]
        assert directive["Namespace"] == "tmdb_ingest"
        assert directive["Dimensions"] == [["function"]]
        names = [m["Name"] for m in directive["Metrics"]]
        assert names == ["fetched", "not_found", "failed", "requests", "throttled", "elapsed"]
        assert {m["Unit"] for m in directive["Metrics"]} == {"Count", "Seconds"}
        for name in names[:-1]:
            assert emf[name] == results[-1][name]
        assert emf["elapsed"] == results[-1]["elapsed_s"]
        assert isinstance(emf["_aws"]["Timestamp"], int)
        assert isinstance(emf["function"], str)
    assert results[0]["fetched"] > 0
    assert results[1]["fetched"] == 0  # the second invocation resumed a finished run


def _summary(**changes: Any) -> Summary:
    fields: dict[str, Any] = dict.fromkeys(
        ("selected", "skipped", "fetched", "not_found", "failed", "batches", "requests",
         "retries", "throttled"), 0,
    )  # fmt: skip
    fields.update(run_id="run-x", shard="0/1", elapsed_s=0.5, done=False, report=None)
    return Summary(**{**fields, **changes})


def test_busy_run_returns_the_busy_summary_instead_of_raising(
    env: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """When another invocation holds the run, the handler returns done: false, busy: true
    with the summary, logs it as fields, and still writes its metrics line."""

    async def held(*_args: Any, **_kwargs: Any) -> Summary:
        error = RunBusy("run run-x shard 0/1 is held by another invocation until 12:00:30")
        error.summary = _summary(selected=40, busy=True)
        raise error

    monkeypatch.setattr(lambda_handler, "ingest_csv", held)
    result = handler({"csv": "s3://some-bucket/movies.csv"}, context(60.0))
    assert result["done"] is False
    assert result["busy"] is True
    assert result["selected"] == 40
    assert result["run_id"] == "run-x"
    lines = json_lines(capsys.readouterr().err)
    (busy,) = [line for line in lines if line["message"].startswith("busy:")]
    assert "held by another invocation" in busy["message"]
    assert busy["busy"] is True
    assert len([line for line in lines if "_aws" in line]) == 1


def test_fatal_stop_logs_and_raises_the_summary_with_its_error(
    env: None, bucket: str, csv_key: tuple[str, list[str]], monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    """A rejected key raises IngestFailed whose one line holds the reason and the summary
    with its error field; the log line carries the same summary as fields."""
    monkeypatch.setenv("TMDB_API_KEY", "wrong-" + SECRET)
    with pytest.raises(IngestFailed) as info:
        handler({"csv": f"s3://{bucket}/{csv_key[0]}"}, context(60.0))
    message = str(info.value)
    reason, _, summary_json = message.partition("; summary so far: ")
    data = orjson.loads(summary_json)
    assert data["error"] == reason
    assert "rejected" in reason
    assert info.value.summary is not None
    assert info.value.summary.error == reason
    lines = json_lines(capsys.readouterr().err)
    (fatal,) = [line for line in lines if line["message"].startswith("fatal:")]
    assert fatal["message"] == f"fatal: {message}"
    assert fatal["error"] == reason
    assert fatal["run_id"] == data["run_id"]
    assert len([line for line in lines if "_aws" in line]) == 1
    assert SECRET not in message + "".join(str(line) for line in lines)


def test_placeholder_secret_is_refused_before_any_request(
    env: None, bucket: str, csv_key: tuple[str, list[str]], s3_endpoint: str,
    tmdb: EmulatorThread, monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """A secret still holding the template's REPLACE_ME is a ConfigError naming the secret,
    and TMDB is never asked."""
    monkeypatch.delenv("TMDB_API_KEY")
    name = f"tmdb-{uuid.uuid4().hex[:8]}"
    client = boto3.client("secretsmanager", endpoint_url=s3_endpoint, region_name="us-east-1")
    client.create_secret(Name=name, SecretString='{"api_key": "REPLACE_ME"}')
    client.close()
    monkeypatch.setenv("AWS_ENDPOINT_URL_SECRETS_MANAGER", s3_endpoint)
    monkeypatch.setenv("TMDB_SECRET_ID", name)
    with pytest.raises(ConfigError, match=f"Secrets Manager secret '{name}'.*placeholder"):
        handler({"csv": f"s3://{bucket}/{csv_key[0]}"}, context(60.0))
    assert tmdb.stats.requests == 0


@pytest.mark.parametrize("value", ["REPLACE_ME", '{"api_key": "replace_me"}', "set-me"])
def test_placeholder_shapes_are_refused(value: str) -> None:
    """The placeholder is caught raw or inside JSON, whatever its case."""
    with pytest.raises(ConfigError, match="the-source still holds the placeholder"):
        parse_secret(value, source="the-source")


def test_the_image_lock_pins_exactly_the_runtime_dependencies() -> None:
    """requirements.lock pins every runtime dependency once, and nothing of the extras."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    lock = (ROOT / "examples" / "aws" / "requirements.lock").read_text().splitlines()
    pinned = dict(line.split("==") for line in lock if line and not line.startswith("#"))
    for requirement in project["dependencies"]:
        name = requirement.split(">")[0].split("=")[0].split("[")[0].strip()
        assert name in pinned, name
    assert "aiolimiter" not in pinned
    assert "moto" not in pinned
    dockerfile = (ROOT / "examples" / "aws" / "Dockerfile").read_text()
    assert "requirements.lock" in dockerfile
    assert "--no-deps" in dockerfile


def test_a_second_invocation_of_a_held_run_returns_busy_and_the_chain_finishes(
    env: None, s3: Any, bucket: str, csv_key: tuple[str, list[str]], tmdb: EmulatorThread,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """Two invocations of one run at once (an S3 event delivered twice): the second returns
    busy: true having sent nothing; the first's lease names its request id; the run then
    ends with every id exactly once."""
    import threading

    key, ids = csv_key
    monkeypatch.setenv("TMDB_INGEST_RATE", "20")
    monkeypatch.setenv("TMDB_INGEST_LEASE_TTL", "3")
    results: dict[str, Any] = {}
    first_ctx = context(30.0)
    worker = threading.Thread(
        target=lambda: results.update(first=handler(s3_event(bucket, key), first_ctx))
    )
    worker.start()
    try:
        for _ in range(400):  # until the first holds the lease
            listed = s3.list_objects_v2(Bucket=bucket, Prefix="Raw/TMDB/_state/")
            leases = [
                o["Key"] for o in listed.get("Contents", []) if o["Key"].endswith("lease.json")
            ]
            if leases:
                break
            time.sleep(0.05)
        assert leases, "the first invocation never took the lease"
        holder = json.loads(s3.get_object(Bucket=bucket, Key=leases[0])["Body"].read())["holder"]
        assert holder == f"lambda:{first_ctx.aws_request_id}"
        before = tmdb.stats.requests
        second = handler(s3_event(bucket, key), context(30.0))
    finally:
        worker.join(timeout=60)
    assert second["busy"] is True
    assert second["done"] is False
    assert second["requests"] == 0
    assert tmdb.stats.requests >= before
    first = results["first"]
    assert first["done"] is True, first
    assert "busy" not in first
    read_s3(s3, bucket).assert_exactly_once(ids)
