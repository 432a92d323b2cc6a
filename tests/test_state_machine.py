"""The SAM template's state machine, executed: moto's Step Functions interpreter runs the
definition with its substitutions resolved from the template, and every Lambda task
invokes the real handler in a fresh process, as Lambda does.

What is real: the template (translated by aws-sam-translator, its intrinsics resolved),
the state machine (moto's ASL interpreter, Distributed Map, Retry, Catch), the handler
(``tmdb_ingest.lambda_handler.handler`` under awslambdaric's ``LambdaContext``, in its
own process, with the function's environment variables from the template), S3 and
Secrets Manager (moto's server over HTTP) and TMDB (the emulator over TCP).

What is the test's: moto's Lambda service does not run code without Docker, so its
``invoke`` is routed here (:class:`FakeLambda`), which starts the process, enforces the
function's timeout and, when told to, kills an invocation (``Sandbox.Timedout``), loses
its reply after it ran (``Lambda.ServiceException``) or gives it a slow cold start. The
functions' timeout and the lease TTL are shortened (20 s instead of 900 s, 3 s instead of
30 s) so that a killed holder's lease has expired when the Retry comes, 5 s later.

moto's Distributed Map reports ``SUCCEEDED`` even when an iteration ends in a ``Fail``
state, and keeps the iterations' own histories where no API returns them, so the test
records each iteration's end (:func:`record_shards`: what AWS shows as the map run's
child executions) and checks every shard's own outcome: its result, or its error and
cause.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from moto.awslambda_simple.models import LambdaSimpleBackend
from moto.core.exceptions import JsonRESTError
from moto.s3.models import S3Backend
from moto.server import ThreadedMotoServer
from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration.itemprocessor.distributed_item_processor_worker import (  # noqa: E501
    DistributedItemProcessorWorker,
)
from moto.stepfunctions.parser.asl.eval.program_state import ProgramError

from tests.helpers import read_s3
from tmdb_ingest.emulator.sample import generate_movies_csv
from tmdb_ingest.emulator.server import EmulatorConfig, EmulatorThread
from tmdb_ingest.selection.reader import select_ids

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "examples" / "aws"))
import sam_template  # noqa: E402  (examples/aws is not a package)

pytestmark = pytest.mark.slow

SECRET = "sfn-secret-" + uuid.uuid4().hex  # distinctive, so a leak cannot hide
REGION = "us-east-1"
TIMEOUT_S = 20  # the functions' timeout here (the template's: 900 s)
PLATFORM_TUNING = {
    # A killed holder's lease must expire before the retry (5 s later) comes.
    "TMDB_INGEST_LEASE_TTL": "3",
    "TMDB_INGEST_LEASE_SKEW": "0.5",
}
KILL, LOSE_REPLY, SLOW_START = "kill", "lose reply", "slow start"
SLOW_START_LEFT_S = 3.2  # what a slow cold start leaves: a budget of 1.2 s
# Lambda kills at the deadline. Here the processes share two cores with the rest of the
# suite (botocore's models and polars take seconds to load then), so an invocation
# counts as timed out only this long after its deadline; no test relies on that kill.
KILL_GRACE_S = 30.0
MOVIES = 4000  # 106 selected with the template's defaults


class ServiceException(JsonRESTError):
    """Lambda's own 500: the invocation may or may not have run."""

    code = 500

    def __init__(self) -> None:
        super().__init__("ServiceException", "the reply was lost (injected by the test)")


@dataclass
class Invocation:
    """One invocation as the fake Lambda service saw it."""

    function: str
    shard: str
    number: int  # the shard's 1st, 2nd, ... invocation
    plan: str | None
    event: dict[str, Any]
    started: float
    ended: float = 0.0
    outcome: str = ""  # returned, error, killed, lost reply
    result: dict[str, Any] | None = None
    error: dict[str, Any] | None = None
    stderr: str = ""

    def describe(self) -> str:
        """One line: which, what befell it, how long, what it returned."""
        result = self.result or {}
        counts = ", ".join(f"{k} {result[k]}" for k in ("done", "requests", "fetched", "skipped")
                           if k in result)  # fmt: skip
        error = self.error["errorType"] if self.error else ""
        return (
            f"shard {self.shard} #{self.number} ({self.plan or 'as usual'}): {self.outcome} "
            f"after {self.ended - self.started:.1f} s; {counts}{error}"
        )


