"""Lint the SAM template as SAM deploys it, and its state machine on its own (``make lint``).

1. ``template.yaml`` is translated offline with aws-sam-translator (what ``sam deploy``
   sends to CloudFormation); a property SAM refuses is a finding naming its resource.
   cfn-lint then checks the CloudFormation SAM produced. (cfn-lint on the SAM template
   itself merges the Globals but does not check a SAM resource's properties as the
   resources they become: an unknown architecture or a 1000 s timeout passes there.)
2. ``statemachine.asl.json``, its ``DefinitionSubstitutions`` resolved from the template
   for every allowed ``Shards``, is checked three ways: cfn-lint's schema of a state
   machine definition (E3601), moto's ASL grammar (the interpreter the tests execute it
   in, stricter in places: it refuses ``"ToleratedFailurePercentage": 0``), and the
   references between states (every ``Next``/``Default`` names a state of its own block,
   every state can be reached from ``StartAt``).

One line per finding, ``where: what [rule]``, and exit status 1; a one-line summary and 0
when clean. ``--template PATH`` lints another copy (the tests break one on purpose).
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
import sam_template  # beside this script (examples/aws is not a package)

FAKE_ARN = "arn:aws:lambda:us-east-1:123456789012:function:tmdb-ingest-shard"
FAKE_ROLE = "arn:aws:iam::123456789012:role/tmdb-ingest-states"


def lint_template(template: Mapping[str, Any]) -> tuple[dict[str, Any] | None, list[str]]:
    """(the translated template or None, the findings) for a loaded SAM template."""
    from samtranslator.model.exceptions import InvalidDocumentException

    try:
        cfn = sam_template.translate(template)
    except InvalidDocumentException as exc:
        return None, [f"{_where(e)}: {_message(e)} [SAM]" for e in exc.causes]
    return cfn, cfn_lint(cfn)


def lint_definition(
    cfn: Mapping[str, Any], template: Mapping[str, Any], base: Path = sam_template.HERE
) -> list[str]:
    """Findings in the state machine's definition (``DefinitionUri`` relative to ``base``),
    for every allowed ``Shards``."""
    import logging

    from moto.stepfunctions.parser.asl.parse.asl_parser import AmazonStateLanguageParser

    # (it warns that ToleratedFailurePercentage has no effect in moto: true, not a finding)
    logging.getLogger("moto.stepfunctions.parser.asl.parse.preprocessor").setLevel(logging.ERROR)

    findings: list[str] = []
    machines: dict[str, Any] = {}
    shards = template["Parameters"]["Shards"]
    for value in shards.get("AllowedValues", [shards["Default"]]):
        resolver = sam_template.Resolver(
            cfn,
            {"BucketName": "lint-bucket", "Shards": str(value)},
            attributes={"ShardFunction.Arn": FAKE_ARN},
        )
        where = f"statemachine.asl.json (Shards={value})"
        text = sam_template.definition(cfn, resolver, base)
        try:
            AmazonStateLanguageParser.parse(text)
        except Exception as exc:  # the grammar's own error types; each is a finding
            findings.append(f"{where}: {' '.join(str(exc).split())} [moto ASL grammar]")
        try:
            definition = json.loads(text)
        except json.JSONDecodeError as exc:
            findings.append(f"{where}: not JSON after substitution: {exc} [JSON]")
            continue
        findings += [f"{where}: {f} [references]" for f in _references(definition, "")]
        machines[f"Shards{value}"] = {
            "Type": "AWS::StepFunctions::StateMachine",
            "Properties": {"RoleArn": FAKE_ROLE, "Definition": definition},
        }
    template_of_machines = {"AWSTemplateFormatVersion": "2010-09-09", "Resources": machines}
    return findings + cfn_lint(template_of_machines)


def cfn_lint(cfn: Mapping[str, Any]) -> list[str]:
    """cfn-lint's findings for a CloudFormation template, each named by its path in it."""
    from cfnlint.api import lint

    text, paths = _json_with_paths(cfn)
    found = []
    for match in lint(text):
        path = paths[match.linenumber - 1] if 0 < match.linenumber <= len(paths) else []
        where = "/".join(str(p) for p in path) or "template"
        found.append(f"{where}: {match.message} [{match.rule.id}]")
    return found


