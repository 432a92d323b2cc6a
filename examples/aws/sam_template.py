"""The SAM template as SAM sees it: loaded, translated to CloudFormation, and resolved.

- :func:`load` reads ``template.yaml`` with CloudFormation's short tags (``!Ref``,
  ``!Sub``, ...) as their long forms (``{"Ref": ...}``, ``{"Fn::Sub": ...}``).
- :func:`translate` turns it into plain CloudFormation with aws-sam-translator, offline,
  after doing what ``sam build`` and ``sam package`` do first: each image function gets
  an ``ImageUri`` and the state machine's local ``DefinitionUri`` becomes an S3 location.
- :class:`Resolver` evaluates the intrinsic functions the template uses (``Ref``,
  ``Fn::GetAtt``, ``Fn::Sub``, ``Fn::FindInMap``, ``Fn::If`` and the conditions) for
  given parameter values and physical ids, as CloudFormation would on deploy; anything
  else raises, so a template that outgrows it fails loudly instead of being half-read.
- :func:`definition` is the state machine's ASL with its ``DefinitionSubstitutions``
  resolved from the template.

Used by ``lint_template.py`` (``make lint``) and by the tests that run the state machine
in moto's interpreter (``tests/test_state_machine.py``).
"""

from __future__ import annotations

import copy
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
TEMPLATE = HERE / "template.yaml"
FAKE_IMAGE = "123456789012.dkr.ecr.us-east-1.amazonaws.com/tmdb-ingest:python3.11-v1"
PSEUDO = {
    "AWS::AccountId": "123456789012",
    "AWS::Partition": "aws",
    "AWS::Region": "us-east-1",
    "AWS::StackName": "tmdb-ingest",
    "AWS::URLSuffix": "amazonaws.com",
}
_SUB_RE = re.compile(r"\$\{([^}!][^}]*)\}")


def load(path: Path = TEMPLATE) -> dict[str, Any]:
    """The template as plain dicts and lists, short tags in their long form."""
    from cfnlint.decode import cfn_yaml

    loaded = cfn_yaml.loads(path.read_text(), str(path))
    plain: dict[str, Any] = json.loads(json.dumps(loaded))  # cfn-lint's nodes -> dicts
    return plain


def packaged(template: Mapping[str, Any]) -> dict[str, Any]:
    """A copy as ``sam build`` + ``sam package`` leave it: images and the ASL uploaded."""
    out = copy.deepcopy(dict(template))
    for resource in out["Resources"].values():
        properties = resource.get("Properties", {})
        if (
            resource["Type"] == "AWS::Serverless::Function"
            and properties.get("PackageType") == "Image"
        ):
            properties.setdefault("ImageUri", FAKE_IMAGE)
        if resource["Type"] == "AWS::Serverless::StateMachine" and isinstance(
            properties.get("DefinitionUri"), str
        ):
            key = properties["DefinitionUri"]
            properties["DefinitionUri"] = {"Bucket": "sam-artifacts", "Key": key}
    return out


def translate(template: Mapping[str, Any]) -> dict[str, Any]:
    """The CloudFormation template SAM deploys for ``template`` (translated offline).

    Raises samtranslator's ``InvalidDocumentException`` (its ``causes`` name each
    resource) for what SAM refuses.
    """
    import boto3
    from samtranslator.metrics.metrics import Metrics
    from samtranslator.parser.parser import Parser
    from samtranslator.translator.translator import Translator

    parameters = {
        name: spec["Default"]
        for name, spec in template.get("Parameters", {}).items()
        if "Default" in spec
    }
    # The session only tells the translator the region; nothing is fetched: the
    # template names no managed policy, so there is no policy map to look up either.
    session = boto3.session.Session(region_name=PSEUDO["AWS::Region"])
    metrics = Metrics()  # published to nowhere (its default), but published: no warning
    translator = Translator({}, Parser(), boto_session=session, metrics=metrics)
    try:
        result: dict[str, Any] = translator.translate(
            packaged(template), {**PSEUDO, **parameters}, get_managed_policy_map=dict
        )
    finally:
        metrics.publish()
    return result