@dataclass
class FakeLambda:
    """moto's Lambda ``invoke`` routed to the real handler, one process per invocation.

    ``plans`` maps ``(shard, n)`` (the shard's n-th invocation, 1-based) or ``(shard,
    "*")`` to what befalls it: :data:`KILL` (SIGKILL while S3 takes its first data file:
    the manifest and the data file land, the checkpoint never does), :data:`LOSE_REPLY`
    (it runs to the end, then the caller gets ``ServiceException``), :data:`SLOW_START`
    (the cold start used all but ``SLOW_START_LEFT_S`` of the timeout).
    """

    platform_env: dict[str, str]
    plans: dict[tuple[str, Any], str] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # shard -> (its invocation to kill, the event set once killed, its manifests' names)
    _armed: dict[str, tuple[subprocess.Popen[str], threading.Event, set[str]]] = field(
        default_factory=dict
    )

    def on_s3_put(self, key: str) -> None:
        """Called by moto's S3 for every object put, before it is stored: kills an armed
        invocation when its shard's data file named like a manifest it wrote arrives."""
        base = key.rsplit("/", 1)[-1]
        with self._lock:
            for shard, (process, killed, names) in list(self._armed.items()):
                index, count = shard.split("/")
                if f"/shard-{index}-of-{count}/" in key:  # its state: manifests among it
                    names.add(base.removesuffix(".json"))
                elif "/_" not in key and any(base.startswith(n) for n in names if len(n) > 12):
                    process.kill()  # the put goes on: S3 has it, the invocation never knows
                    killed.set()
                    del self._armed[shard]

    def invoke(
        self,
        backend: LambdaSimpleBackend,
        function_name: str,
        qualifier: str | None,
        body: Any,
        headers: Any,
        response_headers: dict[str, str],
    ) -> bytes:
        function = backend.get_function(function_name, qualifier)
        event = json.loads(body)
        shard = str(event.get("shard", ""))
        with self._lock:
            number = 1 + sum(i.shard == shard and i.function == function.function_name
                             for i in self.invocations)  # fmt: skip
            plan = self.plans.get((shard, number), self.plans.get((shard, "*")))
            call = Invocation(function.function_name, shard, number, plan, event, time.monotonic())
            self.invocations.append(call)
        env = {
            "PATH": os.environ.get("PATH", ""),
            "PYTHONPATH": str(ROOT),
            "HOME": os.environ.get("HOME", "/tmp"),
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
            "AWS_ACCESS_KEY_ID": "testing",
            "AWS_SECRET_ACCESS_KEY": "testing",
            "AWS_REGION": REGION,
            "AWS_DEFAULT_REGION": REGION,
            "AWS_LAMBDA_FUNCTION_NAME": function.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(function.memory_size),
            **function.environment_vars,
            **self.platform_env,
        }
        request = {
            "event": event,
            "timeout_s": function.timeout,
            "request_id": uuid.uuid4().hex,
            "init_used_s": function.timeout - SLOW_START_LEFT_S if plan == SLOW_START else 0,
        }
        allowed = function.timeout - request["init_used_s"]  # from the handler's start
        stdout, stderr, killed = self._run(env, request, allowed, shard, plan)
        call.ended, call.stderr = time.monotonic(), stderr
        lines = [line for line in stdout.splitlines() if line and line != "ready"]
        if killed:
            call.outcome = "killed"
            call.error = {
                "errorType": "Sandbox.Timedout",
                "errorMessage": f"Task timed out after {function.timeout:.2f} seconds",
            }
        elif not lines:
            call.outcome = "crashed"
            call.error = {"errorType": "Runtime.ExitError", "errorMessage": stderr[-500:]}
        else:
            reply = json.loads(lines[-1])
            if "result" in reply:
                call.outcome, call.result = "returned", reply["result"]
            else:
                call.outcome, call.error = "error", reply
        if call.error is not None:
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(call.error).encode()
        if plan == LOSE_REPLY:
            call.outcome = "lost reply"
            raise ServiceException()
        return json.dumps(call.result).encode()

    def _run(
        self, env: dict[str, str], request: dict[str, Any], timeout: float, shard: str,
        plan: str | None,
    ) -> tuple[str, str, bool]:  # fmt: skip
        """Run one invocation; kill it ``timeout`` s after the handler started (or as
        planned). Returns (stdout, stderr, killed)."""
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.lambda_runner"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=env, cwd=ROOT, text=True,
        )  # fmt: skip
        assert process.stdin is not None
        assert process.stdout is not None
        process.stdin.write(json.dumps(request))
        process.stdin.close()
        killed = threading.Event()
        ready = threading.Event()
        out: list[str] = []
        err: list[str] = []

        def read_stdout() -> None:
            assert process.stdout is not None
            for line in process.stdout:
                out.append(line)
                if line.strip() == "ready":
                    ready.set()

        def read_stderr() -> None:  # (a full pipe would block the handler's logging)
            assert process.stderr is not None
            err.extend(process.stderr)

        readers = [threading.Thread(target=f, daemon=True) for f in (read_stdout, read_stderr)]
        for reader in readers:
            reader.start()
        if plan == KILL:
            with self._lock:
                self._armed[shard] = (process, killed, set())
        try:
            # Lambda's init phase has its own 10 s; the timeout starts when the handler does.
            ready.wait(timeout=30)
            process.wait(timeout=timeout + KILL_GRACE_S)
        except subprocess.TimeoutExpired:
            process.kill()
            killed.set()
        finally:
            if process.poll() is None:
                process.kill()
            process.wait()
            for reader in readers:
                reader.join(timeout=5)
            process.stdout.close()
            if process.stderr is not None:
                process.stderr.close()
            with self._lock:
                self._armed.pop(shard, None)
        return "".join(out), "".join(err), killed.is_set()


