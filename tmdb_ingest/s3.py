"""S3 as this package names and reads it: ``s3://bucket/key`` URIs, and S3's error codes.

:class:`S3Uri` is the one parser of ``s3://`` URIs (the CSV source, a Lambda event, the
saved selection's identity). :func:`error_code` reads the code of a botocore
``ClientError`` (or any exception carrying botocore's ``response``), and :func:`kind_of`
sorts a code into the few kinds the package acts on: the key is missing, the bucket is
missing, access is denied, a condition failed, or something else (worth a retry).
:func:`input_message` is the one-line message for a CSV that cannot be read. Nothing
here imports botocore, so the parser costs nothing at start-up.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any

__all__ = [
    "S3Error",
    "S3Uri",
    "denied_detail",
    "error_code",
    "input_message",
    "is_s3_uri",
    "kind_of",
]

_SCHEME = "s3://"


def is_s3_uri(text: str) -> bool:
    """Whether ``text`` names an S3 object (``s3://...``) rather than a path."""
    return text.startswith(_SCHEME)


@dataclass(frozen=True, slots=True)
class S3Uri:
    """An S3 object's address: ``s3://{bucket}/{key}``."""

    bucket: str
    key: str

    @classmethod
    def parse(cls, text: str) -> S3Uri:
        """Parse ``s3://bucket/key``; raise ``ValueError`` (saying what is expected) when
        ``text`` names no object (no bucket, no key, or a key ending in ``/``)."""
        bucket, _, key = text.removeprefix(_SCHEME).partition("/")
        if not is_s3_uri(text) or not bucket or not key or key.endswith("/"):
            raise ValueError(f"{text}: not an S3 object URI; expected s3://bucket/key")
        return cls(bucket, key)

    def __str__(self) -> str:
        return f"{_SCHEME}{self.bucket}/{self.key}"


class S3Error(enum.Enum):
    """What an S3 error code means to this package."""

    NO_SUCH_KEY = "no such key"
    NO_SUCH_BUCKET = "no such bucket"
    ACCESS_DENIED = "access denied"
    CONDITION_FAILED = "condition failed"  # If-None-Match / If-Match lost: 412
    OTHER = "other"  # throttling (SlowDown), 5xx, ...: worth another try


_KINDS = {
    **dict.fromkeys(("NoSuchKey", "NotFound"), S3Error.NO_SUCH_KEY),
    **dict.fromkeys(("NoSuchBucket", "InvalidBucketName"), S3Error.NO_SUCH_BUCKET),
    **dict.fromkeys(
        ("AccessDenied", "Forbidden", "AllAccessDisabled", "InvalidAccessKeyId",
         "SignatureDoesNotMatch"),
        S3Error.ACCESS_DENIED,
    ),
    "PreconditionFailed": S3Error.CONDITION_FAILED,
}  # fmt: skip
# Codes that are bare HTTP statuses (HEAD requests have no body to name the error).
_STATUSES = {
    404: S3Error.NO_SUCH_KEY,
    403: S3Error.ACCESS_DENIED,
    412: S3Error.CONDITION_FAILED,
}


def error_code(exc: BaseException) -> str:
    """S3's error code in ``exc`` (``NoSuchKey``), ``HTTP {status}`` when it names none,
    else the exception's type name."""
    response: Any = getattr(exc, "response", None)
    if isinstance(response, dict):
        code = response.get("Error", {}).get("Code")
        if code:
            return str(code)
        status = response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        if status:
            return f"HTTP {status}"
    return type(exc).__name__


def kind_of(code: str) -> S3Error:
    """What the error ``code`` (from :func:`error_code`) means."""
    if code in _KINDS:
        return _KINDS[code]
    status = code.removeprefix("HTTP ")
    return _STATUSES.get(int(status), S3Error.OTHER) if status.isdigit() else S3Error.OTHER


def denied_detail(code: str) -> str:
    """`` (InvalidAccessKeyId)`` for a denial that says more than "access denied"."""
    plain = code in ("AccessDenied", "Forbidden") or code.removeprefix("HTTP ").isdigit()
    return "" if plain else f" ({code})"


def input_message(uri: str, exc: BaseException) -> str:
    """The one line for a CSV at ``uri`` that S3 would not give: names the URI, the reason."""
    code = error_code(exc)
    kind = kind_of(code)
    response: Any = getattr(exc, "response", None)
    status = response.get("ResponseMetadata", {}).get("HTTPStatusCode") if response else None
    if kind is S3Error.NO_SUCH_KEY:
        return f"{uri}: no such key in the bucket"
    if kind is S3Error.NO_SUCH_BUCKET:
        return f"{uri}: no such bucket"
    if kind is S3Error.ACCESS_DENIED or status == 403:
        return f"{uri}: access denied{denied_detail(code)}"
    message = response.get("Error", {}).get("Message") if response else None
    return f"{uri}: cannot read from S3: {message or code}"
