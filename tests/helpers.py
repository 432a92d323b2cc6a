"""Helpers for the integration tests: read back what a run landed, and check it."""

from __future__ import annotations

import bisect
import gzip
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from tmdb_ingest.run.layout import LakeLayout

PREFIX = "Raw/TMDB/JSON"


@dataclass
class Landed:
    """What a run left in a sink: data files, their movies, and the report entries.

    ``raw`` holds each data file's stored bytes (gzipped when its name ends in ``.gz``);
    ``other`` every key under the data prefix that is not a data file (state, stray files).
    """

    files: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    raw: dict[str, bytes] = field(default_factory=dict)
    report: list[dict[str, Any]] = field(default_factory=list)
    report_keys: list[str] = field(default_factory=list)
    other: list[str] = field(default_factory=list)

    @property
    def data_ids(self) -> Counter[str]:
        return Counter(m["imdb_id"] for movies in self.files.values() for m in movies)

    @property
    def report_ids(self) -> Counter[str]:
        return Counter(e["imdb_id"] for e in self.report)

    def assert_exactly_once(self, selected: list[str] | set[str]) -> None:
        """Every selected id is in exactly one data file or the report, never both or twice."""
        data, report = self.data_ids, self.report_ids
        twice = [i for i, n in data.items() if n > 1] + [i for i, n in report.items() if n > 1]
        assert not twice, f"ids landed more than once: {sorted(twice)[:10]}"
        both = set(data) & set(report)
        assert not both, f"ids both in data and in the report: {sorted(both)[:10]}"
        everything = set(data) | set(report)
        missing = set(selected) - everything
        assert not missing, f"{len(missing)} ids lost, e.g. {sorted(missing)[:10]}"
        extra = everything - set(selected)
        assert not extra, f"ids that were not selected: {sorted(extra)[:10]}"


DATA_SUFFIXES = (".json", ".json.gz", ".ndjson", ".ndjson.gz")


def _is_data(key: str, prefix: str) -> bool:
    rest = key[len(prefix) + 1 :]
    return key.startswith(prefix + "/") and not rest.startswith("_") and key.endswith(DATA_SUFFIXES)


def parse_data_file(key: str, body: bytes) -> list[dict[str, Any]]:
    """The movies of one data file: gunzipped by its name, a JSON array or one per line."""
    if key.endswith(".gz"):
        body = gzip.decompress(body)
    if body.lstrip().startswith(b"["):
        movies: list[dict[str, Any]] = json.loads(body)
        return movies
    return [json.loads(line) for line in body.split(b"\n") if line.strip()]


def _report_keys(keys: list[str], state_roots: tuple[str, ...]) -> list[str]:
    return [
        k
        for k in keys
        if k.endswith("/report.jsonl") and k.startswith(tuple(f"{r}/" for r in state_roots))
    ]


def _state_roots(prefix: str, state_root: str | None) -> tuple[str, ...]:
    # the new place, and the legacy one inside the data prefix (runs started before the move)
    return tuple(place.state_root for place in LakeLayout.of(prefix, state_root).places())


def read_s3(s3: Any, bucket: str, prefix: str = PREFIX, state_root: str | None = None) -> Landed:
    """Read every data file under ``prefix`` and the report(s) under the state root."""
    landed = Landed()
    keys = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket):
        keys.extend(item["Key"] for item in page.get("Contents", []))
    for key in keys:
        if _is_data(key, prefix):
            body = s3.get_object(Bucket=bucket, Key=key)["Body"].read()
            landed.raw[key] = body
            landed.files[key] = parse_data_file(key, body)
        elif key.startswith(prefix + "/"):
            landed.other.append(key)
    for key in _report_keys(keys, _state_roots(prefix, state_root)):
        landed.report_keys.append(key)
        body = s3.get_object(Bucket=bucket, Key=key)["Body"].read().decode()
        landed.report.extend(json.loads(line) for line in body.splitlines() if line.strip())
    return landed


def read_dir(root: Path, prefix: str = PREFIX, state_root: str | None = None) -> Landed:
    """Read every data file under ``prefix`` and the report(s) under the state root."""
    landed = Landed()
    keys = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    for key in keys:
        if _is_data(key, prefix):
            body = (root / key).read_bytes()
            landed.raw[key] = body
            landed.files[key] = parse_data_file(key, body)
        elif key.startswith(prefix + "/"):
            landed.other.append(key)
    for key in _report_keys(keys, _state_roots(prefix, state_root)):
        landed.report_keys.append(key)
        text = (root / key).read_text()
        landed.report.extend(json.loads(line) for line in text.splitlines() if line.strip())
    return landed


def ids(n: int, start: int = 1000) -> list[str]:
    """``n`` valid, distinct IMDb ids (7 and 8 digits mixed)."""
    out = [f"tt{start + k:07d}" for k in range(n // 2)]
    out += [f"tt{10_000_000 + start + k:08d}" for k in range(n - n // 2)]
    return out


def busiest_window(times: list[float], window: float = 1.0) -> int:
    """The most of ``times`` in any half-open window of ``window`` seconds (0 if none):
    a time exactly one window after another counts in the next one, as on TMDB's edge."""
    times = sorted(times)
    return max((bisect.bisect_left(times, t + window) - i for i, t in enumerate(times)), default=0)