@dataclass
class ShardOutcome:
    """One Distributed Map iteration (a shard) as AWS would show its child execution."""

    execution: str  # the parent execution's ARN
    index: int
    input: Any
    status: str  # SUCCEEDED or FAILED
    error: str | None = None
    cause: str | None = None
    output: Any = None


def record_shards(patch: pytest.MonkeyPatch, outcomes: list[ShardOutcome]) -> None:
    """Record every Distributed Map iteration's end: moto keeps them in a history of their
    own that no API returns, and counts a failed one as a success of the execution."""
    original = DistributedItemProcessorWorker._eval_job

    def eval_job(worker: DistributedItemProcessorWorker, env: Any, job: Any) -> None:
        original(worker, env, job)
        execution = env.states.context_object.context_object_data["Execution"]["Id"]
        state = env.program_state()
        outcome = ShardOutcome(execution, job.job_index, job.job_input, "SUCCEEDED")
        if isinstance(state, ProgramError) or job.job_output is None:
            details = (state.error if isinstance(state, ProgramError) else None) or {}
            outcome.status = "FAILED"
            outcome.error, outcome.cause = details.get("error"), details.get("cause")
        else:
            outcome.output = job.job_output
        outcomes.append(outcome)

    patch.setattr(DistributedItemProcessorWorker, "_eval_job", eval_job)


@dataclass
class Aws:
    """moto's server with Step Functions executing and Lambda routed to :class:`FakeLambda`."""

    endpoint: str
    lam: FakeLambda
    emulator: EmulatorThread
    shards: list[ShardOutcome]

    def client(self, service: str) -> Any:
        return boto3.client(service, endpoint_url=self.endpoint, region_name=REGION)