class Resolver:
    """Evaluates a translated template's intrinsic functions, as CloudFormation would.

    ``parameters`` override the template's defaults; ``refs`` are the physical ids that
    ``Ref`` of a resource returns, ``attributes`` what ``Fn::GetAtt`` returns (keyed
    ``"Logical.Attribute"``).
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        parameters: Mapping[str, str] | None = None,
        *,
        refs: Mapping[str, str] | None = None,
        attributes: Mapping[str, str] | None = None,
        pseudo: Mapping[str, str] | None = None,
    ) -> None:
        self.template = template
        self.values: dict[str, Any] = {**PSEUDO, **(pseudo or {})}
        for name, spec in template.get("Parameters", {}).items():
            given = (parameters or {}).get(name, spec.get("Default"))
            if given is None:
                raise KeyError(f"parameter {name} has no default: give a value")
            allowed = spec.get("AllowedValues")
            if allowed is not None and str(given) not in [str(a) for a in allowed]:
                raise ValueError(f"parameter {name}: {given!r} is not one of {allowed}")
            self.values[name] = str(given)
        unknown = set(parameters or {}) - set(template.get("Parameters", {}))
        if unknown:
            raise KeyError(f"no such parameters: {sorted(unknown)}")
        self.refs = dict(refs or {})
        self.attributes = dict(attributes or {})

    def condition(self, name: str) -> bool:
        return bool(self.resolve(self.template["Conditions"][name]))

    def resolve(self, value: Any) -> Any:
        """``value`` with every intrinsic function evaluated."""
        if isinstance(value, list):
            return [r for r in (self.resolve(v) for v in value) if r is not _NO_VALUE]
        if not isinstance(value, dict):
            return value
        if len(value) == 1:
            ((key, arg),) = value.items()
            if key == "Ref":
                return self._ref(arg)
            if key == "Condition":
                return self.condition(arg)
            if key.startswith("Fn::"):
                return self._function(key, arg)
        resolved = {k: self.resolve(v) for k, v in value.items()}
        return {k: v for k, v in resolved.items() if v is not _NO_VALUE}

    def _ref(self, name: str) -> Any:
        if name == "AWS::NoValue":
            return _NO_VALUE
        if name in self.values:
            return self.values[name]
        if name in self.refs:
            return self.refs[name]
        raise KeyError(f"Ref {name}: not a parameter, and no physical id was given")

    def _attribute(self, logical: str, attribute: str) -> str:
        key = f"{logical}.{attribute}"
        if key not in self.attributes:
            raise KeyError(f"Fn::GetAtt {key}: no value was given")
        return self.attributes[key]

    def _function(self, key: str, arg: Any) -> Any:
        if key == "Fn::GetAtt":
            logical, attribute = arg.split(".", 1) if isinstance(arg, str) else arg
            return self._attribute(logical, attribute)
        if key == "Fn::FindInMap":
            name, top, second = (str(self.resolve(a)) for a in arg)
            return self.template["Mappings"][name][top][second]
        if key == "Fn::If":
            name, then, otherwise = arg
            return self.resolve(then if self.condition(name) else otherwise)
        if key == "Fn::Equals":
            left, right = (self.resolve(a) for a in arg)
            return str(left) == str(right)
        if key == "Fn::Not":
            return not self.resolve(arg[0])
        if key == "Fn::And":
            return all(self.resolve(a) for a in arg)
        if key == "Fn::Or":
            return any(self.resolve(a) for a in arg)
        if key == "Fn::Join":
            separator, parts = arg
            return separator.join(str(p) for p in self.resolve(parts))
        if key == "Fn::Sub":
            text, names = (arg, {}) if isinstance(arg, str) else arg
            return self.substitute(text, {k: self.resolve(v) for k, v in names.items()})
        raise KeyError(f"{key}: not supported by this resolver")

    def substitute(self, text: str, names: Mapping[str, Any]) -> str:
        """``Fn::Sub``: ``${Name}`` and ``${Logical.Attribute}`` replaced, ``${!x}`` kept."""

        def one(match: re.Match[str]) -> str:
            name = match.group(1)
            if name in names:
                return str(names[name])
            if "." in name and name not in self.values:
                return self._attribute(*name.split(".", 1))
            return str(self._ref(name))

        return _SUB_RE.sub(one, text).replace("${!", "${")


class _NoValue:
    def __repr__(self) -> str:
        return "AWS::NoValue"


_NO_VALUE = _NoValue()


def state_machine(cfn: Mapping[str, Any]) -> tuple[str, dict[str, Any]]:
    """The translated template's one state machine: (logical id, properties)."""
    (found,) = [
        (name, resource["Properties"])
        for name, resource in cfn["Resources"].items()
        if resource["Type"] == "AWS::StepFunctions::StateMachine"
    ]
    return found


def definition(cfn: Mapping[str, Any], resolver: Resolver, base: Path = HERE) -> str:
    """The state machine's definition with its ``DefinitionSubstitutions`` applied.

    The file is the one the template's ``DefinitionUri`` names, relative to ``base`` (the
    template's folder). Every ``${Name}`` in it must be a substitution, as on AWS.
    """
    _, properties = state_machine(cfn)
    path = base / properties["DefinitionS3Location"]["Key"]
    substitutions = resolver.resolve(properties.get("DefinitionSubstitutions", {}))
    text = path.read_text()
    missing = sorted(set(_SUB_RE.findall(text)) - set(substitutions))
    if missing:
        raise KeyError(f"{path.name}: no DefinitionSubstitutions for {missing}")
    return _SUB_RE.sub(lambda m: str(substitutions[m.group(1)]), text)


def function_config(cfn: Mapping[str, Any], logical: str, resolver: Resolver) -> dict[str, Any]:
    """A translated function's properties, every intrinsic resolved (Globals merged)."""
    resource = cfn["Resources"][logical]
    if resource["Type"] != "AWS::Lambda::Function":
        raise KeyError(f"{logical} is a {resource['Type']}, not a function")
    resolved: dict[str, Any] = resolver.resolve(resource["Properties"])
    return resolved