def _references(block: Mapping[str, Any], where: str) -> Iterator[str]:
    """Dangling ``Next``/``Default``/``StartAt`` names and unreachable states, in ``block``
    and in the blocks inside it (Map's ``ItemProcessor``, Parallel's ``Branches``)."""
    states: Mapping[str, Any] = block.get("States", {})
    start = block.get("StartAt")
    if start not in states:
        yield f"{where or 'top'}: StartAt {start!r} is not a state"
    reachable, todo = set(), [start]
    while todo:
        name = todo.pop()
        if name in reachable or name not in states:
            continue
        reachable.add(name)
        state = states[name]
        targets = [state.get("Next"), state.get("Default")]
        targets += [c.get("Next") for c in state.get("Choices", [])]
        targets += [c.get("Next") for c in state.get("Catch", [])]
        for target in targets:
            if target is not None and target not in states:
                yield f"{where}{name}: goes to {target!r}, which is not a state of its block"
            todo.append(target)
        ends = state.get("End") or state["Type"] in ("Succeed", "Fail", "Choice")
        if not ends and state.get("Next") is None:
            yield f"{where}{name}: neither Next nor End"
        inner = [state.get("ItemProcessor") or state.get("Iterator")]
        inner += state.get("Branches", [])
        for n, sub in enumerate(b for b in inner if b):
            yield from _references(sub, f"{where}{name}[{n}]/")
    for name in sorted(set(states) - reachable):
        yield f"{where}{name}: cannot be reached from StartAt"


def _json_with_paths(value: Any) -> tuple[str, list[list[Any]]]:
    """JSON text with one key or item per line, and the path in ``value`` of each line."""
    lines: list[tuple[str, list[Any]]] = []

    def emit(item: Any, path: list[Any], depth: int, prefix: str, last: bool) -> None:
        pad, comma = " " * depth, "" if last else ","
        if isinstance(item, dict) and item:
            lines.append((f"{pad}{prefix}{{", path))
            for n, (key, sub) in enumerate(item.items()):
                emit(sub, [*path, key], depth + 1, json.dumps(key) + ": ", n == len(item) - 1)
            lines.append((f"{pad}}}{comma}", path))
        elif isinstance(item, list) and item:
            lines.append((f"{pad}{prefix}[", path))
            for n, sub in enumerate(item):
                emit(sub, [*path, n], depth + 1, "", n == len(item) - 1)
            lines.append((f"{pad}]{comma}", path))
        else:
            lines.append((f"{pad}{prefix}{json.dumps(item)}{comma}", path))

    emit(value, [], 0, "", True)
    return "\n".join(text for text, _ in lines) + "\n", [path for _, path in lines]


def _where(error: Exception) -> str:
    logical = getattr(error, "_logical_id", None)  # InvalidResourceException's resource
    return f"Resources/{logical}" if isinstance(logical, str) else "template"


def _message(error: Exception) -> str:
    text = getattr(error, "_message", None) or getattr(error, "message", None) or error
    return " ".join(str(text).split())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--template", type=Path, default=sam_template.TEMPLATE)
    args = parser.parse_args(argv)
    template = sam_template.load(args.template)
    cfn, findings = lint_template(template)
    if cfn is not None:
        findings += lint_definition(cfn, template, args.template.resolve().parent)
    for finding in findings:
        print(f"{args.template.name}: {finding}")
    if findings:
        return 1
    resources = len(cfn["Resources"]) if cfn else 0
    print(
        f"{args.template.name}: translated by SAM into {resources} resources, cfn-lint clean; "
        "statemachine.asl.json clean for every Shards value"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