@pytest.fixture(scope="module")
def aws() -> Iterator[Aws]:
    """moto's server (its own: its config is changed), the emulator, the fake Lambda."""
    with contextlib.ExitStack() as stack:
        patch = stack.enter_context(pytest.MonkeyPatch.context())
        for name, value in (("AWS_ACCESS_KEY_ID", "testing"),
                            ("AWS_SECRET_ACCESS_KEY", "testing"),
                            ("AWS_DEFAULT_REGION", REGION)):  # fmt: skip
            patch.setenv(name, value)
        server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
        server.start()
        stack.callback(server.stop)
        host, port = server.get_host_and_port()
        endpoint = f"http://{host}:{port}"
        # The interpreter calls Lambda through the server it runs in, found by its port.
        patch.setenv("MOTO_PORT", str(port))
        config_url = f"{endpoint}/moto-api/config"
        # (moto's GET leaves out stepfunctions, whose default is not to execute)
        before = {"stepfunctions": {"execute_state_machine": False},
                  **requests.get(config_url, timeout=10).json()}  # fmt: skip
        requests.post(
            config_url,
            json={"stepfunctions": {"execute_state_machine": True},
                  "lambda": {"use_docker": False}},
            timeout=10,
        ).raise_for_status()  # fmt: skip
        stack.callback(
            lambda: requests.post(
                config_url,
                json={"stepfunctions": before["stepfunctions"], "lambda": before["lambda"]},
                timeout=10,
            )
        )
        emulator = stack.enter_context(
            EmulatorThread(EmulatorConfig(api_key=SECRET, latency_ms=20, seed=5))
        )
        platform = {
            "AWS_ENDPOINT_URL_S3": endpoint,
            "AWS_ENDPOINT_URL_SECRETS_MANAGER": endpoint,
            "TMDB_URL": emulator.url,
            **PLATFORM_TUNING,
        }
        lam = FakeLambda(platform_env=platform)

        def invoke(backend: LambdaSimpleBackend, *args: Any) -> bytes:
            return lam.invoke(backend, *args)

        patch.setattr(LambdaSimpleBackend, "invoke", invoke)
        put_object = S3Backend.put_object

        def put_and_watch(backend: S3Backend, bucket: str, key: str, *args: Any, **kw: Any) -> Any:
            lam.on_s3_put(key)
            return put_object(backend, bucket, key, *args, **kw)

        patch.setattr(S3Backend, "put_object", put_and_watch)
        shards: list[ShardOutcome] = []
        record_shards(patch, shards)
        yield Aws(endpoint, lam, emulator, shards)


@pytest.fixture(scope="module")
def translated() -> dict[str, Any]:
    """The template as CloudFormation sees it after SAM's transform."""
    return sam_template.translate(sam_template.load())


@dataclass
class Stack:
    """What :func:`deploy` made in moto for one stack of the template."""

    name: str
    bucket: str
    secret_arn: str
    function_name: str
    function_env: dict[str, str]
    state_machine_arn: str
    catalogue_prefix: str
    shards: int


def deploy(aws: Aws, cfn: dict[str, Any], name: str, **parameters: str) -> Stack:
    """Create in moto what the template creates for the state-machine path, as
    CloudFormation would: the secret (the placeholder, then the key put as
    docs/deployment.md says), the bucket, the roles, ShardFunction with its environment,
    the state machine with its substitutions."""
    parameters = {"BucketName": f"{name}-{uuid.uuid4().hex[:8]}", **parameters}
    resolver = sam_template.Resolver(cfn, parameters, pseudo={"AWS::StackName": name})
    resources = cfn["Resources"]
    secrets, iam, lam = aws.client("secretsmanager"), aws.client("iam"), aws.client("lambda")
    secret = secrets.create_secret(
        Name=f"{name}-TmdbSecret",
        SecretString=resolver.resolve(resources["TmdbSecret"]["Properties"]["SecretString"]),
    )
    secrets.put_secret_value(SecretId=secret["ARN"], SecretString=json.dumps({"api_key": SECRET}))
    resolver.refs["TmdbSecret"] = secret["ARN"]
    bucket = resolver.values["BucketName"]
    aws.client("s3").create_bucket(Bucket=bucket)
    for role in ("FunctionRole", "StateMachineRole"):
        trust = resolver.resolve(resources[role]["Properties"]["AssumeRolePolicyDocument"])
        created = iam.create_role(
            RoleName=f"{name}-{role}", AssumeRolePolicyDocument=json.dumps(trust)
        )
        resolver.attributes[f"{role}.Arn"] = created["Role"]["Arn"]
    resolver.refs["ShardLogGroup"] = f"/aws/lambda/{name}-shard"
    function = sam_template.function_config(cfn, "ShardFunction", resolver)
    # CloudFormation passes every variable as a string (the mapping's numbers too).
    variables = {k: str(v) for k, v in function["Environment"]["Variables"].items()}
    created_function = lam.create_function(
        FunctionName=function["FunctionName"],
        Role=function["Role"],
        PackageType=function["PackageType"],
        Code=function["Code"],
        MemorySize=function["MemorySize"],
        Timeout=TIMEOUT_S,
        Architectures=function["Architectures"],
        Environment={"Variables": variables},
    )
    resolver.attributes["ShardFunction.Arn"] = created_function["FunctionArn"]
    _, machine = sam_template.state_machine(cfn)
    created_machine = aws.client("stepfunctions").create_state_machine(
        name=resolver.resolve(machine["StateMachineName"]),
        definition=sam_template.definition(cfn, resolver),
        roleArn=resolver.resolve(machine["RoleArn"]),
        type=machine["StateMachineType"],
    )
    return Stack(
        name=name,
        bucket=bucket,
        secret_arn=secret["ARN"],
        function_name=function["FunctionName"],
        function_env=variables,
        state_machine_arn=created_machine["stateMachineArn"],
        catalogue_prefix=resolver.values["CataloguePrefix"],
        shards=int(resolver.values["Shards"]),
    )


