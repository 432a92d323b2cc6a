"""The TMDB credential for a Lambda invocation: from the environment or from AWS.

Looked up in this order, the first that is set wins:

1. ``TMDB_API_KEY`` / ``TMDB_ACCESS_TOKEN``: plain environment variables (nothing fetched);
2. ``TMDB_SECRET_ID``: a Secrets Manager secret (name or ARN);
3. ``TMDB_SECRET_PARAMETER``: an SSM Parameter Store parameter, read with decryption.

A fetched value is either the raw credential or a JSON object with ``api_key`` (or
``TMDB_API_KEY``) and/or ``access_token`` (or ``TMDB_ACCESS_TOKEN``). A raw value shaped
like a JWT (TMDB's read access tokens are JWTs) is taken as an access token, anything
else as a v3 API key. The value is fetched with aiobotocore inside the running loop, on
every invocation (a rotated secret is picked up by a warm container), and it appears in
no log line or exception message: errors name the secret id and the AWS error code only.
Endpoints follow botocore's usual variables (``AWS_ENDPOINT_URL_SECRETS_MANAGER``,
``AWS_ENDPOINT_URL_SSM``), which is how the tests point them at moto.

A value still holding the deployment template's placeholder (``REPLACE_ME``) is a
:class:`ConfigError` naming the secret's source, raised before any TMDB request: without
it the first request would be rejected as a bad key, which reads like a TMDB problem.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import orjson

from tmdb_ingest.config.values import Secret
from tmdb_ingest.errors import ConfigError

__all__ = ["PLACEHOLDERS", "SECRET_VARIABLES", "credentials_from_env", "parse_secret"]

SECRET_VARIABLES = {
    "TMDB_SECRET_ID": "Secrets Manager secret (name or ARN) holding the TMDB key or token",
    "TMDB_SECRET_PARAMETER": "SSM parameter (SecureString) holding the TMDB key or token",
}
# Values that mean "not set yet": examples/aws/template.yaml creates the secret with the first.
PLACEHOLDERS = frozenset({"replace_me", "replace-me", "set-me", "set_me", "changeme"})

_JWT_RE = re.compile(r"^eyJ[A-Za-z0-9_-]*\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*$")
_KEY_NAMES = ("api_key", "TMDB_API_KEY")
_TOKEN_NAMES = ("access_token", "TMDB_ACCESS_TOKEN")


def parse_secret(value: str, *, source: str) -> dict[str, Secret]:
    """Turn a stored secret into ``{"api_key": ...}`` and/or ``{"access_token": ...}``.

    ``source`` names where it came from, for the error message (never the value).
    """
    text = value.strip()
    if not text:
        raise ConfigError("secret", f"{source} is empty")
    if not text.startswith("{"):
        _check_not_placeholder(text, source)
        return {"access_token" if _JWT_RE.match(text) else "api_key": Secret(text)}
    try:
        data = orjson.loads(text)
    except orjson.JSONDecodeError:
        raise ConfigError("secret", f"{source} starts with '{{' but is not valid JSON") from None
    found: dict[str, Secret] = {}
    if isinstance(data, dict):
        for field, names in (("api_key", _KEY_NAMES), ("access_token", _TOKEN_NAMES)):
            picked = next(
                (data[n] for n in names if isinstance(data.get(n), str) and data[n]), None
            )
            if picked:
                _check_not_placeholder(picked, source)
                found[field] = Secret(picked)
    if not found:
        raise ConfigError(
            "secret",
            f"{source} is JSON without a non-empty string under "
            f"{', '.join(_KEY_NAMES + _TOKEN_NAMES)}",
        )
    return found


def _check_not_placeholder(value: str, source: str) -> None:
    if value.strip().lower() in PLACEHOLDERS:
        raise ConfigError(
            "secret",
            f"{source} still holds the placeholder {value.strip()!r}: put your TMDB v3 key "
            "or read access token in it (e.g. aws secretsmanager put-secret-value)",
        )


async def credentials_from_env(env: Mapping[str, str]) -> dict[str, Secret]:
    """The credential overrides for ``Settings.from_env``: empty when the env holds them.

    Raises :class:`ConfigError` when the secret or parameter cannot be read, or holds a
    placeholder.
    """
    plain = [name for name in ("TMDB_API_KEY", "TMDB_ACCESS_TOKEN") if env.get(name)]
    for name in plain:
        _check_not_placeholder(env[name], name)
    if plain:
        return {}  # Settings.from_env reads them itself
    secret_id = env.get("TMDB_SECRET_ID")
    parameter = env.get("TMDB_SECRET_PARAMETER")
    if secret_id and parameter:
        raise ConfigError("secret", "set TMDB_SECRET_ID or TMDB_SECRET_PARAMETER, not both")
    if secret_id:
        source = f"Secrets Manager secret {secret_id!r}"
        response = await _call("secretsmanager", "get_secret_value", source, SecretId=secret_id)
        value = response.get("SecretString")
        if value is None:
            raw = response.get("SecretBinary") or b""
            value = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else str(raw)
        return parse_secret(value, source=source)
    if parameter:
        source = f"SSM parameter {parameter!r}"
        response = await _call("ssm", "get_parameter", source, Name=parameter, WithDecryption=True)
        return parse_secret(str(response["Parameter"]["Value"]), source=source)
    return {}


async def _call(service: str, operation: str, source: str, **params: Any) -> dict[str, Any]:
    from aiobotocore.session import get_session
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        async with get_session().create_client(service) as client:
            response: dict[str, Any] = await getattr(client, operation)(**params)
            return response
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise ConfigError("secret", f"cannot read {source}: {code}") from None
    except BotoCoreError as exc:
        raise ConfigError("secret", f"cannot read {source}: {type(exc).__name__}") from None
