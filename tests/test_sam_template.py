"""The SAM template as SAM deploys it: translated offline (aws-sam-translator), linted
(cfn-lint on the translation, the state machine on its own), its daily refresh schedule,
its IAM, and the events ``make_events.py`` writes for ``sam local invoke``."""

from __future__ import annotations

import copy
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tmdb_ingest.lambda_handler import parse_event

ROOT = Path(__file__).resolve().parents[1]
AWS_DIR = ROOT / "examples" / "aws"
sys.path.insert(0, str(AWS_DIR))
import lint_template  # noqa: E402  (examples/aws is not a package)
import sam_template  # noqa: E402

BUCKET = "lint-bucket"


@pytest.fixture(scope="module")
def template() -> dict[str, Any]:
    return sam_template.load()


@pytest.fixture(scope="module")
def translated(template: dict[str, Any]) -> dict[str, Any]:
    return sam_template.translate(template)


def resolved(cfn: dict[str, Any], value: Any, **parameters: str) -> Any:
    """``value`` of the translated template with its intrinsics resolved (fake ids)."""
    resources = cfn["Resources"]
    resolver = sam_template.Resolver(
        cfn,
        {"BucketName": BUCKET, **parameters},
        refs={name: f"{name}-id" for name in resources},
        attributes={f"{name}.Arn": f"arn:aws:test:::{name}" for name in resources},
    )
    return resolver.resolve(value)


@pytest.mark.slow
def test_the_template_and_its_state_machine_lint_clean(
    template: dict[str, Any], translated: dict[str, Any]
) -> None:
    """What ``make lint`` runs finds nothing in the template and the ASL as they are."""
    cfn, findings = lint_template.lint_template(template)
    assert findings == []
    assert cfn == translated
    assert lint_template.lint_definition(translated, template) == []


@pytest.mark.slow
@pytest.mark.parametrize(
    ("breakage", "expected"),
    [
        # cfn-lint on the SAM template itself passes all three of these.
        (("Resources", "IngestFunction", "Properties", "Architectures", ["x86"]),
         "Resources/IngestFunction/Properties/Architectures/0: 'x86' is not one of"),
        (("Globals", "Function", "Timeout", 1000),
         "Resources/ShardFunction/Properties/Timeout: 1000 is greater than the maximum"),
        (("Resources", "ShardFunction", "Properties", "Runtime", "python3.99"),
         "Resources/ShardFunction: Runtime, Handler, Layers cannot be present"),
    ],
)  # fmt: skip
def test_a_broken_resource_fails_the_lint(
    template: dict[str, Any], breakage: tuple[Any, ...], expected: str
) -> None:
    """A property SAM or CloudFormation would refuse is a finding naming the resource."""
    broken = copy.deepcopy(template)
    *path, name, value = breakage
    node = broken
    for part in path:
        node = node[part]
    node[name] = value
    _, findings = lint_template.lint_template(broken)
    assert any(f.startswith(expected) for f in findings), findings


@pytest.mark.slow
@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ('"Default": "SameRunAgain"', '"Default": "SameRunAgian"',
         "FanOut[0]/IsDone: goes to 'SameRunAgian', which is not a state of its block"),
        ('"ToleratedFailurePercentage": 0.0', '"ToleratedFailurePercentage": 0',
         "no viable alternative at input '\"ToleratedFailurePercentage\":0'"),
        ('"Type": "Wait"', '"Type": "Sleep"', "'Sleep' is not one of ['Pass', 'Task'"),
    ],
)  # fmt: skip
def test_a_broken_state_machine_fails_the_lint(
    template: dict[str, Any], translated: dict[str, Any], tmp_path: Path, old: str, new: str,
    expected: str,
) -> None:  # fmt: skip
    """A dangling state name, what moto's grammar refuses, a bad state type: each found,
    for every Shards value."""
    text = (AWS_DIR / "statemachine.asl.json").read_text()
    assert old in text
    (tmp_path / "statemachine.asl.json").write_text(text.replace(old, new))
    findings = lint_template.lint_definition(translated, template, tmp_path)
    matching = [f for f in findings if expected in f]
    assert len(matching) >= 4, findings  # Shards 1, 2, 4 and 8 (cfn-lint: per resource)