@pytest.fixture(scope="module")
def catalogue(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A sample movies.csv (106 ids selected with the template's defaults)."""
    path = tmp_path_factory.mktemp("catalogue") / "movies.csv"
    generate_movies_csv(path, movies=MOVIES, seed=21)
    return path


def upload(aws: Aws, stack: Stack, path: Path) -> str:
    """Put the CSV under the catalogue prefix, as docs/deployment.md says; its URI."""
    key = f"{stack.catalogue_prefix}movies.csv"
    aws.client("s3").upload_file(str(path), stack.bucket, key)
    return f"s3://{stack.bucket}/{key}"


@dataclass
class Execution:
    """One execution of the state machine, and what the test saw of it."""

    status: str
    output: Any
    shards: list[ShardOutcome]  # by shard index
    invocations: list[Invocation]
    seconds: float

    def by_shard(self, shard: str) -> list[Invocation]:
        return sorted((i for i in self.invocations if i.shard == shard), key=lambda i: i.number)


def execute(aws: Aws, stack: Stack, given: dict[str, Any], plans: dict[Any, str]) -> Execution:
    """Start the state machine with ``given``, the fake Lambda following ``plans``; wait."""
    sfn = aws.client("stepfunctions")
    aws.lam.plans = plans
    seen = len(aws.lam.invocations)
    started = time.monotonic()
    arn = sfn.start_execution(
        stateMachineArn=stack.state_machine_arn,
        name=f"test-{uuid.uuid4().hex[:12]}",  # (without one, moto's context ids end ":None")
        input=json.dumps(given),
    )
    end = started + 180
    while (described := sfn.describe_execution(executionArn=arn["executionArn"]))[
        "status"
    ] == "RUNNING":
        if time.monotonic() > end:  # stopped, so that it invokes nothing after the test
            sfn.stop_execution(executionArn=arn["executionArn"])
            pytest.fail("the execution did not end within 180 s")
        time.sleep(0.2)  # waiting for processes to finish, not timing them
    took = time.monotonic() - started
    shards = sorted(
        (s for s in aws.shards if s.execution == arn["executionArn"]), key=lambda s: s.index
    )
    calls = [i for i in aws.lam.invocations[seen:] if i.function == stack.function_name]
    output = json.loads(described["output"]) if described.get("output") else None
    execution = Execution(described["status"], output, shards, calls, took)
    print(f"\n{stack.name}: {described['status']} in {took:.1f} s, {len(calls)} invocations")
    for call in calls:
        print("  " + call.describe())
    for shard in shards:
        print(
            f"  shard {shard.index}: {shard.status} {shard.error or ''} {(shard.cause or '')[:160]}"
        )
    return execution


def test_the_shards_run_to_done_through_a_kill_a_lost_reply_and_a_slow_start(
    aws: Aws, translated: dict[str, Any], catalogue: Path
) -> None:
    """Two shards to done: shard 0's first invocation is SIGKILLed as its data file lands
    (Sandbox.Timedout, retried); shard 1's first has a slow cold start (no request sent,
    not done: the loop goes on) and its second's reply is lost after it ran
    (Lambda.ServiceException, retried). Every selected id exactly once."""
    stack = deploy(aws, translated, "tmdb-ingest", Shards="2")
    csv = upload(aws, stack, catalogue)
    plans = {("0/2", 1): KILL, ("1/2", 1): SLOW_START, ("1/2", 2): LOSE_REPLY}
    run = execute(aws, stack, {"csv": csv}, plans)

    assert run.status == "SUCCEEDED"
    assert [s.status for s in run.shards] == ["SUCCEEDED", "SUCCEEDED"], run.shards
    summaries = [s.output for s in run.shards]
    assert run.output == summaries  # the Map's output: each shard's last summary
    assert [s["shard"] for s in summaries] == ["0/2", "1/2"]
    assert all(s["done"] is True for s in summaries)
    assert len({s["run_id"] for s in summaries}) == 1
    selection = select_ids(
        catalogue,
        genres=stack.function_env["TMDB_INGEST_GENRES"].split(","),
        votes_above=int(stack.function_env["TMDB_INGEST_VOTES_ABOVE"]),
    )
    assert sum(s["selected"] for s in summaries) == len(selection.ids) > 50
    read_s3(aws.client("s3"), stack.bucket).assert_exactly_once(selection.ids)

    first, *rest = run.by_shard("0/2")
    assert first.outcome == "killed", "the kill never came: no data file after a manifest?"
    assert first.error is not None
    assert first.error["errorType"] == "Sandbox.Timedout"
    assert rest
    assert rest[0].event == first.event
    assert rest[-1].result is not None
    assert rest[-1].result["done"] is True

    slow, lost, *after = run.by_shard("1/2")
    assert slow.plan == SLOW_START
    assert slow.result is not None
    assert slow.result["done"] is False
    assert slow.result["requests"] == 0
    assert lost.outcome == "lost reply"
    assert lost.result is not None
    assert lost.result["requests"] > 0  # it ran; only its reply was lost
    assert after
    assert after[0].event == lost.event
    assert after[-1].result is not None
    assert after[-1].result["done"] is True

    for call in run.invocations:
        assert SECRET not in call.stderr
        assert SECRET not in json.dumps(call.result)


def test_a_rejected_key_ends_each_shard_in_the_failure_state_with_the_reason(
    aws: Aws, translated: dict[str, Any], catalogue: Path
) -> None:
    """The key rejected (401, code 10): the shard's first invocation raises IngestFailed,
    the Catch sends it to ShardFailed with the handler's reason, nothing is retried.
    (moto reports the execution SUCCEEDED all the same: only the shard shows it.)"""
    stack = deploy(aws, translated, "tmdb-ingest-rejected", Shards="1")
    csv = upload(aws, stack, catalogue)
    suspended = aws.emulator.config.suspended_key
    assert suspended is not None
    aws.client("secretsmanager").put_secret_value(
        SecretId=stack.secret_arn, SecretString=json.dumps({"api_key": suspended})
    )
    run = execute(aws, stack, {"csv": csv, "run_id": "run-rejected-key"}, {})

    [shard] = run.shards
    assert shard.status == "FAILED", shard
    assert shard.error == "IngestFailed", shard
    assert shard.cause is not None
    cause = json.loads(shard.cause)  # Lambda's error object, as Step Functions passes it
    assert cause["errorType"] == "IngestFailed"
    assert cause["errorMessage"].startswith("TMDB rejected the API key"), cause
    assert suspended not in shard.cause
    [call] = run.by_shard("0/1")  # not retried
    assert call.error is not None
    assert call.error["errorType"] == "IngestFailed"
    assert run.output in (None, [None])  # no summary: the shard failed


def test_a_shard_that_never_gets_to_send_a_request_stops_with_no_progress(
    aws: Aws, translated: dict[str, Any], catalogue: Path
) -> None:
    """Every invocation starts too late to send anything: after three in a row the shard
    ends in NoProgress instead of looping for ever."""
    stack = deploy(aws, translated, "tmdb-ingest-stuck", Shards="1")
    csv = upload(aws, stack, catalogue)
    run = execute(aws, stack, {"csv": csv}, {("0/1", "*"): SLOW_START})

    [shard] = run.shards
    assert shard.status == "FAILED", shard
    assert shard.error == "NoProgress", shard
    calls = run.by_shard("0/1")
    assert len(calls) == 3
    assert all(c.result and c.result["requests"] == 0 and not c.result["done"] for c in calls)
