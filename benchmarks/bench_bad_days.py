"""Bad days, measured as a user meets them: whole ``tmdb-ingest run`` processes.

- a wrong ``--tmdb-url``: nothing listening, and a web server that is not TMDB (404
  HTML pages): seconds from start to exit 1;
- persistent 5xx on 5% of the ids, then a healthy re-run of the same command: how many
  of the failed ids landed, and whether any landed twice;
- two invocations of one run (~800 ids) started at the same moment, then a third after
  both: duplicate movies and TMDB requests in all;
- SIGKILL of the holder, then the same command: the wait before it takes the lease over
  (default lease TTL 30 s and skew 5 s).

The TMDB emulator and moto's S3 server each run in their own process.
``python -m benchmarks.bench_bad_days``; ``python -m benchmarks --only bad_days``.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from benchmarks._common import API_KEY, EmulatorProcess, free_port, moto_process, print_section

BUCKET = "bench-bad-days"


class _NotTmdb(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html><body><h1>404 Not Found</h1></body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        return None


@contextlib.contextmanager
def not_tmdb_server() -> Iterator[str]:
    """A web server that answers every path with a 404 HTML page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NotTmdb)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/3"
    finally:
        server.shutdown()
        server.server_close()


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "tmdb_ingest", "run", *args, "--json"]


def _last_json(text: str) -> dict[str, Any]:
    return dict(json.loads(text.strip().splitlines()[-1]))


def _data_ids(root: Path) -> Counter[str]:
    ids: Counter[str] = Counter()
    for path in (root / "Raw/TMDB/JSON").rglob("*.json"):
        ids.update(movie["imdb_id"] for movie in json.loads(path.read_bytes()))
    return ids


def _s3_data_ids(s3: Any) -> Counter[str]:
    ids: Counter[str] = Counter()
    for page in s3.get_paginator("list_objects_v2").paginate(
        Bucket=BUCKET, Prefix="Raw/TMDB/JSON/"
    ):
        for item in page.get("Contents", []):
            body = s3.get_object(Bucket=BUCKET, Key=item["Key"])["Body"].read()
            ids.update(movie["imdb_id"] for movie in json.loads(body))
    return ids


def wrong_urls(csv: Path, tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    """Seconds from start to exit against a closed port and a non-TMDB server."""
    out: dict[str, Any] = {}
    with not_tmdb_server() as html_url:
        for name, url in (
            ("closed port", f"http://127.0.0.1:{free_port()}/3"),
            ("404 HTML", html_url),
        ):
            argv = _cli(str(csv), "--out-dir", str(tmp / name.replace(" ", "-")), "--tmdb-url", url)
            started = time.perf_counter()
            done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=120)
            took = time.perf_counter() - started
            line = [x for x in done.stderr.splitlines() if x.startswith("tmdb-ingest:")]
            out[name] = {"seconds": took, "exit": done.returncode, "line": line[-1] if line else ""}
    return out


def failed_then_healthy(csv: Path, tmp: Path, env: dict[str, str]) -> dict[str, Any]:
    """5% of ids answer 500 on every attempt; then the same command against a healthy TMDB."""
    out_dir = tmp / "repair"
    args = [str(csv), "--out-dir", str(out_dir), "--run-id", "repair", "--rate", "200"]
    with EmulatorProcess("--broken-rate", "0.05", "--seed", "3") as broken:
        first = _last_json(
            subprocess.run(_cli(*args, "--tmdb-url", broken.url), env=env,
                           capture_output=True, text=True, timeout=600, check=False).stdout
        )  # fmt: skip
    report = out_dir / "Raw/TMDB/_state/repair/shard-0-of-1/report.jsonl"
    failed = {
        e["imdb_id"]
        for e in map(json.loads, report.read_text().splitlines())
        if e["outcome"] == "failed"
    }
    with EmulatorProcess("--seed", "3") as healthy:
        second = _last_json(
            subprocess.run(_cli(*args, "--tmdb-url", healthy.url), env=env,
                           capture_output=True, text=True, timeout=600, check=False).stdout
        )  # fmt: skip
    data = _data_ids(out_dir)
    return {
        "selected": first["selected"],
        "failed_first": first["failed"],
        "retried": second.get("retried_failed", 0),
        "failed_landed": len(failed & set(data)),
        "failed_reported_not_found": len(failed - set(data)),
        "duplicates": sum(n - 1 for n in data.values() if n > 1),
        "second_requests": second["requests"],
    }


def two_at_once(
    csv: Path, env: dict[str, str], s3: Any, moto_url: str, tmdb_url: str
) -> dict[str, Any]:
    """Two invocations of one run at the same moment, then a third."""
    argv = _cli(f"s3://{BUCKET}/movies.csv", "--bucket", BUCKET, "--tmdb-url", tmdb_url,
                "--run-id", "twice", "--s3-endpoint-url", moto_url)  # fmt: skip
    procs = [
        subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for _ in range(2)
    ]
    results = []
    for proc in procs:
        stdout, stderr = proc.communicate(timeout=900)
        results.append((proc.returncode, _last_json(stdout), stderr))
    third = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=900)
    data = _s3_data_ids(s3)
    return {
        "exits": [code for code, _, _ in results] + [third.returncode],
        "busy_line": next(
            (
                line
                for _, _, err in results
                for line in err.splitlines()
                if line.startswith("tmdb-ingest: busy")
            ),
            "",
        ),
        "selected": results[0][1]["selected"],
        "requests": [s["requests"] for _, s, _ in results] + [_last_json(third.stdout)["requests"]],
        "duplicates": sum(n - 1 for n in data.values() if n > 1),
        "movies": len(data),
    }