@pytest.mark.slow
def test_the_lint_script_exits_1_with_the_finding(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lint_template.py --template`` (what ``make lint`` runs, here in this process)
    fails on a broken copy, one line naming the resource, and passes on the template."""
    text = (AWS_DIR / "template.yaml").read_text()
    broken = text.replace("MemorySize: 512", "MemorySize: 100000")
    assert broken != text
    (tmp_path / "template.yaml").write_text(broken)
    (tmp_path / "statemachine.asl.json").write_text((AWS_DIR / "statemachine.asl.json").read_text())
    assert lint_template.main(["--template", str(tmp_path / "template.yaml")]) == 1
    out = capsys.readouterr().out
    assert out.splitlines() == [
        "template.yaml: Resources/IngestFunction/Properties/MemorySize: 100000 is greater "
        "than the maximum of 32768 [E3034]",
        "template.yaml: Resources/ShardFunction/Properties/MemorySize: 100000 is greater "
        "than the maximum of 32768 [E3034]",
    ]
    assert lint_template.main([]) == 0
    assert "cfn-lint clean" in capsys.readouterr().out


def test_the_daily_refresh_runs_at_nine_utc_with_the_refresh_event(
    translated: dict[str, Any],
) -> None:
    """One EventBridge rule: 09:00 UTC every day, the event ``{"refresh": {}}``, to
    IngestFunction, enabled unless ``DailyRefresh=false``; Lambda lets only it invoke."""
    resources = translated["Resources"]
    rules = {n: r for n, r in resources.items() if r["Type"] == "AWS::Events::Rule"}
    [(name, rule)] = rules.items()
    properties = rule["Properties"]
    assert properties["ScheduleExpression"] == "cron(0 9 * * ? *)"  # EventBridge cron: UTC
    [target] = properties["Targets"]
    assert json.loads(target["Input"]) == {"refresh": {}}
    assert target["Arn"] == {"Fn::GetAtt": ["IngestFunction", "Arn"]}
    assert resolved(translated, properties["State"]) == "ENABLED"
    assert resolved(translated, properties["State"], DailyRefresh="false") == "DISABLED"
    permissions = [
        r["Properties"]
        for r in resources.values()
        if r["Type"] == "AWS::Lambda::Permission"
        and r["Properties"]["Principal"] == "events.amazonaws.com"
    ]
    assert permissions == [
        {
            "Action": "lambda:InvokeFunction",
            "FunctionName": {"Ref": "IngestFunction"},
            "Principal": "events.amazonaws.com",
            "SourceArn": {"Fn::GetAtt": [name, "Arn"]},
        }
    ]


def test_iam_is_least_privilege(translated: dict[str, Any]) -> None:
    """The two roles the template defines are the only ones (SAM adds none, not for the
    schedule either); no wildcard action or resource; S3 only under the bucket's input,
    catalogue, output and state prefixes."""
    roles = {n: r for n, r in translated["Resources"].items() if r["Type"] == "AWS::IAM::Role"}
    assert sorted(roles) == ["FunctionRole", "StateMachineRole"]
    prefixes = [
        f"arn:aws:s3:::{BUCKET}/Raw/Local/CSV/*",
        f"arn:aws:s3:::{BUCKET}/Raw/Local/Catalogue/*",
        f"arn:aws:s3:::{BUCKET}/Raw/TMDB/JSON/*",
        f"arn:aws:s3:::{BUCKET}/Raw/TMDB/_state/*",
    ]
    for name, role in roles.items():
        assert "ManagedPolicyArns" not in role["Properties"], name
        for policy in resolved(translated, role["Properties"]["Policies"]):
            for statement in policy["PolicyDocument"]["Statement"]:
                actions = statement["Action"]
                actions = [actions] if isinstance(actions, str) else actions
                resources = statement["Resource"]
                resources = [resources] if isinstance(resources, str) else resources
                assert statement["Effect"] == "Allow"
                assert all("*" not in a for a in actions), statement
                assert all(r != "*" for r in resources), statement
                for action in actions:
                    if action in ("s3:GetObject", "s3:PutObject", "s3:DeleteObject"):
                        assert set(resources) <= set(prefixes), statement
                    if action == "s3:ListBucket":
                        assert resources == [f"arn:aws:s3:::{BUCKET}"]
                        assert "Condition" in statement  # only with s3:prefix under ours


@pytest.mark.slow
def test_make_events_writes_events_the_handler_accepts_for_your_bucket(tmp_path: Path) -> None:
    """``make_events.py --bucket --secret-arn`` (docs/deployment.md): each event parses,
    names your bucket's catalogue prefix (no trigger there), a key with a space is
    URL-encoded as S3 sends it, the shard is 0-based; env.json carries the secret's ARN."""
    arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:tmdb-abc"
    result = subprocess.run(
        [sys.executable, str(AWS_DIR / "make_events.py"), "--bucket", "my-lake-42",
         "--secret-arn", arn, "--key", "Raw/Local/Catalogue/movies 2025.csv",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    written = sorted(p.name for p in (tmp_path / "events").iterdir())
    assert written == ["csv-shard.json", "csv.json", "s3-put.json"]
    for name in written:
        event = json.loads((tmp_path / "events" / name).read_text())
        csv, run_id, shard = parse_event(event)
        assert csv == "s3://my-lake-42/Raw/Local/Catalogue/movies 2025.csv", name
        assert run_id is None
        if name == "s3-put.json":
            assert event["Records"][0]["s3"]["object"]["key"].endswith("movies+2025.csv")
        if name == "csv-shard.json":
            assert str(shard) == "0/4"
    env = json.loads((tmp_path / "env.json").read_text())
    assert env == {f: {"TMDB_SECRET_ID": arn} for f in ("IngestFunction", "ShardFunction")}
    refused = subprocess.run(
        [sys.executable, str(AWS_DIR / "make_events.py"), "--bucket", "My_Bucket",
         "--secret-arn", arn, "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert refused.returncode == 2
    assert "not a valid S3 bucket name" in refused.stderr