def kill_then_take_over(
    csv: Path, env: dict[str, str], moto_url: str, tmdb_url: str
) -> dict[str, Any]:
    """SIGKILL the holder mid-run; the same command then waits for the lease and finishes."""
    argv = _cli(f"s3://{BUCKET}/movies.csv", "--bucket", BUCKET, "--tmdb-url", tmdb_url,
                "--run-id", "killed", "--s3-endpoint-url", moto_url)  # fmt: skip
    victim = subprocess.Popen(
        argv, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    time.sleep(8.0)
    victim.send_signal(signal.SIGKILL)
    victim.communicate()
    killed_at = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    took_over_after = None
    assert proc.stderr is not None
    waiting_line = ""
    for line in proc.stderr:
        if "waiting" in line and not waiting_line:
            waiting_line = (
                json.loads(line).get("message", line) if line.startswith("{") else line.strip()
            )
        if "took over the lease" in line:
            took_over_after = time.perf_counter() - killed_at
            break
    stdout, _ = proc.communicate(timeout=900)
    return {
        "took_over_after_kill_s": took_over_after,
        "waiting_line": waiting_line,
        "final_exit": proc.returncode,
        "final": _last_json(stdout),
    }


def run(report: list[str]) -> None:
    """Measure every case; append the markdown section to ``report``."""
    import boto3

    from tmdb_ingest.emulator.sample import generate_movies_csv

    env = {**os.environ, "TMDB_API_KEY": API_KEY}
    for name in [n for n in env if n.startswith("TMDB_INGEST_")]:
        env.pop(name)
    with tempfile.TemporaryDirectory(prefix="bench-bad-days-") as name:
        tmp = Path(name)
        csv = tmp / "movies.csv"
        generate_movies_csv(csv, movies=30_000, seed=21)  # about 800 ids selected
        urls = wrong_urls(csv, tmp, env)
        print(f"bad days: wrong urls {urls}", file=sys.stderr)
        repair = failed_then_healthy(csv, tmp, env)
        print(f"bad days: failed then healthy {repair}", file=sys.stderr)
        with moto_process() as moto_url, EmulatorProcess("--latency-ms", "150") as tmdb:
            env.update(
                AWS_ACCESS_KEY_ID="bench",
                AWS_SECRET_ACCESS_KEY="bench",
                AWS_DEFAULT_REGION="us-east-1",
            )
            s3 = boto3.client(
                "s3",
                endpoint_url=moto_url,
                region_name="us-east-1",
                aws_access_key_id="bench",
                aws_secret_access_key="bench",  # moto's dummy credentials
            )
            s3.create_bucket(Bucket=BUCKET)
            s3.upload_file(str(csv), BUCKET, "movies.csv")
            twice = two_at_once(csv, env, s3, moto_url, tmdb.url)
            print(f"bad days: two at once {twice}", file=sys.stderr)
            killed = kill_then_take_over(csv, env, moto_url, tmdb.url)
            print(f"bad days: kill then take over {killed}", file=sys.stderr)
            s3.close()
    selected = twice["selected"]
    report += [
        "## Bad days: what a user sees",
        "",
        f"Measured on {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC by "
        "`python -m benchmarks --only bad_days`: whole `tmdb-ingest run` processes, the "
        "emulator and moto's S3 server in their own processes, a sample catalogue of 30,000 "
        f"movies ({selected} selected by default).",
        "",
        "| case | measured |",
        "|---|---|",
        *(
            f"| `--tmdb-url` at a {case} | exit {r['exit']} after {r['seconds']:.1f} s: "
            f"`{r['line']}` |"
            for case, r in urls.items()
        ),
        f"| 5% of ids answer 500 on every attempt | {repair['failed_first']} of "
        f"{repair['selected']} reported failed, exit 0, done |",
        f"| ... then the same command, TMDB healthy | {repair['retried']} retried in "
        f"{repair['second_requests']} requests; {repair['failed_landed']} landed, "
        f"{repair['failed_reported_not_found']} not found; {repair['duplicates']} duplicates |",
        f"| two invocations at once, then a third (150 ms latency, S3) | exits "
        f"{', '.join(map(str, twice['exits']))}; TMDB requests "
        f"{' + '.join(map(str, twice['requests']))} = {sum(twice['requests'])} for {selected} "
        f"ids ({sum(twice['requests']) / selected:.3f} x); {twice['movies']} movies landed, "
        f"{twice['duplicates']} duplicates |",
        f"| SIGKILL after 8 s, then the same command | took the lease over "
        f"{killed['took_over_after_kill_s']:.1f} s after the kill (TTL 30 s + skew 5 s, less "
        f"the time since the last renewal); exit {killed['final_exit']}, done "
        f"{killed['final']['done']} |",
        "",
        f"The busy invocation's line: `{twice['busy_line']}`. The waiting line: "
        f"`{killed['waiting_line']}`.",
        "",
    ]


def main() -> None:
    print_section(run)


if __name__ == "__main__":
    main()
